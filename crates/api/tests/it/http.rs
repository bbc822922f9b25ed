//! Cross-cutting HTTP layers: CORS from configuration, compression.

use figment::value::Value;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn cors_headers_are_sent_only_for_configured_origins() {
    let app = spawn_app_with(&[(
        "server.cors_allowed_origins",
        Value::from(vec!["https://admin.example.com".to_owned()]),
    )])
    .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/jobs"))
        .header("Origin", "https://admin.example.com")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://admin.example.com"
    );
    let other = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    let default = spawn_app().await;
    let response = default
        .client
        .get(default.url("/healthz"))
        .header("Origin", "https://admin.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        !response.headers().contains_key("access-control-allow-origin"),
        "no CORS unless configured"
    );
}

#[tokio::test]
async fn responses_are_gzipped_when_the_client_accepts_it() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
}
