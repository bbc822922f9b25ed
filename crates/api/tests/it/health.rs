use figment::value::Value;

use crate::helpers::{closed_port, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_answers() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_is_200_when_redis_and_mongo_answer() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["redis"]["status"], "up");
    assert_eq!(body["checks"]["mongo"]["status"], "up");
}

#[tokio::test]
async fn readyz_warns_when_redis_may_evict_jobs() {
    let redis = sellersync_core::testing::PrivateRedis::start();
    let app = spawn_app_with(&[("redis.port", Value::from(redis.port))]).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["checks"]["warnings"].is_null(), "noeviction is safe: {body}");

    let client = redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "still ready, but: {body}");
    let warning = body["checks"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("allkeys-lru") && warning.contains("noeviction"),
        "{warning}"
    );
}

#[tokio::test]
async fn readyz_is_503_naming_mongo_when_mongo_is_unreachable() {
    let port = closed_port();
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let app = spawn_app_with(&[
        ("mongo.uri", Value::from(uri)),
        ("mongo.server_selection_timeout_ms", Value::from(300)),
    ])
    .await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "service_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("mongo") && !message.contains("redis"),
        "{message}"
    );
    assert_eq!(body["checks"]["mongo"]["status"], "down");
    assert_eq!(body["checks"]["redis"]["status"], "up");
    assert!(
        !body.to_string().contains(&format!(":{port}")),
        "anyone may call /readyz: no addresses in it: {body}"
    );
}

#[tokio::test]
async fn readyz_is_503_naming_redis_when_redis_is_unreachable() {
    let app = spawn_app_with(&[
        ("redis.port", Value::from(closed_port())),
        ("redis.connect_timeout_ms", Value::from(300)),
    ])
    .await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["redis"]["status"], "down");
    assert_eq!(body["checks"]["mongo"]["status"], "up");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let generated = app.get("/healthz").await;
    let id = generated
        .headers()
        .get("x-request-id")
        .expect("a generated request id");
    assert_eq!(id.to_str().unwrap().len(), 36, "a UUID");

    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
}
