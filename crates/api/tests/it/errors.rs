use crate::helpers::spawn_app;

#[tokio::test]
async fn unknown_routes_get_the_error_envelope() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/route")
    );
}

#[tokio::test]
async fn a_wrong_method_gets_405_in_the_envelope() {
    let app = crate::helpers::spawn_app().await;
    let (status, body) = app
        .call(
            reqwest::Method::PUT,
            "/api/jobs/stats/all",
            Some(&app.admin()),
            None,
        )
        .await;
    assert_eq!(status, 405);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_in_the_envelope() {
    let app =
        crate::helpers::spawn_app_with(&[("server.body_limit_bytes", figment::value::Value::from(64))]).await;
    let body = serde_json::json!({ "userIds": (0..50).map(|i| format!("user-{i}")).collect::<Vec<_>>() });
    let (status, response) = app.admin_post("/app/job-status/enqueue", Some(body)).await;
    assert_eq!(status, 413, "{response}");
    assert_eq!(response["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn redis_down_gets_503_naming_redis_without_details() {
    let app = crate::helpers::spawn_app_with(&[(
        "redis.port",
        figment::value::Value::from(crate::helpers::closed_port()),
    )])
    .await;
    let paths = [
        "/app/job-status/queue/stats",
        "/api/jobs",
        "/api/admin/queues/stats",
        "/metrics",
    ];
    // Concurrently: each waits for the connection manager's reconnect attempts to give up.
    let answers = futures::future::join_all(paths.iter().map(|path| app.admin_get(path))).await;
    for (path, (status, body)) in paths.iter().zip(answers) {
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"]["code"], "service_unavailable");
        assert_eq!(body["error"]["message"], "Redis is unavailable; try again later");
    }
}

#[tokio::test]
async fn mongo_down_gets_503_naming_mongodb() {
    let port = crate::helpers::closed_port();
    let app = crate::helpers::spawn_app_with(&[
        (
            "mongo.uri",
            figment::value::Value::from(format!("mongodb://127.0.0.1:{port}/?directConnection=true")),
        ),
        (
            "mongo.server_selection_timeout_ms",
            figment::value::Value::from(300),
        ),
        ("mongo.migrate_on_start", figment::value::Value::from(false)),
    ])
    .await;
    let (status, body) = app.admin_get("/app/job-status/recent").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["error"]["message"],
        "MongoDB is unavailable; try again later"
    );
}

#[tokio::test]
async fn while_redis_is_down_requests_get_503_quickly_and_recover_when_it_returns() {
    let mut redis = sellersync_core::testing::PrivateRedis::start();
    let app =
        crate::helpers::spawn_app_with(&[("redis.port", figment::value::Value::from(redis.port))]).await;
    let path = "/app/job-status/queue/stats";
    assert_eq!(app.admin_get(path).await.0, 200);

    redis.stop();
    let started = std::time::Instant::now();
    let (status, body) = app.admin_get(path).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    redis.restart();
    sellersync_core::testing::eventually(
        std::time::Duration::from_secs(10),
        "the API answers again",
        || async { app.admin_get(path).await.0 == 200 },
    )
    .await;
}
