//! The status read model: fed by the projector from the queue's events before MongoDB, it gives
//! the same records MongoDB does, in any order the batches come; it keeps each user's latest jobs
//! only; a read that finds no entry falls back to MongoDB and fills it; a rebuild refills it
//! after a Redis loss; with MongoDB stopped, status reads it holds still answer; and its own
//! consumer group reads the events whatever MongoDB's projection does.

use std::time::Duration;

use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::domain::accounts::{self, UserFreshness};
use sellersync_core::infra::connections::{connect_redis, delete_keys, mongo_database};
use sellersync_core::jobs::job_status::projection::{Retention, plan};
use sellersync_core::jobs::job_status::read_model::ReadModel;
use sellersync_core::jobs::job_status::{self, projector, reads};
use sellersync_core::testing::{PrivateMongo, TestNamespace, eventually};
use sellersync_queue::events::ReadFrom;
use sellersync_queue::{Ack, EnqueueOptions, Queue};
use serde_json::json;

const RETENTION: Retention = Retention {
    completed: Duration::from_secs(3600),
    failed: Duration::from_secs(7200),
    pending: Duration::from_secs(86_400),
};

async fn queue(ns: &TestNamespace) -> Queue {
    let redis = connect_redis(&ns.settings.redis).await.unwrap();
    let mut config = ns.settings.queue(USER_DATA_QUEUE).unwrap();
    config.backoff_ms = Some(1);
    Queue::new(redis, ns.key_prefix(), USER_DATA_QUEUE, config)
}

async fn read_model(ns: &TestNamespace, jobs: usize) -> ReadModel {
    let redis = connect_redis(&ns.settings.redis).await.unwrap();
    ReadModel::new(redis, ns.key_prefix(), jobs, Duration::from_secs(3600)).unwrap()
}

/// A job of `user` that fails once and completes on its second attempt; returns its id.
async fn two_attempts(q: &Queue, user: &str) -> String {
    let id = q
        .enqueue(
            &json!({ "userId": user, "trigger": "cron" }),
            EnqueueOptions::default(),
        )
        .await
        .unwrap()
        .id;
    let first = q.fetch("w1", 1).await.unwrap().jobs.remove(0);
    q.fail(&id, first.token, "throttled", true).await.unwrap();
    let second = loop {
        if let Some(job) = q.fetch("w2", 1).await.unwrap().jobs.pop() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let result = r#"{"accountsTotal":1,"accountsProcessed":1,"accountsFailed":0,"errors":[]}"#;
    q.complete(&[Ack {
        id: id.clone(),
        token: second.token,
        result: result.into(),
    }])
    .await
    .unwrap();
    id
}

async fn all_events(q: &Queue, ns: &TestNamespace) -> Vec<sellersync_queue::events::JobEvent> {
    let mut conn = connect_redis(&ns.settings.redis).await.unwrap();
    q.ensure_event_group("test").await.unwrap();
    q.read_events(
        &mut conn,
        "test",
        "t",
        ReadFrom::New,
        1000,
        Duration::from_millis(10),
    )
    .await
    .unwrap()
    .events
}

#[tokio::test]
async fn batches_in_any_order_give_the_record_mongodb_has() {
    let ns = TestNamespace::new();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    let q = queue(&ns).await;
    let model = read_model(&ns, 10).await;
    let id = two_attempts(&q, "u1").await;
    let events = all_events(&q, &ns).await;
    let max = q.config().max_attempts();
    // Two projectors: the later part arrives first, then the earlier one, then all again.
    for part in [&events[3..], &events[..3], &events[..]] {
        model.apply(&plan(q.name(), max, &RETENTION, part)).await.unwrap();
    }
    projector::project(&db, &q, &RETENTION, &events).await.unwrap();
    let from_mongo = job_status::find(&db, &id).await.unwrap().unwrap();
    let from_redis = model.job(&id).await.unwrap().expect("in the read model");
    assert_eq!(from_redis, from_mongo);
    assert_eq!((from_redis.attempts, from_redis.errors.len()), (2, 1));
}

#[tokio::test]
async fn each_user_keeps_its_latest_jobs_and_a_missing_entry_falls_back_to_mongodb() {
    let ns = TestNamespace::new();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    let q = queue(&ns).await;
    let model = read_model(&ns, 3).await;
    accounts::upsert_user(&db, "u1", true).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let payload = json!({ "userId": "u1", "trigger": "api", "n": n });
        ids.push(q.enqueue(&payload, EnqueueOptions::default()).await.unwrap().id);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let events = all_events(&q, &ns).await;
    let writes = plan(q.name(), q.config().max_attempts(), &RETENTION, &events);
    model.apply(&writes).await.unwrap();
    projector::project(&db, &q, &RETENTION, &events).await.unwrap();

    assert!(
        model.user("u1", 3).await.unwrap().is_none(),
        "no freshness entry yet: not known complete"
    );
    let (user, jobs) = reads::user_status(&db, Some(&model), "u1", 3).await.unwrap();
    assert!(user.is_some());
    let newest: Vec<&str> = ids.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(), newest);
    let (freshness, cached) = model
        .user("u1", 3)
        .await
        .unwrap()
        .expect("filled by the fallback");
    assert_eq!(cached, jobs);
    assert_eq!(freshness, UserFreshness::default());
    assert!(
        model.user("u1", 4).await.unwrap().is_none(),
        "more than it keeps: MongoDB answers"
    );
    assert!(
        model.job(&ids[0]).await.unwrap().is_none(),
        "the oldest left with their entries"
    );
}

#[tokio::test]
async fn a_rebuild_refills_the_read_model_after_a_redis_loss() {
    let ns = TestNamespace::new();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    let q = queue(&ns).await;
    let model = read_model(&ns, 10).await;
    accounts::upsert_user(&db, "u1", true).await.unwrap();
    let id = two_attempts(&q, "u1").await;
    projector::project(&db, &q, &RETENTION, &all_events(&q, &ns).await)
        .await
        .unwrap();
    let mut redis = connect_redis(&ns.settings.redis).await.unwrap();
    delete_keys(&mut redis, &format!("{}rm:", ns.key_prefix()))
        .await
        .unwrap();
    assert!(model.job(&id).await.unwrap().is_none());

    assert_eq!(model.rebuild(&db, &|_| {}).await.unwrap(), 1);
    let (_, jobs) = model.user("u1", 10).await.unwrap().expect("rebuilt");
    assert_eq!(jobs, vec![job_status::find(&db, &id).await.unwrap().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mongodb_stopped_a_status_the_read_model_holds_still_answers() {
    let mut mongo = tokio::task::spawn_blocking(PrivateMongo::start).await.unwrap();
    let ns = TestNamespace::with_overrides(&[("mongo.uri", figment::value::Value::from(mongo.uri()))]);
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    let q = queue(&ns).await;
    let model = read_model(&ns, 10).await;
    accounts::upsert_user(&db, "u1", true).await.unwrap();
    let id = two_attempts(&q, "u1").await;
    let events = all_events(&q, &ns).await;
    model
        .apply(&plan(q.name(), q.config().max_attempts(), &RETENTION, &events))
        .await
        .unwrap();
    projector::project(&db, &q, &RETENTION, &events).await.unwrap();
    let before = reads::user_status(&db, Some(&model), "u1", 10).await.unwrap();

    tokio::task::block_in_place(|| mongo.stop());
    let during = reads::user_status(&db, Some(&model), "u1", 10).await.unwrap();
    assert_eq!(during, before);
    assert_eq!(
        reads::job(&db, Some(&model), &id).await.unwrap().unwrap().job_id,
        id
    );
}

#[tokio::test]
async fn the_read_model_group_projects_without_waiting_for_mongodb() {
    let ns = TestNamespace::new();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    let q = queue(&ns).await;
    let model = read_model(&ns, 10).await;
    accounts::upsert_user(&db, "u1", true).await.unwrap();
    let reader = connect_redis(&ns.settings.redis).await.unwrap();
    let running =
        projector::Projector::for_read_model(q.clone(), model.clone(), reader, "rm1".into(), RETENTION)
            .spawn();

    let payload = json!({ "userId": "u1", "trigger": "cron" });
    let id = q.enqueue(&payload, EnqueueOptions::default()).await.unwrap().id;
    eventually(
        Duration::from_secs(10),
        "the read model has the queued job",
        || async { model.job(&id).await.unwrap().is_some() },
    )
    .await;
    running.stop().await;

    // Only the read model's group read the event: JobStatus (MongoDB) has nothing yet, its group's
    // backlog still holds it, and a status read answers from Redis.
    assert_eq!(
        q.event_backlog(projector::READ_MODEL_GROUP)
            .await
            .unwrap()
            .total(),
        0
    );
    assert_eq!(q.event_backlog(projector::GROUP).await.unwrap().total(), 1);
    assert!(job_status::find(&db, &id).await.unwrap().is_none());
    let record = reads::job(&db, Some(&model), &id)
        .await
        .unwrap()
        .expect("answered from the read model");
    assert_eq!(record.status, job_status::Status::Queued);
    // The user's first status read fills its entry from MongoDB, merged with the queued job.
    let (freshness, jobs) = reads::user_status(&db, Some(&model), "u1", 10).await.unwrap();
    assert!(freshness.is_some());
    assert_eq!(
        jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert!(model.user("u1", 10).await.unwrap().is_some());
}
