//! `QueueConfig`: how one named queue behaves (concurrency, priorities, leases, retries, retention,
//! start rate limit).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One queue's behaviour. Every field has a default; see `config/default.toml` `[queues.*]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Jobs one worker process runs at once on this queue (unset: the process-wide default).
    pub concurrency: Option<u32>,
    /// Number of priority levels; a job's priority is 0 (most urgent) to levels - 1.
    pub priority_levels: u32,
    /// How long a fetched job stays leased without a heartbeat before it returns to waiting.
    pub lease_ms: u64,
    /// How often a worker extends its leases (must be well below `lease_ms`).
    pub heartbeat_ms: u64,
    /// How often a worker looks for expired leases.
    pub reap_interval_ms: u64,
    /// Times a job may lose its lease before it fails for good.
    pub max_stalls: u32,
    /// Attempts per job, the first included (unset: the process-wide default).
    pub max_attempts: Option<u32>,
    /// Delay before the first retry; doubles on every further attempt (unset: process-wide).
    pub backoff_ms: Option<u64>,
    /// Upper bound of a retry delay.
    pub max_backoff_ms: u64,
    /// Completed jobs kept in Redis, newest first.
    pub keep_completed: u64,
    /// Failed jobs kept in Redis, newest first.
    pub keep_failed: u64,
    /// Completed jobs older than this are deleted by the cleaner.
    pub completed_max_age_ms: u64,
    /// Failed jobs older than this are deleted by the cleaner.
    pub failed_max_age_ms: u64,
    /// At most `max` job starts per `interval_ms` across every worker (unset: no limit). Jobs
    /// over the limit wait; none fails for it.
    pub rate_limit: Option<crate::RateLimit>,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            concurrency: None,
            priority_levels: 10,
            lease_ms: 4000,
            heartbeat_ms: 1000,
            reap_interval_ms: 1000,
            max_stalls: 2,
            max_attempts: None,
            backoff_ms: None,
            max_backoff_ms: 60 * 60 * 1000,
            keep_completed: 1000,
            keep_failed: 10_000,
            completed_max_age_ms: 7 * DAY_MS,
            failed_max_age_ms: 7 * DAY_MS,
            rate_limit: None,
        }
    }
}

/// Used where neither the queue nor the process sets a value (the seeds' defaults).
const FALLBACK_CONCURRENCY: u32 = 3;
const FALLBACK_MAX_ATTEMPTS: u32 = 3;
const FALLBACK_BACKOFF_MS: u64 = 5000;

impl QueueConfig {
    /// Fills the settings this queue leaves unset from the process-wide ones.
    pub fn inherit(mut self, concurrency: u32, max_attempts: u32, backoff_ms: u64) -> Self {
        self.concurrency.get_or_insert(concurrency);
        self.max_attempts.get_or_insert(max_attempts);
        self.backoff_ms.get_or_insert(backoff_ms);
        self
    }

    pub fn concurrency(&self) -> u32 {
        self.concurrency.unwrap_or(FALLBACK_CONCURRENCY)
    }
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(FALLBACK_MAX_ATTEMPTS)
    }
    pub fn backoff_ms(&self) -> u64 {
        self.backoff_ms.unwrap_or(FALLBACK_BACKOFF_MS)
    }

    /// Checks the values; the error names the field and the problem.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("concurrency", self.concurrency() as u64),
            ("priority_levels", self.priority_levels as u64),
            ("lease_ms", self.lease_ms),
            ("heartbeat_ms", self.heartbeat_ms),
            ("reap_interval_ms", self.reap_interval_ms),
            ("max_attempts", self.max_attempts() as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.heartbeat_ms * 2 > self.lease_ms {
            return Err(format!(
                "heartbeat_ms ({}) must be at most half of lease_ms ({}) so a live worker never loses a lease",
                self.heartbeat_ms, self.lease_ms
            ));
        }
        if self.reap_interval_ms * 2 > self.lease_ms {
            return Err(format!(
                "reap_interval_ms ({}) must be at most half of lease_ms ({}): a longer gap between reaps reads as a Redis stall",
                self.reap_interval_ms, self.lease_ms
            ));
        }
        if let Some(limit) = &self.rate_limit {
            limit
                .validate()
                .map_err(|problem| format!("rate_limit: {problem}"))?;
        }
        if self.priority_levels > 1000 {
            return Err("priority_levels must be at most 1000".to_owned());
        }
        Ok(())
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
    pub fn reap_interval(&self) -> Duration {
        Duration::from_millis(self.reap_interval_ms)
    }

    /// A gap between two reaps longer than this means Redis stalled (nobody got through): the
    /// reaper then gives every lease one more period. Half a lease: a shorter stall cannot expire
    /// a lease its heartbeats kept (they run at most half a lease apart).
    pub fn stall_gap_ms(&self) -> u64 {
        self.lease_ms / 2
    }
}
