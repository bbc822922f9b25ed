//! The consumer: runs a handler over one queue with bounded concurrency.
//!
//! - Fetches as many jobs as it has free slots, in one script call; when nothing is ready it
//!   blocks on the queue's wake list (no busy polling), at most until the next delayed job is due.
//! - Heartbeats extend the leases of every in-flight job; a reaper returns other workers'
//!   expired leases to waiting.
//! - A handler's error fails the attempt (retried with backoff when retryable), a panic or a
//!   timeout fails it as retryable; the consumer itself never dies of a job.
//! - Completions are acknowledged in batches by one task (one script call for many jobs).
//! - Shutdown stops fetching, lets in-flight jobs finish within the drain timeout, then hands
//!   unfinished ones back to the queue without counting the attempt.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use redis::aio::ConnectionManager;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::error::QueueResult;
use crate::job::{FailOutcome, LeasedJob};
use crate::queue::{Ack, Queue, now_ms};

/// Why an attempt failed, as the handler reports it.
#[derive(Debug, Clone)]
pub struct JobFailure {
    pub message: String,
    /// False for errors a retry cannot fix (bad credentials, unknown user): fail at once.
    pub retryable: bool,
}

impl JobFailure {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

/// Handed to the handler with each job: progress reporting for this attempt.
#[derive(Clone)]
pub struct JobContext {
    queue: Queue,
    id: String,
    attempt: u32,
}

impl JobContext {
    /// Records progress 0–100. Errors are logged, never fail the job.
    pub async fn progress(&self, percent: u8) {
        if let Err(error) = self.queue.set_progress(&self.id, self.attempt, percent).await {
            tracing::debug!(%error, job_id = %self.id, "progress not recorded");
        }
    }
}

/// What runs a job. Implemented for async closures `Fn(LeasedJob, JobContext) -> Future`.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        job: LeasedJob,
        ctx: JobContext,
    ) -> impl Future<Output = Result<serde_json::Value, JobFailure>> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(LeasedJob, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<serde_json::Value, JobFailure>> + Send,
{
    fn handle(
        &self,
        job: LeasedJob,
        ctx: JobContext,
    ) -> impl Future<Output = Result<serde_json::Value, JobFailure>> + Send {
        self(job, ctx)
    }
}

/// How one attempt ended, reported to the optional observer (e.g. to record JobStatus).
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    Completed { result: serde_json::Value },
    Failed { error: String, outcome: FailOutcome },
}

pub type Observer = Arc<dyn Fn(&LeasedJob, &AttemptOutcome) + Send + Sync>;

#[derive(Clone)]
pub struct ConsumerOptions {
    pub worker_id: String,
    pub concurrency: usize,
    /// An attempt running longer fails (retryable). `None`: no limit.
    pub job_timeout: Option<Duration>,
    /// On shutdown, how long in-flight jobs may still run before they are handed back.
    pub drain_timeout: Duration,
    /// Longest idle wait before fetching again even without a wake-up.
    pub idle_wait: Duration,
    pub observer: Option<Observer>,
}

impl ConsumerOptions {
    pub fn new(worker_id: impl Into<String>, concurrency: usize) -> Self {
        Self {
            worker_id: worker_id.into(),
            concurrency: concurrency.max(1),
            job_timeout: None,
            drain_timeout: Duration::from_secs(30),
            idle_wait: Duration::from_secs(1),
            observer: None,
        }
    }
}

/// What a consumer did before it stopped.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ConsumerReport {
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub handed_back: u64,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

/// Shared state of one running consumer.
struct Shared<H> {
    queue: Queue,
    handler: H,
    options: ConsumerOptions,
    /// In-flight job id → attempt; leases of these are extended by the heartbeat.
    inflight: Mutex<HashMap<String, u32>>,
    counters: Counters,
    acks: mpsc::UnboundedSender<AckMessage>,
}

enum AckMessage {
    Ack(Ack),
    /// Flush what came before and stop (sent once, at shutdown).
    Stop,
}

/// Runs `handler` over `queue` until `shutdown` resolves, then drains and hands back.
/// `wake` must be a Redis connection of its own: idle waits block it.
pub async fn run<H: Handler>(
    queue: Queue,
    wake: ConnectionManager,
    handler: H,
    options: ConsumerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> QueueResult<ConsumerReport> {
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        queue: queue.clone(),
        handler,
        options: options.clone(),
        inflight: Mutex::new(HashMap::new()),
        counters: Counters::default(),
        acks: ack_tx,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let acker = tokio::spawn(ack_loop(Arc::clone(&shared), ack_rx));
    let heartbeat = tokio::spawn(heartbeat_loop(Arc::clone(&shared), stop_rx.clone()));
    let reaper = tokio::spawn(reap_loop(queue.clone(), stop_rx.clone()));
    tracing::info!(worker_id = %options.worker_id, queue = queue.name(), concurrency = options.concurrency, "consumer started");

    let mut tasks = JoinSet::new();
    let (fetch_stop_tx, fetch_stop_rx) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = fetch_stop_tx.send(true);
    };
    // The fetch loop stops only between fetches, so no leased job is ever dropped on the floor.
    tokio::join!(signal, fetch_loop(&shared, wake, &mut tasks, fetch_stop_rx));
    tracing::info!(worker_id = %options.worker_id, in_flight = tasks.len(), "consumer stopping; draining in-flight jobs");
    drain(&mut tasks, options.drain_timeout).await;

    // Let the acker flush what finished, then hand back whatever is still leased.
    let _ = shared.acks.send(AckMessage::Stop);
    let _ = acker.await;
    let leases: Vec<(String, u32)> = shared
        .inflight
        .lock()
        .expect("inflight lock")
        .iter()
        .map(|(id, at)| (id.clone(), *at))
        .collect();
    let handed_back = queue
        .release(&options.worker_id, &leases)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "could not hand back unfinished jobs; their leases will expire");
            0
        }) as u64;
    let _ = stop_tx.send(true);
    let _ = tokio::join!(heartbeat, reaper);
    let report = ConsumerReport {
        completed: shared.counters.completed.load(Ordering::Relaxed),
        failed: shared.counters.failed.load(Ordering::Relaxed),
        retried: shared.counters.retried.load(Ordering::Relaxed),
        handed_back,
    };
    tracing::info!(worker_id = %options.worker_id, ?report, "consumer stopped");
    Ok(report)
}

async fn fetch_loop<H: Handler>(
    shared: &Arc<Shared<H>>,
    mut wake: ConnectionManager,
    tasks: &mut JoinSet<()>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(shared.options.concurrency));
    let mut backoff = Duration::from_millis(100);
    // Runs `$wait` unless a stop is requested first; on stop, leaves the loop.
    macro_rules! or_stop {
        ($wait:expr) => {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return,
                value = $wait => value,
            }
        };
    }
    loop {
        while tasks.try_join_next().is_some() {}
        if *stop.borrow() {
            return;
        }
        let Ok(first) = or_stop!(Arc::clone(&slots).acquire_owned()) else {
            return;
        };
        let mut permits = vec![first];
        while let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
            permits.push(permit);
        }
        let fetched = match shared.queue.fetch(&shared.options.worker_id, permits.len()).await {
            Ok(fetched) => {
                backoff = Duration::from_millis(100);
                fetched
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "fetch failed");
                drop(permits);
                or_stop!(tokio::time::sleep(backoff));
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if fetched.jobs.is_empty() {
            drop(permits);
            let wait = idle_wait(shared.options.idle_wait, fetched.next_due_ms, fetched.paused);
            if let Err(error) = or_stop!(shared.queue.wait_for_work(&mut wake, wait)) {
                tracing::warn!(%error, "waiting for work failed");
                or_stop!(tokio::time::sleep(backoff));
            }
            continue;
        }
        let mut inflight = shared.inflight.lock().expect("inflight lock");
        for (job, permit) in fetched.jobs.into_iter().zip(permits) {
            inflight.insert(job.id.clone(), job.attempt);
            let shared = Arc::clone(shared);
            tasks.spawn(async move {
                run_job(&shared, job).await;
                drop(permit);
            });
        }
    }
}

/// How long to block when nothing was ready: until the next delayed job is due, at most `idle`.
fn idle_wait(idle: Duration, next_due_ms: Option<u64>, paused: bool) -> Duration {
    let until_due = next_due_ms
        .filter(|_| !paused)
        .map(|due| Duration::from_millis(due.saturating_sub(now_ms())));
    until_due
        .map_or(idle, |d| d.min(idle))
        .max(Duration::from_millis(10))
}

async fn run_job<H: Handler>(shared: &Shared<H>, job: LeasedJob) {
    let ctx = JobContext {
        queue: shared.queue.clone(),
        id: job.id.clone(),
        attempt: job.attempt,
    };
    let span =
        tracing::info_span!("job", queue = shared.queue.name(), job_id = %job.id, attempt = job.attempt);
    let attempt = AssertUnwindSafe(shared.handler.handle(job.clone(), ctx)).catch_unwind();
    let outcome = match shared.options.job_timeout {
        Some(limit) => match tokio::time::timeout(limit, attempt).await {
            Ok(result) => result,
            Err(_) => Ok(Err(JobFailure::retryable(format!(
                "timed out after {} ms",
                limit.as_millis()
            )))),
        },
        None => attempt.await,
    };
    let result = outcome.unwrap_or_else(|panic| {
        Err(JobFailure::retryable(format!(
            "handler panicked: {}",
            panic_message(&panic)
        )))
    });
    let _enter = span.enter();
    match result {
        Ok(value) => {
            observe(
                shared,
                &job,
                AttemptOutcome::Completed {
                    result: value.clone(),
                },
            );
            let ack = Ack {
                id: job.id,
                attempt: job.attempt,
                result: value.to_string(),
            };
            // The ack loop runs until shutdown has drained every job, so this send succeeds.
            let _ = shared.acks.send(AckMessage::Ack(ack));
        }
        Err(failure) => record_failure(shared, &job, failure).await,
    }
}

async fn record_failure<H: Handler>(shared: &Shared<H>, job: &LeasedJob, failure: JobFailure) {
    let outcome = retry_unavailable(|| {
        shared
            .queue
            .fail(&job.id, job.attempt, &failure.message, failure.retryable)
    })
    .await;
    shared.inflight.lock().expect("inflight lock").remove(&job.id);
    let Some(outcome) = outcome else { return };
    match outcome {
        FailOutcome::Retrying { at_ms } => {
            shared.counters.retried.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %failure.message, next_run_at_ms = at_ms, "attempt failed; will retry");
        }
        FailOutcome::Failed => {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %failure.message, "job failed");
        }
        FailOutcome::LeaseLost => tracing::warn!("attempt failed after its lease was lost; ignored"),
    }
    observe(
        shared,
        job,
        AttemptOutcome::Failed {
            error: failure.message,
            outcome,
        },
    );
}

fn observe<H: Handler>(shared: &Shared<H>, job: &LeasedJob, outcome: AttemptOutcome) {
    if let Some(observer) = &shared.options.observer {
        observer(job, &outcome);
    }
}

/// Retries a queue call while Redis is unavailable, for up to ~30 s; `None` if it never worked.
async fn retry_unavailable<T, F, Fut>(mut call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = QueueResult<T>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..10 {
        match call().await {
            Ok(value) => return Some(value),
            Err(error) if error.is_unavailable() => {
                tracing::warn!(%error, "redis unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                tracing::error!(%error, "queue call failed");
                return None;
            }
        }
    }
    None
}

/// Acknowledges completions in batches: waits for one, then takes whatever else is queued.
async fn ack_loop<H: Handler>(shared: Arc<Shared<H>>, mut rx: mpsc::UnboundedReceiver<AckMessage>) {
    let mut batch = Vec::with_capacity(256);
    let mut stopping = false;
    while !stopping {
        let Some(first) = rx.recv().await else { return };
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                AckMessage::Ack(ack) => batch.push(ack),
                AckMessage::Stop => stopping = true,
            }
            if batch.len() < 256 && !stopping {
                next = rx.try_recv().ok();
            }
        }
        flush_acks(&shared, &mut batch).await;
    }
}

async fn flush_acks<H: Handler>(shared: &Shared<H>, batch: &mut Vec<Ack>) {
    if batch.is_empty() {
        return;
    }
    if let Some(done) = retry_unavailable(|| shared.queue.complete(batch)).await {
        shared
            .counters
            .completed
            .fetch_add(done as u64, Ordering::Relaxed);
        let mut inflight = shared.inflight.lock().expect("inflight lock");
        for ack in batch.iter() {
            inflight.remove(&ack.id);
        }
    }
    batch.clear();
}

async fn heartbeat_loop<H: Handler>(shared: Arc<Shared<H>>, mut stop: watch::Receiver<bool>) {
    let (queue, options) = (&shared.queue, &shared.options);
    let started_ms = now_ms();
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let mut tick = tokio::time::interval(queue.config().heartbeat());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let ids: Vec<String> = shared
            .inflight
            .lock()
            .expect("inflight lock")
            .keys()
            .cloned()
            .collect();
        let info = serde_json::json!({
            "host": host, "pid": std::process::id(), "startedAtMs": started_ms,
            "concurrency": options.concurrency, "inFlight": ids.len(),
        });
        if let Err(error) = queue.heartbeat(&options.worker_id, &info, &ids).await {
            tracing::warn!(%error, "heartbeat failed");
        }
    }
}

async fn reap_loop(queue: Queue, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(queue.config().reap_interval());
    let mut retention = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => match queue.reap().await {
                Ok((0, 0)) => {}
                Ok((requeued, failed)) => tracing::warn!(requeued, failed, "recovered jobs whose lease expired"),
                Err(error) => tracing::warn!(%error, "reaping expired leases failed"),
            },
            _ = retention.tick() => if let Err(error) = queue.apply_retention().await {
                tracing::warn!(%error, "retention failed");
            },
            _ = stop.changed() => return,
        }
    }
}

/// Waits for in-flight jobs up to `limit`, then aborts the rest (their leases are handed back).
async fn drain(tasks: &mut JoinSet<()>, limit: Duration) {
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(limit, all_done).await.is_err() {
        tracing::warn!(
            still_running = tasks.len(),
            "drain timeout reached; handing unfinished jobs back"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
