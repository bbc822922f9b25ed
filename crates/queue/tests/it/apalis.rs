//! The queue as an apalis backend: a plain apalis worker (`WorkerBuilder`, tower layers) runs jobs
//! from our Redis storage, and results, retries and permanent failures land in the queue.

use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis::prelude::*;
use sellersync_queue::apalis::{NonRetryable, RedisBackend};
use sellersync_queue::{EnqueueOptions, NewJob};
use serde::{Deserialize, Serialize};

use crate::helpers::{TestQueue, eventually, fast_config};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Double {
    n: u32,
}

async fn double(job: Double, attempt: Attempt) -> Result<u32, BoxDynError> {
    match job.n {
        3 => Err(NonRetryable("three is not allowed".into()).into()),
        // Fails on its first attempt only.
        5 if attempt.current() < 2 => Err("flaky".into()),
        n => Ok(n * 2),
    }
}

#[tokio::test]
async fn an_apalis_worker_processes_jobs_from_our_queue() {
    let q = TestQueue::new(fast_config()).await;
    let jobs: Vec<NewJob> = (0..10)
        .map(|n| NewJob::new(&Double { n }, EnqueueOptions::default()).unwrap())
        .collect();
    let ids = q.enqueue_bulk(&jobs).await.unwrap();

    let backend = RedisBackend::<Double>::new(q.other_handle().await, q.connection().await, 4);
    let worker = WorkerBuilder::new("apalis-test-worker")
        .backend(backend)
        .concurrency(4)
        .build(double);
    let probe = q.other_handle().await;
    let done = async move {
        eventually(Duration::from_secs(10), "all jobs finished", || async {
            let counts = probe.counts().await.unwrap();
            counts.completed == 9 && counts.failed == 1
        })
        .await;
        let workers = probe.workers().await.unwrap();
        assert_eq!(workers.len(), 1, "the running worker is registered");
        assert_eq!(workers[0].id, "apalis-test-worker");
        assert!(
            workers[0].info["host"].as_str().is_some_and(|h| !h.is_empty()),
            "{:?}",
            workers[0].info
        );
        Ok::<(), std::io::Error>(())
    };
    worker.run_until(done).await.unwrap();

    let two = q.get(&ids[2].id).await.unwrap().unwrap();
    assert_eq!(
        (two.state.as_str(), two.result.clone()),
        ("completed", Some(serde_json::json!(4)))
    );
    let three = q.get(&ids[3].id).await.unwrap().unwrap();
    assert_eq!(
        (three.state.as_str(), three.attempts),
        ("failed", 1),
        "non-retryable: one attempt"
    );
    assert_eq!(three.last_error.as_deref(), Some("three is not allowed"));
    let five = q.get(&ids[5].id).await.unwrap().unwrap();
    assert_eq!(
        (five.state.as_str(), five.attempts),
        ("completed", 2),
        "retried once"
    );
    assert!(
        q.workers().await.unwrap().is_empty(),
        "the worker deregistered on stop"
    );
    assert_eq!(q.counts().await.unwrap().active, 0);
}

#[tokio::test]
async fn an_undecodable_payload_fails_its_job_without_stopping_the_worker() {
    let q = TestQueue::new(fast_config()).await;
    let bad = q
        .enqueue(
            &serde_json::json!({ "not": "a Double" }),
            EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let good = q
        .enqueue(&Double { n: 1 }, EnqueueOptions::default())
        .await
        .unwrap();

    let backend = RedisBackend::<Double>::new(q.other_handle().await, q.connection().await, 2);
    let worker = WorkerBuilder::new("apalis-decode-worker")
        .backend(backend)
        .build(double);
    let probe = q.other_handle().await;
    let done = async move {
        eventually(Duration::from_secs(10), "both jobs finished", || async {
            let counts = probe.counts().await.unwrap();
            counts.completed == 1 && counts.failed == 1
        })
        .await;
        Ok::<(), std::io::Error>(())
    };
    worker.run_until(done).await.unwrap();
    assert!(
        q.get(&bad.id)
            .await
            .unwrap()
            .unwrap()
            .last_error
            .unwrap()
            .contains("does not decode")
    );
    assert_eq!(q.get(&good.id).await.unwrap().unwrap().state, "completed");
}

#[tokio::test]
async fn a_deferred_job_runs_again_without_spending_an_attempt_and_the_observer_sees_outcomes() {
    use std::sync::{Arc, Mutex};

    use futures::FutureExt;
    use sellersync_queue::apalis::{AckOutcome, Defer};

    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    async fn busy_once(job: Double, attempt: Attempt) -> Result<u32, BoxDynError> {
        assert_eq!(attempt.current(), 1, "a deferral does not count as an attempt");
        if RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return Err(Defer {
                delay: Duration::from_millis(50),
                reason: "user busy".into(),
            }
            .into());
        }
        Ok(job.n)
    }

    let q = TestQueue::new(fast_config()).await;
    let job = q
        .enqueue(&Double { n: 7 }, EnqueueOptions::default())
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&seen);
    let observer: sellersync_queue::apalis::Observer = Arc::new(move |lease, outcome| {
        let kind = match outcome {
            AckOutcome::Completed { .. } => "completed",
            AckOutcome::Deferred { .. } => "deferred",
            AckOutcome::Retrying { .. } => "retrying",
            AckOutcome::Failed { .. } => "failed",
        };
        log.lock()
            .unwrap()
            .push(format!("{}:{}:{kind}", lease.job_id, lease.attempt));
        async {}.boxed()
    });
    let backend =
        RedisBackend::<Double>::new(q.other_handle().await, q.connection().await, 1).with_observer(observer);
    let worker = WorkerBuilder::new("apalis-defer-worker")
        .backend(backend)
        .build(busy_once);
    let probe = q.other_handle().await;
    let done = async move {
        eventually(Duration::from_secs(10), "completion", || async {
            probe.counts().await.unwrap().completed == 1
        })
        .await;
        Ok::<(), std::io::Error>(())
    };
    worker.run_until(done).await.unwrap();
    let info = q.get(&job.id).await.unwrap().unwrap();
    assert_eq!(info.attempts, 1, "the deferral did not count");
    let id = &job.id;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![format!("{id}:1:deferred"), format!("{id}:1:completed")]
    );
}
