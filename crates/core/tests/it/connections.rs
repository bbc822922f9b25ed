use std::time::{Duration, Instant};

use figment::value::Value;
use sellersync_core::infra::connections::{connect_redis, mongo_database, ping_mongo};
use sellersync_core::testing::{TestNamespace, free_port as closed_port};
use sellersync_queue::{Ack, EnqueueOptions, NewJob, Queue};

#[tokio::test]
async fn redis_on_a_closed_port_fails_fast_with_a_clear_error() {
    let ns = TestNamespace::with_overrides(&[
        ("redis.port", Value::from(closed_port())),
        ("redis.connect_timeout_ms", Value::from(500)),
    ]);
    let started = Instant::now();
    let error = connect_redis(&ns.settings.redis).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(error.is_unavailable(), "{error}");
}

#[tokio::test]
async fn mongo_on_a_closed_port_fails_within_the_selection_timeout() {
    let uri = format!("mongodb://127.0.0.1:{}/?directConnection=true", closed_port());
    let ns = TestNamespace::with_overrides(&[
        ("mongo.uri", Value::from(uri)),
        ("mongo.server_selection_timeout_ms", Value::from(300)),
    ]);
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    let started = Instant::now();
    let error = ping_mongo(&db).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(error.is_unavailable(), "{error}");
}

#[tokio::test]
async fn both_services_answer_with_the_test_settings() {
    let ns = TestNamespace::new();
    let mut redis = connect_redis(&ns.settings.redis).await.unwrap();
    sellersync_core::infra::connections::ping_redis(&mut redis)
        .await
        .unwrap();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    ping_mongo(&db).await.unwrap();
}

/// Enqueues, leases and completes one job on the (empty) `queue`: the queue's real work over
/// whatever connection it was given.
pub(crate) async fn one_job_through(queue: &Queue) {
    let job = NewJob::new(&serde_json::json!({ "userId": "u1" }), EnqueueOptions::default()).unwrap();
    queue.enqueue_bulk(&[job]).await.unwrap();
    let leased = queue.fetch("w1", 10).await.unwrap().jobs;
    assert_eq!(leased.len(), 1);
    let ack = Ack {
        id: leased[0].id.clone(),
        token: leased[0].token,
        result: "null".into(),
    };
    assert_eq!(queue.complete(&[ack]).await.unwrap(), vec![leased[0].id.clone()]);
    assert_eq!(queue.counts().await.unwrap().completed, 1);
}
