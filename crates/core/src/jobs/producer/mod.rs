//! The hourly producer (seed 001 "cronProducer"): at each tick ([`crate::jobs::cron`] says
//! when) select the users whose data is stale and enqueue one refresh each — never process
//! anything.
//!
//! - Once per tick across replicas: a Redis [`Lease`] per tick lets one instance run it, renewed
//!   while it runs, so another instance takes over if the holder dies; a tick recorded as
//!   completed in `cron_runs` is not run again, and its jobs carry the tick in their id
//!   (`<user>@<tick>`), so a late or repeated run enqueues nothing new.
//! - Selection ([`StaleUsers`]) streams active users from MongoDB with a cursor (index
//!   `active_lastDataUpdateAt`), keeps those that are due at the tick — `lastDataUpdateAt`
//!   missing, or `lastDataUpdateAt + interval <= tick + cron.due_tolerance_ms`, so a refresh that
//!   finished a little after the previous tick is due at this one (every hour, not every other)
//!   — and keeps only users with an enabled seller account (users are read in id order, so each
//!   batch's accounts are one range scan of the `userId` index).
//! - Users whose every account needs re-authorization are skipped until an account's
//!   credentials change ([`crate::domain::accounts::reauthorized_users`]).
//! - Ticks are never lost: [`Producer::drive_tick`] retries a failed tick with backoff and
//!   watches a tick held elsewhere until it is done or the next tick is due (taking it over as
//!   soon as a dead holder's lease expires); [`last_tick`](crate::jobs::cron::last_tick) is
//!   what an API catches up at start-up; [`Producer::reap_abandoned`] marks runs of dead
//!   holders `abandoned`.
//! - A tick reads the next batch of users while it enqueues the current one, and keeps counts,
//!   not ids: its memory does not grow with the number of users.
//! - Enqueueing (`enqueue.rs`) is shared with the API's manual enqueue and the CLI.

mod enqueue;
mod stale;

pub use enqueue::{
    EnqueueReport, Placement, UserJob, enqueue_refresh, enqueue_refresh_for_tick, enqueue_scheduled,
};
pub use stale::StaleUsers;

use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::Database;
use mongodb::bson::{self, Document, doc};
use sellersync_queue::Queue;
use sellersync_queue::RedisConnection;
use serde::Serialize;

use crate::infra::error::CoreResult;
use crate::jobs::cron::{TickRetry, tick_id};
use crate::jobs::lease::Lease;
use crate::jobs::payload::Trigger;

pub const CRON_RUNS: &str = "cron_runs";

/// Everything a tick needs.
#[derive(Clone)]
pub struct Producer {
    pub db: Database,
    pub redis: RedisConnection,
    pub queue: Queue,
    /// This instance's id, recorded on the runs it performs.
    pub instance: String,
    pub key_prefix: String,
    pub batch_size: usize,
    pub lease_ttl: Duration,
    /// See [`StaleUsers::open`].
    pub due_tolerance: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickReport {
    pub tick_id: String,
    pub selected: usize,
    pub enqueued: usize,
    pub duplicates: usize,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    Ran(TickReport),
    /// The tick was completed before (a late or repeated run).
    AlreadyDone,
    /// Another instance holds the tick right now.
    HeldElsewhere,
}

/// `cron_runs` status of a run whose holder died before finishing it.
pub const ABANDONED: &str = "abandoned";

impl Producer {
    /// Runs the tick at `tick_at` unless it is done or another instance holds it.
    pub async fn run_tick(&self, tick_at: DateTime<Utc>) -> CoreResult<TickOutcome> {
        let id = tick_id(tick_at);
        if self.completed(&id).await? {
            return Ok(TickOutcome::AlreadyDone);
        }
        let key = format!("{}cron:tick:{id}", self.key_prefix);
        let Some(lease) = Lease::acquire(&self.redis, key, &self.instance, self.lease_ttl).await? else {
            return Ok(TickOutcome::HeldElsewhere);
        };
        // The previous holder may have finished between our check and our lease.
        if self.completed(&id).await? {
            lease.release().await?;
            return Ok(TickOutcome::AlreadyDone);
        }
        let outcome = self.produce(&id, tick_at).await;
        // Release the tick even when its end could not be recorded, so a retry may take it.
        let recorded = self.record_end(&id, &outcome).await;
        let released = lease.release().await;
        recorded?;
        released?;
        outcome.map(TickOutcome::Ran)
    }

    /// Runs the tick at `tick_at` until it is done, retrying failures with backoff and taking
    /// it over whenever another holder's lease expires, until `until` (the next tick, whose run
    /// covers every user this one would have). Returns the last outcome, or the last error when
    /// `until` came first.
    pub async fn drive_tick(
        &self,
        tick_at: DateTime<Utc>,
        until: DateTime<Utc>,
        retry: TickRetry,
    ) -> CoreResult<TickOutcome> {
        let id = tick_id(tick_at);
        let mut backoff = retry.backoff().build();
        loop {
            let outcome = self.run_tick(tick_at).await;
            let wait = match &outcome {
                Ok(TickOutcome::Ran(_) | TickOutcome::AlreadyDone) => return outcome,
                // Watch the holder: its lease expires soon after it died.
                Ok(TickOutcome::HeldElsewhere) => self.lease_ttl / 2,
                Err(error) => {
                    let wait = backoff.next().unwrap_or(retry.max);
                    tracing::warn!(tick = id, %error, retry_in_ms = wait.as_millis() as u64, "cron tick failed; retrying");
                    wait
                }
            };
            let left = (until - Utc::now()).to_std().unwrap_or_default();
            if left <= wait {
                if outcome.is_err() {
                    tracing::error!(tick = id, "cron tick gave up: the next tick is due");
                }
                return outcome;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Marks `running` runs whose holder is gone (its lease expired) as [`ABANDONED`], so
    /// `cron_runs` never shows a dead holder's tick as running. Returns how many were marked.
    pub async fn reap_abandoned(&self) -> CoreResult<usize> {
        let runs = self.db.collection::<Document>(CRON_RUNS);
        let running: Vec<Document> = runs
            .find(doc! { "status": "running" })
            .projection(doc! { "_id": 1, "instance": 1 })
            .await?
            .try_collect()
            .await?;
        let mut redis = self.redis.clone();
        let mut marked = 0;
        for run in running {
            let (Ok(id), Ok(instance)) = (run.get_str("_id"), run.get_str("instance")) else {
                continue;
            };
            let key = format!("{}cron:tick:{id}", self.key_prefix);
            let held: bool = redis::AsyncCommands::exists(&mut redis, &key).await?;
            if held {
                continue;
            }
            let filter = doc! { "_id": id, "status": "running", "instance": instance };
            let update = doc! { "$set": {
                "status": ABANDONED, "finishedAt": bson::DateTime::now(),
                "error": format!("instance {instance} stopped holding the tick before finishing it"),
            }};
            marked += runs.update_one(filter, update).await?.modified_count as usize;
        }
        if marked > 0 {
            tracing::warn!(marked, "cron runs of dead holders marked abandoned");
        }
        Ok(marked)
    }

    async fn completed(&self, id: &str) -> CoreResult<bool> {
        let done = doc! { "_id": id, "status": "completed" };
        Ok(self
            .db
            .collection::<Document>(CRON_RUNS)
            .count_documents(done)
            .await?
            > 0)
    }

    async fn produce(&self, id: &str, tick_at: DateTime<Utc>) -> CoreResult<TickReport> {
        let clock = Instant::now();
        let runs = self.db.collection::<Document>(CRON_RUNS);
        let start = doc! { "$set": {
            "tickAt": bson::DateTime::from_millis(tick_at.timestamp_millis()), "status": "running",
            "instance": &self.instance, "startedAt": bson::DateTime::now(),
        }};
        runs.update_one(doc! { "_id": id }, start).upsert(true).await?;
        let mut users = StaleUsers::open(&self.db, tick_at, self.due_tolerance).await?;
        let (mut selected, mut enqueued, mut duplicates) = (0, 0, 0);
        // The next batch is read from MongoDB while this one is enqueued in Redis; only the
        // counts are kept, so a tick of any size holds two batches of ids at most.
        let size = self.batch_size.max(500);
        let mut next = users.next_batch(size).await?;
        while let Some(batch) = next {
            selected += batch.len();
            let enqueue = enqueue::enqueue_refresh_for_tick(
                &self.queue,
                &batch,
                Trigger::Cron,
                self.batch_size,
                Some(id),
                Placement::default(),
            );
            let (fetched, report) = tokio::try_join!(users.next_batch(size), enqueue)?;
            enqueued += report.enqueued.len();
            duplicates += report.duplicates.len();
            next = fetched;
        }
        Ok(TickReport {
            tick_id: id.to_owned(),
            selected,
            enqueued,
            duplicates,
            duration_ms: clock.elapsed().as_millis() as u64,
        })
    }

    async fn record_end(&self, id: &str, outcome: &CoreResult<TickReport>) -> CoreResult<()> {
        let now = bson::DateTime::now();
        let update = match outcome {
            Ok(r) => {
                tracing::info!(
                    tick = id,
                    selected = r.selected,
                    enqueued = r.enqueued,
                    duplicates = r.duplicates,
                    duration_ms = r.duration_ms,
                    "cron tick done"
                );
                doc! { "$set": {
                    "status": "completed", "finishedAt": now, "selected": r.selected as i64, "enqueued": r.enqueued as i64,
                    "duplicates": r.duplicates as i64, "durationMs": r.duration_ms as i64, "instance": &self.instance,
                }, "$unset": { "error": "" } }
            }
            Err(error) => {
                tracing::error!(tick = id, %error, "cron tick failed");
                doc! { "$set": { "status": "failed", "finishedAt": now, "error": error.to_string() } }
            }
        };
        self.db
            .collection::<Document>(CRON_RUNS)
            .update_one(doc! { "_id": id }, update)
            .await?;
        Ok(())
    }
}
