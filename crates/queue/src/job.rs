//! Job types: options for enqueueing, a leased job handed to a worker, and a job's full record.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

/// Where a job is in its life. `Paused` is how waiting jobs are counted while the queue is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Waiting,
    Active,
    Delayed,
    Completed,
    Failed,
    Paused,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        Self::Waiting,
        Self::Active,
        Self::Delayed,
        Self::Completed,
        Self::Failed,
        Self::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Active => "active",
            Self::Delayed => "delayed",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Paused => "paused",
        }
    }

    /// The state a job hash's `st` field names; `None` for anything else (no such state is
    /// ever written: a hash without one is not a job).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// The Redis set holding jobs in this state (`Paused` jobs sit in `wait`).
    pub(crate) fn set_name(self) -> &'static str {
        match self {
            Self::Waiting | Self::Paused => "wait",
            Self::Active => "active",
            Self::Delayed => "delayed",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown state {s:?} (expected one of waiting, active, delayed, completed, failed, paused)"))
    }
}

/// Options of one enqueue. Defaults: generated id, no dedup, no delay, priority 0, the queue's
/// max attempts.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Explicit job id; enqueueing an existing id returns it as a duplicate.
    pub job_id: Option<String>,
    /// At most one pending (not yet finished) job per key: enqueueing again returns that job.
    pub dedup_key: Option<String>,
    pub delay: Option<Duration>,
    /// 0 is the most urgent.
    pub priority: u32,
    pub max_attempts: Option<u32>,
}

/// The outcome of one enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    pub id: String,
    /// True when an existing pending job (same dedup key or id) was returned instead.
    pub duplicate: bool,
}

/// A job leased to a worker.
#[derive(Debug, Clone)]
pub struct LeasedJob {
    pub id: String,
    pub payload: String,
    /// 1 for the first attempt; stalls, deferrals and hand-backs do not count.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The lease's fencing token: it only grows (across retries, stalls and admin retries), and
    /// acks, failures, deferrals, progress and heartbeats quote it, so an attempt that lost its
    /// lease cannot write over the one running now.
    pub token: u64,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `state == "failed"`: a state equals its name.
impl PartialEq<&str> for JobState {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// Everything Redis holds about a job.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub id: String,
    pub queue: String,
    pub state: JobState,
    /// The payload as stored (JSON).
    pub data: serde_json::Value,
    pub progress: u8,
    pub attempts: u32,
    pub max_attempts: u32,
    pub priority: u32,
    pub stalls: u32,
    pub retries: u32,
    pub dedup_key: Option<String>,
    pub worker_id: Option<String>,
    /// Enqueued at (ms since the epoch; BullMQ's name).
    #[serde(rename = "timestamp")]
    pub created_at_ms: Option<u64>,
    /// The current or last attempt started at (ms).
    #[serde(rename = "processedOn")]
    pub started_at_ms: Option<u64>,
    /// Completed or failed for good at (ms).
    #[serde(rename = "finishedOn")]
    pub finished_at_ms: Option<u64>,
    /// When a delayed job becomes due (ms).
    pub next_run_at_ms: Option<u64>,
    /// The last attempt's error.
    #[serde(rename = "failedReason")]
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
}

impl JobInfo {
    /// `default_max_attempts` applies to jobs enqueued without their own (not stored, to save memory).
    pub(crate) fn from_hash(
        queue: &str,
        default_max_attempts: u32,
        id: String,
        mut h: HashMap<String, String>,
    ) -> Option<Self> {
        let num = |h: &HashMap<String, String>, k: &str| h.get(k).and_then(|v| v.parse::<f64>().ok());
        let text = |h: &mut HashMap<String, String>, k: &str| h.remove(k).filter(|v| !v.is_empty());
        let json = |raw: Option<String>| {
            raw.map(|raw| serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw)))
        };
        let state = text(&mut h, "st").as_deref().and_then(JobState::parse)?;
        let next_run = if state == JobState::Delayed {
            num(&h, "due").map(|v| v as u64)
        } else {
            None
        };
        Some(Self {
            queue: queue.to_owned(),
            progress: if state == JobState::Completed {
                100
            } else {
                num(&h, "pg").unwrap_or(0.0).clamp(0.0, 100.0) as u8
            },
            attempts: num(&h, "att").unwrap_or(0.0) as u32,
            max_attempts: num(&h, "max").map_or(default_max_attempts, |m| m as u32),
            priority: num(&h, "pr").unwrap_or(0.0) as u32,
            stalls: num(&h, "stalls").unwrap_or(0.0) as u32,
            retries: num(&h, "retries").unwrap_or(0.0) as u32,
            created_at_ms: num(&h, "ts").map(|v| v as u64),
            started_at_ms: num(&h, "sa").map(|v| v as u64),
            finished_at_ms: num(&h, "fin").map(|v| v as u64),
            next_run_at_ms: next_run,
            dedup_key: text(&mut h, "dk"),
            worker_id: text(&mut h, "w"),
            last_error: text(&mut h, "err"),
            data: json(text(&mut h, "data")).unwrap_or(serde_json::Value::Null),
            result: json(text(&mut h, "res")),
            state,
            id,
        })
    }
}

/// Jobs per state, each read in O(1). `paused` counts waiting jobs while the queue is paused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub waiting: u64,
    pub active: u64,
    pub delayed: u64,
    pub completed: u64,
    pub failed: u64,
    pub paused: u64,
    pub total: u64,
}

/// How a failed attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Rescheduled; runs again at this time (ms since the epoch).
    Retrying { at_ms: u64 },
    /// No attempts left, or the error was not retryable.
    Failed,
    /// The caller no longer held the lease; nothing changed.
    LeaseLost,
}

/// Cumulative counters of a queue since it was created, across all workers (kept in Redis by
/// the scripts, never trimmed by retention).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueMetrics {
    pub completed_total: u64,
    /// Jobs that failed for good.
    pub failed_total: u64,
    /// Failed attempts that were scheduled to run again.
    pub retried_total: u64,
    /// Event stream entries trimmed at the stream's cap before every consumer group read them.
    pub events_dropped_total: u64,
    /// Durations of completed jobs' last attempts.
    pub duration: DurationHistogram,
}

/// A Prometheus-style histogram: cumulative counts per upper bound, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DurationHistogram {
    /// `(upper bound in seconds, jobs at or below it)`, ascending; the last bound is infinite.
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl QueueMetrics {
    /// From the `metrics` hash written by `complete.lua` and `fail.lua`.
    pub(crate) fn from_hash(hash: &HashMap<String, u64>) -> Self {
        let field = |name: &str| hash.get(name).copied().unwrap_or(0);
        let mut bounds: Vec<(f64, u64)> = hash
            .iter()
            .filter_map(|(name, count)| {
                let bound = name.strip_prefix("dur_le_")?;
                let seconds = if bound == "inf" {
                    f64::INFINITY
                } else {
                    bound.parse::<f64>().ok()? / 1000.0
                };
                Some((seconds, *count))
            })
            .collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        if bounds.last().is_none_or(|(bound, _)| bound.is_finite()) {
            bounds.push((f64::INFINITY, 0));
        }
        let mut cumulative = 0;
        for (_, count) in &mut bounds {
            cumulative += *count;
            *count = cumulative;
        }
        Self {
            // Completions are counted by the histogram; a `completed` field is what queues that
            // ran an older version counted before the histogram existed.
            completed_total: field("completed").max(cumulative),
            failed_total: field("failed"),
            retried_total: field("retried"),
            events_dropped_total: field("events_dropped"),
            duration: DurationHistogram {
                buckets: bounds,
                sum_seconds: field("dur_sum_ms") as f64 / 1000.0,
                count: cumulative,
            },
        }
    }
}
