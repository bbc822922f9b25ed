//! The hourly producer's tick (seed 001 "cronProducer"): select the users whose data is stale and
//! enqueue one refresh each — never process anything.
//!
//! - Schedule: a six-field cron pattern evaluated in `TIMEZONE` with croner, which computes each
//!   occurrence in the zone itself, so DST changes neither skip nor double a tick.
//!   (tokio-cron-scheduler was the first choice; its time-zone support fixes the UTC offset when
//!   the job is created, which shifts ticks by an hour after a DST change.)
//! - Once per tick across replicas: the tick's id is its instant in UTC, the same on every
//!   replica; a Redis [`Lease`] per tick lets one instance run it, renewed while it runs, so
//!   another instance takes over if the holder dies; a tick recorded as completed in `cron_runs`
//!   is not run again, and its jobs carry the tick in their id (`<user>@<tick>`), so a late or
//!   repeated run enqueues nothing new.
//! - Selection streams active users from MongoDB with a cursor (index `active_lastDataUpdateAt`),
//!   keeps those that are due at the tick — `lastDataUpdateAt` missing, or
//!   `lastDataUpdateAt + interval <= tick + cron.due_tolerance_ms`, so a refresh that finished a
//!   little after the previous tick is due at this one (every hour, not every other) — and keeps
//!   only users with an enabled seller account (users are read in id order, so each batch's
//!   accounts are one range scan of the `userId` index).
//! - Users whose every account needs re-authorization are skipped until an account's
//!   credentials change ([`accounts::reauthorized_users`]).
//! - Ticks are never lost: [`Producer::drive_tick`] retries a failed tick with backoff and
//!   watches a tick held elsewhere until it is done or the next tick is due (taking it over as
//!   soon as a dead holder's lease expires); [`last_tick`] is what an API catches up at start-up;
//!   [`Producer::reap_abandoned`] marks runs of dead holders `abandoned`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use futures::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::{Cursor, Database};
use sellersync_queue::Queue;
use sellersync_queue::RedisConnection;
use serde::Serialize;

use crate::accounts::{self, SELLER_ACCOUNTS, USERS};
use crate::error::CoreResult;
use crate::jobs::Trigger;
use crate::lease::Lease;
use crate::producer::{self, EnqueueReport};

pub const CRON_RUNS: &str = "cron_runs";

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    /// The schedule matches every hour of the day (`*`, `0-23`, `*/1`, a list of all 24...): it
    /// runs every real hour, including both passes through the hour that repeats when DST ends.
    every_hour: bool,
}

fn parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
}

/// Parses a six-field (seconds first) cron pattern.
pub fn parse_schedule(pattern: &str) -> Result<Schedule, String> {
    let cron = parser()
        .parse(pattern)
        .map_err(|e| format!("{pattern:?} is not a six-field cron pattern: {e}"))?;
    let hours = pattern.split_whitespace().nth(2).unwrap_or("*");
    Ok(Schedule {
        cron,
        every_hour: matches_every_hour(hours),
    })
}

/// Whether an hour field selects all 24 hours, whatever way it is written.
fn matches_every_hour(hours: &str) -> bool {
    let Ok(only_hours) = parser().parse(&format!("0 0 {hours} * * *")) else {
        return false;
    };
    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("a valid date");
    (0..24).all(|hour| {
        let at = day.and_hms_opt(hour, 0, 0).expect("a valid time").and_utc();
        only_hours.is_time_matching(&at).unwrap_or(false)
    })
}

/// The first tick strictly after `after`, evaluated in `tz`, as an instant in UTC.
///
/// croner walks local wall-clock time, so when DST ends it finds only the first pass through the
/// repeated hour. A fixed-hour schedule (daily at 02:30) must indeed run once; an every-hour
/// schedule must also tick on the second pass, so for those the real seconds up to croner's
/// answer (at most two hours) are checked too.
pub fn next_tick(schedule: &Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let candidate = schedule
        .cron
        .find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()?
        .with_timezone(&Utc);
    if !schedule.every_hour {
        return Some(candidate);
    }
    let limit = candidate.min(after + TimeDelta::hours(2));
    let mut t = after.with_nanosecond(0).unwrap_or(after) + TimeDelta::seconds(1);
    while t < limit {
        if schedule
            .cron
            .is_time_matching(&t.with_timezone(&tz))
            .unwrap_or(false)
        {
            return Some(t);
        }
        t += TimeDelta::seconds(1);
    }
    Some(candidate)
}

/// How far back [`last_tick`] looks for a tick to catch up.
pub const CATCH_UP_WINDOW: TimeDelta = TimeDelta::hours(25);

/// The latest tick at or before `now` within [`CATCH_UP_WINDOW`], if any: the tick an API that
/// starts at `now` catches up when it was not run.
pub fn last_tick(schedule: &Schedule, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut last = None;
    let mut at = now - CATCH_UP_WINDOW;
    while let Some(tick) = next_tick(schedule, tz, at).filter(|tick| *tick <= now) {
        last = Some(tick);
        at = tick;
    }
    last
}

/// A tick's id: its instant in UTC, identical on every replica.
pub fn tick_id(tick_at: DateTime<Utc>) -> String {
    tick_at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Users due for a refresh, read in batches from a cursor.
pub struct StaleUsers {
    cursor: Cursor<Document>,
    db: Database,
    /// The tick plus the tolerance: a user is due if its interval has passed by then.
    due_by: DateTime<Utc>,
    /// Users waiting for re-authorization whose credentials changed: due again.
    reauthorized: Vec<String>,
}

impl StaleUsers {
    /// Users due at `tick`, with `tolerance` (see the module documentation).
    pub async fn open(
        db: &Database,
        tick: DateTime<Utc>,
        tolerance: std::time::Duration,
    ) -> CoreResult<Self> {
        let due_by = tick + TimeDelta::from_std(tolerance).unwrap_or_default();
        // Nothing refreshed within a minute of `due_by` can be due (intervals are whole minutes).
        let recent = bson::DateTime::from_millis((due_by - TimeDelta::minutes(1)).timestamp_millis());
        let filter = doc! {
            "active": true,
            "needsReauthorization": { "$ne": true },
            "$or": [ { "lastDataUpdateAt": null }, { "lastDataUpdateAt": { "$lt": recent } } ],
        };
        let cursor = db
            .collection::<Document>(USERS)
            .find(filter)
            .projection(doc! { "_id": 1, "lastDataUpdateAt": 1, "updateIntervalMinutes": 1 })
            // In id order, so each batch's accounts are one range of the `userId` index.
            .sort(doc! { "_id": 1 })
            .batch_size(1000)
            .await?;
        Ok(Self {
            cursor,
            db: db.clone(),
            due_by,
            reauthorized: accounts::reauthorized_users(db).await?,
        })
    }

    /// Up to `size` more stale users with an enabled seller account (possibly none in this
    /// batch); `None` when done.
    pub async fn next_batch(&mut self, size: usize) -> CoreResult<Option<Vec<String>>> {
        if !self.reauthorized.is_empty() {
            // Checked to have enabled accounts when they were found.
            return Ok(Some(std::mem::take(&mut self.reauthorized)));
        }
        let mut candidates = Vec::with_capacity(size);
        while candidates.len() < size {
            let Some(user) = self.cursor.try_next().await? else {
                break;
            };
            if self.is_due(&user) {
                candidates.extend(user.get_str("_id").ok().map(str::to_owned));
            }
        }
        let (Some(first), Some(last)) = (candidates.first(), candidates.last()) else {
            return Ok(None);
        };
        // One range scan of the accounts of the batch's id range (far cheaper than `$in`).
        let range = doc! { "userId": { "$gte": first, "$lte": last }, "enabled": true };
        let with_accounts: HashSet<String> = self
            .db
            .collection::<Document>(SELLER_ACCOUNTS)
            .find(range)
            .projection(doc! { "userId": 1, "_id": 0 })
            .await?
            .try_collect::<Vec<Document>>()
            .await?
            .iter()
            .filter_map(|a| a.get_str("userId").ok().map(str::to_owned))
            .collect();
        candidates.retain(|id| with_accounts.contains(id));
        Ok(Some(candidates))
    }

    fn is_due(&self, user: &Document) -> bool {
        let interval = user.get("updateIntervalMinutes").and_then(minutes).unwrap_or(60);
        match user.get_datetime("lastDataUpdateAt") {
            Ok(last) => last.timestamp_millis() + interval * 60_000 <= self.due_by.timestamp_millis(),
            Err(_) => true,
        }
    }
}

/// An interval stored as any integer or double.
fn minutes(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}

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

/// How a failed tick is retried within its hour: exponential backoff from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickRetry {
    pub initial: Duration,
    pub max: Duration,
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
        let mut backoff = retry.initial;
        loop {
            let outcome = self.run_tick(tick_at).await;
            let wait = match &outcome {
                Ok(TickOutcome::Ran(_) | TickOutcome::AlreadyDone) => return outcome,
                // Watch the holder: its lease expires soon after it died.
                Ok(TickOutcome::HeldElsewhere) => self.lease_ttl / 2,
                Err(error) => {
                    tracing::warn!(tick = id, %error, retry_in_ms = backoff.as_millis() as u64, "cron tick failed; retrying");
                    let wait = backoff;
                    backoff = (backoff * 2).min(retry.max);
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
        let mut total = EnqueueReport::default();
        let mut selected = 0;
        while let Some(batch) = users.next_batch(self.batch_size.max(500)).await? {
            selected += batch.len();
            let report = producer::enqueue_refresh_for_tick(
                &self.queue,
                &batch,
                Trigger::Cron,
                self.batch_size,
                Some(id),
                producer::Schedule::default(),
            )
            .await?;
            total.enqueued.extend(report.enqueued);
            total.duplicates.extend(report.duplicates);
        }
        Ok(TickReport {
            tick_id: id.to_owned(),
            selected,
            enqueued: total.enqueued.len(),
            duplicates: total.duplicates.len(),
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
    }

    #[test]
    fn hourly_ticks_neither_skip_nor_double_across_dst() {
        let schedule = parse_schedule("0 0 * * * *").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Autumn (2026-10-25 01:00 UTC: 03:00 CEST becomes 02:00 CET) and spring (2026-03-29).
        for start in [utc(2026, 10, 24, 21), utc(2026, 3, 28, 22)] {
            let mut ticks = vec![next_tick(&schedule, berlin, start).unwrap()];
            for _ in 0..6 {
                ticks.push(next_tick(&schedule, berlin, *ticks.last().unwrap()).unwrap());
            }
            for pair in ticks.windows(2) {
                assert_eq!(pair[1] - pair[0], TimeDelta::hours(1), "{ticks:?}");
            }
        }
    }

    #[test]
    fn a_fixed_time_in_the_repeated_hour_runs_once() {
        let schedule = parse_schedule("0 30 2 * * *").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let first = next_tick(&schedule, berlin, utc(2026, 10, 24, 12)).unwrap();
        let second = next_tick(&schedule, berlin, first).unwrap();
        assert_eq!(first, Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap());
        assert_eq!(
            second - first,
            TimeDelta::hours(25),
            "the next day, not an hour later"
        );
    }

    #[test]
    fn a_tick_is_evaluated_in_the_configured_timezone() {
        let daily = parse_schedule("0 0 9 * * *").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 09:00 in Berlin is 07:00 UTC in summer and 08:00 UTC in winter.
        assert_eq!(
            next_tick(&daily, berlin, utc(2026, 7, 1, 0)).unwrap(),
            utc(2026, 7, 1, 7)
        );
        assert_eq!(
            next_tick(&daily, berlin, utc(2026, 12, 1, 0)).unwrap(),
            utc(2026, 12, 1, 8)
        );
        assert_eq!(
            next_tick(&daily, chrono_tz::UTC, utc(2026, 12, 1, 0)).unwrap(),
            utc(2026, 12, 1, 9)
        );
    }

    #[test]
    fn bad_schedules_are_refused_and_tick_ids_are_stable() {
        assert!(parse_schedule("0 * * * *").is_err(), "five fields");
        assert!(parse_schedule("every hour").is_err());
        assert_eq!(tick_id(utc(2026, 11, 25, 14)), "2026-11-25T14:00:00Z");
    }
}
