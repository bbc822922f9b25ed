//! The OpenAPI document describes every route: the routes the issue and the seeds name are in
//! it, and every operation in it is served (none falls through to the 404 fallback or a 405).
//! Routes are registered only through utoipa-axum, so a handler cannot be served undocumented.

use reqwest::Method;

use crate::helpers::spawn_app;

const EXPECTED: &[(&str, &str)] = &[
    ("get", "/app/job-status/status/user/{userId}"),
    ("get", "/app/job-status/status/job/{jobId}"),
    ("get", "/app/job-status/recent"),
    ("get", "/app/job-status/queue/stats"),
    ("get", "/app/job-status/failed"),
    ("post", "/app/job-status/enqueue"),
    ("get", "/api/admin/queues/health"),
    ("get", "/api/admin/queues/stats"),
    ("get", "/api/admin/queues/{name}/stats"),
    ("get", "/api/admin/queues/{name}/jobs"),
    ("get", "/api/admin/queues/{name}/job/{id}"),
    ("delete", "/api/admin/queues/{name}/job/{id}"),
    ("post", "/api/admin/queues/{name}/job/{id}/retry"),
    ("post", "/api/admin/queues/{name}/pause"),
    ("post", "/api/admin/queues/{name}/resume"),
    ("post", "/api/admin/queues/{name}/clean"),
    ("post", "/api/admin/queues/{name}/jobs/retry-failed"),
    ("get", "/api/jobs"),
    ("get", "/api/jobs/{id}"),
    ("delete", "/api/jobs/{id}"),
    ("post", "/api/jobs/{id}/retry"),
    ("get", "/api/jobs/stats/all"),
    ("get", "/api/metrics/queues"),
    ("get", "/metrics"),
    ("get", "/api/admin/cron-runs"),
    ("get", "/api/admin/audit"),
    ("get", "/api/admin/job-status/dead-letters"),
    ("post", "/api/admin/job-status/dead-letters/replay"),
    ("post", "/api/admin/dashboard/sessions/revoke"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("post", "/api/admin/queues/{name}/jobs/bulk"),
    ("post", "/api/admin/queues/{name}/job/{id}/promote"),
    ("post", "/api/admin/queues/{name}/job/{id}/priority"),
    ("get", "/api/events"),
];

/// Routes whose success is an endless stream: checked by status and headers only.
const STREAMS: &[&str] = &["/api/events"];

#[tokio::test]
async fn the_document_lists_every_route_and_every_listed_route_is_served() {
    let app = spawn_app().await;
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for (method, path) in EXPECTED {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is documented"
        );
    }
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        operations,
        EXPECTED.len(),
        "no undocumented extras, no missing ones"
    );

    let admin = app.admin();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let concrete = path.replace("{name}", "user-data").replace(['{', '}'], "");
            if STREAMS.contains(&path.as_str()) {
                let response = app
                    .client
                    .get(app.url(&concrete))
                    .bearer_auth(&admin)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{path}");
                assert!(operation["responses"].get("200").is_some());
                continue;
            }
            let (status, body) = app
                .call(
                    method.to_uppercase().parse::<Method>().unwrap(),
                    &concrete,
                    Some(&admin),
                    None,
                )
                .await;
            let fallback = body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no route"));
            assert!(
                !fallback && status != 405,
                "{method} {path} is served: {status} {body}"
            );
            assert!(status < 500, "{method} {path}: {status} {body}");
            assert!(
                operation["responses"].get(status.to_string()).is_some(),
                "{method} {path} answered {status}, which its documentation does not list"
            );
        }
    }
}

#[tokio::test]
async fn the_docs_ui_is_served() {
    let app = spawn_app().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<html") && html.contains("sellersync API"),
        "{}",
        &html[..200.min(html.len())]
    );
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "nothing loads from elsewhere: {html}"
    );
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "init.js"] {
        let response = app.get(&format!("/docs/assets/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.bytes().await.unwrap().len() > 100, "{asset} has content");
    }
}

#[tokio::test]
async fn the_webhook_body_and_signature_are_documented() {
    let app = spawn_app().await;
    let (_, document) = app.get_json("/openapi.json").await;
    let schemas = &document["components"]["schemas"];
    let notification = &schemas["Notification"]["properties"];
    for field in ["id", "type", "occurredAt", "summary", "data"] {
        assert!(
            notification.get(field).is_some(),
            "Notification.{field}: {notification}"
        );
    }
    let types = schemas["EventType"].to_string();
    for kind in [
        "job.failed",
        "user.reauthorization_required",
        "queue.unhealthy",
        "tick.failed",
    ] {
        assert!(types.contains(kind), "{kind}: {types}");
    }
    let description = document["info"]["description"].as_str().unwrap();
    assert!(description.contains("X-Sellersync-Signature") && description.contains("HMAC-SHA256"));
}
