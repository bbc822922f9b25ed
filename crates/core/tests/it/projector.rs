//! The JobStatus projector against real Redis and MongoDB: events applied in any order, any number
//! of times, give the same record; a MongoDB outage delays records without losing any.

use std::time::Duration;

use mongodb::Database;
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::infra::connections::{connect_redis, mongo_database};
use sellersync_core::jobs::job_status::projection::Retention;
use sellersync_core::jobs::job_status::{self, JobStatusRecord, Status, projector};
use sellersync_core::testing::{PrivateMongo, TestNamespace, eventually};
use sellersync_queue::events::{JobEvent, ReadFrom};
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

/// One job's whole life: enqueued, a failed attempt, a second attempt that completes.
async fn life_of_a_job(q: &Queue) -> String {
    let payload = json!({ "userId": "u1", "trigger": "cron" });
    let id = q.enqueue(&payload, EnqueueOptions::default()).await.unwrap().id;
    let first = q.fetch("w1", 1).await.unwrap().jobs.remove(0);
    q.set_progress(&id, first.token, 50).await.unwrap();
    q.fail(&id, first.token, "throttled", true).await.unwrap();
    let second = loop {
        if let Some(job) = q.fetch("w2", 1).await.unwrap().jobs.pop() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let result = r#"{"accountsTotal":2,"accountsProcessed":2,"accountsFailed":0,"errors":[]}"#;
    let ack = Ack {
        id: id.clone(),
        token: second.token,
        result: result.into(),
    };
    q.complete(&[ack]).await.unwrap();
    id
}

async fn events(q: &Queue, ns: &TestNamespace) -> Vec<JobEvent> {
    let mut conn = connect_redis(&ns.settings.redis).await.unwrap();
    q.ensure_event_group("test").await.unwrap();
    q.read_events(
        &mut conn,
        "test",
        "t",
        ReadFrom::New,
        100,
        Duration::from_millis(10),
    )
    .await
    .unwrap()
    .events
}

async fn record(db: &Database, id: &str) -> JobStatusRecord {
    job_status::find(db, id).await.unwrap().expect("a record")
}

fn assert_final(r: &JobStatusRecord) {
    assert_eq!(r.status, Status::Completed);
    assert_eq!((r.user_id.as_str(), r.trigger.as_str()), ("u1", "cron"));
    assert_eq!((r.attempts, r.progress), (2, 100));
    assert_eq!(r.worker_id.as_deref(), Some("w2"));
    assert_eq!(r.accounts_processed, Some(2));
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert_eq!(
        (r.errors[0].attempt, r.errors[0].message.as_deref()),
        (1, Some("throttled"))
    );
    assert_eq!(
        r.errors[0].public_message.as_deref(),
        Some(sellersync_core::jobs::job_status::public::WILL_RETRY),
        "stored beside the detail"
    );
    assert!(r.enqueued_at.is_some() && r.completed_at.is_some() && r.expire_at.is_some());
}

#[tokio::test]
async fn events_in_any_order_and_any_number_of_times_give_the_same_record() {
    let ns = TestNamespace::new();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    let q = queue(&ns).await;
    let id = life_of_a_job(&q).await;
    let all = events(&q, &ns).await;
    assert_eq!(all.len(), 7);

    // Two projectors each took a part; the later part was written first.
    projector::project(&db, &q, &RETENTION, &all[4..]).await.unwrap();
    projector::project(&db, &q, &RETENTION, &all[..4]).await.unwrap();
    let after_split = record(&db, &id).await;
    assert_final(&after_split);

    // Replayed one by one, newest first, then all again: nothing moves.
    for event in all.iter().rev() {
        projector::project(&db, &q, &RETENTION, std::slice::from_ref(event))
            .await
            .unwrap();
    }
    projector::project(&db, &q, &RETENTION, &all).await.unwrap();
    assert_eq!(record(&db, &id).await, after_split);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mongodb_outage_delays_records_and_loses_none() {
    let mut mongo = tokio::task::spawn_blocking(PrivateMongo::start).await.unwrap();
    let ns = TestNamespace::with_overrides(&[("mongo.uri", figment::value::Value::from(mongo.uri()))]);
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    let q = queue(&ns).await;
    let running = sellersync_core::bootstrap::spawn_projector(&ns.settings, q.clone(), db.clone(), "p1")
        .unwrap()
        .unwrap();

    let first = q
        .enqueue(&json!({ "userId": "a" }), EnqueueOptions::default())
        .await
        .unwrap()
        .id;
    eventually(Duration::from_secs(10), "the first record", || async {
        job_status::find(&db, &first).await.ok().flatten().is_some()
    })
    .await;

    tokio::task::block_in_place(|| mongo.stop());
    let mut ids = vec![first.clone()];
    for n in 0..20 {
        let payload = json!({ "userId": format!("u{n}") });
        ids.push(q.enqueue(&payload, EnqueueOptions::default()).await.unwrap().id);
    }
    let leased = q.fetch("w1", 5).await.unwrap().jobs;
    let acks: Vec<Ack> = leased
        .iter()
        .map(|j| Ack {
            id: j.id.clone(),
            token: j.token,
            result: "null".into(),
        })
        .collect();
    q.complete(&acks).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // the projector meets the outage
    tokio::task::block_in_place(|| mongo.restart());

    eventually(
        Duration::from_secs(60),
        "every record, with its latest state",
        || async {
            let mut done = 0;
            for id in &ids {
                let expected = if acks.iter().any(|a| &a.id == id) {
                    Status::Completed
                } else {
                    Status::Queued
                };
                if job_status::find(&db, id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.status == expected)
                {
                    done += 1;
                }
            }
            done == ids.len()
        },
    )
    .await;
    running.stop().await;
}

/// One event MongoDB refuses every time (here a validator on `job_status` refusing one user's
/// records) in a batch with others: the batch is split until that event is alone, the event is
/// kept as a dead letter, the others are projected, and the stream moves on. Once the cause is
/// gone, a replay projects the dead letter.
#[tokio::test]
async fn a_poison_event_is_isolated_kept_as_a_dead_letter_and_replayed() {
    use sellersync_core::jobs::job_status::dead_letters;
    let ns = TestNamespace::new();
    let q = queue(&ns).await;
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    let refuse = mongodb::bson::doc! { "userId": { "$ne": "poison" } };
    db.create_collection(job_status::JOB_STATUS)
        .validator(refuse)
        .await
        .unwrap();
    sellersync_core::infra::migrations::apply(&db).await.unwrap();
    let mut ids = Vec::new();
    for user in ["a", "poison", "b", "c"] {
        let payload = json!({ "userId": user, "trigger": "cron" });
        ids.push(q.enqueue(&payload, EnqueueOptions::default()).await.unwrap().id);
    }

    let running = sellersync_core::bootstrap::spawn_projector(&ns.settings, q.clone(), db.clone(), "p1")
        .unwrap()
        .expect("projector on");
    eventually(
        Duration::from_secs(10),
        "the batch projected and acknowledged",
        || async { q.event_backlog(projector::GROUP).await.unwrap().total() == 0 },
    )
    .await;
    running.stop().await;

    for (id, user) in ids.iter().zip(["a", "poison", "b", "c"]) {
        let found = job_status::find(&db, id).await.unwrap();
        assert_eq!(found.is_some(), user != "poison", "{user}");
    }
    let letters = dead_letters::list(&db, 10).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (letters[0].job_id.as_str(), letters[0].kind.as_str()),
        (ids[1].as_str(), "enqueued")
    );
    assert!(
        letters[0].error.contains("121") || letters[0].error.contains("validation"),
        "{}",
        letters[0].error
    );

    let retention = Retention::of(q.config(), Duration::from_secs(86_400));
    let refused = dead_letters::replay(&db, &q, &retention).await.unwrap();
    assert_eq!(
        (refused.replayed, refused.still_refused),
        (0, 1),
        "still refused: kept"
    );
    db.run_command(mongodb::bson::doc! { "collMod": job_status::JOB_STATUS, "validator": {} })
        .await
        .unwrap();
    let replayed = dead_letters::replay(&db, &q, &retention).await.unwrap();
    assert_eq!((replayed.replayed, replayed.still_refused), (1, 0));
    assert_eq!(record(&db, &ids[1]).await.status, Status::Queued);
    assert!(dead_letters::list(&db, 10).await.unwrap().is_empty());
}
