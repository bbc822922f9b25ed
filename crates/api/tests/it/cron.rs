use std::time::Duration;

use figment::value::Value;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use sellersync_core::domain::accounts::{self, NewAccount};
use sellersync_core::domain::spapi::Region;
use sellersync_core::infra::connections::mongo_database;
use sellersync_core::jobs::producer::CRON_RUNS;
use sellersync_core::testing::eventually;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn every_second(namespace_overrides: &mut Vec<(&'static str, Value)>) {
    namespace_overrides.push(("cron.enabled", Value::from(true)));
    namespace_overrides.push(("cron.schedule", Value::from("* * * * * *")));
}

async fn seed_stale_users(app: &TestApp, n: usize) {
    let db = mongo_database(&app.settings().mongo, "it").await.unwrap();
    for i in 0..n {
        let user = format!("stale-{i}");
        accounts::upsert_user(&db, &user, true).await.unwrap();
        let account = NewAccount {
            user_id: user.clone(),
            seller_id: format!("{user}-S"),
            region: Region::Na,
            marketplace_id: "ATVPDKIKX0DER".into(),
            refresh_token: "Atzr|x|y".into(),
        };
        accounts::upsert_account(&db, &account).await.unwrap();
    }
}

#[tokio::test]
async fn two_api_instances_run_each_tick_once_and_enqueue_each_stale_user_once() {
    let mut overrides = Vec::new();
    every_second(&mut overrides);
    let first = spawn_app_with(&overrides).await;
    // The second instance shares the first one's Redis prefix and database.
    let mut shared = overrides.clone();
    shared.push((
        "redis.key_prefix",
        Value::from(first.settings().redis.key_prefix.clone()),
    ));
    shared.push((
        "mongo.database",
        Value::from(first.settings().mongo.database.clone()),
    ));
    let second = spawn_app_with(&shared).await;
    seed_stale_users(&first, 5).await;

    let db = mongo_database(&first.settings().mongo, "it").await.unwrap();
    let runs = db.collection::<Document>(CRON_RUNS);
    eventually(Duration::from_secs(15), "three completed ticks", || async {
        runs.count_documents(doc! { "status": "completed" })
            .await
            .unwrap()
            >= 3
    })
    .await;
    let docs: Vec<Document> = runs
        .find(doc! { "status": "completed" })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let instances: std::collections::HashSet<&str> =
        docs.iter().map(|d| d.get_str("instance").unwrap()).collect();
    assert!(!instances.is_empty());
    let enqueued: i64 = docs.iter().map(|d| d.get_i64("enqueued").unwrap()).sum();
    assert_eq!(
        enqueued, 5,
        "each stale user enqueued once over all ticks: {docs:?}"
    );

    let (status, body) = first.admin_get("/api/admin/cron-runs?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["count"], 2);
    drop(second);
}

#[tokio::test]
async fn cron_runs_validate_the_limit() {
    let app = spawn_app().await;
    for bad in ["0", "500", "abc"] {
        let (status, body) = app.admin_get(&format!("/api/admin/cron-runs?limit={bad}")).await;
        assert_eq!(status, 400, "limit={bad}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
    let (status, body) = app.admin_get("/api/admin/cron-runs").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["count"], 0);
}

#[tokio::test]
async fn an_api_started_after_a_missed_tick_catches_it_up_once() {
    // The API was down at the last :00; users went stale meanwhile.
    let down = spawn_app().await;
    seed_stale_users(&down, 3).await;
    let shared = [
        ("cron.catch_up", Value::from(true)),
        (
            "redis.key_prefix",
            Value::from(down.settings().redis.key_prefix.clone()),
        ),
        (
            "mongo.database",
            Value::from(down.settings().mongo.database.clone()),
        ),
    ];
    let schedule = down.settings().cron.schedule.clone();
    let missed =
        sellersync_core::jobs::cron::last_tick(&schedule, down.settings().timezone, chrono::Utc::now())
            .unwrap();
    let tick = sellersync_core::jobs::cron::tick_id(missed);
    let db = mongo_database(&down.settings().mongo, "it").await.unwrap();
    let runs = db.collection::<Document>(CRON_RUNS);
    let restarted = spawn_app_with(&shared).await;
    eventually(Duration::from_secs(15), "the missed tick caught up", || async {
        runs.count_documents(doc! { "_id": &tick, "status": "completed" })
            .await
            .unwrap()
            == 1
    })
    .await;
    let run = runs.find_one(doc! { "_id": &tick }).await.unwrap().unwrap();
    assert_eq!(run.get_i64("enqueued").unwrap(), 3, "{run}");
    // Restarted again: the tick is done, nothing is enqueued twice.
    let again = spawn_app_with(&shared).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs.count_documents(doc! {}).await.unwrap(), 1);
    assert_eq!(restarted.queue().await.counts().await.unwrap().total, 3);
    drop(again);
}
