use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sellersync_queue::consumer::{self, ConsumerOptions, JobContext, JobFailure};
use sellersync_queue::{EnqueueOptions, JobState, LeasedJob, QueueConfig};
use serde_json::json;
use tokio::sync::oneshot;

use crate::helpers::{TestQueue, eventually, fast_config};

type Stop = oneshot::Sender<()>;

/// Starts a consumer with `handler`; returns the stop switch and the join handle.
async fn start<H: consumer::Handler>(
    q: &TestQueue,
    worker: &str,
    concurrency: usize,
    handler: H,
) -> (Stop, tokio::task::JoinHandle<consumer::ConsumerReport>) {
    let queue = q.other_handle().await;
    let wake = q.connection().await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut options = ConsumerOptions::new(worker, concurrency);
    options.drain_timeout = Duration::from_secs(5);
    let handle = tokio::spawn(async move {
        consumer::run(queue, wake, handler, options, async move {
            let _ = stop_rx.await;
        })
        .await
        .unwrap()
    });
    (stop_tx, handle)
}

async fn state_of(q: &TestQueue, id: &str) -> String {
    q.get(id).await.unwrap().map(|j| j.state).unwrap_or_default()
}

#[tokio::test]
async fn a_job_failing_twice_then_succeeding_completes_on_attempt_three() {
    let q = TestQueue::new(fast_config()).await;
    let job = q.enqueue(&json!({}), EnqueueOptions::default()).await.unwrap();
    let handler = |job: LeasedJob, _ctx: JobContext| async move {
        if job.attempt < 3 {
            Err(JobFailure::retryable(format!("boom {}", job.attempt)))
        } else {
            Ok(json!({ "ok": job.attempt }))
        }
    };
    let (stop, handle) = start(&q, "w1", 2, handler).await;
    eventually(Duration::from_secs(5), "completion", || async {
        state_of(&q, &job.id).await == "completed"
    })
    .await;
    let _ = stop.send(());
    let report = handle.await.unwrap();

    let info = q.get(&job.id).await.unwrap().unwrap();
    assert_eq!(info.attempts, 3);
    assert_eq!(info.result, Some(json!({ "ok": 3 })));
    assert_eq!(info.last_error.as_deref(), Some("boom 2"));
    assert_eq!((report.retried, report.completed, report.failed), (2, 1, 0));
    let metrics = q.metrics().await.unwrap();
    assert_eq!(
        (
            metrics.completed_total,
            metrics.retried_total,
            metrics.failed_total
        ),
        (1, 2, 0)
    );
}

#[tokio::test]
async fn a_non_retryable_error_fails_on_the_first_attempt() {
    let q = TestQueue::new(fast_config()).await;
    let job = q.enqueue(&json!({}), EnqueueOptions::default()).await.unwrap();
    let handler = |_job: LeasedJob, _ctx: JobContext| async { Err(JobFailure::permanent("invalid_grant")) };
    let (stop, handle) = start(&q, "w1", 1, handler).await;
    eventually(Duration::from_secs(5), "failure", || async {
        state_of(&q, &job.id).await == "failed"
    })
    .await;
    let _ = stop.send(());
    handle.await.unwrap();
    let info = q.get(&job.id).await.unwrap().unwrap();
    assert_eq!(info.attempts, 1);
    assert_eq!(info.last_error.as_deref(), Some("invalid_grant"));
}

#[tokio::test]
async fn attempts_are_capped_by_max_attempts() {
    let q = TestQueue::new(fast_config()).await;
    let opts = EnqueueOptions {
        max_attempts: Some(2),
        ..Default::default()
    };
    let job = q.enqueue(&json!({}), opts).await.unwrap();
    let handler = |_job: LeasedJob, _ctx: JobContext| async { Err(JobFailure::retryable("always")) };
    let (stop, handle) = start(&q, "w1", 1, handler).await;
    eventually(Duration::from_secs(5), "failure", || async {
        state_of(&q, &job.id).await == "failed"
    })
    .await;
    let _ = stop.send(());
    handle.await.unwrap();
    assert_eq!(q.get(&job.id).await.unwrap().unwrap().attempts, 2);
}

#[tokio::test]
async fn an_expired_lease_returns_the_job_and_another_worker_completes_it() {
    let q = TestQueue::new(fast_config()).await;
    let job = q.enqueue(&json!({}), EnqueueOptions::default()).await.unwrap();
    // A worker leases the job and dies: no heartbeat, no ack.
    let leased = q.fetch("dead-worker", 1).await.unwrap().jobs;
    assert_eq!(leased.len(), 1);
    assert_eq!(state_of(&q, &job.id).await, "active");

    let handler = |_job: LeasedJob, _ctx: JobContext| async { Ok(json!("done by w2")) };
    let (stop, handle) = start(&q, "w2", 1, handler).await;
    eventually(Duration::from_secs(5), "recovery", || async {
        state_of(&q, &job.id).await == "completed"
    })
    .await;
    let _ = stop.send(());
    handle.await.unwrap();
    let info = q.get(&job.id).await.unwrap().unwrap();
    assert_eq!(info.stalls, 1);
    assert_eq!(info.worker_id.as_deref(), Some("w2"));
    assert_eq!(info.attempts, 2);

    // The dead worker's late ack is refused: its lease is gone.
    let late = sellersync_queue::Ack {
        id: job.id.clone(),
        attempt: leased[0].attempt,
        result: "null".into(),
    };
    assert!(q.complete(&[late]).await.unwrap().is_empty());
}

#[tokio::test]
async fn heartbeats_keep_a_slow_job_leased() {
    let q = TestQueue::new(fast_config()).await;
    let job = q.enqueue(&json!({}), EnqueueOptions::default()).await.unwrap();
    let handler = |_job: LeasedJob, _ctx: JobContext| async {
        tokio::time::sleep(Duration::from_millis(1500)).await; // ~4 leases long
        Ok(json!(null))
    };
    let (stop, handle) = start(&q, "w1", 1, handler).await;
    eventually(Duration::from_secs(5), "completion", || async {
        state_of(&q, &job.id).await == "completed"
    })
    .await;
    let _ = stop.send(());
    handle.await.unwrap();
    let info = q.get(&job.id).await.unwrap().unwrap();
    assert_eq!((info.stalls, info.attempts), (0, 1), "never reaped, ran once");
}

#[tokio::test]
async fn pause_stops_fetching_and_resume_restarts_it() {
    let q = TestQueue::new(fast_config()).await;
    q.pause().await.unwrap();
    let job = q.enqueue(&json!({}), EnqueueOptions::default()).await.unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let handler = move |_job: LeasedJob, _ctx: JobContext| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(json!(null))
        }
    };
    let (stop, handle) = start(&q, "w1", 1, handler).await;
    // Give the consumer time to fetch (it must not): several idle rounds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.paused, counts.waiting), (1, 0));
    assert!(q.fetch("probe", 1).await.unwrap().paused);

    q.resume().await.unwrap();
    eventually(Duration::from_secs(3), "completion after resume", || async {
        state_of(&q, &job.id).await == "completed"
    })
    .await;
    let _ = stop.send(());
    handle.await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_in_flight_jobs_and_hands_back_the_rest() {
    let q = TestQueue::new(QueueConfig {
        lease_ms: 10_000,
        heartbeat_ms: 1000,
        ..fast_config()
    })
    .await;
    let quick = q
        .enqueue(&json!("quick"), EnqueueOptions::default())
        .await
        .unwrap();
    let slow = q
        .enqueue(&json!("slow"), EnqueueOptions::default())
        .await
        .unwrap();
    let handler = |job: LeasedJob, _ctx: JobContext| async move {
        let ms = if job.payload.contains("slow") { 60_000 } else { 200 };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!(null))
    };
    let queue = q.other_handle().await;
    let wake = q.connection().await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut options = ConsumerOptions::new("w1", 2);
    options.drain_timeout = Duration::from_millis(700);
    let handle = tokio::spawn(consumer::run(queue, wake, handler, options, async move {
        let _ = stop_rx.await;
    }));
    eventually(Duration::from_secs(3), "both jobs active", || async {
        q.counts().await.unwrap().active == 2
    })
    .await;
    let _ = stop_tx.send(());
    let report = handle.await.unwrap().unwrap();

    assert_eq!(
        state_of(&q, &quick.id).await,
        "completed",
        "the quick job finished during the drain"
    );
    let slow_info = q.get(&slow.id).await.unwrap().unwrap();
    assert_eq!(slow_info.state, "waiting", "the slow job was handed back");
    assert_eq!(slow_info.attempts, 0, "a handed-back attempt does not count");
    assert_eq!((report.completed, report.handed_back), (1, 1));
    assert!(q.workers().await.unwrap().is_empty(), "the worker deregistered");
}

#[tokio::test]
async fn a_panicking_or_hung_handler_fails_the_attempt_not_the_worker() {
    let q = TestQueue::new(fast_config()).await;
    let opts = EnqueueOptions {
        max_attempts: Some(1),
        ..Default::default()
    };
    let panics = q.enqueue(&json!("panic"), opts.clone()).await.unwrap();
    let hangs = q.enqueue(&json!("hang"), opts.clone()).await.unwrap();
    let fine = q.enqueue(&json!("fine"), opts).await.unwrap();
    let handler = |job: LeasedJob, _ctx: JobContext| async move {
        if job.payload.contains("panic") {
            panic!("handler bug");
        }
        if job.payload.contains("hang") {
            std::future::pending::<()>().await;
        }
        Ok(json!(null))
    };
    let queue = q.other_handle().await;
    let wake = q.connection().await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut options = ConsumerOptions::new("w1", 3);
    options.job_timeout = Some(Duration::from_millis(300));
    let handle = tokio::spawn(consumer::run(queue, wake, handler, options, async move {
        let _ = stop_rx.await;
    }));
    eventually(Duration::from_secs(5), "all three finished", || async {
        let c = q.counts().await.unwrap();
        c.failed == 2 && c.completed == 1
    })
    .await;
    let _ = stop_tx.send(());
    handle.await.unwrap().unwrap();
    assert!(
        q.get(&panics.id)
            .await
            .unwrap()
            .unwrap()
            .last_error
            .unwrap()
            .contains("handler bug")
    );
    assert!(
        q.get(&hangs.id)
            .await
            .unwrap()
            .unwrap()
            .last_error
            .unwrap()
            .contains("timed out")
    );
    assert_eq!(state_of(&q, &fine.id).await, "completed");
}

#[tokio::test]
async fn progress_is_recorded_while_running() {
    let q = TestQueue::new(fast_config()).await;
    let job = q.enqueue(&json!({}), EnqueueOptions::default()).await.unwrap();
    let (seen_tx, seen_rx) = oneshot::channel::<()>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let channels = std::sync::Mutex::new(Some((seen_tx, go_rx)));
    let handler = move |_job: LeasedJob, ctx: JobContext| {
        let pair = channels.lock().unwrap().take();
        async move {
            ctx.progress(40).await;
            if let Some((seen, go)) = pair {
                let _ = seen.send(());
                let _ = go.await;
            }
            Ok(json!(null))
        }
    };
    let (stop, handle) = start(&q, "w1", 1, handler).await;
    seen_rx.await.unwrap();
    assert_eq!(q.get(&job.id).await.unwrap().unwrap().progress, 40);
    let _ = go_tx.send(());
    eventually(Duration::from_secs(3), "completion", || async {
        state_of(&q, &job.id).await == "completed"
    })
    .await;
    assert_eq!(q.get(&job.id).await.unwrap().unwrap().progress, 100);
    let _ = stop.send(());
    handle.await.unwrap();
    let listed = q.list(JobState::Completed, 0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
}
