//! The dashboard over HTTP: sign-in sets a strict session cookie, viewers read everything and
//! change nothing (dashboard and JSON API), every form needs its CSRF token, actions ask for
//! confirmation, pages render with data, and links carry a reverse proxy's prefix.

use figment::value::Value;
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sellersync_core::domain::auth::Role;

use crate::helpers::{TestApp, finish_jobs, spawn_app, spawn_app_with};

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

    async fn send_get(&self, path: &str) -> reqwest::Response {
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
