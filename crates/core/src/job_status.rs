//! JobStatus: one MongoDB document per job in `job_status` (`_id` = job id, also `jobId`), the
//! record of what happened to it: queued → active → (retrying → active)* → completed | failed.
//!
//! Every write is keyed by the job id and idempotent: a recovered or repeated attempt updates the
//! same document, never creates a second one. Finished documents carry `expireAt` (finish time
//! plus the retention), which the TTL index uses to delete them.

use chrono::{DateTime, Utc};
use mongodb::Database;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, InsertManyError};

use crate::error::CoreResult;
use crate::jobs::Trigger;
use crate::refresh::RefreshReport;

pub const JOB_STATUS: &str = "job_status";

fn collection(db: &Database) -> mongodb::Collection<Document> {
    db.collection(JOB_STATUS)
}

fn bson_time(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

/// A job just enqueued.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    pub job_id: String,
    pub user_id: String,
}

/// Writes `queued` documents for new jobs in bulk; existing documents are left alone.
pub async fn record_queued(
    db: &Database,
    queue: &str,
    jobs: &[QueuedJob],
    trigger: Trigger,
    max_attempts: u32,
) -> CoreResult<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let now = bson::DateTime::now();
    let docs: Vec<Document> = jobs
        .iter()
        .map(|job| {
            doc! {
                "_id": &job.job_id, "jobId": &job.job_id, "queue": queue, "userId": &job.user_id,
                "status": "queued", "trigger": trigger.as_str(), "attempts": 0, "maxAttempts": max_attempts,
                "progress": 0, "enqueuedAt": now, "updatedAt": now, "errors": [],
            }
        })
        .collect();
    match collection(db).insert_many(docs).ordered(false).await {
        Ok(_) => Ok(()),
        Err(error) => match *error.kind {
            ErrorKind::InsertMany(InsertManyError {
                write_errors: Some(ref errors),
                ..
            }) if errors.iter().all(|e| e.code == 11000) => Ok(()),
            _ => Err(error.into()),
        },
    }
}

/// An attempt started.
pub struct Started<'a> {
    pub job_id: &'a str,
    pub queue: &'a str,
    pub user_id: &'a str,
    pub worker_id: &'a str,
    pub attempt: u32,
    pub max_attempts: u32,
}

pub async fn record_active(db: &Database, started: &Started<'_>) -> CoreResult<()> {
    let now = bson::DateTime::now();
    let update = doc! {
        "$set": {
            "status": "active", "startedAt": now, "workerId": started.worker_id,
            "attempts": started.attempt, "maxAttempts": started.max_attempts, "progress": 0, "updatedAt": now,
        },
        "$unset": { "nextRunAt": "" },
        "$setOnInsert": {
            "jobId": started.job_id, "queue": started.queue, "userId": started.user_id,
            "enqueuedAt": now, "trigger": "unknown", "errors": [],
        },
    };
    collection(db)
        .update_one(doc! { "_id": started.job_id }, update)
        .upsert(true)
        .await?;
    Ok(())
}

pub async fn record_progress(db: &Database, job_id: &str, progress: u8) -> CoreResult<()> {
    let update = doc! { "$set": { "progress": i32::from(progress), "updatedAt": bson::DateTime::now() } };
    collection(db)
        .update_one(doc! { "_id": job_id, "status": "active" }, update)
        .await?;
    Ok(())
}

/// The job completed: counts, duration and the accounts that failed (if any).
pub async fn record_completed(
    db: &Database,
    job_id: &str,
    report: &RefreshReport,
    duration_ms: u64,
    retention: std::time::Duration,
) -> CoreResult<()> {
    let now = Utc::now();
    let account_errors: Vec<Bson> = report
        .errors
        .iter()
        .map(|e| Bson::Document(doc! { "accountId": &e.account_id, "sellerId": &e.seller_id, "message": &e.message, "retryable": e.retryable, "at": bson_time(now) }))
        .collect();
    let update = doc! {
        "$set": {
            "status": "completed", "completedAt": bson_time(now), "updatedAt": bson_time(now),
            "durationMs": duration_ms as i64, "progress": 100,
            "accountsTotal": report.accounts_total as i64, "accountsProcessed": report.accounts_processed as i64,
            "accountsFailed": report.accounts_failed as i64, "accountErrors": account_errors,
            "expireAt": bson_time(now + retention),
        },
        "$unset": { "nextRunAt": "" },
    };
    collection(db).update_one(doc! { "_id": job_id }, update).await?;
    Ok(())
}

/// An attempt failed and the job runs again at `next_run_at`.
pub async fn record_retrying(
    db: &Database,
    job_id: &str,
    attempt: u32,
    error: &str,
    next_run_at: DateTime<Utc>,
) -> CoreResult<()> {
    let now = bson::DateTime::now();
    let update = doc! {
        "$set": { "status": "retrying", "nextRunAt": bson_time(next_run_at), "lastError": error, "updatedAt": now },
        "$push": { "errors": { "attempt": attempt, "message": error, "at": now } },
    };
    collection(db).update_one(doc! { "_id": job_id }, update).await?;
    Ok(())
}

/// The job failed for good.
pub async fn record_failed(
    db: &Database,
    job_id: &str,
    attempt: u32,
    error: &str,
    retention: std::time::Duration,
) -> CoreResult<()> {
    let now = Utc::now();
    let update = doc! {
        "$set": {
            "status": "failed", "failedAt": bson_time(now), "lastError": error, "updatedAt": bson_time(now),
            "expireAt": bson_time(now + retention),
        },
        "$push": { "errors": { "attempt": attempt, "message": error, "at": bson_time(now) } },
    };
    collection(db).update_one(doc! { "_id": job_id }, update).await?;
    Ok(())
}

/// The job was put back (its user was busy); it waits like a queued job.
pub async fn record_deferred(db: &Database, job_id: &str, reason: &str) -> CoreResult<()> {
    let update =
        doc! { "$set": { "status": "queued", "deferredReason": reason, "updatedAt": bson::DateTime::now() } };
    collection(db).update_one(doc! { "_id": job_id }, update).await?;
    Ok(())
}

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
}

impl Status {
    pub const ALL: [Status; 5] = [
        Self::Queued,
        Self::Active,
        Self::Retrying,
        Self::Completed,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Active => "active",
            Self::Retrying => "retrying",
            Self::Completed => "completed",
            Self::Failed => "failed",
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
                format!("unknown status {s:?} (expected one of queued, active, retrying, completed, failed)")
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
    pub user_id: String,
    pub status: Status,
    /// What enqueued it: `cron`, `manual`, `api` (`unknown` if first seen by a worker).
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
}

fn from_bson_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let value: Option<bson::DateTime> = serde::Deserialize::deserialize(d)?;
    Ok(value.and_then(|t| DateTime::from_timestamp_millis(t.timestamp_millis())))
}

fn records(db: &Database) -> mongodb::Collection<JobStatusRecord> {
    db.collection(JOB_STATUS)
}

/// The record of one job.
pub async fn find(db: &Database, job_id: &str) -> CoreResult<Option<JobStatusRecord>> {
    Ok(records(db).find_one(doc! { "_id": job_id }).await?)
}

/// A user's most recent jobs, newest first.
pub async fn for_user(db: &Database, user_id: &str, limit: i64) -> CoreResult<Vec<JobStatusRecord>> {
    use futures::TryStreamExt;
    let cursor = records(db)
        .find(doc! { "userId": user_id })
        .sort(doc! { "enqueuedAt": -1 })
        .limit(limit)
        .await?;
    Ok(cursor.try_collect().await?)
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
    Ok(cursor.try_collect().await?)
}
