//! The hostile-input pass (issue 16's measure): every route of the app's own OpenAPI document,
//! the dashboard's routes and the live feed, called with no token and with forged and edge-case
//! tokens (wrong key, `alg: none`, expired, `nbf` ahead, a user claiming `admin` with a wrong
//! key, a valid user token), bad path ids (very long, `../`, unicode, `%00`, bad escapes) and
//! malformed bodies / wrong content types. Checked: never a 5xx; nothing that needs an admin
//! succeeds without an admin token (and no dashboard session is made from a bad token); no
//! response to a non-admin carries internal text (driver errors, addresses, stack traces, the
//! worker's id), with a job in the store that failed with exactly such text.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use sellersync_core::domain::auth::Role;
use serde_json::json;

use crate::helpers::{SECRET, TestApp, alg_none, hs256, now, spawn_app};

/// The worker id and error of the seeded failed job: neither may reach a non-admin.
const WORKER: &str = "hostile-worker-7f3a";
const INTERNAL: &str = "Server selection timeout: No available servers. Topology: { Servers: [ { Address: 10.0.0.5:27017 } ] }; Kind: I/O error: Connection refused (os error 111)";

/// What a route is, for the checks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    /// No token needed (health, the document, the docs).
    Public,
    /// A user token may use it for its own user.
    User,
    /// Admin or viewer tokens only.
    Staff,
    /// A dashboard route (a session cookie, never a bearer token).
    Dashboard,
}

struct Route {
    method: Method,
    /// The path with `{param}` placeholders.
    template: String,
    access: Access,
}

/// Every token but an admin's: none of them may act as admin.
fn hostile_tokens(app: &TestApp) -> Vec<(&'static str, Option<String>)> {
    const WRONG: &str = "wrong-secret-0123456789-0123456789-abcdef";
    let admin = json!({ "sub": "ops", "role": "admin", "exp": now() + 600 });
    vec![
        ("no token", None),
        ("forged HS256 (wrong key)", Some(hs256(WRONG, admin.clone()))),
        ("alg none", Some(alg_none(&admin))),
        (
            "expired",
            Some(hs256(
                SECRET,
                json!({ "sub": "ops", "role": "admin", "exp": now() - 3600 }),
            )),
        ),
        (
            "nbf in the future",
            Some(hs256(
                SECRET,
                json!({ "sub": "ops", "role": "admin", "exp": now() + 7200, "nbf": now() + 3600 }),
            )),
        ),
        (
            "user claiming admin, wrong key",
            Some(hs256(
                WRONG,
                json!({ "sub": "u1", "role": "admin", "exp": now() + 600 }),
            )),
        ),
        ("garbage", Some(format!("{}.%00.{}", "A".repeat(300), ".."))),
        ("valid user token", Some(app.token("u1", Role::User))),
    ]
}

/// Every route: the OpenAPI document's, the dashboard's, and the live feed.
async fn every_route(app: &TestApp) -> Vec<Route> {
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let user_routes = [
        "/api/jobs/{id}",
        "/app/job-status/status/user/{userId}",
        "/api/events",
    ];
    let mut routes = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            let access = match (secured, method.as_str()) {
                (false, _) => Access::Public,
                (true, "get") if user_routes.contains(&path.as_str()) => Access::User,
                (true, _) => Access::Staff,
            };
            routes.push(Route {
                method: method.to_uppercase().parse().unwrap(),
                template: path.clone(),
                access,
            });
        }
    }
    assert!(
        routes.iter().any(|r| r.template == "/api/events"),
        "the live feed is in the document"
    );
    let base = &app.settings().dashboard.path;
    for (method, path) in [
        (Method::GET, ""),
        (Method::GET, "/"),
        (Method::POST, "/logout"),
        (Method::GET, "/queues/{name}/jobs"),
        (Method::GET, "/queues/{name}/jobs/{id}"),
        (Method::POST, "/queues/{name}/jobs/{id}/{action}"),
        (Method::POST, "/queues/{name}/bulk"),
        (Method::POST, "/queues/{name}/bulk-matching"),
        (Method::GET, "/counts"),
        (Method::GET, "/audit"),
        (Method::POST, "/queues/{name}/control/{action}"),
        (Method::GET, "/users"),
        (Method::GET, "/users/{id}"),
        (Method::POST, "/enqueue"),
    ] {
        routes.push(Route {
            method,
            template: format!("{base}{path}"),
            access: Access::Dashboard,
        });
    }
    assert!(routes.len() >= 35, "routes found: {}", routes.len());
    routes
}

/// Path parameter values: a real one first, then hostile ones (already percent-encoded where
/// a client would send them so).
fn path_values(real: &str) -> Vec<String> {
    vec![
        real.to_owned(),
        "x".repeat(4000),
        "..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "%2E%2E".to_owned(),
        "%C3%BCn%C3%AFc%C3%B8d%C3%A9-%F0%9F%98%80".to_owned(),
        "a%00b".to_owned(),
        "%ZZ".to_owned(),
        "%FF%FE".to_owned(),
        "%24gt".to_owned(),
    ]
}

/// The route's paths to try: each placeholder filled with each value (the others real).
fn paths(route: &Route, job: &str) -> Vec<String> {
    let real = |param: &str| match param {
        "name" => "user-data".to_owned(),
        "id" | "jobId" => job.to_owned(),
        "userId" => "u1".to_owned(),
        "action" => "retry".to_owned(),
        "file" => "app.js".to_owned(),
        _ => "x".to_owned(),
    };
    let params: Vec<String> = route
        .template
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect();
    let fill = |hostile: Option<(&str, &str)>| {
        let mut path = route.template.clone();
        for param in &params {
            let value = match hostile {
                Some((name, value)) if name == param => value.to_owned(),
                _ => real(param),
            };
            path = path.replace(&format!("{{{param}}}"), &value);
        }
        path
    };
    let mut all = vec![fill(None)];
    for param in &params {
        for value in path_values(&real(param)).iter().skip(1) {
            all.push(fill(Some((param, value))));
        }
    }
    all
}

/// A response, read without following redirects; an event stream is not read (it never ends).
struct Reply {
    status: u16,
    location: String,
    sets_cookie: bool,
    body: String,
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let location = header(reqwest::header::LOCATION);
    let streaming = header(CONTENT_TYPE).starts_with("text/event-stream");
    // A session cookie (the sign-in form's own CSRF cookie is not one).
    let sets_cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|c| c.to_str().is_ok_and(|c| c.starts_with("sellersync_session=")));
    let body = if streaming {
        String::new()
    } else {
        tokio::time::timeout(Duration::from_secs(10), response.text())
            .await
            .expect("a body within 10 s")
            .unwrap_or_default()
    };
    Reply {
        status,
        location,
        sets_cookie,
        body,
    }
}

/// Text that would tell a non-admin about our infrastructure, or the seeded job's internals.
fn internal_text(body: &str, documented: bool) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let mut patterns = vec![
        "topology",
        "server selection",
        "os error",
        "connection refused",
        "broken pipe",
        "kind: i/o",
        "panicked at",
        "stack backtrace",
        "rust_backtrace",
        ".rs:",
        "mongodb://",
        "redis://",
        "rediss://",
        "10.0.0.5",
        ":27017",
        ":6379",
        "127.0.0.1",
        "localhost:",
    ];
    // The words alone: fine in the API's own documentation (which describes the design) and
    // in `/readyz`, which names the service that is down (never why).
    if !documented {
        patterns.extend(["mongodb", "redis", "mongo-"]);
    }
    if let Some(found) = patterns.into_iter().find(|p| lower.contains(p)) {
        return Some(found.to_owned());
    }
    if lower.contains(&WORKER.to_ascii_lowercase()) {
        return Some(WORKER.to_owned());
    }
    None
}

/// Routes whose text describes the system by design (documentation, readiness, metrics).
fn documented(path: &str) -> bool {
    path == "/openapi.json"
        || path.starts_with("/docs")
        || path == "/readyz"
        || path == "/metrics"
        || path.contains("/assets/")
}

/// A 2xx, or a redirect anywhere but the sign-in page or the dashboard's home (where `/admin/`
/// leads, and which itself needs a session: checked as a route of its own): the request was
/// served.
fn succeeded(reply: &Reply) -> bool {
    let guarded = reply.location.contains("/login") || reply.location == "/admin";
    (200..300).contains(&reply.status) || ((300..400).contains(&reply.status) && !guarded)
}

#[tokio::test]
async fn hostile_requests_to_every_route_get_no_5xx_no_admin_access_and_no_internal_text() {
    let app = spawn_app().await;
    app.add_users(&["u1", "u2"]).await;
    // A job of u1's that failed with infrastructure text, on a worker with a recognisable id.
    let job = app.enqueue(&["u1"]).await.remove(0);
    let queue = app.queue().await;
    let fetched = queue.fetch(WORKER, 1).await.unwrap().jobs.remove(0);
    queue
        .fail(&fetched.id, fetched.token, INTERNAL, false)
        .await
        .unwrap();
    app.wait_for_status(&job, "failed").await;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20));
    let client = {
        sellersync_core::infra::tls::install_crypto_provider();
        client.build().unwrap()
    };
    let tokens = hostile_tokens(&app);
    let routes = every_route(&app).await;
    let mut calls = 0;
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let mut problems = Vec::new();
    for route in &routes {
        for path in paths(route, &job) {
            for (what, token) in &tokens {
                let mut request = client.request(route.method.clone(), app.url(&path));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let reply = send(request).await;
                calls += 1;
                *statuses.entry(reply.status).or_default() += 1;
                let call = format!("{} {path} with {what}", route.method);
                if reply.status >= 500 {
                    problems.push(format!("{call}: {} {}", reply.status, reply.body));
                }
                let may_succeed = match route.access {
                    Access::Public => true,
                    // Its own data only; a 2xx for another user's is caught by the 403 test
                    // in `auth`.
                    Access::User => *what == "valid user token",
                    Access::Staff | Access::Dashboard => false,
                };
                if succeeded(&reply) && !may_succeed {
                    problems.push(format!("{call} succeeded: {} {}", reply.status, reply.body));
                }
                if reply.sets_cookie && route.access == Access::Dashboard {
                    problems.push(format!("{call} set a cookie"));
                }
                if let Some(found) = internal_text(&reply.body, documented(&path)) {
                    problems.push(format!("{call} shows {found:?}: {}", reply.body));
                }
            }
        }
    }

    // The checks can fail: an admin does see the internal detail and the worker (before the
    // body pass below, whose admin calls may remove the job).
    let (_, body) = app.admin_get(&format!("/api/jobs/{job}")).await;
    assert_eq!(body["data"]["workerId"], WORKER, "{body}");
    assert!(internal_text(&body.to_string(), false).is_some(), "{body}");

    // Malformed bodies and wrong content types, with an admin token (so they reach the body
    // parsers) and with a user token.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = format!(r#"{{"userId":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let bodies: Vec<(&str, String)> = vec![
        ("application/json", "{".into()),
        ("application/json", "null".into()),
        ("application/json", "[]".into()),
        ("application/json", "\"x\"".into()),
        ("application/json", r#"{"userId":{"$gt":""}}"#.into()),
        ("application/json", r#"{"userIds":[{"$ne":null}]}"#.into()),
        ("application/json", r#"{"userId":"u1","delay":-1}"#.into()),
        ("application/json", r#"{"userId":"u1","priority":1e309}"#.into()),
        (
            "application/json",
            r#"{"userId":"u1","runAt":"9999-99-99"}"#.into(),
        ),
        ("application/json", "\u{0}\u{1}\u{2}".into()),
        ("application/json", deep),
        ("application/json", huge),
        ("text/plain", r#"{"userId":"u1"}"#.into()),
        ("application/x-www-form-urlencoded", "userId=u1&%ZZ=%00".into()),
        ("application/xml", "<userId>u1</userId>".into()),
        ("", r#"{"userId":"u1"}"#.into()),
    ];
    let admin = app.admin();
    let user = app.token("u1", Role::User);
    for route in routes.iter().filter(|r| r.method != Method::GET) {
        let path = paths(route, &job).remove(0);
        for (content_type, body) in &bodies {
            for (who, token) in [("admin", &admin), ("user", &user)] {
                let mut request = client
                    .request(route.method.clone(), app.url(&path))
                    .bearer_auth(token)
                    .body(body.clone());
                if !content_type.is_empty() {
                    request = request.header(CONTENT_TYPE, *content_type);
                }
                let reply = send(request).await;
                calls += 1;
                *statuses.entry(reply.status).or_default() += 1;
                let call = format!(
                    "{} {path} as {who} with a {content_type:?} body of {} bytes",
                    route.method,
                    body.len()
                );
                if reply.status >= 500 {
                    problems.push(format!("{call}: {} {}", reply.status, reply.body));
                }
                if who == "user" {
                    if succeeded(&reply) {
                        problems.push(format!("{call} succeeded: {}", reply.status));
                    }
                    if let Some(found) = internal_text(&reply.body, documented(&path)) {
                        problems.push(format!("{call} shows {found:?}: {}", reply.body));
                    }
                }
            }
        }
    }

    // The dashboard's sign-in makes no session from any of the bad tokens, nor from a user's.
    let login = format!("{}/login", app.settings().dashboard.path);
    for (what, token) in &tokens {
        let form = format!("token={}", token.as_deref().unwrap_or_default());
        let reply = send(
            client
                .post(app.url(&login))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
        calls += 1;
        if reply.status >= 500 || reply.sets_cookie || succeeded(&reply) && reply.status != 200 {
            problems.push(format!(
                "dashboard sign-in with {what}: {} {}",
                reply.status, reply.body
            ));
        }
        if let Some(found) = internal_text(&reply.body, false) {
            problems.push(format!("dashboard sign-in with {what} shows {found:?}"));
        }
    }

    eprintln!(
        "{calls} hostile calls over {} routes; statuses: {statuses:?}",
        routes.len()
    );
    assert!(calls > 2000, "{calls} calls");
    assert!(
        problems.is_empty(),
        "{} of {calls} hostile calls went wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
