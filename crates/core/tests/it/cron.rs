use std::time::Duration;

use chrono::{TimeDelta, Utc};
use mongodb::bson::{self, Document, doc};
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::domain::accounts::{self, NewAccount};
use sellersync_core::domain::spapi::Region;
use sellersync_core::infra::connections::{connect_redis, mongo_database};
use sellersync_core::jobs::cron::{TickRetry, last_tick, next_tick, parse_schedule};
use sellersync_core::jobs::payload::Trigger;
use sellersync_core::jobs::producer::{ABANDONED, CRON_RUNS, Producer, TickOutcome};
use sellersync_core::testing::{PrivateMongo, TestNamespace};

async fn producer(ns: &TestNamespace, instance: &str) -> Producer {
    let redis = connect_redis(&ns.settings.redis).await.unwrap();
    let queue = ns.settings.open_queue(redis.clone(), USER_DATA_QUEUE).unwrap();
    Producer {
        db: mongo_database(&ns.settings.mongo, "it").await.unwrap(),
        redis,
        queue,
        instance: instance.to_owned(),
        key_prefix: ns.key_prefix().to_owned(),
        batch_size: 50,
        lease_ttl: Duration::from_secs(10),
        due_tolerance: ns.settings.cron.due_tolerance,
    }
}

/// A user refreshed `minutes_ago` (None: never), with or without an enabled account.
async fn user(p: &Producer, id: &str, active: bool, minutes_ago: Option<i64>, account: bool, interval: i64) {
    accounts::upsert_user(&p.db, id, active).await.unwrap();
    let mut set = doc! { "updateIntervalMinutes": interval };
    if let Some(minutes) = minutes_ago {
        let at = Utc::now() - TimeDelta::minutes(minutes);
        set.insert(
            "lastDataUpdateAt",
            bson::DateTime::from_millis(at.timestamp_millis()),
        );
    }
    p.db.collection::<Document>(accounts::USERS)
        .update_one(doc! { "_id": id }, doc! { "$set": set })
        .await
        .unwrap();
    if account {
        let acct = NewAccount {
            user_id: id.into(),
            seller_id: format!("{id}-S"),
            region: Region::Na,
            marketplace_id: "ATVPDKIKX0DER".into(),
            refresh_token: "Atzr|x|y".into(),
        };
        accounts::upsert_account(&p.db, &acct).await.unwrap();
    }
}

async fn seed(p: &Producer) {
    user(p, "fresh", true, Some(5), true, 60).await;
    user(p, "stale", true, Some(120), true, 60).await;
    user(p, "never", true, None, true, 60).await;
    user(p, "inactive", false, Some(120), true, 60).await;
    user(p, "no-accounts", true, Some(120), false, 60).await;
    user(p, "slow-interval", true, Some(120), true, 180).await;
}

async fn queued_users(p: &Producer) -> Vec<String> {
    let mut users: Vec<String> = p
        .queue
        .list(sellersync_queue::JobState::Waiting, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.data["userId"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    users
}

#[tokio::test]
async fn only_stale_users_with_accounts_are_enqueued_and_queued_ones_are_duplicates() {
    let ns = TestNamespace::new();
    let p = producer(&ns, "api-1").await;
    seed(&p).await;
    // "stale" already has a pending job.
    sellersync_core::jobs::producer::enqueue_refresh(&p.queue, &["stale".to_owned()], Trigger::Manual, 50)
        .await
        .unwrap();

    let tick = Utc::now();
    let TickOutcome::Ran(report) = p.run_tick(tick).await.unwrap() else {
        panic!("the tick should run")
    };
    assert_eq!(
        (report.selected, report.enqueued, report.duplicates),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!(queued_users(&p).await, vec!["never", "stale"]);

    let run =
        p.db.collection::<Document>(CRON_RUNS)
            .find_one(doc! { "_id": &report.tick_id })
            .await
            .unwrap()
            .unwrap();
    assert_eq!(run.get_str("status").unwrap(), "completed");
    assert_eq!(run.get_i64("enqueued").unwrap(), 1);
    assert_eq!(run.get_str("instance").unwrap(), "api-1");
    assert_eq!(
        p.run_tick(tick).await.unwrap(),
        TickOutcome::AlreadyDone,
        "a late repeat does nothing"
    );
}

#[tokio::test]
async fn two_instances_on_one_tick_make_one_run_and_one_job_per_user() {
    let ns = TestNamespace::new();
    let (a, b) = (producer(&ns, "api-a").await, producer(&ns, "api-b").await);
    seed(&a).await;
    let tick = Utc::now();
    let (ra, rb) = tokio::join!(a.run_tick(tick), b.run_tick(tick));
    let outcomes = [ra.unwrap(), rb.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, TickOutcome::Ran(_)))
            .count(),
        1,
        "{outcomes:?}"
    );
    let runs = sellersync_core::testing::all_documents(&a.db, CRON_RUNS).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(queued_users(&a).await, vec!["never", "stale"]);
    assert_eq!(a.queue.counts().await.unwrap().total, 2);
}

#[tokio::test]
async fn a_rerun_of_the_same_tick_enqueues_nothing_new_even_after_its_jobs_finished() {
    let ns = TestNamespace::new();
    let p = producer(&ns, "api-1").await;
    seed(&p).await;
    let tick = Utc::now();
    let TickOutcome::Ran(first) = p.run_tick(tick).await.unwrap() else {
        panic!()
    };
    assert_eq!(first.enqueued, 2);
    // The jobs finish (the users stay stale: say every refresh failed), and the tick is run again
    // as a takeover would after a crash before it was recorded as completed.
    for job in p.queue.fetch("w", 10).await.unwrap().jobs {
        p.queue
            .complete(&[sellersync_queue::Ack {
                id: job.id,
                token: job.token,
                result: "null".into(),
            }])
            .await
            .unwrap();
    }
    p.db.collection::<Document>(CRON_RUNS)
        .delete_many(doc! {})
        .await
        .unwrap();
    let TickOutcome::Ran(again) = p.run_tick(tick).await.unwrap() else {
        panic!()
    };
    assert_eq!((again.enqueued, again.duplicates), (0, 2), "{again:?}");
    // A new tick enqueues them again, and by then `fresh` and `slow-interval` are due as well.
    let TickOutcome::Ran(next) = p.run_tick(tick + TimeDelta::hours(1)).await.unwrap() else {
        panic!()
    };
    assert_eq!(next.enqueued, 4);
}

/// A user whose refresh finished `seconds_after` the tick `tick`.
async fn refreshed_after(p: &Producer, id: &str, tick: chrono::DateTime<Utc>, seconds_after: i64) {
    user(p, id, true, None, true, 60).await;
    let at = bson::DateTime::from_millis((tick + TimeDelta::seconds(seconds_after)).timestamp_millis());
    p.db.collection::<Document>(accounts::USERS)
        .update_one(doc! { "_id": id }, doc! { "$set": { "lastDataUpdateAt": at } })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refresh_finishing_after_its_tick_is_due_again_at_the_next_tick() {
    let ns = TestNamespace::new();
    let p = producer(&ns, "api-1").await;
    let tick = Utc::now() - TimeDelta::hours(1);
    refreshed_after(&p, "finished-30s-late", tick, 30).await;
    // Refreshed by hand three quarters into the hour: not due at the next tick.
    refreshed_after(&p, "refreshed-by-hand", tick, 45 * 60).await;

    let TickOutcome::Ran(report) = p.run_tick(tick + TimeDelta::hours(1)).await.unwrap() else {
        panic!("the tick should run")
    };
    assert_eq!(report.enqueued, 1, "{report:?}");
    assert_eq!(queued_users(&p).await, vec!["finished-30s-late"]);
}

#[tokio::test]
async fn a_user_waiting_for_reauthorization_is_skipped_until_its_credentials_change() {
    let ns = TestNamespace::new();
    let p = producer(&ns, "api-1").await;
    user(&p, "revoked", true, None, true, 60).await;
    let account_id = "revoked:revoked-S:na:ATVPDKIKX0DER".to_owned();
    let refused = sellersync_core::Secret::from("Atzr|x|y").fingerprint();
    let outcome =
        doc! { "status": "needsReauthorization", "at": bson::DateTime::now(), "tokenFingerprint": refused };
    p.db.collection::<Document>(accounts::USERS)
        .update_one(
            doc! { "_id": "revoked" },
            doc! { "$set": { "needsReauthorization": true, format!("accountOutcomes.{account_id}"): outcome } },
        )
        .await
        .unwrap();

    let tick = Utc::now();
    let TickOutcome::Ran(report) = p.run_tick(tick).await.unwrap() else {
        panic!()
    };
    assert_eq!(report.selected, 0, "skipped while its token is the refused one");

    p.db.collection::<Document>(accounts::SELLER_ACCOUNTS)
        .update_one(
            doc! { "_id": &account_id },
            doc! { "$set": { "refreshToken": "Atzr|new|token" } },
        )
        .await
        .unwrap();
    let TickOutcome::Ran(report) = p.run_tick(tick + TimeDelta::hours(1)).await.unwrap() else {
        panic!()
    };
    assert_eq!(report.enqueued, 1, "a new token is tried again");
}

const RETRY: TickRetry = TickRetry {
    initial: Duration::from_millis(100),
    max: Duration::from_millis(400),
};

async fn run_status(p: &Producer, id: &str) -> Option<String> {
    p.db.collection::<Document>(CRON_RUNS)
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .map(|run| run.get_str("status").unwrap().to_owned())
}

#[tokio::test]
async fn a_tick_failing_while_mongodb_is_down_is_retried_until_it_runs() {
    let mut mongo = tokio::task::spawn_blocking(PrivateMongo::start).await.unwrap();
    let ns = TestNamespace::with_overrides(&[
        ("mongo.uri", figment::value::Value::from(mongo.uri())),
        (
            "mongo.server_selection_timeout_ms",
            figment::value::Value::from(300),
        ),
    ]);
    let p = producer(&ns, "api-1").await;
    seed(&p).await;
    mongo = tokio::task::spawn_blocking(move || {
        mongo.stop();
        mongo
    })
    .await
    .unwrap();
    let tick = Utc::now();
    let driver = p.clone();
    let driven =
        tokio::spawn(async move { driver.drive_tick(tick, tick + TimeDelta::minutes(5), RETRY).await });
    // It fails at least once while MongoDB is down, then runs once it is back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!driven.is_finished(), "the tick must not give up within its hour");
    let _mongo = tokio::task::spawn_blocking(move || {
        mongo.restart();
        mongo
    })
    .await
    .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), driven)
        .await
        .unwrap()
        .unwrap();
    let TickOutcome::Ran(report) = outcome.unwrap() else {
        panic!("the tick should run once MongoDB is back")
    };
    assert_eq!(report.enqueued, 2);
    assert_eq!(
        run_status(&p, &report.tick_id).await.as_deref(),
        Some("completed")
    );
}

#[tokio::test]
async fn an_api_restarted_across_a_tick_catches_it_up_once() {
    let ns = TestNamespace::new();
    let p = producer(&ns, "api-1").await;
    seed(&p).await;
    let schedule = parse_schedule("0 0 * * * *").unwrap();
    // The API was down at the last :00; it starts now and catches that tick up.
    let missed = last_tick(&schedule, chrono_tz::UTC, Utc::now()).unwrap();
    assert!(Utc::now() - missed < TimeDelta::hours(1), "{missed}");
    let outcome = p
        .drive_tick(missed, missed + TimeDelta::hours(1), RETRY)
        .await
        .unwrap();
    assert!(
        matches!(outcome, TickOutcome::Ran(ref r) if r.enqueued == 2),
        "{outcome:?}"
    );
    // A second restart finds it done.
    let restarted = producer(&ns, "api-1-again").await;
    let again = restarted
        .drive_tick(missed, missed + TimeDelta::hours(1), RETRY)
        .await
        .unwrap();
    assert_eq!(again, TickOutcome::AlreadyDone);
    assert_eq!(p.queue.counts().await.unwrap().total, 2, "no job twice");
}

#[tokio::test]
async fn a_tick_whose_holder_died_is_taken_over_and_never_stays_running() {
    let ns = TestNamespace::new();
    let mut p = producer(&ns, "api-b").await;
    p.lease_ttl = Duration::from_millis(600);
    seed(&p).await;
    let tick = Utc::now() - TimeDelta::minutes(40);
    let id = sellersync_core::jobs::cron::tick_id(tick);
    // "api-a" took the tick and died mid-run: its lease is left to expire, its run says running.
    let key = format!("{}cron:tick:{id}", ns.key_prefix());
    let _: () = redis::AsyncCommands::set_options(
        &mut p.redis.clone(),
        &key,
        "api-a",
        redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(800)),
    )
    .await
    .unwrap();
    let running = doc! { "_id": &id, "status": "running", "instance": "api-a" };
    p.db.collection::<Document>(CRON_RUNS)
        .insert_one(running)
        .await
        .unwrap();
    assert_eq!(
        p.reap_abandoned().await.unwrap(),
        0,
        "the holder's lease still holds"
    );
    assert_eq!(p.run_tick(tick).await.unwrap(), TickOutcome::HeldElsewhere);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(p.reap_abandoned().await.unwrap(), 1);
    assert_eq!(run_status(&p, &id).await.as_deref(), Some(ABANDONED));
    // 40 minutes after its tick (past the old 15-minute window), the tick is still taken over.
    let outcome = p
        .drive_tick(tick, tick + TimeDelta::hours(1), RETRY)
        .await
        .unwrap();
    assert!(matches!(outcome, TickOutcome::Ran(_)), "{outcome:?}");
    assert_eq!(run_status(&p, &id).await.as_deref(), Some("completed"));
}

#[test]
fn every_way_of_writing_every_hour_gets_the_repeated_dst_hour() {
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    // 2026-10-25 00:00 UTC is 02:00 CEST; 01:00 UTC is 02:00 CET (the repeated hour).
    let before = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 10, 24, 23, 30, 0).unwrap();
    for pattern in [
        "0 0 * * * *",
        "0 0 0-23 * * *",
        "0 0 */1 * * *",
        "0 0 0-11,12-23 * * *",
    ] {
        let schedule = parse_schedule(pattern).unwrap();
        let first = next_tick(&schedule, berlin, before).unwrap();
        let second = next_tick(&schedule, berlin, first).unwrap();
        assert_eq!(
            second - first,
            TimeDelta::hours(1),
            "{pattern}: {first} then {second}"
        );
    }
    let daily = parse_schedule("0 30 2 * * *").unwrap();
    let first = next_tick(&daily, berlin, before).unwrap();
    assert_eq!(
        next_tick(&daily, berlin, first).unwrap() - first,
        TimeDelta::hours(25)
    );
}
