//! The worker runtime production runs: apalis workers over our backend. Retries and their limit,
//! recovery of a dead worker's job, heartbeats, pause, graceful drain, panics and hangs, progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis::prelude::*;
use sellersync_core::testing::{PrivateRedis, TestNamespace, redis_cli};
use sellersync_queue::apalis::{JobLease, NonRetryable, RedisBackend};
use sellersync_queue::events::{EventKind, StreamId};
use sellersync_queue::{EnqueueOptions, Queue, QueueConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot};

use crate::helpers::{TestQueue, eventually, fast_config};

/// What a test job does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "camelCase")]
pub(crate) enum Work {
    Succeed,
    /// Fails (retryably) until this attempt.
    FailUntil {
        attempt: u32,
    },
    FailAlways,
    FailPermanently,
    Sleep {
        ms: u64,
    },
    Panic,
    Hang,
    /// Reports 40 %, then waits for the test's go.
    Progress,
}

#[derive(Clone)]
pub(crate) struct Ctx {
    worker: String,
    queue: Queue,
    pub(crate) runs: Arc<AtomicU32>,
    progressed: Arc<Notify>,
    go: Arc<Notify>,
}

async fn work(job: Work, lease: Data<JobLease>, ctx: Data<Ctx>) -> Result<String, BoxDynError> {
    ctx.runs.fetch_add(1, Ordering::SeqCst);
    match job {
        Work::Succeed => Ok(format!("done by {}", ctx.worker)),
        Work::FailUntil { attempt } if lease.attempt < attempt => {
            Err(format!("boom {}", lease.attempt).into())
        }
        Work::FailUntil { .. } => Ok(format!("ok on {}", lease.attempt)),
        Work::FailAlways => Err("always".into()),
        Work::FailPermanently => Err(NonRetryable("invalid_grant".into()).into()),
        Work::Sleep { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok("slept".into())
        }
        Work::Panic => panic!("handler bug"),
        Work::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Work::Progress => {
            ctx.queue.set_progress(&lease.job_id, lease.token, 40).await?;
            ctx.progressed.notify_one();
            ctx.go.notified().await;
            Ok("progressed".into())
        }
    }
}

/// Runs a worker on `q` while `body` runs, then stops it (apalis drains running jobs first).
pub(crate) async fn with_worker<T, Fut: Future<Output = T>>(
    q: &TestQueue,
    worker: &str,
    concurrency: usize,
    timeout: Option<Duration>,
    body: impl FnOnce(Ctx) -> Fut,
) -> T {
    let ctx = Ctx {
        worker: worker.to_owned(),
        queue: q.other_handle().await,
        runs: Arc::default(),
        progressed: Arc::default(),
        go: Arc::default(),
    };
    let backend = RedisBackend::<Work>::new(q.other_handle().await, q.connection().await, concurrency);
    let running = WorkerBuilder::new(worker)
        .backend(backend)
        .data(ctx.clone())
        .concurrency(concurrency)
        .timeout(timeout.unwrap_or(Duration::from_secs(60)))
        .catch_panic()
        .build(work);
    let (stop, stopped) = oneshot::channel::<()>();
    let run = running.run_until(async move {
        let _ = stopped.await;
        Ok::<(), std::io::Error>(())
    });
    let body = async move {
        let out = body(ctx).await;
        let _ = stop.send(());
        out
    };
    let (ran, out) = tokio::join!(run, body);
    ran.unwrap();
    out
}

async fn enqueue(q: &TestQueue, work: Work, max_attempts: Option<u32>) -> String {
    let options = EnqueueOptions {
        max_attempts,
        ..EnqueueOptions::default()
    };
    q.enqueue(&work, options).await.unwrap().id
}

async fn state_of(q: &TestQueue, id: &str) -> String {
    q.get(id)
        .await
        .unwrap()
        .map(|j| j.state.to_string())
        .unwrap_or_default()
}

pub(crate) async fn wait_state(q: &TestQueue, id: &str, state: &str) {
    eventually(Duration::from_secs(10), &format!("job {id} {state}"), || async {
        state_of(q, id).await == state
    })
    .await;
}

#[tokio::test]
async fn a_job_failing_twice_then_succeeding_completes_on_attempt_three() {
    let q = TestQueue::new(fast_config()).await;
    let id = enqueue(&q, Work::FailUntil { attempt: 3 }, None).await;
    with_worker(&q, "w1", 2, None, |_| wait_state(&q, &id, "completed")).await;

    let info = q.get(&id).await.unwrap().unwrap();
    assert_eq!(info.attempts, 3);
    assert_eq!(info.result, Some(serde_json::json!("ok on 3")));
    assert_eq!(info.last_error.as_deref(), Some("boom 2"));
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
async fn attempts_are_capped_by_max_attempts_and_permanent_errors_fail_at_once() {
    let q = TestQueue::new(fast_config()).await;
    let capped = enqueue(&q, Work::FailAlways, Some(2)).await;
    let permanent = enqueue(&q, Work::FailPermanently, None).await;
    with_worker(&q, "w1", 2, None, |_| async {
        wait_state(&q, &capped, "failed").await;
        wait_state(&q, &permanent, "failed").await;
    })
    .await;
    assert_eq!(q.get(&capped).await.unwrap().unwrap().attempts, 2);
    let info = q.get(&permanent).await.unwrap().unwrap();
    assert_eq!(
        (info.attempts, info.last_error.as_deref()),
        (1, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn an_expired_lease_returns_the_job_and_another_worker_completes_it() {
    let q = TestQueue::new(fast_config()).await;
    let id = enqueue(&q, Work::Succeed, None).await;
    // A worker leases the job and dies: no heartbeat, no ack.
    let leased = q.fetch("dead-worker", 1).await.unwrap().jobs;
    assert_eq!(leased.len(), 1);
    assert_eq!(state_of(&q, &id).await, "active");

    with_worker(&q, "w2", 1, None, |_| wait_state(&q, &id, "completed")).await;
    let info = q.get(&id).await.unwrap().unwrap();
    assert_eq!(info.stalls, 1);
    assert_eq!(info.worker_id.as_deref(), Some("w2"));
    assert_eq!(info.attempts, 1, "a stall does not spend an attempt");
    assert_eq!(info.result, Some(serde_json::json!("done by w2")));

    // The dead worker's late ack is refused: its lease is gone.
    let late = sellersync_queue::Ack {
        id: id.clone(),
        token: leased[0].token,
        result: "null".into(),
    };
    assert!(q.complete(&[late]).await.unwrap().is_empty());
}

#[tokio::test]
async fn heartbeats_keep_a_slow_job_leased() {
    let q = TestQueue::new(fast_config()).await;
    let id = enqueue(&q, Work::Sleep { ms: 1500 }, None).await; // ~4 leases long
    with_worker(&q, "w1", 1, None, |_| wait_state(&q, &id, "completed")).await;
    let info = q.get(&id).await.unwrap().unwrap();
    assert_eq!((info.stalls, info.attempts), (0, 1), "never reaped, ran once");
}

#[tokio::test]
async fn pause_stops_fetching_and_resume_restarts_it() {
    let q = TestQueue::new(fast_config()).await;
    q.pause().await.unwrap();
    let id = enqueue(&q, Work::Succeed, None).await;
    let (q, id) = (&q, &id);
    with_worker(q, "w1", 1, None, |ctx| async move {
        // The worker is registered (it heartbeats) yet takes nothing while paused.
        eventually(Duration::from_secs(5), "the worker heartbeats", || async {
            q.workers().await.unwrap().len() == 1
        })
        .await;
        assert_eq!(ctx.runs.load(Ordering::SeqCst), 0);
        let counts = q.counts().await.unwrap();
        assert_eq!((counts.paused, counts.waiting), (1, 0));
        assert!(q.fetch("probe", 1).await.unwrap().paused);

        q.resume().await.unwrap();
        wait_state(q, id, "completed").await;
        assert_eq!(ctx.runs.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test]
async fn a_panicking_or_hung_handler_fails_the_attempt_not_the_worker() {
    let q = TestQueue::new(fast_config()).await;
    let panics = enqueue(&q, Work::Panic, Some(1)).await;
    let hangs = enqueue(&q, Work::Hang, Some(1)).await;
    let fine = enqueue(&q, Work::Succeed, Some(1)).await;
    with_worker(&q, "w1", 3, Some(Duration::from_millis(300)), |_| {
        eventually(Duration::from_secs(10), "all three finished", || async {
            let c = q.counts().await.unwrap();
            c.failed == 2 && c.completed == 1
        })
    })
    .await;
    let error = |id: String| {
        let q = &q;
        async move { q.get(&id).await.unwrap().unwrap().last_error.unwrap_or_default() }
    };
    assert!(error(panics).await.contains("handler bug"));
    let hung = error(hangs).await.to_lowercase();
    assert!(hung.contains("timed out") || hung.contains("timeout"), "{hung}");
    assert_eq!(state_of(&q, &fine).await, "completed");
}

#[tokio::test]
async fn progress_is_recorded_while_running() {
    let q = TestQueue::new(fast_config()).await;
    let id = enqueue(&q, Work::Progress, None).await;
    let (q, id) = (&q, &id);
    with_worker(q, "w1", 1, None, |ctx| async move {
        ctx.progressed.notified().await;
        assert_eq!(q.get(id).await.unwrap().unwrap().progress, 40);
        ctx.go.notify_one();
        wait_state(q, id, "completed").await;
    })
    .await;
    assert_eq!(q.get(id).await.unwrap().unwrap().progress, 100);
}

/// A worker leases only what it can start: at concurrency 3, once a quick job frees a slot
/// beside two running slow ones, it leases one job, not three (the fourth slow job stays
/// waiting for other workers instead of sitting in this worker's buffer). A slot whose handler
/// has returned counts as free even before its outcome is recorded, which is what lets a busy
/// worker lease in batches; that is not visible here.
#[tokio::test]
async fn a_busy_worker_leases_only_its_free_slots() {
    let q = TestQueue::new(fast_config()).await;
    let quick = enqueue(&q, Work::Succeed, None).await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(enqueue(&q, Work::Progress, None).await);
    }
    let (q, quick, slow) = (&q, &quick, &slow);
    let running = || async {
        let mut running = 0;
        for id in slow {
            running += usize::from(q.get(id).await.unwrap().unwrap().progress == 40);
        }
        running
    };
    with_worker(q, "w1", 3, None, |ctx| async move {
        wait_state(q, quick, "completed").await;
        eventually(Duration::from_secs(10), "three slow jobs running", || async {
            running().await == 3
        })
        .await;
        let counts = q.counts().await.unwrap();
        assert_eq!(
            (counts.active, counts.waiting),
            (3, 1),
            "nothing leased beyond the three running"
        );
        // Each poke lets one waiting slow job finish (a Notify keeps at most one permit).
        eventually(Duration::from_secs(10), "every slow job completes", || async {
            ctx.go.notify_one();
            let mut done = 0;
            for id in slow {
                done += usize::from(state_of(q, id).await == "completed");
            }
            done == slow.len()
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_jobs_and_hands_back_the_rest() {
    let q = TestQueue::new(QueueConfig {
        lease_ms: 10_000,
        heartbeat_ms: 1000,
        ..fast_config()
    })
    .await;
    let quick = enqueue(&q, Work::Sleep { ms: 300 }, None).await;
    let slow = enqueue(&q, Work::Sleep { ms: 60_000 }, None).await;
    let queue = q.other_handle().await;
    let backend = RedisBackend::<Work>::new(queue.clone(), q.connection().await, 2);
    let held = backend.held_leases();
    let runs = Arc::new(AtomicU32::new(0));
    let ctx = Ctx {
        worker: "w1".into(),
        queue,
        runs: Arc::clone(&runs),
        progressed: Arc::default(),
        go: Arc::default(),
    };
    let worker = WorkerBuilder::new("w1")
        .backend(backend)
        .data(ctx)
        .concurrency(2)
        .build(work);
    let (stop, stopped) = oneshot::channel::<()>();
    // A drain bounded like the worker process's: the slow job is still running when it ends.
    let drain = worker.run_until(async move {
        let _ = stopped.await;
        Ok::<(), std::io::Error>(())
    });
    let bounded = async move {
        let _ = tokio::time::timeout(Duration::from_millis(1500), drain).await;
    };
    let stopper = async {
        // Both handlers running, not only both jobs leased: a stop between the lease and the
        // start would hand both back unstarted (what the worker should do, not what this tests).
        eventually(Duration::from_secs(5), "both jobs running", || async {
            runs.load(Ordering::SeqCst) == 2
        })
        .await;
        let _ = stop.send(());
    };
    tokio::join!(bounded, stopper);
    let handed_back = held.release("w1").await.unwrap();

    assert_eq!(
        state_of(&q, &quick).await,
        "completed",
        "the quick job finished during the drain"
    );
    assert_eq!(handed_back, 1);
    let slow_info = q.get(&slow).await.unwrap().unwrap();
    assert_eq!(slow_info.state, "waiting", "the slow job was handed back");
    assert_eq!(slow_info.attempts, 0, "a handed-back attempt does not count");
    assert!(q.workers().await.unwrap().is_empty(), "the worker deregistered");
}

/// The kinds of `id`'s events, oldest first.
async fn transitions_of(q: &TestQueue, id: &str) -> Vec<EventKind> {
    let batch = q
        .read_events_after(&mut q.queue.connection(), StreamId::ZERO, 1000, None)
        .await
        .unwrap();
    batch
        .events
        .into_iter()
        .filter(|event| event.job_id == id)
        .map(|event| event.kind)
        .collect()
}

#[tokio::test]
async fn a_lease_granted_to_a_fetch_under_way_at_shutdown_is_handed_back() {
    // A private Redis: its writes are paused below, which must not stall other tests.
    let redis = PrivateRedis::start();
    let namespace = TestNamespace::with_overrides(&redis.overrides());
    let config = QueueConfig {
        lease_ms: 20_000,
        heartbeat_ms: 1000,
        ..fast_config()
    };
    let q = TestQueue::in_namespace(namespace, "test-queue", config).await;
    let running = enqueue(&q, Work::Sleep { ms: 3500 }, None).await;
    let options = EnqueueOptions {
        delay: Some(Duration::from_millis(600)),
        ..EnqueueOptions::default()
    };
    let later = q.enqueue(&Work::Sleep { ms: 10 }, options).await.unwrap().id;
    let port = redis.port;
    let runs = with_worker(&q, "w1", 2, None, |ctx| async move {
        eventually(Duration::from_secs(5), "the first job running", || async {
            ctx.runs.load(Ordering::SeqCst) == 1
        })
        .await;
        // Writes wait for 3 s: the free slot's fetch of the delayed job, due at 600 ms, is sent
        // and waits at Redis when the stop comes; Redis grants its lease after the stop.
        redis_cli(port, &["CLIENT", "PAUSE", "3000", "WRITE"]);
        tokio::time::sleep(Duration::from_millis(1600)).await;
        ctx.runs
    })
    .await;

    assert_eq!(state_of(&q, &running).await, "completed");
    let kinds = transitions_of(&q, &later).await;
    assert!(
        kinds.contains(&EventKind::Active),
        "the fetch under way leased it: {kinds:?}"
    );
    assert_eq!(
        kinds.last(),
        Some(&EventKind::Released),
        "handed back, not left to the reaper: {kinds:?}"
    );
    assert_eq!(state_of(&q, &later).await, "waiting");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the delayed job never started here"
    );
}
