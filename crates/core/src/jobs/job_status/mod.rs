//! JobStatus: one MongoDB document per job in `job_status` (`_id` = job id, also `jobId`), the
//! record of what happened to it: queued → active → (retrying → active)* → completed | failed,
//! or removed.
//!
//! The record is a projection of the queue's own events: Redis decides every transition and
//! appends it to the queue's event stream in the same step, and the [`projector`] (the only writer
//! of this collection) applies those events in bulk, idempotently and never backwards
//! ([`projection`] has the rules). Every record carries `expireAt` fitting its state, which the
//! TTL index uses to delete it. This module also holds the read side the API uses.

pub mod projection;
pub mod projector;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mongodb::Database;
use mongodb::bson::{self, doc};
use serde::{Deserialize, Serialize};

use crate::infra::error::CoreResult;

pub const JOB_STATUS: &str = "job_status";

// --- reading -----------------------------------------------------------------------------------

/// Where a job is, as JobStatus records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Active,
    Retrying,
    Completed,
    Failed,
    /// Deleted from the queue by an admin before it finished.
    Removed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Self::Queued,
        Self::Active,
        Self::Retrying,
        Self::Completed,
        Self::Failed,
        Self::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Active => "active",
            Self::Retrying => "retrying",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Removed => "removed",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!("unknown status {s:?} (expected one of queued, active, retrying, completed, failed, removed)")
            })
    }
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptError {
    pub attempt: u32,
    pub message: String,
    #[serde(default, deserialize_with = "from_bson_time")]
    pub at: Option<DateTime<Utc>>,
}

/// What an error text may tell a user: Amazon's answers and the job's own outcomes as they are;
/// anything about our storage or network (server addresses, driver errors) as a plain sentence.
pub fn public_error(message: &str) -> String {
    const INTERNAL: [&str; 9] = [
        "mongodb",
        "redis",
        "topology",
        "server selection",
        "connection refused",
        "broken pipe",
        "i/o error",
        "io error",
        "kind: ",
    ];
    let lower = message.to_ascii_lowercase();
    let names_an_address = lower
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')' || c == '"')
        .any(|word| looks_like_host_port(word.trim_end_matches(['.', ';'])));
    if names_an_address || INTERNAL.iter().any(|word| lower.contains(word)) {
        "an internal service was unavailable; the job is retried".to_owned()
    } else {
        message.to_owned()
    }
}

/// `host:port` with a numeric port (`10.0.0.5:27017`, `mongo-1:27017`), not a URL.
fn looks_like_host_port(word: &str) -> bool {
    match word.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains('/')
                && !port.is_empty()
                && port.len() <= 5
                && port.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// A seller account that failed in a completed job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountErrorRecord {
    pub account_id: String,
    pub seller_id: String,
    pub message: String,
    pub retryable: bool,
}

/// A job's JobStatus document, as the API shows it (times in RFC 3339, UTC).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusRecord {
    pub job_id: String,
    pub queue: String,
    /// Absent only while the enqueue event has not been projected yet (out of order).
    #[serde(default)]
    pub user_id: String,
    pub status: Status,
    /// What enqueued it: `cron`, `manual`, `api` (`unknown` when the payload did not say).
    #[serde(default = "unknown_trigger")]
    pub trigger: String,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub max_attempts: u32,
    /// 0–100.
    #[serde(default)]
    pub progress: u8,
    #[serde(default, deserialize_with = "from_bson_time")]
    pub enqueued_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "from_bson_time")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "from_bson_time")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "from_bson_time")]
    pub failed_at: Option<DateTime<Utc>>,
    /// When an admin removed it.
    #[serde(default, deserialize_with = "from_bson_time")]
    pub removed_at: Option<DateTime<Utc>>,
    /// When a `retrying` job runs again.
    #[serde(default, deserialize_with = "from_bson_time")]
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "from_bson_time")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub worker_id: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub accounts_total: Option<u64>,
    #[serde(default)]
    pub accounts_processed: Option<u64>,
    #[serde(default)]
    pub accounts_failed: Option<u64>,
    #[serde(default)]
    pub account_errors: Vec<AccountErrorRecord>,
    /// Every failed attempt, oldest first.
    #[serde(default)]
    pub errors: Vec<AttemptError>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Why a job was put back without spending an attempt (its user was busy).
    #[serde(default)]
    pub deferred_reason: Option<String>,
    /// Times its lease expired (its worker died or stalled).
    #[serde(default)]
    pub stalls: u32,
    /// Times an admin retried it.
    #[serde(default)]
    pub retries: u32,
    /// Who failed it for good: `worker`, or `reaper` after too many stalls.
    #[serde(default)]
    pub failed_by: Option<String>,
    /// When the record is deleted (by the TTL index).
    #[serde(default, deserialize_with = "from_bson_time")]
    pub expire_at: Option<DateTime<Utc>>,
}

fn unknown_trigger() -> String {
    "unknown".to_owned()
}

fn from_bson_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let value: Option<bson::DateTime> = serde::Deserialize::deserialize(d)?;
    Ok(value.and_then(|t| DateTime::from_timestamp_millis(t.timestamp_millis())))
}

fn records(db: &Database) -> mongodb::Collection<JobStatusRecord> {
    db.collection(JOB_STATUS)
}

impl JobStatusRecord {
    /// The record as a user may see it: no worker host names, and error texts that describe our
    /// infrastructure (a MongoDB topology, a Redis address) replaced by what they mean for the
    /// user. Admins and viewers see records whole.
    pub fn user_view(mut self) -> Self {
        self.worker_id = None;
        for error in &mut self.errors {
            error.message = public_error(&error.message);
        }
        for error in &mut self.account_errors {
            error.message = public_error(&error.message);
        }
        self.last_error = self.last_error.as_deref().map(public_error);
        self
    }

    /// Attempt errors are stored as a set (the projector adds each once, in any order): oldest
    /// first when read.
    fn in_order(mut self) -> Self {
        self.errors.sort_by_key(|e| (e.attempt, e.at));
        self
    }
}

/// The record of one job.
pub async fn find(db: &Database, job_id: &str) -> CoreResult<Option<JobStatusRecord>> {
    Ok(records(db)
        .find_one(doc! { "_id": job_id })
        .await?
        .map(JobStatusRecord::in_order))
}

/// A user's most recent jobs, newest first.
pub async fn for_user(db: &Database, user_id: &str, limit: i64) -> CoreResult<Vec<JobStatusRecord>> {
    use futures::TryStreamExt;
    let cursor = records(db)
        .find(doc! { "userId": user_id })
        .sort(doc! { "enqueuedAt": -1 })
        .limit(limit)
        .await?;
    let found: Vec<JobStatusRecord> = cursor.try_collect().await?;
    Ok(found.into_iter().map(JobStatusRecord::in_order).collect())
}

/// The most recently updated jobs, optionally in one status, newest first.
pub async fn recent(db: &Database, status: Option<Status>, limit: i64) -> CoreResult<Vec<JobStatusRecord>> {
    use futures::TryStreamExt;
    let filter = match status {
        Some(status) => doc! { "status": status.as_str() },
        None => doc! {},
    };
    let cursor = records(db)
        .find(filter)
        .sort(doc! { "updatedAt": -1 })
        .limit(limit)
        .await?;
    let found: Vec<JobStatusRecord> = cursor.try_collect().await?;
    Ok(found.into_iter().map(JobStatusRecord::in_order).collect())
}

/// JobStatus: the projection of the queue's events into MongoDB.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobStatusSettings {
    /// Run a projector in this process (workers and the API do by default; any number may).
    pub projector: bool,
    /// How long queued, active and retrying records are kept (finished ones follow their
    /// queue's retention).
    #[serde(rename = "pending_retention_ms", with = "crate::infra::settings::millis")]
    pub pending_retention: Duration,
    /// A projection further behind than this makes the queue unhealthy.
    #[serde(rename = "max_lag_ms", with = "crate::infra::settings::millis")]
    pub max_lag: Duration,
}

#[cfg(test)]
mod public_error_tests {
    use super::public_error;

    #[test]
    fn infrastructure_details_are_not_shown_to_users() {
        for internal in [
            "Server selection timeout: No available servers. Topology: { Type: Unknown, Servers: [ { Address: 10.0.0.5:27017 } ] }",
            "Kind: I/O error: Connection refused (os error 111)",
            "redis: broken pipe",
            "cannot reach mongo-1.internal:27017",
        ] {
            assert_eq!(
                public_error(internal),
                "an internal service was unavailable; the job is retried",
                "{internal}"
            );
        }
        for own in [
            "rate-bound: searchOrders has no rate-limit token for another 180s; retry after that",
            "the seller must authorize the app again (invalid_grant)",
            "job stalled 3 times (its worker stopped heartbeating)",
            "SP-API 400 InvalidInput: CreatedBefore must be at least two minutes before the time of the request.",
        ] {
            assert_eq!(public_error(own), own);
        }
    }
}
