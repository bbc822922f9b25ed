//! `Queue`: one named queue in Redis — producing, leasing, acknowledging, inspecting and
//! controlling its jobs. All keys of queue `q` live under `<prefix>{q}:` (one hash tag, so one
//! slot: the scripts, pipelines and multi-key commands of a queue also run on Redis Cluster; every
//! script call declares the keys it can name in KEYS, see `SCRIPT_KEYS`):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `wait` | zset | ready job ids, by priority then FIFO sequence |
//! | `delayed` | zset | job ids by due time (delays and retry backoff) |
//! | `active` | zset | leased job ids by lease deadline |
//! | `completed`, `failed` | zset | finished job ids by finish time (listing, retention) |
//! | `job:<id>` | hash | payload, state, attempts, progress, timestamps, last error, result |
//! | `dedup:<key>` | string | the pending job holding a dedup key |
//! | `paused` | string | present while the queue is paused |
//! | `wake` | list | tokens that wake idle workers blocked on BLPOP |
//! | `events` | stream | lifecycle events, capped at ~10,000 |
//! | `workers`, `worker:<id>` | zset, string | live workers by last heartbeat, and their info |
//! | `seq`, `fence` | counters | FIFO order, lease (fencing) tokens |
//! | `reaped_at` | string | when a reaper last got through (stall detection) |
//! | `ratelimit` | hash | the token bucket of the queue's start limit, when it has one |
//! | `metrics` | hash | cumulative `failed`, `retried`, `events_dropped` (event stream entries trimmed at the cap unread), and the duration histogram of completed jobs (`dur_le_<ms>`, `dur_sum_ms`; its count is the completions) |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::RedisConnection;
use redis::{AsyncCommands, FromRedisValue, Value};

use crate::config::QueueConfig;
use crate::error::{QueueError, QueueResult};
use crate::job::{Counts, EnqueueOptions, Enqueued, FailOutcome, JobInfo, JobState, LeasedJob};
use crate::scripts::SCRIPTS;

/// The queue's fixed keys (suffixes of `<prefix>{<queue>}:`) that its scripts touch, declared
/// in KEYS of every script call in this order: KEYS[1] is `wait`, the key a cluster client routes
/// the script by. Each call then declares the hashes of the jobs it names (`job:<id>`), the dedup
/// keys it sets (`dedup:<key>`) and the worker's key (`worker:<id>`). Keys a script finds only
/// while it runs (the jobs a fetch leases, a reap expires or retention deletes, a dedup key's
/// holder) cannot be declared beforehand; they carry the same hash tag, so they lie in the same
/// slot (docs/operations.md).
const SCRIPT_KEYS: [&str; 14] = [
    "wait",
    "delayed",
    "active",
    "completed",
    "failed",
    "paused",
    "wake",
    "events",
    "workers",
    "seq",
    "fence",
    "metrics",
    "reaped_at",
    "ratelimit",
];

/// Jobs per enqueue script call; larger batches are split.
const ENQUEUE_BATCH: usize = 1000;
/// Most jobs leased by one fetch.
pub const MAX_FETCH: usize = 1000;
/// Expired leases handled per reap call.
const REAP_LIMIT: usize = 1000;

/// A job to enqueue: its JSON payload and options.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub payload: String,
    pub options: EnqueueOptions,
}

impl NewJob {
    pub fn new(payload: &impl serde::Serialize, options: EnqueueOptions) -> QueueResult<Self> {
        let payload = serde_json::to_string(payload)
            .map_err(|e| QueueError::InvalidOptions(format!("payload is not serialisable: {e}")))?;
        Ok(Self { payload, options })
    }
}

/// A completed attempt, for [`Queue::complete`].
#[derive(Debug, Clone)]
pub struct Ack {
    pub id: String,
    /// The lease token the attempt was handed (see [`LeasedJob::token`]).
    pub token: u64,
    /// The handler's result as JSON (`null` when it returned none).
    pub result: String,
}

/// What one fetch returned.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub jobs: Vec<LeasedJob>,
    /// When the earliest delayed job is due (ms since the epoch), if any.
    pub next_due_ms: Option<u64>,
    pub paused: bool,
}

/// A worker seen through its heartbeats.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    pub id: String,
    pub last_heartbeat_ms: u64,
    /// What the worker reported about itself (host, started, in-flight, ...).
    pub info: serde_json::Value,
}

#[derive(Clone)]
pub struct Queue {
    name: String,
    base: String,
    /// The queue's fixed keys, declared in KEYS of every script call (see [`SCRIPT_KEYS`]).
    script_keys: std::sync::Arc<[String]>,
    config: QueueConfig,
    redis: RedisConnection,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new job id: time-ordered (UUIDv7, so ids sort by creation) and random, so ids never repeat,
/// even after Redis lost its last writes (a counter in Redis would hand out the same ids again).
fn new_job_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// What one reap did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Jobs whose lease expired, back in line (the attempt not counted).
    pub requeued: u64,
    /// Jobs that stalled too often, failed for good.
    pub failed: u64,
    /// No reaper had got through for a while (Redis stalled): every lease got one more period.
    pub graced: bool,
}

impl Queue {
    /// A handle on queue `name` under `key_prefix`. No I/O happens here.
    pub fn new(redis: RedisConnection, key_prefix: &str, name: &str, config: QueueConfig) -> Self {
        let base = format!("{key_prefix}{{{name}}}:");
        let script_keys = SCRIPT_KEYS
            .iter()
            .map(|suffix| format!("{base}{suffix}"))
            .collect();
        Self {
            name: name.to_owned(),
            base,
            script_keys,
            config,
            redis,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The prefix of every key of this queue, `<prefix>{<name>}:`.
    pub fn key_base(&self) -> &str {
        &self.base
    }

    pub(crate) fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.base)
    }

    /// A call of `script` with the queue's fixed keys declared in KEYS (KEYS[1], the wait key,
    /// routes it on a cluster); the caller adds the keys of the jobs it names ([`Queue::job_key`]).
    fn script_call<'a>(&self, script: &'a redis::Script) -> redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for key in self.script_keys.iter() {
            call.key(key);
        }
        call
    }

    /// The hash of job `id`.
    fn job_key(&self, id: &str) -> String {
        self.key(&format!("job:{id}"))
    }

    pub(crate) fn conn(&self) -> RedisConnection {
        self.redis.clone()
    }

    // --- producing ----------------------------------------------------------------------

    /// Enqueues one job. With a dedup key (or explicit id) that a pending job already holds,
    /// returns that job with `duplicate: true` instead, atomically across processes.
    pub async fn enqueue(
        &self,
        payload: &impl serde::Serialize,
        options: EnqueueOptions,
    ) -> QueueResult<Enqueued> {
        let job = NewJob::new(payload, options)?;
        let mut out = self.enqueue_bulk(std::slice::from_ref(&job)).await?;
        out.pop()
            .ok_or_else(|| QueueError::Protocol("enqueue returned nothing".to_owned()))
    }

    /// Enqueues many jobs, one script call (one round trip) per 1,000. Results are in input order.
    pub async fn enqueue_bulk(&self, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>> {
        let mut results = Vec::with_capacity(jobs.len());
        for batch in jobs.chunks(ENQUEUE_BATCH) {
            results.extend(self.enqueue_batch(batch).await?);
        }
        Ok(results)
    }

    async fn enqueue_batch(&self, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>> {
        let mut call = self.script_call(&SCRIPTS.enqueue);
        call.arg(&self.base).arg(jobs.len());
        for job in jobs {
            let o = &job.options;
            self.check_options(o)?;
            let id = o.job_id.clone().unwrap_or_else(new_job_id);
            call.key(self.job_key(&id));
            if let Some(dedup) = &o.dedup_key {
                call.key(self.key(&format!("dedup:{dedup}")));
            }
            call.arg(id)
                .arg(o.dedup_key.as_deref().unwrap_or(""))
                .arg(o.delay.map_or(0, |d| d.as_millis() as u64))
                .arg(o.priority)
                .arg(o.max_attempts.map(|m| m.to_string()).unwrap_or_default())
                .arg(&job.payload);
        }
        let flat: Vec<(String, u8)> = call.invoke_async(&mut self.conn()).await?;
        Ok(flat
            .into_iter()
            .map(|(id, dup)| Enqueued {
                id,
                duplicate: dup == 1,
            })
            .collect())
    }

    fn check_options(&self, o: &EnqueueOptions) -> QueueResult<()> {
        if o.priority >= self.config.priority_levels {
            return Err(QueueError::InvalidOptions(format!(
                "priority {} is out of range 0..{} of queue {}",
                o.priority, self.config.priority_levels, self.name
            )));
        }
        if o.max_attempts == Some(0) {
            return Err(QueueError::InvalidOptions(
                "max_attempts must be at least 1".to_owned(),
            ));
        }
        for (what, value) in [("job id", &o.job_id), ("dedup key", &o.dedup_key)] {
            if value.as_deref().is_some_and(|v| v.is_empty() || v.len() > 512) {
                return Err(QueueError::InvalidOptions(format!(
                    "{what} must be 1 to 512 bytes"
                )));
            }
        }
        Ok(())
    }

    // --- consuming ----------------------------------------------------------------------

    /// Leases up to `n` ready jobs to `worker_id` (promoting due delayed jobs first).
    ///
    /// With a start limit (`rate_limit`), only as many jobs as the queue's token bucket allows
    /// start, counted atomically with the lease across every worker; when none may start,
    /// `next_due_ms` says when the next may.
    pub async fn fetch(&self, worker_id: &str, n: usize) -> QueueResult<Fetched> {
        let script = match self.config.rate_limit {
            Some(_) => &SCRIPTS.fetch_limited,
            None => &SCRIPTS.fetch,
        };
        let mut call = self.script_call(script);
        call.arg(&self.base)
            .arg(n.clamp(1, MAX_FETCH))
            .arg(self.config.lease_ms)
            .arg(worker_id)
            .arg(self.config.max_attempts());
        if let Some(limit) = self.config.rate_limit.map(|l| l.bucket()) {
            call.arg(self.key("ratelimit"))
                .arg(limit.rate_per_sec)
                .arg(limit.burst);
        }
        let reply: Vec<Value> = call.invoke_async(&mut self.conn()).await?;
        parse_fetch(reply)
    }

    /// Completes attempts whose lease is still held; returns the ids completed (an attempt
    /// whose lease was lost is left alone: its job runs again, at least once).
    pub async fn complete(&self, acks: &[Ack]) -> QueueResult<Vec<String>> {
        if acks.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.script_call(&SCRIPTS.complete);
        call.arg(&self.base)
            .arg(self.config.keep_completed)
            .arg(acks.len());
        for ack in acks {
            call.key(self.job_key(&ack.id));
            call.arg(&ack.id).arg(ack.token).arg(&ack.result);
        }
        Ok(call.invoke_async(&mut self.conn()).await?)
    }

    /// Records a failed attempt (quoting its lease `token`): retried after the backoff while
    /// attempts remain and the error is retryable, failed for good otherwise.
    pub async fn fail(&self, id: &str, token: u64, error: &str, retryable: bool) -> QueueResult<FailOutcome> {
        let (outcome, due): (String, u64) = self
            .script_call(&SCRIPTS.fail)
            .key(self.job_key(id))
            .arg(&self.base)
            .arg(id)
            .arg(token)
            .arg(error)
            .arg(u8::from(retryable))
            .arg(self.config.max_backoff_ms)
            .arg(self.config.max_attempts())
            .arg(self.config.backoff_ms())
            .arg(self.config.keep_failed)
            .invoke_async(&mut self.conn())
            .await?;
        match outcome.as_str() {
            "retrying" => Ok(FailOutcome::Retrying { at_ms: due }),
            "failed" => Ok(FailOutcome::Failed),
            "stale" => Ok(FailOutcome::LeaseLost),
            other => Err(QueueError::Protocol(format!("fail returned {other:?}"))),
        }
    }

    /// Extends the leases `worker_id` holds (`(job id, token)`) and records its heartbeat and
    /// `info`. Returns the ids whose lease is lost: those attempts must stop.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        info: &serde_json::Value,
        leases: &[(String, u64)],
    ) -> QueueResult<Vec<String>> {
        let mut call = self.script_call(&SCRIPTS.heartbeat);
        call.key(self.key(&format!("worker:{worker_id}")));
        call.arg(&self.base)
            .arg(self.config.lease_ms)
            .arg(worker_id)
            .arg(info.to_string());
        for (id, token) in leases {
            call.key(self.job_key(id)).arg(id).arg(*token);
        }
        Ok(call.invoke_async(&mut self.conn()).await?)
    }

    /// Returns expired leases to waiting (or fails jobs that stalled too often); after a
    /// Redis-wide stall it first gives every lease one more period instead. Safe to run from
    /// every worker at once.
    pub async fn reap(&self) -> QueueResult<Reaped> {
        let (requeued, failed, graced): (u64, u64, u8) = self
            .script_call(&SCRIPTS.reap)
            .arg(&self.base)
            .arg(self.config.max_stalls)
            .arg(REAP_LIMIT)
            .arg(self.config.lease_ms * 3)
            .arg(self.config.keep_failed)
            .arg(self.config.stall_gap_ms())
            .arg(self.config.lease_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(Reaped {
            requeued,
            failed,
            graced: graced == 1,
        })
    }

    /// Hands unfinished leased jobs (`(job id, token)`) back to waiting without counting the
    /// attempt, and deregisters the worker. Used on graceful shutdown.
    pub async fn release(&self, worker_id: &str, leases: &[(String, u64)]) -> QueueResult<usize> {
        self.hand_back(worker_id, leases, true).await
    }

    /// Hands back the jobs of attempts the worker stopped itself (those whose lease it still
    /// holds), without deregistering it. Returns how many went back.
    pub async fn hand_back(
        &self,
        worker_id: &str,
        leases: &[(String, u64)],
        deregister: bool,
    ) -> QueueResult<usize> {
        let mut call = self.script_call(&SCRIPTS.release);
        call.key(self.key(&format!("worker:{worker_id}")));
        call.arg(&self.base).arg(worker_id).arg(u8::from(deregister));
        for (id, token) in leases {
            call.key(self.job_key(id)).arg(id).arg(*token);
        }
        Ok(call.invoke_async(&mut self.conn()).await?)
    }

    /// Puts a leased job back to run after `delay` without counting the attempt (its user is
    /// busy elsewhere, say). False if the caller no longer held the lease.
    pub async fn defer(&self, id: &str, token: u64, delay: Duration, reason: &str) -> QueueResult<bool> {
        let deferred: u8 = self
            .script_call(&SCRIPTS.defer)
            .key(self.job_key(id))
            .arg(&self.base)
            .arg(id)
            .arg(token)
            .arg(delay.as_millis() as u64)
            .arg(reason)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(deferred == 1)
    }

    /// Records progress (clamped to 0–100) of a job the caller holds; false if the lease is lost.
    pub async fn set_progress(&self, id: &str, token: u64, progress: u8) -> QueueResult<bool> {
        let recorded: u8 = self
            .script_call(&SCRIPTS.progress)
            .key(self.job_key(id))
            .arg(&self.base)
            .arg(id)
            .arg(token)
            .arg(progress.min(100))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(recorded == 1)
    }

    /// Blocks on `conn` until work may be ready or `timeout` passes; true when woken by new work.
    /// `conn` must be a connection of its own (not the queue's shared one): BLPOP holds it.
    pub async fn wait_for_work(&self, conn: &mut RedisConnection, timeout: Duration) -> QueueResult<bool> {
        let seconds = timeout.as_secs_f64().max(0.01);
        let popped: Option<(String, String)> = conn.blpop(self.key("wake"), seconds).await?;
        Ok(popped.is_some())
    }

    // --- inspection ---------------------------------------------------------------------

    /// Jobs per state, in one round trip of O(1) commands.
    pub async fn counts(&self) -> QueueResult<Counts> {
        Ok(self.counts_and_pause().await?.0)
    }

    /// Jobs per state and whether the queue is paused, in one round trip.
    pub async fn counts_and_pause(&self) -> QueueResult<(Counts, bool)> {
        let (waiting, active, delayed, completed, failed, paused): (u64, u64, u64, u64, u64, bool) =
            redis::pipe()
                .zcard(self.key("wait"))
                .zcard(self.key("active"))
                .zcard(self.key("delayed"))
                .zcard(self.key("completed"))
                .zcard(self.key("failed"))
                .exists(self.key("paused"))
                .query_async(&mut self.conn())
                .await?;
        let is_paused = paused;
        let (waiting, paused) = if paused { (0, waiting) } else { (waiting, 0) };
        let total = waiting + active + delayed + completed + failed + paused;
        let counts = Counts {
            waiting,
            active,
            delayed,
            completed,
            failed,
            paused,
            total,
        };
        Ok((counts, is_paused))
    }

    /// Redis's clock, which every script uses (ms since the epoch).
    pub async fn redis_now_ms(&self) -> QueueResult<u64> {
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut self.conn()).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    pub async fn is_paused(&self) -> QueueResult<bool> {
        Ok(self.conn().exists(self.key("paused")).await?)
    }

    /// One job, or `None` if it does not exist (never did, removed, or trimmed by retention).
    pub async fn get(&self, id: &str) -> QueueResult<Option<JobInfo>> {
        let hash: std::collections::HashMap<String, String> =
            self.conn().hgetall(self.key(&format!("job:{id}"))).await?;
        Ok(JobInfo::from_hash(
            &self.name,
            self.config.max_attempts(),
            id.to_owned(),
            hash,
        ))
    }

    /// Jobs in `state`, newest first, skipping `offset`.
    pub async fn list(&self, state: JobState, offset: usize, limit: usize) -> QueueResult<Vec<JobInfo>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if (state == JobState::Paused) != self.is_paused().await?
            && matches!(state, JobState::Paused | JobState::Waiting)
        {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = self
            .conn()
            .zrevrange(
                self.key(state.set_name()),
                offset as isize,
                (offset + limit - 1) as isize,
            )
            .await?;
        self.get_many(ids).await
    }

    async fn get_many(&self, ids: Vec<String>) -> QueueResult<Vec<JobInfo>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.key(&format!("job:{id}")));
        }
        let hashes: Vec<std::collections::HashMap<String, String>> =
            pipe.query_async(&mut self.conn()).await?;
        Ok(ids
            .into_iter()
            .zip(hashes)
            .filter_map(|(id, hash)| JobInfo::from_hash(&self.name, self.config.max_attempts(), id, hash))
            .collect())
    }

    /// The stored payloads of `ids`, in order (`None` for a job that is gone).
    pub async fn payloads(&self, ids: &[String]) -> QueueResult<Vec<Option<String>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(self.key(&format!("job:{id}")), "data");
        }
        Ok(pipe.query_async(&mut self.conn()).await?)
    }

    /// When the oldest job Redis still keeps in `state` (completed or failed) finished, in ms;
    /// `None` when it keeps none. Retention trims by count, so a window reaching further back than
    /// this is only partly known.
    pub async fn oldest_finished_ms(&self, state: JobState) -> QueueResult<Option<u64>> {
        let oldest: Vec<(String, f64)> = self
            .conn()
            .zrange_withscores(self.key(state.set_name()), 0, 0)
            .await?;
        Ok(oldest.first().map(|(_, score)| *score as u64))
    }

    /// How many jobs finished in `state` (completed or failed) in each of `buckets` intervals of
    /// `bucket_ms` from `start_ms`, oldest first: as far as retention still keeps them.
    pub async fn finished_per_bucket(
        &self,
        state: JobState,
        start_ms: u64,
        bucket_ms: u64,
        buckets: usize,
    ) -> QueueResult<Vec<u64>> {
        if !matches!(state, JobState::Completed | JobState::Failed) {
            return Err(QueueError::InvalidOptions(format!(
                "only completed or failed jobs finish, not {}",
                state.as_str()
            )));
        }
        let mut pipe = redis::pipe();
        for i in 0..buckets as u64 {
            let from = start_ms + i * bucket_ms;
            pipe.zcount(self.key(state.set_name()), from, format!("({}", from + bucket_ms));
        }
        Ok(pipe.query_async(&mut self.conn()).await?)
    }

    /// The queue's shared connection (multiplexed; never use it for a blocking command).
    pub fn connection(&self) -> RedisConnection {
        self.conn()
    }

    /// Cumulative completions, failures, retries and the job duration histogram.
    pub async fn metrics(&self) -> QueueResult<crate::job::QueueMetrics> {
        let hash: std::collections::HashMap<String, u64> = self.conn().hgetall(self.key("metrics")).await?;
        Ok(crate::job::QueueMetrics::from_hash(&hash))
    }

    /// Workers that sent a heartbeat within the last three leases (by Redis's clock), most recent
    /// first.
    pub async fn workers(&self) -> QueueResult<Vec<WorkerInfo>> {
        let since = self
            .redis_now_ms()
            .await?
            .saturating_sub(self.config.lease_ms * 3);
        let seen: Vec<(String, f64)> = self
            .conn()
            .zrevrangebyscore_withscores(self.key("workers"), "+inf", since)
            .await?;
        if seen.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, _) in &seen {
            pipe.get(self.key(&format!("worker:{id}")));
        }
        let infos: Vec<Option<String>> = pipe.query_async(&mut self.conn()).await?;
        Ok(seen
            .into_iter()
            .zip(infos)
            .map(|((id, at), info)| WorkerInfo {
                id,
                last_heartbeat_ms: at as u64,
                info: info
                    .and_then(|i| serde_json::from_str(&i).ok())
                    .unwrap_or_default(),
            })
            .collect())
    }

    // --- control ------------------------------------------------------------------------

    /// Workers stop fetching; jobs already running finish.
    pub async fn pause(&self) -> QueueResult<()> {
        let _: () = self.conn().set(self.key("paused"), 1).await?;
        Ok(())
    }

    pub async fn resume(&self) -> QueueResult<()> {
        let _: () = redis::pipe()
            .del(self.key("paused"))
            .lpush(self.key("wake"), "1")
            .ltrim(self.key("wake"), 0, 63)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Removes a job that is not active.
    pub async fn remove(&self, id: &str) -> QueueResult<()> {
        let outcome: String = self
            .script_call(&SCRIPTS.remove)
            .key(self.job_key(id))
            .arg(&self.base)
            .arg(id)
            .invoke_async(&mut self.conn())
            .await?;
        match outcome.as_str() {
            "removed" => Ok(()),
            "missing" => Err(QueueError::NotFound(id.to_owned())),
            state => Err(QueueError::InvalidState {
                id: id.to_owned(),
                state: state.to_owned(),
                action: "remove",
            }),
        }
    }

    /// Puts one failed job back to waiting with a fresh attempt budget.
    pub async fn retry(&self, id: &str) -> QueueResult<()> {
        let outcome = self.retry_ids(&[id.to_owned()]).await?.pop().unwrap_or_default();
        script_outcome(id, &outcome, "retried", "retry")
    }

    /// Retries each of `ids` that has failed, in one script call; the outcome per id, in order:
    /// `Ok` when retried, else why not (missing, or not failed).
    pub async fn retry_many(&self, ids: &[String]) -> QueueResult<Vec<QueueResult<()>>> {
        let outcomes = self.retry_ids(ids).await?;
        Ok(ids
            .iter()
            .zip(outcomes)
            .map(|(id, outcome)| script_outcome(id, &outcome, "retried", "retry"))
            .collect())
    }

    /// Makes a delayed job due now (it waits in line like any other).
    pub async fn promote(&self, id: &str) -> QueueResult<()> {
        let outcome: String = self
            .script_call(&SCRIPTS.promote)
            .key(self.job_key(id))
            .arg(&self.base)
            .arg(id)
            .invoke_async(&mut self.conn())
            .await?;
        script_outcome(id, &outcome, "promoted", "promote")
    }

    /// Changes the priority of a job that has not started (waiting or delayed): an admin's
    /// override. A waiting job keeps its place among the jobs of its new priority.
    pub async fn set_priority(&self, id: &str, priority: u32) -> QueueResult<()> {
        self.check_options(&EnqueueOptions {
            priority,
            ..EnqueueOptions::default()
        })?;
        let outcome: String = self
            .script_call(&SCRIPTS.prioritize)
            .key(self.job_key(id))
            .arg(&self.base)
            .arg(id)
            .arg(priority)
            .invoke_async(&mut self.conn())
            .await?;
        script_outcome(id, &outcome, "prioritized", "reprioritize")
    }

    /// Retries up to `limit` failed jobs, oldest failure first; returns how many were retried.
    pub async fn retry_failed(&self, limit: usize) -> QueueResult<usize> {
        if limit == 0 {
            return Ok(0);
        }
        let ids: Vec<String> = self
            .conn()
            .zrange(self.key("failed"), 0, limit as isize - 1)
            .await?;
        let outcomes = self.retry_ids(&ids).await?;
        Ok(outcomes.iter().filter(|o| *o == "retried").count())
    }

    async fn retry_ids(&self, ids: &[String]) -> QueueResult<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.script_call(&SCRIPTS.retry);
        call.arg(&self.base);
        for id in ids {
            call.key(self.job_key(id)).arg(id);
        }
        Ok(call.invoke_async(&mut self.conn()).await?)
    }

    /// Deletes up to `limit` jobs in `state` (completed or failed) that finished more than
    /// `older_than` ago. Returns how many were deleted.
    pub async fn clean(&self, state: JobState, older_than: Duration, limit: usize) -> QueueResult<usize> {
        if !matches!(state, JobState::Completed | JobState::Failed) {
            return Err(QueueError::InvalidOptions(format!(
                "only completed or failed jobs can be cleaned, not {}",
                state.as_str()
            )));
        }
        Ok(self
            .script_call(&SCRIPTS.clean)
            .arg(&self.base)
            .arg(state.set_name())
            .arg(older_than.as_millis() as u64)
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// Age-based retention of finished jobs (count-based retention happens on every completion).
    /// Bounded per call; returns how many jobs were deleted.
    pub async fn apply_retention(&self) -> QueueResult<usize> {
        let completed = Duration::from_millis(self.config.completed_max_age_ms);
        let failed = Duration::from_millis(self.config.failed_max_age_ms);
        Ok(self.clean(JobState::Completed, completed, 1000).await?
            + self.clean(JobState::Failed, failed, 1000).await?)
    }
}

/// A control script's answer for one job: `done` (the action's word), `missing`, or the state
/// that forbids the action.
fn script_outcome(id: &str, outcome: &str, done: &str, action: &'static str) -> QueueResult<()> {
    match outcome {
        o if o == done => Ok(()),
        "missing" => Err(QueueError::NotFound(id.to_owned())),
        state => Err(QueueError::InvalidState {
            id: id.to_owned(),
            state: state.to_owned(),
            action,
        }),
    }
}

fn parse_fetch(reply: Vec<Value>) -> QueueResult<Fetched> {
    let protocol = |e: redis::ParsingError| QueueError::Protocol(e.to_string());
    let mut items = reply.into_iter();
    let next_due: i64 =
        FromRedisValue::from_redis_value(items.next().unwrap_or(Value::Int(-1))).map_err(protocol)?;
    let paused: i64 =
        FromRedisValue::from_redis_value(items.next().unwrap_or(Value::Int(0))).map_err(protocol)?;
    let rest: Vec<Value> = items.collect();
    let mut jobs = Vec::with_capacity(rest.len() / 5);
    for chunk in rest.chunks_exact(5) {
        let (id, payload, attempt, max_attempts, token): (String, String, u32, u32, u64) =
            FromRedisValue::from_redis_value(Value::Array(chunk.to_vec())).map_err(protocol)?;
        jobs.push(LeasedJob {
            id,
            payload,
            attempt,
            max_attempts,
            token,
        });
    }
    Ok(Fetched {
        jobs,
        next_due_ms: u64::try_from(next_due).ok(),
        paused: paused == 1,
    })
}
