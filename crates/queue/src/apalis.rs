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
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::acker::Acker;
use crate::error::QueueError;
use crate::job::{FailOutcome, LeasedJob};
use crate::maintenance::{self, Leases, idle_wait};
use crate::queue::{Ack, Queue};

/// A handler error that no retry can fix (bad credentials, unknown user): the job fails at once.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NonRetryable(pub String);

/// The lease a task was handed out under; acks quote it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job_id: String,
    pub attempt: u32,
}

/// Longest idle wait before fetching again even without a wake-up.
const IDLE_WAIT: Duration = Duration::from_secs(1);

type FetchFuture = BoxFuture<'static, (ConnectionManager, Vec<LeasedJob>)>;

/// An apalis backend over one [`Queue`]. `wake` must be a Redis connection of its own.
pub struct RedisBackend<Args> {
    queue: Queue,
    wake: Option<ConnectionManager>,
    batch: usize,
    buffer: VecDeque<LeasedJob>,
    fetching: Option<FetchFuture>,
    closing: Option<BoxFuture<'static, Result<usize, QueueError>>>,
    leases: Leases,
    maintenance: Option<tokio::task::JoinHandle<()>>,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> RedisBackend<Args> {
    /// `batch`: most jobs leased per fetch; use the worker's concurrency.
    pub fn new(queue: Queue, wake: ConnectionManager, batch: usize) -> Self {
        Self {
            queue,
            wake: Some(wake),
            batch: batch.max(1),
            buffer: VecDeque::new(),
            fetching: None,
            closing: None,
            leases: Arc::default(),
            maintenance: None,
            _args: PhantomData,
        }
    }

    fn start_maintenance(&mut self, worker_id: &str) {
        if self.maintenance.is_none() {
            let task = maintenance::run(
                self.queue.clone(),
                worker_id.to_owned(),
                Arc::clone(&self.leases),
                self.batch,
            );
            self.maintenance = Some(tokio::spawn(task));
        }
    }

    fn fetch(&mut self, worker_id: &str) -> FetchFuture {
        let queue = self.queue.clone();
        let mut wake = self.wake.take().expect("one fetch at a time");
        let (worker_id, batch) = (worker_id.to_owned(), self.batch);
        async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match queue.fetch(&worker_id, batch).await {
                    Ok(fetched) if !fetched.jobs.is_empty() => return (wake, fetched.jobs),
                    Ok(fetched) => {
                        let idle = idle_wait(IDLE_WAIT, fetched.next_due_ms, fetched.paused);
                        if let Err(error) = queue.wait_for_work(&mut wake, idle).await {
                            tracing::warn!(%error, "waiting for work failed");
                            tokio::time::sleep(backoff).await;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "fetch failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        .boxed()
    }
}

impl<Args: DeserializeOwned + Send + 'static> RedisBackend<Args> {
    /// Turns a leased job into a task; a payload that does not decode fails the job for good.
    fn task_for(&self, job: LeasedJob) -> Option<Task<Args>> {
        match serde_json::from_str::<Args>(&job.payload) {
            Ok(args) => Some(
                TaskBuilder::new(args)
                    .task_id(TaskId::from_string(job.id.clone()))
                    // apalis counts the attempt up when the task starts.
                    .attempt(job.attempt.saturating_sub(1) as usize)
                    .max_attempts(job.max_attempts as usize)
                    .data(Lease {
                        job_id: job.id,
                        attempt: job.attempt,
                    })
                    .build(),
            ),
            Err(error) => {
                let (queue, leases) = (self.queue.clone(), Arc::clone(&self.leases));
                tokio::spawn(async move {
                    let message = format!("payload does not decode: {error}");
                    if let Err(error) = queue.fail(&job.id, job.attempt, &message, false).await {
                        tracing::warn!(%error, job_id = %job.id, "could not fail an undecodable job");
                    }
                    leases.lock().expect("leases lock").remove(&job.id);
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
            let mut leases = self.leases.lock().expect("leases lock");
            for job in &jobs {
                leases.insert(job.id.clone(), job.attempt);
            }
            drop(leases);
            self.buffer.extend(jobs);
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), QueueError>> {
        // Running tasks have finished (apalis drains them first): hand back what never started.
        self.fetching = None;
        if self.closing.is_none() {
            let unstarted: Vec<(String, u32)> =
                self.buffer.drain(..).map(|job| (job.id, job.attempt)).collect();
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
        })
    }
}

/// Completes (in batches) or fails each task's job after the handler returns.
#[derive(Clone)]
pub struct RedisAck {
    queue: Queue,
    leases: Leases,
    acker: Acker,
}

impl<Res: Serialize> Acknowledge<Res> for RedisAck {
    type Error = QueueError;
    type Future = BoxFuture<'static, Result<(), QueueError>>;

    fn ack(&mut self, res: &Result<Res, BoxDynError>, ctx: &ExecutionContext) -> Self::Future {
        let Some(lease) = ctx.data().get::<Lease>().cloned() else {
            return futures::future::ready(Ok(())).boxed();
        };
        let outcome = match res {
            Ok(value) => Ok(serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())),
            Err(error) => Err((error.to_string(), error.downcast_ref::<NonRetryable>().is_none())),
        };
        let (queue, leases, acker) = (self.queue.clone(), Arc::clone(&self.leases), self.acker.clone());
        async move {
            let (message, retryable) = match outcome {
                Ok(result) => {
                    let ack = Ack { id: lease.job_id.clone(), attempt: lease.attempt, result };
                    if !acker.complete(ack).await {
                        tracing::warn!(job_id = %lease.job_id, "completion not recorded (lease lost); the job will run again");
                    }
                    return Ok(());
                }
                Err(failure) => failure,
            };
            let failed = queue.fail(&lease.job_id, lease.attempt, &message, retryable).await;
            leases.lock().expect("leases lock").remove(&lease.job_id);
            if failed? == FailOutcome::LeaseLost {
                tracing::warn!(job_id = %lease.job_id, "attempt failed after its lease was lost; ignored");
            }
            Ok(())
        }
        .boxed()
    }
}
