//! End to end: producer → Redis queue → worker(s) → SP-API stand-in → Mongo JobStatus.

use std::time::Duration;

use figment::value::Value;
use mongodb::bson::Document;
use sellersync_core::testing::PrivateRedis;
use sellersync_spapi_sim::SimConfig;

use crate::helpers::{env, eventually, sigterm, wait_exit};

fn errors(doc: &Document) -> usize {
    doc.get_array("errors").map_or(0, |e| e.len())
}

#[tokio::test]
async fn fifty_users_end_as_fifty_completed_job_statuses() {
    let e = env(SimConfig::default(), &[("worker.concurrency", Value::from(10))]).await;
    let users = e.users(50, 2).await;
    let report = e.enqueue(&users).await;
    assert_eq!(report.enqueued.len(), 50);

    let workers = [e.start_worker(), e.start_worker()];
    eventually(Duration::from_secs(60), "50 completed jobs", || async {
        e.count_status("completed").await == 50
    })
    .await;
    for (stop, handle) in workers {
        let _ = stop.send(());
        handle.await.unwrap();
    }
    for job in &report.enqueued {
        let doc = e.status(&job.job_id).await;
        assert_eq!(doc.get_str("userId").unwrap(), job.user_id);
        assert_eq!(doc.get_i64("accountsTotal").unwrap(), 2);
        assert_eq!(doc.get_i64("accountsProcessed").unwrap(), 2);
        assert!(doc.get_i64("durationMs").is_ok());
        assert_eq!(
            doc.get_i32("attempts")
                .or_else(|_| doc.get_i64("attempts").map(|a| a as i32))
                .unwrap(),
            1
        );
        assert!(doc.get_datetime("expireAt").is_ok());
    }
    let counts = e.queue.counts().await.unwrap();
    assert_eq!((counts.completed, counts.active, counts.waiting), (50, 0, 0));
}

#[tokio::test]
async fn an_account_failing_twice_completes_on_attempt_three_with_both_errors_recorded() {
    // No retries inside the SP-API client, so each 500 fails a whole attempt.
    let e = env(SimConfig::default(), &[("spapi.max_retries", Value::from(0))]).await;
    e.user("flaky", &["FLAKY-1".to_owned()]).await;
    e.fault("FLAKY-1", 500, 2).await;
    let job = e.enqueue(&["flaky".to_owned()]).await.enqueued.remove(0);

    let (stop, handle) = e.start_worker();
    eventually(Duration::from_secs(20), "completion", || async {
        e.status(&job.job_id).await.get_str("status").ok() == Some("completed")
    })
    .await;
    let _ = stop.send(());
    handle.await.unwrap();
    let doc = e.status(&job.job_id).await;
    assert_eq!(
        doc.get_i32("attempts").unwrap_or_default() + doc.get_i64("attempts").unwrap_or_default() as i32,
        3
    );
    assert_eq!(errors(&doc), 2, "{doc}");
    assert_eq!(e.queue.get(&job.job_id).await.unwrap().unwrap().attempts, 3);
}

#[tokio::test]
async fn an_invalid_grant_fails_after_one_attempt() {
    let e = env(SimConfig::default(), &[]).await;
    e.user("revoked", &["REVOKED-9".to_owned()]).await;
    let job = e.enqueue(&["revoked".to_owned()]).await.enqueued.remove(0);
    let (stop, handle) = e.start_worker();
    eventually(Duration::from_secs(20), "failure", || async {
        e.status(&job.job_id).await.get_str("status").ok() == Some("failed")
    })
    .await;
    let _ = stop.send(());
    handle.await.unwrap();
    let doc = e.status(&job.job_id).await;
    assert!(
        doc.get_str("lastError").unwrap().contains("invalid_grant"),
        "{doc}"
    );
    assert_eq!(errors(&doc), 1);
    assert_eq!(e.queue.get(&job.job_id).await.unwrap().unwrap().attempts, 1);
}

#[tokio::test]
async fn the_same_user_from_two_producers_is_one_job_and_never_runs_twice_at_once() {
    let e = env(
        SimConfig {
            latency_ms: 20,
            ..SimConfig::default()
        },
        &[],
    )
    .await;
    e.user("shared", &["SHARED-1".to_owned()]).await;
    let shared = ["shared".to_owned()];
    let (a, b) = tokio::join!(e.enqueue(&shared), e.enqueue(&shared));
    assert_eq!(a.enqueued.len() + b.enqueued.len(), 1, "one job");
    assert_eq!(
        a.duplicates.len() + b.duplicates.len(),
        1,
        "the other is a duplicate of it"
    );

    // A second job for the same user, bypassing dedup, must wait for the first one's lock.
    let other = sellersync_core::jobs::RefreshUser {
        user_id: "shared".into(),
        trigger: sellersync_core::jobs::Trigger::Api,
    };
    let second = e.queue.enqueue(&other, Default::default()).await.unwrap();
    let workers = [e.start_worker(), e.start_worker()];
    eventually(Duration::from_secs(30), "both jobs completed", || async {
        e.queue.counts().await.unwrap().completed == 2
    })
    .await;
    for (stop, handle) in workers {
        let _ = stop.send(());
        handle.await.unwrap();
    }
    let first = a.enqueued.first().or(b.enqueued.first()).unwrap();
    let (x, y) = (
        e.queue.get(&first.job_id).await.unwrap().unwrap(),
        e.queue.get(&second.id).await.unwrap().unwrap(),
    );
    let (x_start, x_end) = (x.started_at_ms.unwrap(), x.finished_at_ms.unwrap());
    let (y_start, y_end) = (y.started_at_ms.unwrap(), y.finished_at_ms.unwrap());
    // The final attempts' runs do not overlap (a deferred attempt never ran process_user_data).
    assert!(
        x_end <= y_start || y_end <= x_start,
        "runs overlapped: {x_start}-{x_end} and {y_start}-{y_end}"
    );
}

#[tokio::test]
async fn sigterm_during_a_slow_job_lets_it_complete_before_exit() {
    // ~18 calls of 150 ms: the job takes about a second and a half.
    let e = env(
        SimConfig {
            latency_ms: 150,
            ..SimConfig::default()
        },
        &[],
    )
    .await;
    e.user("slow", &["SLOW-1".to_owned()]).await;
    let job = e.enqueue(&["slow".to_owned()]).await.enqueued.remove(0);
    let mut worker = e.spawn_worker_process();
    eventually(Duration::from_secs(20), "the job to start", || async {
        e.status(&job.job_id).await.get_str("status").ok() == Some("active")
    })
    .await;
    sigterm(&worker);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut worker, Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        e.status(&job.job_id).await.get_str("status").unwrap(),
        "completed",
        "finished before exit"
    );
}

#[tokio::test]
async fn sigkill_of_one_of_two_workers_loses_no_job() {
    let e = env(
        SimConfig {
            latency_ms: 30,
            ..SimConfig::default()
        },
        &[],
    )
    .await;
    let users = e.users(12, 1).await;
    e.enqueue(&users).await;
    let mut doomed = e.spawn_worker_process();
    let mut survivor = e.spawn_worker_process();
    eventually(Duration::from_secs(20), "jobs in flight", || async {
        e.queue.counts().await.unwrap().active >= 2
    })
    .await;
    doomed.kill().unwrap(); // SIGKILL
    let _ = doomed.wait();
    eventually(Duration::from_secs(60), "every job completed", || async {
        e.count_status("completed").await == 12
    })
    .await;
    sigterm(&survivor);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut survivor, Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(status.success());
    let counts = e.queue.counts().await.unwrap();
    assert_eq!(
        (counts.completed, counts.failed, counts.active, counts.waiting),
        (12, 0, 0, 0)
    );
}

#[tokio::test]
async fn all_jobs_complete_when_redis_crashes_and_restarts_mid_run() {
    let redis = PrivateRedis::start();
    let port = redis.port;
    let e = env(
        SimConfig {
            latency_ms: 40,
            ..SimConfig::default()
        },
        &[("redis.port", Value::from(port))],
    )
    .await;
    let users = e.users(16, 1).await;
    e.enqueue(&users).await;
    let workers = [e.start_worker(), e.start_worker()];
    eventually(Duration::from_secs(30), "some jobs done", || async {
        e.count_status("completed").await >= 2
    })
    .await;

    let redis = tokio::task::spawn_blocking(move || {
        let mut redis = redis;
        redis.restart(); // kills it first, as a crash would
        redis
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(90), "every job completed", || async {
        e.count_status("completed").await == 16
    })
    .await;
    for (stop, handle) in workers {
        let _ = stop.send(());
        handle.await.unwrap();
    }
    // The test's own connection saw the crash too; its manager reconnects on the next call.
    let mut counts = e.queue.counts().await;
    if counts.is_err() {
        counts = e.queue.counts().await;
    }
    let counts = counts.unwrap();
    assert_eq!(
        (counts.completed, counts.failed, counts.active, counts.waiting),
        (16, 0, 0, 0)
    );
    drop(redis);
}

#[tokio::test]
async fn a_user_over_its_refresh_limit_waits_without_failing() {
    let limit = serde_json::json!({ "max": 1, "interval_ms": 60_000 });
    let e = env(
        SimConfig::default(),
        &[("worker.user_rate_limit", Value::serialize(limit).unwrap())],
    )
    .await;
    let users = e.users(1, 1).await;
    let first = e.enqueue(&users).await.enqueued.remove(0).job_id;
    let (stop, worker) = e.start_worker();
    eventually(Duration::from_secs(20), "the first refresh completed", || async {
        e.status(&first).await.get_str("status").ok() == Some("completed")
    })
    .await;
    // The second refresh within the minute is over the limit: deferred, no attempt spent.
    let second = e.enqueue(&users).await.enqueued.remove(0).job_id;
    eventually(Duration::from_secs(20), "the second refresh deferred", || async {
        let job = e.queue.get(&second).await.unwrap().unwrap();
        job.state == "delayed"
    })
    .await;
    let job = e.queue.get(&second).await.unwrap().unwrap();
    assert_eq!(job.attempts, 0, "a deferral spends no attempt");
    let due_in = job.next_run_at_ms.unwrap() - e.queue.redis_now_ms().await.unwrap();
    assert!(
        due_in > 30_000,
        "it waits for the user's bucket to refill: {due_in} ms"
    );
    eventually(Duration::from_secs(20), "JobStatus says why it waits", || async {
        let status = e.status(&second).await;
        status
            .get_str("deferredReason")
            .unwrap_or_default()
            .contains("rate limit")
    })
    .await;
    let _ = stop.send(());
    worker.await.unwrap();
    assert_eq!(e.queue.counts().await.unwrap().failed, 0);
}
