//! The dashboard over HTTP: sign-in sets a strict session cookie, viewers read everything and
//! change nothing (dashboard and JSON API), every form needs its CSRF token, actions ask for
//! confirmation, pages render with data, and links carry a reverse proxy's prefix.

use figment::value::Value;
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sellersync_core::domain::auth::Role;

use crate::helpers::{self, TestApp, finish_jobs, spawn_app, spawn_app_with};

/// A browser-like client: no redirects followed, the session cookie sent by hand.
pub struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: String,
    base: String,
}

impl<'a> Browser<'a> {
    /// Signs in with `token`; panics unless it succeeds.
    pub async fn sign_in(app: &'a TestApp, token: &str) -> Self {
        let client = sellersync_core::infra::tls::http_client()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = SignInForm::get(app, &client).await;
        let response = form.post(app, &client, token).await;
        assert_eq!(response.status(), 303, "signed in");
        let set = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=", "Path=/"] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        let cookie = set.split(';').next().unwrap().to_owned();
        Self {
            app,
            client,
            cookie,
            base: "/admin".into(),
        }
    }

    pub async fn send_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.app.url(&format!("{}{path}", self.base)))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// GET without following a redirect: the status and the redirect target (or the body).
    pub async fn get_raw(&self, path: &str) -> (u16, String) {
        let response = self.send_get(path).await;
        let status = response.status().as_u16();
        match response.headers().get(LOCATION) {
            Some(location) => (status, location.to_str().unwrap().to_owned()),
            None => (status, response.text().await.unwrap()),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self.send_get(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// POSTs a form; returns the status and the redirect target or the body.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .client
            .post(self.app.url(&format!("{}{path}", self.base)))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location.unwrap_or(response.text().await.unwrap()))
    }

    /// The CSRF token of the overview's forms.
    pub async fn csrf(&self) -> String {
        let (status, html) = self.get("").await;
        assert_eq!(status, 200, "{html}");
        let start =
            html.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
        html[start..].split('"').next().unwrap().to_owned()
    }
}

/// The sign-in page's form token and the cookie that goes with it.
pub struct SignInForm {
    csrf: String,
    cookie: String,
}

impl SignInForm {
    pub async fn get(app: &TestApp, client: &reqwest::Client) -> Self {
        let page = client.get(app.url("/admin/login")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let set = page.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        for attribute in ["HttpOnly", "SameSite=Strict", "/admin/login;"] {
            assert!(set.contains(attribute), "{attribute} in {set}");
        }
        let cookie = set.split(';').next().unwrap().to_owned();
        let html = page.text().await.unwrap();
        let field = r#"name="csrf" value=""#;
        let start = html.find(field).expect("a CSRF field") + field.len();
        let csrf = html[start..].split('"').next().unwrap().to_owned();
        Self { csrf, cookie }
    }

    pub async fn post(&self, app: &TestApp, client: &reqwest::Client, token: &str) -> reqwest::Response {
        client
            .post(app.url("/admin/login"))
            .header(COOKIE, &self.cookie)
            .form(&[("token", token), ("csrf", &self.csrf)])
            .send()
            .await
            .unwrap()
    }
}

/// A failed job and a completed one.
async fn some_jobs(app: &TestApp) -> (String, String) {
    app.add_users(&["u-failed", "u-done"]).await;
    let failed = app.enqueue(&["u-failed"]).await.remove(0);
    finish_jobs(&app.queue().await, 1, Err("SP-API said no")).await;
    let done = app.enqueue(&["u-done"]).await.remove(0);
    finish_jobs(&app.queue().await, 1, Ok(())).await;
    (failed, done)
}

#[tokio::test]
async fn without_a_session_pages_lead_to_sign_in_and_bad_tokens_are_refused() {
    let app = spawn_app().await;
    let client = sellersync_core::infra::tls::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/admin/login");
    let login = client.get(app.url("/admin/login")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let form = SignInForm::get(&app, &client).await;
    for (token, status) in [("garbage", 401), (app.token("u1", Role::User).as_str(), 403)] {
        let response = form.post(&app, &client, token).await;
        assert_eq!(response.status(), status, "{token}");
        assert!(!sets_session(&response));
        assert!(response.text().await.unwrap().contains("login-error"));
    }
}

fn sets_session(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("sellersync_session="))
}

fn no_redirects() -> reqwest::Client {
    sellersync_core::infra::tls::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Login CSRF: the sign-in form needs the token of the page it came from, also sent as a cookie
/// only that form's path gets (a page elsewhere cannot sign a browser in with its own token).
#[tokio::test]
async fn the_sign_in_form_needs_its_own_csrf_token() {
    let app = spawn_app().await;
    let client = no_redirects();
    let admin = app.admin();
    let form = SignInForm::get(&app, &client).await;
    let other = SignInForm::get(&app, &client).await;
    let attempts = [
        ("no token, no cookie", None, vec![("token", admin.as_str())]),
        ("no token", Some(&form.cookie), vec![("token", admin.as_str())]),
        (
            "another page's token",
            Some(&form.cookie),
            vec![("token", admin.as_str()), ("csrf", other.csrf.as_str())],
        ),
        (
            "no cookie",
            None,
            vec![("token", admin.as_str()), ("csrf", form.csrf.as_str())],
        ),
    ];
    for (what, cookie, fields) in attempts {
        let mut request = client.post(app.url("/admin/login")).form(&fields);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{what}");
        assert!(!sets_session(&response), "{what}");
        assert!(response.text().await.unwrap().contains("login-error"), "{what}");
    }
    assert_eq!(form.post(&app, &client, &admin).await.status(), 303);
}

/// A session re-checks the key that verified its token on every request: an API restarted with a
/// rotated JWT_SECRET ends the sessions the old secret began (docs/security.md, Rotating).
#[tokio::test]
async fn a_rotated_jwt_secret_ends_dashboard_sessions_at_once() {
    let app = spawn_app().await;
    let session = Browser::sign_in(&app, &app.admin()).await;
    assert_eq!(session.get("").await.0, 200);
    let rotated = spawn_app_with(&[
        (
            "redis.key_prefix",
            Value::from(app.settings().redis.key_prefix.clone()),
        ),
        (
            "mongo.database",
            Value::from(app.settings().mongo.database.clone()),
        ),
        (
            "auth.jwt_secret",
            Value::from("rotated-0123456789-0123456789-abcdefgh"),
        ),
    ])
    .await;
    let after = Browser {
        app: &rotated,
        ..session
    };
    let (status, location) = after.get_raw("").await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/admin/login"),
        "the old secret's session ended"
    );
    let (status, _) = Browser { app: &app, ..after }.get_raw("").await;
    assert_eq!(
        status, 303,
        "and it is gone for every replica, not just refused by one"
    );
}

/// Demoting someone ends their dashboard sessions at once (their tokens still expire on their
/// own); everyone's, with `all`.
#[tokio::test]
async fn revoking_a_subject_ends_its_sessions_at_once_and_no_one_elses() {
    let app = spawn_app().await;
    let demoted = Browser::sign_in(&app, &app.token("ops2", Role::Admin)).await;
    let kept = Browser::sign_in(&app, &app.token("auditor", Role::Viewer)).await;
    let revoke = "/api/admin/dashboard/sessions/revoke";
    let (status, body) = app
        .admin_post(revoke, Some(serde_json::json!({ "sub": "ops2" })))
        .await;
    assert_eq!(
        (status, &body["data"]["revoked"]),
        (200, &serde_json::json!(1)),
        "{body}"
    );
    assert_eq!(demoted.get_raw("").await.0, 303, "sent to sign in");
    assert_eq!(kept.get("").await.0, 200);
    let viewer = app.token("auditor", Role::Viewer);
    let all = Some(serde_json::json!({ "all": true }));
    let (status, _) = app.call(Method::POST, revoke, Some(&viewer), all.clone()).await;
    assert_eq!(status, 403, "viewers change nothing");
    for bad in [
        serde_json::json!({}),
        serde_json::json!({ "sub": "x", "all": true }),
    ] {
        let (status, _) = app.admin_post(revoke, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, body) = app.admin_post(revoke, all).await;
    assert_eq!(
        (status, &body["data"]["revoked"]),
        (200, &serde_json::json!(1)),
        "{body}"
    );
    assert_eq!(kept.get_raw("").await.0, 303);
}

/// Paging values are checked: no overflow, a clear 400 page.
#[tokio::test]
async fn paging_beyond_the_last_possible_page_or_not_a_number_is_a_400_page() {
    let app = spawn_app().await;
    let session = Browser::sign_in(&app, &app.admin()).await;
    for list in ["/queues/user-data/jobs?state=failed&", "/users?"] {
        assert_eq!(session.get(&format!("{list}page=1")).await.0, 200, "{list}");
        for page in ["10001", "18446744073709551615", "99999999999999999999", "-1", "x"] {
            let (status, html) = session.get(&format!("{list}page={page}")).await;
            assert_eq!(status, 400, "{list}page={page}: {html}");
            assert!(
                html.contains("bad_request"),
                "{list}page={page}: an error page: {html}"
            );
        }
    }
}

#[tokio::test]
async fn a_viewer_reads_everything_and_changes_nothing() {
    let app = spawn_app().await;
    let (failed, _) = some_jobs(&app).await;
    let viewer = app.token("auditor", Role::Viewer);
    for path in [
        "/api/admin/queues/health",
        "/api/jobs",
        "/app/job-status/recent",
        "/api/metrics/queues",
    ] {
        let (status, body) = app.call(Method::GET, path, Some(&viewer), None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let retry = format!("/api/jobs/{failed}/retry");
    let (status, body) = app.call(Method::POST, &retry, Some(&viewer), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));

    let browser = Browser::sign_in(&app, &viewer).await;
    let (status, page) = browser.get(&format!("/queues/user-data/jobs/{failed}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("SP-API said no"), "the error is shown");
    assert!(!page.contains(r#"id="retry""#), "no retry button for a viewer");
    let csrf = browser.csrf().await;
    let form = [("csrf", csrf.as_str()), ("confirmed", "yes")];
    let (status, _) = browser
        .post(&format!("/queues/user-data/jobs/{failed}/retry"), &form)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        app.queue().await.get(&failed).await.unwrap().unwrap().state,
        "failed"
    );
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_a_confirmation() {
    let app = spawn_app().await;
    let (failed, _) = some_jobs(&app).await;
    let browser = Browser::sign_in(&app, &app.admin()).await;
    let path = format!("/queues/user-data/jobs/{failed}/retry");
    let (status, body) = browser.post(&path, &[("confirmed", "yes")]).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = browser
        .post(&path, &[("csrf", "forged"), ("confirmed", "yes")])
        .await;
    assert_eq!(status, 403);
    let csrf = browser.csrf().await;
    let (status, page) = browser.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(status, 200, "unconfirmed: a confirmation page");
    assert!(page.contains(r#"name="confirmed" value="yes""#), "{page}");
    assert_eq!(
        app.queue().await.get(&failed).await.unwrap().unwrap().state,
        "failed"
    );
    let back = format!("/admin/queues/user-data/jobs/{failed}");
    let (status, location) = browser
        .post(&path, &[("csrf", &csrf), ("confirmed", "yes"), ("back", &back)])
        .await;
    assert_eq!(status, 303);
    assert!(location.starts_with(&format!("{back}?notice=")), "{location}");
    assert_eq!(
        app.queue().await.get(&failed).await.unwrap().unwrap().state,
        "waiting"
    );
}

#[tokio::test]
async fn queue_actions_and_bulk_selection_work_from_forms() {
    let app = spawn_app().await;
    let (failed, done) = some_jobs(&app).await;
    let browser = Browser::sign_in(&app, &app.admin()).await;
    let csrf = browser.csrf().await;
    let confirmed = [("csrf", csrf.as_str()), ("confirmed", "yes")];
    let (status, _) = browser.post("/queues/user-data/control/pause", &confirmed).await;
    assert_eq!(status, 303);
    assert!(app.queue().await.is_paused().await.unwrap());
    let bulk = [
        ("csrf", csrf.as_str()),
        ("confirmed", "yes"),
        ("action", "remove"),
        ("ids", failed.as_str()),
        ("ids", done.as_str()),
    ];
    let (status, location) = browser.post("/queues/user-data/bulk", &bulk).await;
    assert_eq!(status, 303);
    assert!(location.contains("2+jobs+done"), "{location}");
    assert!(app.queue().await.get(&failed).await.unwrap().is_none());
    let (status, _) = browser
        .post(
            "/enqueue",
            &[("csrf", csrf.as_str()), ("confirmed", "yes"), ("user", "u-done")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        app.queue().await.counts().await.unwrap().paused,
        1,
        "enqueued while paused"
    );
}

#[tokio::test]
async fn every_page_renders_with_data() {
    let app = spawn_app().await;
    let (failed, done) = some_jobs(&app).await;
    app.wait_for_status(&failed, "failed").await;
    app.wait_for_status(&done, "completed").await;
    let browser = Browser::sign_in(&app, &app.admin()).await;
    let pages = [
        (String::new(), "user-data"),
        ("/queues/user-data/jobs?state=failed".into(), failed.as_str()),
        (
            "/queues/user-data/jobs?state=failed&error=said+NO".into(),
            failed.as_str(),
        ),
        (
            "/queues/user-data/jobs?state=completed&user=u-done".into(),
            "u-done",
        ),
        (format!("/queues/user-data/jobs/{failed}"), "SP-API said no"),
        ("/users".into(), "u-failed"),
        ("/users/u-failed".into(), failed.as_str()),
    ];
    for (path, expected) in pages {
        let (status, html) = browser.get(&path).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(html.contains(expected), "{path} shows {expected}");
    }
    let (status, html) = browser
        .get("/queues/user-data/jobs?state=completed&error=nothing-like-this")
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("No jobs."));
    let (status, html) = browser.get("/queues/nope/jobs").await;
    assert_eq!(status, 404);
    assert!(html.contains("not_found"));
}

#[tokio::test]
async fn links_carry_the_reverse_proxy_prefix() {
    let app = spawn_app_with(&[("dashboard.public_prefix", Value::from("/proxy"))]).await;
    let browser = Browser::sign_in(&app, &app.admin()).await;
    let (status, html) = browser.get("").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"href="/proxy/admin/assets/app.css""#), "{html}");
    assert!(html.contains(r#"data-events-url="/proxy/api/events""#));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no asset from elsewhere"
    );
    let asset = app.get("/admin/assets/app.js").await;
    assert_eq!(asset.status(), 200);
    assert!(asset.text().await.unwrap().contains("EventSource"));
}

/// No dead ends: `/admin/` is `/admin`, and every error under the dashboard's path (an unknown
/// page, a missing job, a wrong method) is a page with the dashboard's navigation and a Back link
/// that needs no script, never the API's JSON.
#[tokio::test]
async fn the_trailing_slash_redirects_and_every_error_is_a_page_with_the_navigation() {
    let app = spawn_app().await;
    let client = no_redirects();
    let response = client.get(app.url("/admin/")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/admin");
    let session = Browser::sign_in(&app, &app.admin()).await;
    let anonymous = client.get(app.url("/admin/no/such/page")).send().await.unwrap();
    let answers = [
        ("unknown, signed out", 404, anonymous),
        ("unknown", 404, session.send_get("/no/such/page").await),
        (
            "no such job",
            404,
            session.send_get("/queues/user-data/jobs/nope").await,
        ),
        (
            "wrong method",
            405,
            client.put(app.url("/admin/login")).send().await.unwrap(),
        ),
    ];
    for (what, status, response) in answers {
        assert_eq!(response.status(), status, "{what}");
        let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/html"), "{what}: {kind}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let html = response.text().await.unwrap();
        assert!(html.contains(r#"id="error-code""#), "{what}: {html}");
        assert!(html.contains(r#"href="/admin/assets/app.css""#), "{what}: styled");
        assert!(html.contains(r#"href="/admin/users""#), "{what}: navigation");
        assert!(html.contains(r#"id="back" data-back"#), "{what}: a Back link");
        assert!(
            !html.contains("javascript:"),
            "{what}: the CSP blocks javascript: links"
        );
        assert!(!html.contains("<script>"), "{what}: no inline script");
    }
}

/// The sign-in page explains a browser that does not keep the dashboard's cookies (a Secure
/// cookie over plain HTTP) instead of looping back to the form without a word.
#[tokio::test]
async fn a_browser_that_drops_the_cookies_is_told_why_and_what_to_do() {
    let app = spawn_app_with(&[("dashboard.secure_cookie", Value::from(true))]).await;
    let client = no_redirects();
    let page = client.get(app.url("/admin/login")).send().await.unwrap();
    let set = page.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.contains("; Secure"), "{set}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"id="insecure-warning" hidden"#),
        "the script shows it off HTTPS"
    );
    // The form comes back without its cookie (the browser dropped it): said so, 403.
    let response = client
        .post(app.url("/admin/login"))
        .form(&[("token", app.admin().as_str()), ("csrf", "from-the-form")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"id="cookie-refused""#), "{html}");
    assert!(html.contains("dashboard.secure_cookie") && html.contains("https://"));
    // Signed in, but back without the session cookie: the sign-in page says why.
    let back = client.get(app.url("/admin?signed_in=1")).send().await.unwrap();
    assert_eq!(back.status(), 303);
    let location = back.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(location, "/admin/login?cookie=refused");
    let html = client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"id="cookie-refused""#) && html.contains("Secure"),
        "{html}"
    );
    let plain = client.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(
        plain.headers()[LOCATION],
        "/admin/login",
        "no marker, no explanation"
    );
}

/// Every admin action, through the JSON API or the dashboard, is recorded: who (the token's
/// subject), what, which jobs and users, when, from where; admins and viewers read the log.
#[tokio::test]
async fn every_admin_action_is_audited_and_the_log_is_readable() {
    let app = spawn_app().await;
    let (failed, done) = some_jobs(&app).await;
    let ops = app.token("ops-audit", Role::Admin);
    let act = |method: Method, path: String, body: Option<serde_json::Value>| {
        let ops = ops.clone();
        let app = &app;
        async move {
            let mut request = app.client.request(method, app.url(&path)).bearer_auth(&ops);
            request = request.header("x-forwarded-for", "203.0.113.9");
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            assert!(response.status().is_success(), "{path}: {}", response.status());
        }
    };
    act(Method::POST, format!("/api/jobs/{failed}/retry"), None).await;
    act(Method::POST, "/api/admin/queues/user-data/pause".into(), None).await;
    act(Method::POST, "/api/admin/queues/user-data/resume".into(), None).await;
    let bulk = serde_json::json!({ "action": "remove", "ids": [done] });
    act(
        Method::POST,
        "/api/admin/queues/user-data/jobs/bulk".into(),
        Some(bulk),
    )
    .await;
    let enqueue = serde_json::json!({ "userId": "u-done" });
    act(Method::POST, "/app/job-status/enqueue".into(), Some(enqueue)).await;
    let browser = Browser::sign_in(&app, &app.token("ops-dash", Role::Admin)).await;
    let csrf = browser.csrf().await;
    let form = [("csrf", csrf.as_str()), ("confirmed", "yes")];
    assert_eq!(
        browser.post("/queues/user-data/control/pause", &form).await.0,
        303
    );

    let viewer = app.token("auditor", Role::Viewer);
    let (status, body) = app
        .call(Method::GET, "/api/admin/audit", Some(&viewer), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let entries = body["data"]["entries"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["sub"].as_str().unwrap(),
                e["via"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("pause", "ops-dash", "dashboard"),
            ("enqueue", "ops-audit", "api"),
            ("bulk-remove", "ops-audit", "api"),
            ("resume", "ops-audit", "api"),
            ("pause", "ops-audit", "api"),
            ("retry", "ops-audit", "api"),
            ("enqueue", "ops", "api"),
            ("enqueue", "ops", "api"),
        ],
        "newest first (some_jobs enqueued two jobs through the API)"
    );
    let retry = &entries[5];
    assert_eq!(retry["jobIds"], serde_json::json!([failed]));
    assert_eq!(retry["userIds"], serde_json::json!(["u-failed"]));
    assert_eq!(retry["queue"], "user-data");
    assert_eq!(retry["from"], "127.0.0.1 (X-Forwarded-For: 203.0.113.9)");
    assert!(retry["at"].as_str().unwrap().starts_with("20"), "{retry}");
    assert_eq!(entries[2]["jobIds"], serde_json::json!([done]));
    assert_eq!(entries[0]["from"], "127.0.0.1");
    let enqueued = entries[1]["jobIds"][0].as_str().unwrap();
    assert_eq!(entries[1]["userIds"], serde_json::json!(["u-done"]));

    let (_, by_job) = app.admin_get(&format!("/api/admin/audit?job={enqueued}")).await;
    assert_eq!(by_job["data"]["count"], 1);
    let (_, by_sub) = app.admin_get("/api/admin/audit?sub=ops-dash").await;
    assert_eq!(by_sub["data"]["entries"][0]["action"], "pause");
    let (_, first_page) = app.admin_get("/api/admin/audit?limit=4").await;
    let next = first_page["data"]["next"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, second_page) = app.admin_get(&format!("/api/admin/audit?before={next}")).await;
    assert_eq!(second_page["data"]["count"], 4, "the rest");
    assert!(second_page["data"].get("next").is_none(), "the last page");
    let user = app.token("u-done", Role::User);
    let (status, _) = app.call(Method::GET, "/api/admin/audit", Some(&user), None).await;
    assert_eq!(status, 403, "users may not read it");
    let (status, _) = app.admin_get("/api/admin/audit?limit=0").await;
    assert_eq!(status, 400);
    act(
        Method::POST,
        "/api/admin/job-status/dead-letters/replay".into(),
        None,
    )
    .await;
    let (_, replays) = app.admin_get("/api/admin/audit?action=replay-dead-letters").await;
    let replay = &replays["data"]["entries"][0];
    assert_eq!(
        (replay["sub"].as_str(), replay["via"].as_str()),
        (Some("ops-audit"), Some("api"))
    );
    assert!(
        replay["detail"]
            .as_str()
            .unwrap()
            .contains("dead letters replayed"),
        "{replay}"
    );

    let (status, html) = browser.get("/audit?action=bulk-remove").await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("/queues/user-data/jobs/{done}")), "{html}");
    assert!(!html.contains(r#"data-action="pause""#), "filtered");
    let (_, job_page) = browser.get(&format!("/queues/user-data/jobs/{failed}")).await;
    assert!(
        job_page.contains(r#"data-action="retry""#),
        "the job page lists its actions"
    );
}

/// An action over everything a list's filter matches, not just the page shown: a confirmation
/// page counts the jobs, and an action that would now take more jobs than were confirmed asks
/// again.
#[tokio::test]
async fn an_action_over_a_filter_counts_confirms_and_takes_no_more_than_confirmed() {
    let app = spawn_app_with(&[("dashboard.page_size", Value::from(2))]).await;
    let users = ["f1", "f2", "f3", "g1"];
    app.add_users(&users).await;
    let mut last = String::new();
    for user in users {
        last = app.enqueue(&[user]).await.remove(0);
        finish_jobs(&app.queue().await, 1, Err("SP-API: 503")).await;
    }
    let browser = Browser::sign_in(&app, &app.admin()).await;
    let (_, page) = browser.get("/queues/user-data/jobs?state=failed").await;
    assert_eq!(page.matches("<tr data-job-id=").count(), 2, "one page of two");
    assert!(page.contains(r#"id="bulk-matching""#));
    let csrf = browser.csrf().await;
    let form = |expected: Option<&'static str>, confirmed: bool| {
        let mut fields = vec![
            ("csrf", csrf.clone()),
            ("action", "retry".to_owned()),
            ("state", "failed".to_owned()),
            ("id", String::new()),
            ("user", String::new()),
            ("error", String::new()),
        ];
        if let Some(n) = expected {
            fields.push(("expected", n.to_owned()));
        }
        if confirmed {
            fields.push(("confirmed", "yes".to_owned()));
        }
        fields
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let browser = &browser;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.post("/queues/user-data/bulk-matching", &fields).await
        }
    };
    let (status, confirm) = post(form(None, false)).await;
    assert_eq!(status, 200, "{confirm}");
    assert!(confirm.contains("retry 4 jobs of user-data"), "{confirm}");
    assert!(confirm.contains(r#"name="expected" value="4""#), "{confirm}");
    let (status, again) = post(form(Some("3"), true)).await;
    assert_eq!(status, 200, "more match than were confirmed: asked again");
    assert!(again.contains("more than the 3 you confirmed"), "{again}");
    assert_eq!(
        app.queue().await.counts().await.unwrap().failed,
        4,
        "nothing done"
    );
    let (status, location) = post(form(Some("4"), true)).await;
    assert_eq!(status, 303, "{location}");
    assert!(location.contains("4+jobs+done"), "{location}");
    let counts = app.queue().await.counts().await.unwrap();
    assert_eq!((counts.failed, counts.waiting), (0, 4));

    // A search narrows it: one user's jobs only.
    finish_jobs(&app.queue().await, 4, Err("SP-API: 503")).await;
    app.wait_for_status(&last, "failed").await;
    let mut by_user = form(None, false);
    by_user[1].1 = "remove".into();
    by_user[4].1 = "g1".into();
    let (_, confirm) = post(by_user.clone()).await;
    assert!(
        confirm.contains("remove 1 jobs of user-data: every one of the jobs of user g1"),
        "{confirm}"
    );
    by_user.push(("expected", "1".into()));
    by_user.push(("confirmed", "yes".into()));
    assert_eq!(post(by_user).await.0, 303);
    assert_eq!(app.queue().await.counts().await.unwrap().failed, 3);
    let (_, body) = app.admin_get("/api/admin/audit?action=bulk-retry").await;
    let entry = &body["data"]["entries"][0];
    assert_eq!(entry["jobCount"], 4);
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .starts_with("failed jobs: 4 jobs done"),
        "{entry}"
    );
}

/// A user's page shows the data we refreshed for each account: figures (revenue per currency in
/// its minor unit), when, from which job; and each account's status, roles not granted and
/// Amazon request id.
#[tokio::test]
async fn a_users_page_shows_each_accounts_figures_when_and_from_which_job() {
    let app = spawn_app().await;
    app.store_figures("figures-user", "job-42").await;
    let browser = Browser::sign_in(&app, &app.admin()).await;
    let (status, html) = browser.get("/users/figures-user").await;
    assert_eq!(status, 200, "{html}");
    for shown in [
        "USD 40.50",
        "JPY 4,000",
        "USD 20.25",
        "JPY 2,000",
        "1 (20.0%)",
        "SKU-1: 4 units",
        "SKU-1: 1 left, 1.8 days of cover",
        r#"href="/admin/queues/user-data/jobs/job-42""#,
        "getInventorySummaries",
        "req-figures-1",
        helpers::FIGURES_ACCOUNT,
        "Ok",
    ] {
        assert!(html.contains(shown), "{shown} in {html}");
    }
}

/// A job's timeline: every transition from the queue's event stream while it holds them, and
/// from the JobStatus record once the stream was trimmed. (The first app runs no projector, so
/// nothing trims its stream; the second, on the same Redis and database, projects and trims.)
#[tokio::test]
async fn a_jobs_timeline_comes_from_the_event_stream_then_from_its_record() {
    let app = spawn_app_with(&[("job_status.projector", Value::from(false))]).await;
    app.add_users(&["t1"]).await;
    let job = app.enqueue(&["t1"]).await.remove(0);
    let queue = app.queue().await;
    let lease = queue.fetch("w-timeline", 1).await.unwrap().jobs.remove(0);
    queue
        .fail(&job, lease.token, "SP-API: 503 (orders)", true)
        .await
        .unwrap();
    queue.promote(&job).await.unwrap();
    let lease = queue.fetch("w-timeline", 1).await.unwrap().jobs.remove(0);
    let ack = sellersync_queue::Ack {
        id: job.clone(),
        token: lease.token,
        result: "null".into(),
    };
    queue.complete(&[ack]).await.unwrap();
    let browser = Browser::sign_in(&app, &app.admin()).await;
    let path = format!("/queues/user-data/jobs/{job}");
    let (_, html) = browser.get(&path).await;
    assert_eq!(
        timeline_events(&html),
        [
            "enqueued",
            "active",
            "retrying",
            "promoted",
            "active",
            "completed"
        ],
        "{html}"
    );
    assert!(html.contains("From the queue&#39;s event stream."), "{html}");
    assert!(html.contains("SP-API: 503 (orders)") && html.contains("w-timeline"));

    let projected = spawn_app_with(&[
        (
            "redis.key_prefix",
            Value::from(app.settings().redis.key_prefix.clone()),
        ),
        (
            "mongo.database",
            Value::from(app.settings().mongo.database.clone()),
        ),
    ])
    .await;
    projected.wait_for_status(&job, "completed").await;
    sellersync_core::testing::eventually(
        std::time::Duration::from_secs(10),
        "the stream is trimmed behind the projector",
        || async {
            queue.trim_events().await.unwrap();
            events_left(&queue).await == 0
        },
    )
    .await;
    let (_, html) = browser.get(&path).await;
    assert_eq!(
        timeline_events(&html),
        ["enqueued", "attempt failed", "active", "completed"],
        "{html}"
    );
    assert!(html.contains("the event stream no longer holds"), "{html}");
    assert!(html.contains("SP-API: 503 (orders)"));
}

async fn events_left(queue: &sellersync_queue::Queue) -> usize {
    let mut conn = queue.connection();
    let batch = queue
        .read_events_after(&mut conn, sellersync_queue::events::StreamId::ZERO, 10, None)
        .await
        .unwrap();
    batch.stream_ids().len()
}

/// The events of a job page's timeline, in order.
fn timeline_events(html: &str) -> Vec<&str> {
    let timeline = &html[html.find(r#"id="timeline-rows""#).expect("a timeline")..];
    let timeline = &timeline[..timeline.find("</tbody>").unwrap()];
    timeline
        .split(r#"<tr data-event=""#)
        .skip(1)
        .map(|row| row.split('"').next().unwrap())
        .collect()
}
