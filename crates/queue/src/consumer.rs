//! The consumer: runs a handler over one queue with bounded concurrency.
//!
//! - Fetches as many jobs as it has free slots, in one script call; when nothing is ready it
//!   blocks on the queue's wake list (no busy polling), at most until the next delayed job is due.
//! - Heartbeats extend the leases of every in-flight job; a reaper returns other workers'
//!   expired leases to waiting.
//! - A handler's error fails the attempt (retried with backoff when retryable), a panic or a
//!   timeout fails it as retryable; the consumer itself never dies of a job.
//! - Completions are acknowledged in batches (one script call for many jobs, see `acker`).
//! - Shutdown stops fetching, lets in-flight jobs finish within the drain timeout, then hands
//!   unfinished ones back to the queue without counting the attempt.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use redis::aio::ConnectionManager;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::acker::Acker;
use crate::error::QueueResult;
use crate::job::{FailOutcome, LeasedJob};
use crate::maintenance::{self, Leases, idle_wait, retry_unavailable};
use crate::queue::{Ack, Queue};

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
    leases: Leases,
    counters: Counters,
    acker: Acker,
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
    let leases = Leases::default();
    let shared = Arc::new(Shared {
        queue: queue.clone(),
        handler,
        options: options.clone(),
        leases: Arc::clone(&leases),
        counters: Counters::default(),
        acker: Acker::spawn(queue.clone(), Arc::clone(&leases)),
    });
    let maintenance = tokio::spawn(maintenance::run(
        queue.clone(),
        options.worker_id.clone(),
        Arc::clone(&leases),
        options.concurrency,
    ));
    tracing::info!(worker_id = %options.worker_id, queue = queue.name(), concurrency = options.concurrency, "consumer started");

    let mut tasks = JoinSet::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    // The fetch loop stops only between fetches, so no leased job is ever dropped on the floor.
    tokio::join!(signal, fetch_loop(&shared, wake, &mut tasks, stop_rx));
    tracing::info!(worker_id = %options.worker_id, in_flight = tasks.len(), "consumer stopping; draining in-flight jobs");
    drain(&mut tasks, options.drain_timeout).await;

    // Every finished job is acknowledged by now; what is still leased never finished.
    let unfinished: Vec<(String, u32)> = leases
        .lock()
        .expect("leases lock")
        .iter()
        .map(|(id, attempt)| (id.clone(), *attempt))
        .collect();
    let handed_back = queue
        .release(&options.worker_id, &unfinished)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "could not hand back unfinished jobs; their leases will expire");
            0
        }) as u64;
    maintenance.abort();
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
        let mut leases = shared.leases.lock().expect("leases lock");
        for (job, permit) in fetched.jobs.into_iter().zip(permits) {
            leases.insert(job.id.clone(), job.attempt);
            let shared = Arc::clone(shared);
            tasks.spawn(async move {
                run_job(&shared, job).await;
                drop(permit);
            });
        }
    }
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
                id: job.id.clone(),
                attempt: job.attempt,
                result: value.to_string(),
            };
            if shared.acker.complete(ack).await {
                shared.counters.completed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Err(failure) => {
            let _enter = span.enter();
            record_failure(shared, &job, failure).await;
        }
    }
}

async fn record_failure<H: Handler>(shared: &Shared<H>, job: &LeasedJob, failure: JobFailure) {
    let outcome = retry_unavailable(|| {
        shared
            .queue
            .fail(&job.id, job.attempt, &failure.message, failure.retryable)
    })
    .await;
    shared.leases.lock().expect("leases lock").remove(&job.id);
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
