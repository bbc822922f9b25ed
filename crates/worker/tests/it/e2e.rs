//! End to end: producer → Redis queue → worker(s) → SP-API stand-in → Mongo JobStatus.

use std::time::Duration;

use figment::value::Value;
use mongodb::bson::Document;
use sellersync_core::testing::PrivateRedis;
use sellersync_spapi_sim::SimConfig;

use crate::helpers::{env, eventually, sigterm, sixteen_jobs_under_way, wait_exit};

fn errors(doc: &Document) -> usize {
    doc.get_array("errors").map_or(0, |e| e.len())
}

#[tokio::test]
async fn fifty_users_end_as_fifty_completed_job_statuses() {
    let e = env(SimConfig::default(), &[("worker.concurrency", Value::from(10))]).await;
    let users = e.users(50, 2).await;
    let report = e.enqueue(&users).await;
    assert_eq!(report.enqueued.len(), 50);

    let workers = e.start_workers(2);
    e.wait_completed(50, Duration::from_secs(60)).await;
    workers.stop().await;
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
    let other = sellersync_core::jobs::payload::RefreshUser {
        user_id: "shared".into(),
        trigger: sellersync_core::jobs::payload::Trigger::Api,
    };
    e.queue.enqueue(&other, Default::default()).await.unwrap();
    let workers = e.start_workers(2);
    eventually(Duration::from_secs(30), "both jobs completed", || async {
        e.queue.counts().await.unwrap().completed == 2
    })
    .await;
    workers.stop().await;
    // The user's one account calls Amazon one call at a time within a run: two runs at once
    // would have had two of its 20 ms calls under way together. (The queue's own times cannot
    // tell: a run sits inside its lease, which starts before the lock is taken and ends after
    // the lock is released, when the completion is recorded.)
    assert_eq!(e.sim_stats().await["mostCallsOfOneSellerAtOnce"], 1);
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
    e.wait_completed(12, Duration::from_secs(60)).await;
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
    let (e, workers) = sixteen_jobs_under_way(&[("redis.port", Value::from(port))]).await;

    let redis = tokio::task::spawn_blocking(move || {
        let mut redis = redis;
        redis.restart(); // kills it first, as a crash would
        redis
    })
    .await
    .unwrap();
    e.wait_completed(16, Duration::from_secs(90)).await;
    workers.stop().await;
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

#[tokio::test]
async fn every_log_line_of_a_job_names_its_queue_job_attempt_and_user() {
    let e = env(SimConfig::default(), &[("spapi.max_retries", Value::from(0))]).await;
    e.user("logged", &["LOGGED-1".to_owned(), "LOGGED-2".to_owned()])
        .await;
    // One of two accounts fails: logged as a warning, and the job still completes.
    e.fault("LOGGED-1", 500, 1).await;
    let job = e.enqueue(&["logged".to_owned()]).await.enqueued.remove(0);
    let log_path = std::env::temp_dir().join(format!("{}.log", e.ns.key_prefix().trim_end_matches(':')));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut worker = e
        .worker_command()
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "sellersync_core=debug,info")
        .env("SELLERSYNC_SPAPI__MAX_RETRIES", "0")
        .stderr(log_file)
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), "completion", || async {
        e.status(&job.job_id).await.get_str("status").ok() == Some("completed")
    })
    .await;
    sigterm(&worker);
    assert!(wait_exit(&mut worker, Duration::from_secs(15)).success());

    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line:?} in {text:?}")))
        .collect();
    let in_job_code = |line: &&serde_json::Value| {
        let target = line["target"].as_str().unwrap_or_default();
        target.starts_with("sellersync_core::jobs::refresh")
            || target.starts_with("sellersync_core::domain::spapi")
            || target.starts_with("sellersync_worker::handler")
    };
    // A panic is a JSON line too (target tracing_panic), and none may happen, up to and
    // including the exit (the MongoDB client is closed before the runtime goes).
    let panics: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["target"] == "tracing_panic")
        .collect();
    assert!(panics.is_empty(), "the worker panicked: {panics:?}");
    let job_lines: Vec<&serde_json::Value> = lines.iter().filter(in_job_code).collect();
    for message in ["job started", "seller account refresh failed", "job finished"] {
        assert!(
            job_lines.iter().any(|line| line["message"] == message),
            "no {message:?} line in {text}"
        );
    }
    for line in &job_lines {
        let job_span = line["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|span| span["name"] == "job"))
            .unwrap_or_else(|| panic!("a line outside the job span: {line}"));
        assert_eq!(job_span["job_id"], job.job_id.as_str(), "{line}");
        assert_eq!(job_span["user_id"], "logged", "{line}");
        assert_eq!(job_span["queue"], "user-data", "{line}");
        assert_eq!(job_span["attempt"], 1, "{line}");
    }
    assert!(!text.contains('\u{1b}'), "no colour codes when not on a terminal");
}

#[tokio::test]
async fn the_worker_serves_histograms_of_its_jobs_and_spapi_calls_and_a_health_check() {
    let e = env(SimConfig::default(), &[]).await;
    e.user("measured", &["MEASURED-1".to_owned()]).await;
    let port = sellersync_core::testing::free_port();
    let mut worker = e
        .worker_command()
        .env("METRICS_PORT", port.to_string())
        .spawn()
        .unwrap();
    let http = sellersync_core::infra::tls::http_client().build().unwrap();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    eventually(Duration::from_secs(20), "a healthy worker", || async {
        http.get(url("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let job = e.enqueue(&["measured".to_owned()]).await.enqueued.remove(0);
    eventually(Duration::from_secs(20), "completion", || async {
        e.status(&job.job_id).await.get_str("status").ok() == Some("completed")
    })
    .await;

    let health: serde_json::Value = http
        .get(url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["workerId"].is_string(), "{health}");
    let text = http
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "sellersync_build_info{binary=\"sellersync-worker\"",
        "sellersync_worker_job_attempts_total{queue=\"user-data\",outcome=\"completed\"} 1",
        "sellersync_worker_job_attempt_duration_seconds_bucket{queue=\"user-data\",le=\"",
        "sellersync_worker_jobs_in_flight{queue=\"user-data\"} 0",
        "sellersync_worker_concurrency{queue=\"user-data\"} ",
        "sellersync_spapi_requests_total{operation=\"searchOrders\",status=\"200\"}",
        "sellersync_spapi_request_duration_seconds_bucket{operation=\"searchOrders\",le=\"",
        "sellersync_spapi_requests_total{operation=\"lwaToken\",status=\"200\"}",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(expected), "no {expected} in\n{text}");
    }
    assert!(!text.contains("quantile="), "histograms, not summaries:\n{text}");

    sigterm(&worker);
    assert!(wait_exit(&mut worker, Duration::from_secs(15)).success());
}

/// With OpenTelemetry export on, an attempt joins the trace its job was enqueued under: the
/// worker's exported spans carry the trace id of the payload's `traceparent`.
#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_joins_the_trace_of_the_request_that_enqueued_its_job() {
    use sellersync_core::jobs::payload::{RefreshUser, Trigger};
    use sellersync_core::testing::{OtlpCollector, trace_id_bytes};

    let e = env(SimConfig::default(), &[]).await;
    e.user("traced", &["TRACED-1".to_owned()]).await;
    let collector = OtlpCollector::spawn().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let job = RefreshUser {
        user_id: "traced".into(),
        trigger: Trigger::Api,
    };
    let payload = serde_json::json!({ "userId": "traced", "trigger": "api", "traceparent": traceparent });
    let new_job = sellersync_queue::NewJob::new(&payload, job.options()).unwrap();
    let job_id = e.queue.enqueue_bulk(&[new_job]).await.unwrap().remove(0).id;

    let mut worker = e
        .worker_command()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url)
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), "completion", || async {
        e.status(&job_id).await.get_str("status").ok() == Some("completed")
    })
    .await;
    // Spans are exported in batches (every 5 s) and on exit.
    sigterm(&worker);
    assert!(wait_exit(&mut worker, Duration::from_secs(15)).success());
    assert!(
        collector.received(&trace_id_bytes(traceparent)),
        "the worker's spans are in the enqueueing trace ({} exports)",
        collector.requests().len()
    );
}
