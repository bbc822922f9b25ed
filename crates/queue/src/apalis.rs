//! Our queue as an apalis backend, so workers are plain apalis workers (`WorkerBuilder`,
//! `Monitor`, tower layers) and another apalis backend could replace ours without touching job
//! handlers.
//!
//! - [`RedisBackend`] leases jobs in batches (one script call), decodes their JSON payload into
//!   the worker's `Args`, and keeps their leases alive with a heartbeat task while they are
//!   buffered or running; a reaper task returns other workers' expired leases. When nothing is
//!   ready it blocks on the queue's wake list instead of polling.
//! - Its middleware acknowledges each task: `Ok` completes the job, `Err` fails the attempt
//!   (retried with the queue's backoff unless the error is [`NonRetryable`]).
//! - On shutdown apalis waits for running tasks, then `poll_close` hands back leased jobs that
//!   never started and deregisters the worker.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::RedisConnection;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::error::BoxDynError;
use apalis_core::task::ExecutionContext;
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use apalis_core::worker::ext::ack::{Acknowledge, AcknowledgeLayer};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::acker::Acker;
use crate::error::QueueError;
use crate::job::{FailOutcome, LeasedJob};
pub use crate::maintenance::LeaseLost;
use crate::maintenance::{
    self, Held, Leases, forget, idle_wait, mark_finished, retry_unavailable, unfinished, unless_stopping,
};
use crate::queue::{Ack, Queue};

/// A handler error that no retry can fix (bad credentials, unknown user): the job fails at once.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NonRetryable(pub String);

/// A handler error that puts the job back for later without counting the attempt (its user is
/// being refreshed by another worker, say).
#[derive(Debug, thiserror::Error)]
#[error("deferred for {delay:?}: {reason}")]
pub struct Defer {
    pub delay: Duration,
    pub reason: String,
}

/// How an attempt ended, once the queue has recorded it.
#[derive(Debug, Clone)]
pub enum AckOutcome {
    Completed {
        result: serde_json::Value,
    },
    /// Failed; runs again at `at_ms` (ms since the epoch).
    Retrying {
        error: String,
        at_ms: u64,
    },
    /// Failed for good.
    Failed {
        error: String,
    },
    Deferred {
        reason: String,
    },
}

/// Called after each attempt's outcome is recorded in the queue (e.g. to write JobStatus).
pub type Observer = Arc<dyn Fn(JobLease, AckOutcome) -> BoxFuture<'static, ()> + Send + Sync>;

pub use crate::maintenance::HeartbeatHook;

/// The lease a task (one attempt of a job) was handed out under; acks quote its token. (Not
/// `sellersync_core::jobs::lease::Lease`, a named lock.)
#[derive(Debug, Clone)]
pub struct JobLease {
    pub job_id: String,
    pub attempt: u32,
    /// The fencing token of this attempt (see [`LeasedJob::token`]).
    pub token: u64,
    /// Fires if the lease is lost while the attempt runs: the handler should stop.
    pub lost: LeaseLost,
    /// The trace context the job was enqueued under (the payload's `traceparent` field, W3C
    /// Trace Context), so the attempt can join the enqueueing request's trace.
    pub traceparent: Option<String>,
}

/// The payload's `traceparent`, if it has one (parsed only when the field is there).
fn traceparent_of(payload: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Traced {
        traceparent: Option<String>,
    }
    if !payload.contains("\"traceparent\"") {
        return None;
    }
    serde_json::from_str::<Traced>(payload).ok()?.traceparent
}

/// Longest idle wait before fetching again even without a wake-up.
const IDLE_WAIT: Duration = Duration::from_secs(1);

type FetchFuture = BoxFuture<'static, (RedisConnection, Vec<LeasedJob>)>;

/// An apalis backend over one [`Queue`]. `wake` must be a Redis connection of its own.
pub struct RedisBackend<Args> {
    queue: Queue,
    wake: Option<RedisConnection>,
    batch: usize,
    buffer: VecDeque<LeasedJob>,
    fetching: Option<FetchFuture>,
    /// Set when the backend closes: a fetch under way stops waiting for work (see `poll_close`).
    stop_fetching: tokio::sync::watch::Sender<bool>,
    closing: Option<BoxFuture<'static, Result<usize, QueueError>>>,
    leases: Leases,
    maintenance: Option<tokio::task::JoinHandle<()>>,
    observer: Option<Observer>,
    on_heartbeat: Option<HeartbeatHook>,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> RedisBackend<Args> {
    /// `batch`: most jobs leased per fetch; use the worker's concurrency.
    pub fn new(queue: Queue, wake: RedisConnection, batch: usize) -> Self {
        Self {
            queue,
            wake: Some(wake),
            batch: batch.max(1),
            buffer: VecDeque::new(),
            fetching: None,
            stop_fetching: tokio::sync::watch::Sender::new(false),
            closing: None,
            leases: Arc::default(),
            maintenance: None,
            observer: None,
            on_heartbeat: None,
            _args: PhantomData,
        }
    }

    /// A handle on the leases this backend holds, to hand them back if the worker is stopped
    /// before apalis closes the backend (a drain timeout, say).
    pub fn held_leases(&self) -> HeldLeases {
        HeldLeases {
            queue: self.queue.clone(),
            leases: Arc::clone(&self.leases),
        }
    }

    /// Calls `observer` after every attempt's outcome is recorded.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Calls `hook` after every heartbeat.
    pub fn with_heartbeat_hook(mut self, hook: HeartbeatHook) -> Self {
        self.on_heartbeat = Some(hook);
        self
    }

    fn start_maintenance(&mut self, worker_id: &str) {
        if self.maintenance.is_none() {
            let task = maintenance::run(
                self.queue.clone(),
                worker_id.to_owned(),
                Arc::clone(&self.leases),
                self.batch,
                self.on_heartbeat.clone(),
            );
            self.maintenance = Some(tokio::spawn(task));
        }
    }

    /// Leases only what can start: the free slots, i.e. the batch less the attempts this worker
    /// holds that have not finished (buffered or running). A finished attempt's slot counts as
    /// free: its handler has returned and its outcome is on its way to Redis, so a job leased in
    /// its place starts within that round trip. Under load that lets one fetch take the slots
    /// of a whole batch of acknowledgements (at C50, ~50 jobs per script call instead of ~17: a
    /// third of the calls and about a third more no-op jobs/s, docs/capacity.md). The leases
    /// are recorded as soon as Redis grants them, so a fetch cut short by a shutdown is handed
    /// back with the rest ([`HeldLeases::release`]) instead of waiting for the reaper.
    ///
    /// Once the backend closes, the fetch stops waiting (for work, or before a retry) and
    /// returns what it has; a lease call already sent still completes, so its jobs can be
    /// handed back.
    fn fetch(&mut self, worker_id: &str) -> FetchFuture {
        let queue = self.queue.clone();
        let mut wake = self.wake.take().expect("one fetch at a time");
        let (worker_id, batch, leases) = (worker_id.to_owned(), self.batch, Arc::clone(&self.leases));
        let mut stop = self.stop_fetching.subscribe();
        async move {
            let mut backoff = Duration::from_millis(100);
            while !*stop.borrow() {
                let free = batch.saturating_sub(unfinished(&leases)).max(1);
                // Every wait below ends early when the backend closes; the loop's condition
                // then ends the fetch.
                let sent_at = Instant::now();
                match queue.fetch(&worker_id, free).await {
                    Ok(fetched) if !fetched.jobs.is_empty() => {
                        hold(&leases, &fetched.jobs, sent_at);
                        return (wake, fetched.jobs);
                    }
                    Ok(fetched) => {
                        let idle = idle_wait(IDLE_WAIT, fetched.next_due_ms, fetched.paused);
                        if let Some(Err(error)) =
                            unless_stopping(&mut stop, queue.wait_for_work(&mut wake, idle)).await
                        {
                            tracing::warn!(%error, "waiting for work failed");
                            unless_stopping(&mut stop, tokio::time::sleep(backoff)).await;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "fetch failed");
                        unless_stopping(&mut stop, tokio::time::sleep(backoff)).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            (wake, Vec::new())
        }
        .boxed()
    }
}

impl<Args: DeserializeOwned + Send + 'static> RedisBackend<Args> {
    /// Turns a leased job into a task; a payload that does not decode fails the job for good.
    fn task_for(&self, job: LeasedJob) -> Option<Task<Args>> {
        let lost = self
            .leases
            .lock()
            .expect("leases lock")
            .get(&job.id)
            .filter(|held| held.token == job.token)
            .map(|held| held.lost.clone())
            .unwrap_or_default();
        match serde_json::from_str::<Args>(&job.payload) {
            Ok(args) => Some(
                TaskBuilder::new(args)
                    .task_id(TaskId::from_string(job.id.clone()))
                    // apalis counts the attempt up when the task starts.
                    .attempt(job.attempt.saturating_sub(1) as usize)
                    .max_attempts(job.max_attempts as usize)
                    .data(JobLease {
                        traceparent: traceparent_of(&job.payload),
                        job_id: job.id,
                        attempt: job.attempt,
                        token: job.token,
                        lost,
                    })
                    .build(),
            ),
            Err(error) => {
                let (queue, leases) = (self.queue.clone(), Arc::clone(&self.leases));
                tokio::spawn(async move {
                    let message = format!("payload does not decode: {error}");
                    if let Err(error) = queue.fail(&job.id, job.token, &message, false).await {
                        tracing::warn!(%error, job_id = %job.id, "could not fail an undecodable job");
                    }
                    forget(&leases, &job.id, job.token);
                });
                None
            }
        }
    }
}

impl<Args: DeserializeOwned + Send + 'static> Backend for RedisBackend<Args> {
    type Task = Task<Args>;
    type Error = QueueError;

    fn poll_ready(&mut self, _cx: &mut Context<'_>, _worker: &WorkerContext) -> Poll<Result<(), QueueError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<Args>, QueueError>>> {
        self.start_maintenance(worker.name());
        loop {
            while let Some(job) = self.buffer.pop_front() {
                if let Some(task) = self.task_for(job) {
                    return Poll::Ready(Some(Ok(task)));
                }
            }
            if self.fetching.is_none() {
                self.fetching = Some(self.fetch(worker.name()));
            }
            let fetching = self.fetching.as_mut().expect("set above");
            let (wake, jobs) = futures::ready!(Pin::new(fetching).poll(cx));
            self.fetching = None;
            self.wake = Some(wake);
            self.buffer.extend(jobs);
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), QueueError>> {
        // Running tasks have finished (apalis drains them first): hand back what never started.
        // That includes what a fetch under way leases: once its script was sent, Redis grants
        // the leases whether or not anyone reads the reply, so the fetch is finished (it no
        // longer waits for work), not dropped.
        if let Some(fetching) = self.fetching.as_mut() {
            self.stop_fetching.send_replace(true);
            let (wake, jobs) = futures::ready!(fetching.as_mut().poll(cx));
            self.fetching = None;
            self.wake = Some(wake);
            self.buffer.extend(jobs);
        }
        if self.closing.is_none() {
            let unstarted: Vec<(String, u64)> =
                self.buffer.drain(..).map(|job| (job.id, job.token)).collect();
            let (queue, worker_id) = (self.queue.clone(), worker.name().to_owned());
            self.closing = Some(async move { queue.release(&worker_id, &unstarted).await }.boxed());
        }
        let released = futures::ready!(self.closing.as_mut().expect("set above").as_mut().poll(cx));
        if let Some(task) = self.maintenance.take() {
            task.abort();
        }
        if let Ok(count @ 1..) = released {
            tracing::info!(count, "handed back jobs that never started");
        }
        Poll::Ready(released.map(|_| ()))
    }
}

/// Records leases just granted.
/// Holds the leases Redis just granted (renewed as of `granted_at`, when the lease call was sent).
/// A job this worker already holds under another token was leased again: its earlier lease is
/// gone (a fail-over lost it, or it was reaped), so that attempt is stopped.
fn hold(leases: &Leases, jobs: &[LeasedJob], granted_at: Instant) {
    let mut held = leases.lock().expect("leases lock");
    for job in jobs {
        let lease = Held {
            token: job.token,
            lost: LeaseLost::default(),
            finished: false,
            renewed_at: granted_at,
        };
        if let Some(earlier) = held
            .insert(job.id.clone(), lease)
            .filter(|h| h.token != job.token)
        {
            tracing::warn!(job_id = %job.id, token = earlier.token, newer = job.token, "a held job was leased again; stopping its earlier attempt");
            earlier.lost.mark();
        }
    }
}

/// See [`RedisBackend::held_leases`].
#[derive(Clone)]
pub struct HeldLeases {
    queue: Queue,
    leases: Leases,
}

impl HeldLeases {
    /// Hands every held lease back to the queue (the attempts do not count) and deregisters
    /// the worker. Returns how many jobs went back.
    pub async fn release(&self, worker_id: &str) -> Result<usize, QueueError> {
        let held: Vec<(String, u64)> = self
            .leases
            .lock()
            .expect("leases lock")
            .drain()
            .map(|(id, held)| (id, held.token))
            .collect();
        self.queue.release(worker_id, &held).await
    }
}

impl<Args> Drop for RedisBackend<Args> {
    fn drop(&mut self) {
        if let Some(task) = self.maintenance.take() {
            task.abort();
        }
    }
}

impl<Args> BackendConfig for RedisBackend<Args> {
    type Args = Args;
    type Id = TaskId;
    type Kind = apalis_core::backend::finalize::Ephemeral;
    type Config = ();
    type Layer = AcknowledgeLayer<RedisAck>;

    fn config(&self) -> &() {
        &()
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        let acker = Acker::spawn(self.queue.clone(), Arc::clone(&self.leases));
        AcknowledgeLayer::new(RedisAck {
            queue: self.queue.clone(),
            leases: Arc::clone(&self.leases),
            acker,
            observer: self.observer.clone(),
        })
    }
}

/// Completes (in batches) or fails each task's job after the handler returns.
#[derive(Clone)]
pub struct RedisAck {
    queue: Queue,
    leases: Leases,
    acker: Acker,
    observer: Option<Observer>,
}

impl<Res: Serialize> Acknowledge<Res> for RedisAck {
    type Error = QueueError;
    type Future = BoxFuture<'static, Result<(), QueueError>>;

    fn ack(&mut self, res: &Result<Res, BoxDynError>, ctx: &ExecutionContext) -> Self::Future {
        let Some(lease) = ctx.data().get::<JobLease>().cloned() else {
            return futures::future::ready(Ok(())).boxed();
        };
        let outcome = Attempt::of(res);
        mark_finished(&self.leases, &lease.job_id, lease.token);
        let this = self.clone();
        async move {
            // A lost lease records nothing: another attempt runs the job, or Redis returns it
            // when the lease expires (a stall, no attempt spent).
            if lease.lost.is_lost() {
                tracing::warn!(job_id = %lease.job_id, token = lease.token, "attempt ended after its lease was lost; nothing recorded");
                forget(&this.leases, &lease.job_id, lease.token);
                return Ok(());
            }
            let recorded = this.record(&lease, outcome).await;
            forget(&this.leases, &lease.job_id, lease.token);
            if let (Some(observer), Ok(Some(outcome))) = (&this.observer, &recorded) {
                observer(lease, outcome.clone()).await;
            }
            recorded.map(|_| ())
        }
        .boxed()
    }
}

/// A finished attempt as the handler left it.
enum Attempt {
    Succeeded(String),
    Failed { message: String, retryable: bool },
    Deferred(Duration, String),
}

impl Attempt {
    fn of<Res: Serialize>(res: &Result<Res, BoxDynError>) -> Self {
        match res {
            Ok(value) => Self::Succeeded(serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())),
            Err(error) => match error.downcast_ref::<Defer>() {
                Some(defer) => Self::Deferred(defer.delay, defer.reason.clone()),
                None => Self::Failed {
                    message: error.to_string(),
                    retryable: error.downcast_ref::<NonRetryable>().is_none(),
                },
            },
        }
    }
}

impl RedisAck {
    /// Records the attempt in the queue (retrying while Redis is unavailable, as completions do);
    /// `None` when the lease was lost (nothing changed).
    async fn record(&self, lease: &JobLease, attempt: Attempt) -> Result<Option<AckOutcome>, QueueError> {
        let (id, token) = (&lease.job_id, lease.token);
        match attempt {
            Attempt::Succeeded(result) => {
                let ack = Ack {
                    id: id.clone(),
                    token,
                    result: result.clone(),
                };
                if !self.acker.complete(ack).await {
                    tracing::warn!(job_id = %id, "completion not recorded (lease lost); the job will run again");
                    return Ok(None);
                }
                let result = serde_json::from_str(&result).unwrap_or(serde_json::Value::Null);
                Ok(Some(AckOutcome::Completed { result }))
            }
            Attempt::Deferred(delay, reason) => {
                let deferred = retry_unavailable(|| self.queue.defer(id, token, delay, &reason))
                    .await
                    .unwrap_or(false);
                Ok(deferred.then_some(AckOutcome::Deferred { reason }))
            }
            Attempt::Failed { message, retryable } => {
                let failed = retry_unavailable(|| self.queue.fail(id, token, &message, retryable)).await;
                match failed.unwrap_or(FailOutcome::LeaseLost) {
                    FailOutcome::Retrying { at_ms } => Ok(Some(AckOutcome::Retrying {
                        error: message,
                        at_ms,
                    })),
                    FailOutcome::Failed => Ok(Some(AckOutcome::Failed { error: message })),
                    FailOutcome::LeaseLost => {
                        tracing::warn!(job_id = %id, "attempt failed after its lease was lost; ignored");
                        Ok(None)
                    }
                }
            }
        }
    }
}
