//! The JobStatus projector: the only writer of `job_status`. It reads a queue's event stream as
//! consumer group [`GROUP`] and applies each batch to MongoDB in one bulk `update` command
//! ([`projection`](super::projection) says what each event writes), then acknowledges it.
//!
//! - Any number of processes run one (workers and the API do): the group hands each event to one
//!   of them, and the version guard makes the order they write in irrelevant.
//! - At least once: a batch is acknowledged only after MongoDB took it. While MongoDB is away the
//!   projector retries the same events with a backoff; nothing is lost and no job waits for it.
//! - A projector that died leaves its unacknowledged events pending; another claims them after
//!   [`CLAIM_IDLE`].
//! - It trims the stream behind every group ([`Queue::trim_events`]).
//! - The status read model is projected the same way by its own consumer group
//!   ([`READ_MODEL_GROUP`]: Redis only, [`super::read_model`]), so a status read sees a transition
//!   as soon as that group has read it, however far MongoDB's projection is behind (an hourly
//!   tick of many users is readable as `queued` long before MongoDB has every record).
//! - A batch MongoDB refuses for a reason retrying cannot fix is split by halves until the events
//!   it refuses are alone; each is kept as a dead letter ([`super::dead_letters`]) and passed, so
//!   one poison event neither stops the projection nor pins the stream's trim floor. A reply
//!   with a `writeConcernError` is a failure: the batch stays pending and is written again.
//! - With webhooks configured, it enqueues a `job.failed` notification for each job that failed
//!   for good (before acknowledging the batch: at least once; the notification id deduplicates).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mongodb::Database;
use mongodb::bson::{Document, doc};
use sellersync_queue::Queue;
use sellersync_queue::RedisConnection;
use sellersync_queue::events::{EventBatch, JobEvent, ReadFrom};

use super::JOB_STATUS;
use super::projection::{JobWrite, Retention, plan};
use crate::infra::connections::mongo_op;
use crate::infra::error::{CoreError, CoreResult};

/// The consumer group of JobStatus projectors.
pub const GROUP: &str = "job-status";
/// The consumer group of the status read model's projectors.
pub const READ_MODEL_GROUP: &str = "status-read-model";
/// Events read per batch (one bulk write each).
const BATCH: usize = 1000;
/// How long a new-event read blocks; also the longest a stop request waits.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Events pending this long with another consumer are taken over (it died or hangs).
pub const CLAIM_IDLE: Duration = Duration::from_secs(30);
const CLAIM_EVERY: Duration = Duration::from_secs(10);
const TRIM_EVERY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Batches projected at most after a stop (what is already in the stream).
const DRAIN_BATCHES: usize = 10;
/// MongoDB's duplicate-key error: an upsert met a record its guard did not match.
const DUPLICATE_KEY: i32 = 11000;

/// What a projector writes.
enum Target {
    /// JobStatus in MongoDB (group [`GROUP`]), with webhooks for jobs that failed for good.
    JobStatus {
        db: Database,
        notifier: Option<crate::jobs::notify::Notifier>,
    },
    /// The status read model in Redis (group [`READ_MODEL_GROUP`]).
    ReadModel(super::read_model::ReadModel),
}

/// One projector for one queue.
pub struct Projector {
    queue: Queue,
    target: Target,
    /// A connection of its own: blocking reads hold it.
    reader: RedisConnection,
    consumer: String,
    retention: Retention,
    /// Bound on one batch's writes (`mongo.operation_timeout_ms`); past it the batch is retried.
    operation_timeout: Duration,
}

/// A projector running in the background.
pub struct RunningProjector {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    /// Projectors of the same queue that stop with this one (the read model's).
    beside: Vec<RunningProjector>,
}

impl RunningProjector {
    /// This projector and `other` (if any), stopped together.
    pub fn beside(mut self, other: Option<RunningProjector>) -> Self {
        self.beside.extend(other);
        self
    }

    /// Stops after the batch in hand and what is already in the stream are written (at most about
    /// a second of waiting, plus up to ten batches).
    pub async fn stop(self) {
        for task in self.signal() {
            let _ = task.await;
        }
    }

    /// Asks this projector and those beside it to stop; returns their tasks.
    fn signal(self) -> Vec<tokio::task::JoinHandle<()>> {
        let _ = self.stop.send(());
        let mut tasks = vec![self.task];
        tasks.extend(self.beside.into_iter().flat_map(Self::signal));
        tasks
    }
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    pub events: usize,
    pub records: usize,
}

impl Projector {
    /// Runs the projector on a task of its own until [`RunningProjector::stop`].
    pub fn spawn(self) -> RunningProjector {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        RunningProjector {
            stop,
            task,
            beside: Vec::new(),
        }
    }

    /// A JobStatus projector (MongoDB, group [`GROUP`]).
    pub fn new(
        queue: Queue,
        db: Database,
        reader: RedisConnection,
        consumer: String,
        retention: Retention,
    ) -> Self {
        Self::with_target(
            queue,
            Target::JobStatus { db, notifier: None },
            reader,
            consumer,
            retention,
        )
    }

    /// A projector of the status read model (Redis, group [`READ_MODEL_GROUP`]).
    pub fn for_read_model(
        queue: Queue,
        read_model: super::read_model::ReadModel,
        reader: RedisConnection,
        consumer: String,
        retention: Retention,
    ) -> Self {
        Self::with_target(queue, Target::ReadModel(read_model), reader, consumer, retention)
    }

    fn with_target(
        queue: Queue,
        target: Target,
        reader: RedisConnection,
        consumer: String,
        retention: Retention,
    ) -> Self {
        Self {
            queue,
            target,
            reader,
            consumer,
            retention,
            operation_timeout: Duration::from_secs(30),
        }
    }

    /// Its consumer group.
    fn group(&self) -> &'static str {
        match self.target {
            Target::JobStatus { .. } => GROUP,
            Target::ReadModel(_) => READ_MODEL_GROUP,
        }
    }

    /// Bounds each batch's writes by `timeout` (default 30 s).
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Notifies webhooks of the jobs that failed for good (a JobStatus projector).
    pub fn with_notifier(mut self, notifier: Option<crate::jobs::notify::Notifier>) -> Self {
        if let Target::JobStatus { notifier: slot, .. } = &mut self.target {
            *slot = notifier;
        }
        self
    }

    /// Projects until `stop` resolves. The batch in hand is written and acknowledged first.
    pub async fn run(mut self, stop: impl Future<Output = ()> + Send + 'static) {
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        tokio::spawn(async move {
            stop.await;
            flag.store(true, Ordering::SeqCst);
        });
        let mut from = ReadFrom::OwnPending;
        let mut backoff = Duration::from_millis(100);
        let (mut last_claim, mut last_trim) = (Instant::now() - CLAIM_EVERY, Instant::now());
        while !stopping.load(Ordering::SeqCst) {
            if last_claim.elapsed() >= CLAIM_EVERY {
                last_claim = Instant::now();
                if let Err(error) = self.claim_stale().await {
                    tracing::warn!(%error, "could not claim stale JobStatus events");
                }
            }
            match self.step(from).await {
                Ok(report) => {
                    backoff = Duration::from_millis(100);
                    // Own pending events are read until there are none, then new ones.
                    if from == ReadFrom::OwnPending && report.events == 0 {
                        from = ReadFrom::New;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "JobStatus projection failed; the events stay pending");
                    from = ReadFrom::OwnPending;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            if last_trim.elapsed() >= TRIM_EVERY {
                last_trim = Instant::now();
                if let Err(error) = self.queue.trim_events().await {
                    tracing::debug!(%error, "trimming the event stream failed");
                }
            }
        }
        self.drain().await;
        tracing::info!(consumer = %self.consumer, group = self.group(), "projector stopped");
    }

    /// Creates the group if needed, reads one batch and projects it.
    pub async fn step(&mut self, from: ReadFrom) -> CoreResult<StepReport> {
        self.step_within(from, READ_BLOCK).await
    }

    async fn step_within(&mut self, from: ReadFrom, block: Duration) -> CoreResult<StepReport> {
        let group = self.group();
        self.queue.ensure_event_group(group).await?;
        let batch = self
            .queue
            .read_events(&mut self.reader, group, &self.consumer, from, BATCH, block)
            .await?;
        self.apply(batch).await
    }

    /// Projects what is already in the stream, without waiting for more: on stop, the last
    /// transitions of this process's own jobs (their completions) are recorded before it exits.
    async fn drain(&mut self) {
        for _ in 0..DRAIN_BATCHES {
            match self.step_within(ReadFrom::New, Duration::from_millis(1)).await {
                Ok(report) if report.events > 0 => {}
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, "JobStatus projection at stop failed; another projector records the rest");
                    return;
                }
            }
        }
    }

    /// Takes over events another projector left unacknowledged for [`CLAIM_IDLE`].
    async fn claim_stale(&mut self) -> CoreResult<()> {
        let group = self.group();
        self.queue.ensure_event_group(group).await?;
        let batch = self
            .queue
            .claim_stale_events(group, &self.consumer, CLAIM_IDLE, BATCH)
            .await?;
        if !batch.is_empty() {
            tracing::info!(
                events = batch.events.len(),
                "claimed JobStatus events a stopped projector left"
            );
        }
        self.apply(batch).await.map(|_| ())
    }

    /// Writes a batch to MongoDB, then acknowledges it.
    async fn apply(&self, batch: EventBatch) -> CoreResult<StepReport> {
        if batch.is_empty() {
            return Ok(StepReport::default());
        }
        for skipped in &batch.unreadable {
            tracing::warn!(stream_id = %skipped.stream_id, reason = %skipped.reason, "skipping an unreadable queue event");
        }
        let records = match &self.target {
            Target::JobStatus { db, notifier } => {
                let records = self.write_isolating(db, &batch.events).await?;
                if let Some(notifier) = notifier {
                    let failed =
                        crate::jobs::notify::Notifier::failed_jobs(&self.queue, &batch.events).await?;
                    notifier.notify(&failed).await?;
                }
                records
            }
            Target::ReadModel(read_model) => {
                let max = self.queue.config().max_attempts();
                let writes = plan(self.queue.name(), max, &self.retention, &batch.events);
                read_model.apply(&writes).await?;
                writes.len()
            }
        };
        self.queue.ack_events(self.group(), &batch.stream_ids()).await?;
        Ok(StepReport {
            events: batch.events.len(),
            records,
        })
    }
}

impl Projector {
    /// Writes `events`; when MongoDB refuses them (not "not now": a refusal), narrows the
    /// refusal down by halves until each refused event is alone and keeps it as a dead letter.
    /// Returns how many records were written.
    fn write_isolating<'a>(
        &'a self,
        db: &'a Database,
        events: &'a [JobEvent],
    ) -> futures::future::BoxFuture<'a, CoreResult<usize>> {
        Box::pin(async move {
            let writes = project(db, &self.queue, &self.retention, events);
            match mongo_op(self.operation_timeout, writes).await {
                Err(error) if error.is_refusal() && events.len() == 1 => {
                    super::dead_letters::keep(db, self.queue.name(), &events[0], &error).await?;
                    Ok(0)
                }
                Err(error) if error.is_refusal() => {
                    let (first, second) = events.split_at(events.len() / 2);
                    Ok(self.write_isolating(db, first).await? + self.write_isolating(db, second).await?)
                }
                other => other,
            }
        })
    }
}

/// Writes `events` of `queue` to JobStatus (in any order, any number of times: the result is the
/// same). Returns how many records were written.
pub async fn project(
    db: &Database,
    queue: &Queue,
    retention: &Retention,
    events: &[JobEvent],
) -> CoreResult<usize> {
    let writes = plan(queue.name(), queue.config().max_attempts(), retention, events);
    write_all(db, &writes).await?;
    Ok(writes.len())
}

/// Applies the writes: new records are inserted; the rest (and records that existed after all)
/// get guarded statements; those whose record was newer (or was inserted by another projector
/// meanwhile) are tried once more guarded, then with their facts alone.
async fn write_all(db: &Database, writes: &[JobWrite]) -> CoreResult<()> {
    let (fresh, mut guarded): (Vec<&JobWrite>, Vec<&JobWrite>) =
        writes.iter().partition(|w| w.new_record().is_some());
    let records: Vec<Document> = fresh.iter().filter_map(|w| w.new_record()).collect();
    guarded.extend(insert(db, records).await?.into_iter().map(|i| fresh[i]));
    let (mut guarded, mut facts_only): (Vec<&JobWrite>, Vec<&JobWrite>) =
        guarded.into_iter().partition(|w| w.state.is_some());
    for round in 0..2 {
        let statements: Vec<Document> = guarded.iter().filter_map(|w| w.guarded_statement()).collect();
        let conflicts = update(db, statements).await?;
        let conflicted: Vec<&JobWrite> = conflicts.into_iter().map(|i| guarded[i]).collect();
        if round == 0 {
            guarded = conflicted;
        } else {
            facts_only.extend(conflicted);
        }
    }
    let statements: Vec<Document> = facts_only.iter().filter_map(|w| w.facts_statement()).collect();
    let conflicts = update(db, statements).await?;
    if !conflicts.is_empty() {
        return Err(CoreError::Projection(format!(
            "{} JobStatus records kept conflicting; the batch is retried",
            conflicts.len()
        )));
    }
    Ok(())
}

/// One unordered bulk `insert`; returns the indexes of documents that already existed.
async fn insert(db: &Database, records: Vec<Document>) -> CoreResult<Vec<usize>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let reply = db
        .run_command(doc! { "insert": JOB_STATUS, "documents": records, "ordered": false })
        .await?;
    duplicates(&reply)
}

/// One unordered bulk `update` command; returns the indexes of statements that met a duplicate
/// key. Any other write error fails the whole call (the batch is retried).
async fn update(db: &Database, statements: Vec<Document>) -> CoreResult<Vec<usize>> {
    if statements.is_empty() {
        return Ok(Vec::new());
    }
    let reply = db
        .run_command(doc! { "update": JOB_STATUS, "updates": statements, "ordered": false })
        .await?;
    duplicates(&reply)
}

/// The indexes of a bulk command's writes that met a duplicate key; any other write error is a
/// refusal, and a write concern MongoDB could not confirm fails the call (retried).
fn duplicates(reply: &Document) -> CoreResult<Vec<usize>> {
    if let Ok(concern) = reply.get_document("writeConcernError") {
        return Err(CoreError::Projection(format!(
            "MongoDB did not confirm the write concern (the writes may be rolled back): {concern}"
        )));
    }
    let mut conflicts = Vec::new();
    let errors = reply
        .get_array("writeErrors")
        .map(|a| a.as_slice())
        .unwrap_or_default();
    for error in errors.iter().filter_map(|e| e.as_document()) {
        let code = error.get_i32("code").unwrap_or_default();
        let index = error.get_i32("index").unwrap_or_default();
        if code != DUPLICATE_KEY {
            let message = error.get_str("errmsg").unwrap_or("unknown error");
            return Err(CoreError::Refused(format!("write error {code}: {message}")));
        }
        conflicts.push(index as usize);
    }
    Ok(conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_concern_error_fails_the_batch_and_other_write_errors_are_refusals() {
        let unconfirmed = doc! { "n": 1, "writeConcernError": { "code": 64, "errmsg": "waiting for replication timed out" } };
        let error = duplicates(&unconfirmed).unwrap_err();
        assert!(!error.is_refusal(), "retried, not set aside: {error}");
        let refused =
            doc! { "n": 0, "writeErrors": [ { "index": 0, "code": 10334, "errmsg": "too large" } ] };
        assert!(duplicates(&refused).unwrap_err().is_refusal());
        let raced = doc! { "n": 0, "writeErrors": [ { "index": 2, "code": 11000, "errmsg": "dup" } ] };
        assert_eq!(duplicates(&raced).unwrap(), vec![2]);
    }
}
