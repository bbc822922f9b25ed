//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven
//! over WebDriver with fantoccini): sign in, see the queue, retry a failed job and watch it move
//! through the live feed, a viewer has no buttons and its POSTs are refused, a form without its
//! CSRF token is refused. Writes a screenshot of each page to `<target>/screenshots/` (or
//! `SELLERSYNC_SCREENSHOT_DIR`).
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

use crate::helpers::{TestApp, closed_port, finish_jobs, spawn_app};

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

    async fn session(&self) -> Client {
        let mut options = json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,1000"] });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        // The dashboard's confirmation dialogs are accepted, as a user clicking OK would.
        capabilities.insert("unhandledPromptBehavior".into(), json!("accept"));
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session")
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
    assert_eq!(
        post_from_page(
            &browser,
            "/admin/queues/user-data/control/pause",
            json!({ "confirmed": "yes" })
        )
        .await,
        403,
        "no CSRF token: refused"
    );
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
    browser.close().await.unwrap();
}
