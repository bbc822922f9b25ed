//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven
//! over WebDriver with fantoccini): sign in, see the queue, retry a failed job and watch it move
//! through the live feed (state, attempts, timings, timeline, counts), a viewer has no buttons and
//! its POSTs are refused, a form without its CSRF token is refused; no dead ends (`/admin/`, an
//! unknown page with a working Back link, a secure cookie over plain HTTP explained); bulk actions
//! over a filter, the audit log, a user's figures, dark mode. Any browser console error (a
//! script error, a Content-Security-Policy violation, a failed load) fails a test: each test reads
//! the console through chromedriver's log. Writes a screenshot of each page to
//! `<target>/screenshots/` (or `SELLERSYNC_SCREENSHOT_DIR`).
//!
//! Skipped, with a message, only when `chromedriver` is not installed and `CI` is unset; in CI
//! a missing driver fails the test. `scripts/services` installs both packages.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use sellersync_core::domain::auth::Role;
use sellersync_core::testing::eventually;
use serde_json::json;

use figment::value::Value;

use crate::helpers::{TestApp, closed_port, finish_jobs, spawn_app, spawn_app_with};

/// A chromedriver process of this test, killed when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChromeDriver {
    /// Starts chromedriver, or says why the test is skipped (`None`); fails in CI.
    async fn start() -> Option<Self> {
        let installed = Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromedriver is not installed, and CI requires the browser tests (scripts/services installs chromium and chromium-driver)"
            );
            eprintln!(
                "SKIPPED: browser test: chromedriver is not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = closed_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        eventually(Duration::from_secs(10), "chromedriver answers", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        Some(Self { child, port })
    }

    async fn session(&self) -> Browser {
        self.session_with(&[]).await
    }

    /// A browser session with Chromium flags beside the usual ones.
    async fn session_with(&self, flags: &[&str]) -> Browser {
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1440,1000",
        ];
        args.extend_from_slice(flags);
        let mut options = json!({ "args": args });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        // The dashboard's confirmation dialogs are accepted, as a user clicking OK would.
        capabilities.insert("unhandledPromptBehavior".into(), json!("accept"));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session");
        let session = client.session_id().await.unwrap().expect("a session id");
        Browser {
            client,
            log_url: format!("http://127.0.0.1:{}/session/{session}/se/log", self.port),
        }
    }
}

/// A browser session whose console is read through chromedriver's log endpoint.
struct Browser {
    client: Client,
    log_url: String,
}

impl std::ops::Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// The console's errors since the last read: script errors, Content-Security-Policy
    /// violations, failed loads.
    async fn console_errors(&self) -> Vec<String> {
        let reply: serde_json::Value = reqwest::Client::new()
            .post(&self.log_url)
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a log");
        reply["value"]
            .as_array()
            .expect("log entries")
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Fails on any console error since the last read, except the failed load of an error page
    /// the test asked for (`expected`: its URL and status, which Chromium reports as an error).
    async fn assert_clean_console(&self, expected: &[(&str, u16)]) {
        let errors: Vec<String> = self
            .console_errors()
            .await
            .into_iter()
            .filter(|message| {
                !expected.iter().any(|(url, status)| {
                    message.starts_with(&format!("{url} - Failed to load resource"))
                        && message.contains(&format!("status of {status}"))
                })
            })
            .collect();
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        wait_for(self, css).await.text().await.unwrap()
    }

    async fn click(&self, css: &str) {
        wait_for(self, css).await.click().await.unwrap();
    }

    /// A script's value.
    async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("the script runs")
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("SELLERSYNC_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("screenshots")
        });
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("written");
}

async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} appears: {e}"))
}

async fn sign_in(browser: &Client, app: &TestApp, token: &str) {
    browser.goto(&app.url("/admin")).await.unwrap();
    let field = wait_for(browser, "#token").await;
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/admin/login")
    );
    field.send_keys(token).await.unwrap();
    browser
        .find(Locator::Css("#sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(browser, "#signed-in").await;
}

/// Waits until the page's live feed is connected.
async fn live_connected(browser: &Client) {
    eventually(Duration::from_secs(10), "the live feed connects", || async {
        let status = browser.find(Locator::Css("#live-status")).await.unwrap();
        status.text().await.unwrap() == "Connected."
    })
    .await;
}

/// POSTs a form from the page (as a forged or hand-made request would); returns the status.
async fn post_from_page(browser: &Client, path: &str, fields: serde_json::Value) -> u64 {
    let script = r#"
        const [path, fields, done] = arguments;
        fetch(path, { method: "POST", body: new URLSearchParams(fields), redirect: "manual" })
            .then(r => done(r.status), e => done(String(e)));
    "#;
    let status = browser
        .execute_async(script, vec![json!(path), fields])
        .await
        .expect("the script runs");
    status.as_u64().unwrap_or_else(|| panic!("a status: {status}"))
}

/// Two failed jobs and a completed one, recorded in JobStatus.
async fn seed(app: &TestApp) -> (String, String) {
    app.add_users(&["alice", "bob", "carol"]).await;
    let queue = app.queue().await;
    let first = app.enqueue(&["alice"]).await.remove(0);
    finish_jobs(&queue, 1, Err("SP-API: 503 Service Unavailable (orders)")).await;
    let second = app.enqueue(&["bob"]).await.remove(0);
    finish_jobs(&queue, 1, Err("LWA: invalid_grant")).await;
    let done = app.enqueue(&["carol"]).await.remove(0);
    finish_jobs(&queue, 1, Ok(())).await;
    for (job, status) in [(&first, "failed"), (&second, "failed"), (&done, "completed")] {
        app.wait_for_status(job, status).await;
    }
    (first, second)
}

#[tokio::test]
async fn the_dashboard_works_in_a_real_browser() {
    let Some(driver) = ChromeDriver::start().await else {
        return;
    };
    let app = spawn_app().await;
    let (first, second) = seed(&app).await;
    let browser = driver.session().await;

    sign_in(&browser, &app, &app.admin()).await;
    wait_for(&browser, "#queue-user-data").await;
    screenshot(&browser, "overview").await;
    // Counts follow the live feed: a job enqueued elsewhere shows up without a reload.
    live_connected(&browser).await;
    let waiting = "span[data-count][data-queue='user-data'][data-state='waiting']";
    assert_eq!(browser.text(waiting).await, "0");
    app.add_users(&["dave"]).await;
    app.enqueue(&["dave"]).await;
    eventually(Duration::from_secs(10), "the waiting count follows", || async {
        browser.text(waiting).await == "1"
    })
    .await;
    finish_jobs(&app.queue().await, 1, Ok(())).await;
    let completed = "span[data-count][data-queue='user-data'][data-state='completed']";
    eventually(Duration::from_secs(10), "the counts follow", || async {
        browser.text(waiting).await == "0" && browser.text(completed).await == "2"
    })
    .await;

    browser
        .goto(&app.url("/admin/queues/user-data/jobs?state=failed"))
        .await
        .unwrap();
    wait_for(&browser, &format!("tr[data-job-id='{first}']")).await;
    screenshot(&browser, "jobs").await;

    browser
        .goto(&app.url(&format!("/admin/queues/user-data/jobs/{first}")))
        .await
        .unwrap();
    live_connected(&browser).await;
    screenshot(&browser, "job").await;
    browser.assert_clean_console(&[]).await;
    let pause = "/admin/queues/user-data/control/pause";
    assert_eq!(
        post_from_page(&browser, pause, json!({ "confirmed": "yes" })).await,
        403,
        "no CSRF token: refused"
    );
    browser.assert_clean_console(&[(&app.url(pause), 403)]).await;
    browser
        .find(Locator::Css("#retry"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "#notice").await;
    live_connected(&browser).await;
    finish_jobs(&app.queue().await, 1, Ok(())).await;
    wait_for(
        &browser,
        &format!("#live-feed li[data-job-id='{first}'][data-event='completed']"),
    )
    .await;
    let state = browser
        .find(Locator::Css("#job-state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(state, "completed", "the page followed the job live");
    // Not only the state: attempts, timings and the timeline follow too (never "completed"
    // beside "attempts 0 of 3").
    assert_eq!(browser.text("#job-attempt").await, "1");
    assert_eq!(browser.text("#job-max-attempts").await, "3");
    let finished = browser.text("td[data-live='finished']").await;
    assert!(finished.starts_with("20"), "finished at {finished:?}");
    let duration = browser.text("td[data-live='duration']").await;
    assert!(duration.parse::<u64>().is_ok(), "duration {duration:?}");
    assert!(browser.text("#job-progress").await.contains("100"));
    let timeline: Vec<String> = browser
        .eval("return [...document.querySelectorAll('#timeline-rows tr')].map(r => r.dataset.event)")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    let tail: Vec<&str> = timeline.iter().rev().take(2).rev().map(String::as_str).collect();
    assert_eq!(tail, ["active", "completed"], "appended live: {timeline:?}");
    assert!(timeline.starts_with(&["enqueued".to_owned()]), "{timeline:?}");
    screenshot(&browser, "job-live").await;

    browser.goto(&app.url("/admin/users")).await.unwrap();
    wait_for(&browser, "table.users").await;
    screenshot(&browser, "users").await;
    browser.goto(&app.url("/admin/users/bob")).await.unwrap();
    wait_for(&browser, &format!("a[href$='/jobs/{second}']")).await;
    screenshot(&browser, "user").await;

    browser.goto(&app.url("/docs")).await.unwrap();
    wait_for(&browser, ".swagger-ui .info").await;
    screenshot(&browser, "docs").await;

    browser.delete_all_cookies().await.unwrap();
    sign_in(&browser, &app, &app.token("auditor", Role::Viewer)).await;
    browser
        .goto(&app.url(&format!("/admin/queues/user-data/jobs/{second}")))
        .await
        .unwrap();
    wait_for(&browser, "#job-state").await;
    assert!(
        browser.find(Locator::Css("#retry")).await.is_err(),
        "a viewer has no retry button"
    );
    assert!(
        browser.find(Locator::Css("#remove")).await.is_err(),
        "nor a remove button"
    );
    screenshot(&browser, "viewer-job").await;
    let csrf = browser
        .find(Locator::Css("input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .expect("a token");
    let retry = format!("/admin/queues/user-data/jobs/{second}/retry");
    let status = post_from_page(&browser, &retry, json!({ "csrf": csrf, "confirmed": "yes" })).await;
    assert_eq!(status, 403, "a viewer's POST is refused");
    assert_eq!(
        app.queue().await.get(&second).await.unwrap().unwrap().state,
        "failed"
    );
    browser.assert_clean_console(&[(&app.url(&retry), 403)]).await;
    browser.close().await;
}

/// No dead ends: `/admin/` is the overview; an unknown page is a styled page with the
/// dashboard's navigation whose Back link works under the dashboard's Content-Security-Policy;
/// the audit log shows what was done.
#[tokio::test]
async fn the_dashboard_has_no_dead_ends_in_a_real_browser() {
    let Some(driver) = ChromeDriver::start().await else {
        return;
    };
    let app = spawn_app().await;
    let browser = driver.session().await;
    sign_in(&browser, &app, &app.admin()).await;
    browser.goto(&app.url("/admin/")).await.unwrap();
    wait_for(&browser, "#queue-user-data").await;
    assert_eq!(browser.current_url().await.unwrap().path(), "/admin");

    browser.goto(&app.url("/admin/users")).await.unwrap();
    wait_for(&browser, "table.users").await;
    let missing = app.url("/admin/no-such-page");
    browser.goto(&missing).await.unwrap();
    assert_eq!(browser.text("#error-code").await, "not_found");
    let styled = browser
        .eval("return getComputedStyle(document.querySelector('header.top')).display")
        .await;
    assert_eq!(styled, "flex", "the stylesheet applies");
    wait_for(&browser, "header.top nav a[href='/admin/audit']").await;
    screenshot(&browser, "error").await;
    browser.click("#back").await;
    wait_for(&browser, "table.users").await;
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/admin/users",
        "Back went back"
    );
    browser.assert_clean_console(&[(&missing, 404)]).await;

    app.add_users(&["audited"]).await;
    browser.goto(&app.url("/admin/users/audited")).await.unwrap();
    browser.click("#enqueue-user").await;
    wait_for(&browser, "#notice").await;
    browser.goto(&app.url("/admin/audit")).await.unwrap();
    let row = browser.text("tr[data-action='enqueue']").await;
    assert!(
        row.contains("ops (admin)") && row.contains("dashboard") && row.contains("audited"),
        "{row}"
    );
    screenshot(&browser, "audit").await;
    browser.assert_clean_console(&[]).await;
    browser.close().await;
}

/// Signing in over plain HTTP while `dashboard.secure_cookie` is on: the page warns before, and
/// says why after, instead of looping back to the form without a word. (`dashboard.test` maps to
/// this machine, so Chromium treats the page as any site on plain HTTP.)
#[tokio::test]
async fn signing_in_over_plain_http_with_a_secure_cookie_says_why_it_cannot_last() {
    let Some(driver) = ChromeDriver::start().await else {
        return;
    };
    let app = spawn_app_with(&[("dashboard.secure_cookie", Value::from(true))]).await;
    let browser = driver
        .session_with(&["--host-resolver-rules=MAP dashboard.test 127.0.0.1"])
        .await;
    let url = format!("http://dashboard.test:{}/admin", app.addr.port());
    browser.goto(&url).await.unwrap();
    let field = wait_for(&browser, "#token").await;
    let warning = wait_for(&browser, "#insecure-warning").await;
    assert!(warning.is_displayed().await.unwrap(), "warned before signing in");
    field.send_keys(&app.admin()).await.unwrap();
    browser.click("#sign-in").await;
    let refused = browser.text("#cookie-refused").await;
    assert!(
        refused.contains("dashboard.secure_cookie") && refused.contains("https://"),
        "{refused}"
    );
    assert!(browser.find(Locator::Css("#signed-in")).await.is_err());
    screenshot(&browser, "secure-cookie-over-http").await;
    let login = format!("http://dashboard.test:{}/admin/login", app.addr.port());
    browser.assert_clean_console(&[(&login, 403)]).await;
    browser.close().await;
}

/// An action over everything a filter matches (not just the page shown), counted and confirmed;
/// a user's figures with the job that refreshed them.
#[tokio::test]
async fn actions_over_a_filter_and_a_users_figures_in_a_real_browser() {
    let Some(driver) = ChromeDriver::start().await else {
        return;
    };
    let app = spawn_app_with(&[("dashboard.page_size", Value::from(2))]).await;
    let users = ["b1", "b2", "b3", "b4", "b5"];
    app.add_users(&users).await;
    for user in users {
        app.enqueue(&[user]).await;
        finish_jobs(&app.queue().await, 1, Err("SP-API: 503")).await;
    }
    let browser = driver.session().await;
    sign_in(&browser, &app, &app.admin()).await;
    browser
        .goto(&app.url("/admin/queues/user-data/jobs?state=failed"))
        .await
        .unwrap();
    wait_for(&browser, "#bulk-matching").await;
    let rows = browser
        .eval("return document.querySelectorAll('table.jobs tbody tr[data-job-id]').length")
        .await;
    assert_eq!(rows, 2, "a page of two");
    browser.click("#bulk-matching-submit").await;
    let question = browser.text("#question").await;
    assert!(question.contains("retry 5 jobs of user-data"), "{question}");
    screenshot(&browser, "bulk-matching-confirm").await;
    browser.click("#confirm").await;
    let notice = browser.text("#notice").await;
    assert_eq!(notice, "5 jobs done, 0 skipped");
    let counts = app.queue().await.counts().await.unwrap();
    assert_eq!((counts.failed, counts.waiting), (0, 5));

    let job = app
        .queue()
        .await
        .list(sellersync_queue::JobState::Waiting, 0, 1)
        .await
        .unwrap()[0]
        .id
        .clone();
    app.store_figures("b1", &job).await;
    browser.goto(&app.url("/admin/users/b1")).await.unwrap();
    let revenue = browser.text(".summary-revenue").await;
    assert_eq!(revenue, "JPY 4,000, USD 40.50");
    assert_eq!(
        browser.text(".summary-risk").await,
        "SKU-1: 1 left, 1.8 days of cover (0.57 a day)"
    );
    screenshot(&browser, "user-figures").await;
    browser.click(".summary-job").await;
    assert_eq!(browser.text("h1").await, format!("Job {job} (user-data)"));
    browser.assert_clean_console(&[]).await;
    browser.close().await;
}

/// Dark mode follows the system's preference (`prefers-color-scheme`), here Chromium's.
#[tokio::test]
async fn dark_mode_follows_the_systems_preference() {
    let Some(driver) = ChromeDriver::start().await else {
        return;
    };
    let app = spawn_app().await;
    let background = "return getComputedStyle(document.body).backgroundColor";
    let panel =
        "return getComputedStyle(document.querySelector('main section, body.login main')).backgroundColor";
    for (flags, page_bg, panel_bg) in [
        (&[][..], "rgb(246, 247, 249)", "rgb(255, 255, 255)"),
        (&["--force-dark-mode"][..], "rgb(18, 21, 27)", "rgb(27, 32, 41)"),
    ] {
        let browser = driver.session_with(flags).await;
        sign_in(&browser, &app, &app.admin()).await;
        wait_for(&browser, "#queue-user-data").await;
        assert_eq!(browser.eval(background).await, page_bg, "{flags:?}");
        assert_eq!(browser.eval(panel).await, panel_bg, "{flags:?}");
        if !flags.is_empty() {
            screenshot(&browser, "overview-dark").await;
        }
        browser.assert_clean_console(&[]).await;
        browser.close().await;
    }
}
