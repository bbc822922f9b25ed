//! JobStatus: one MongoDB document per job in `job_status` (`_id` = job id, also `jobId`), the
//! record of what happened to it: queued → active → (retrying → active)* → completed | failed,
//! or removed.
//!
//! The record is a projection of the queue's own events: Redis decides every transition and
//! appends it to the queue's event stream in the same step, and the [`projector`] (the only writer
//! of this collection) applies those events in bulk, idempotently and never backwards
//! ([`projection`] has the rules). Every record carries `expireAt` fitting its state, which the
//! TTL index uses to delete it. This module also holds the read side the API uses.

pub mod dead_letters;
pub mod projection;
pub mod projector;
pub mod read_model;
pub mod reads;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mongodb::Database;
use mongodb::bson::{self, doc};
use serde::{Deserialize, Serialize};

use crate::domain::accounts::AccountStatus;
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
    /// The internal detail: the raw error (admins only; absent from a user's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the attempt's failure means for the user (see [`public_message`]).
    #[serde(default)]
    pub public_message: Option<String>,
    #[serde(default, deserialize_with = "from_bson_time")]
    pub at: Option<DateTime<Utc>>,
}

/// What users are told, stored beside the internal detail by the projector. A fixed sentence
/// chosen by what the error means, never the error's own text (which may name our servers).
pub mod public {
    /// The seller must authorize the app again (LWA `invalid_grant`, access revoked).
    pub const NEEDS_AUTHORIZATION: &str = "seller authorization needed";
    /// Amazon's rate limits are used up for now.
    pub const RATE_LIMITED: &str = "Amazon's rate limit was reached, will retry";
    /// Anything else that is retried.
    pub const WILL_RETRY: &str = "temporarily unavailable, will retry";
    /// A seller account that failed for a reason another try cannot fix.
    pub const ACCOUNT_FAILED: &str = "this seller account could not be refreshed";
    /// The seller did not grant sellersync the Amazon role some of its data needs.
    pub const ROLE_NOT_GRANTED: &str =
        "the seller has not given sellersync access to this data; it must authorize sellersync again";
    /// Deferred: another refresh of the same user is running.
    pub const USER_BUSY: &str = "waiting for another refresh of this user to finish";
    /// Deferred: the user's or Amazon's rate limits are used up.
    pub const RATE_WAIT: &str = "waiting for rate limits to refill";

    /// For a job that failed for good after `attempts` attempts.
    pub fn failed_after(attempts: u32) -> String {
        let plural = if attempts == 1 { "" } else { "s" };
        format!("failed after {attempts} attempt{plural}")
    }
}

fn needs_authorization(lower: &str) -> bool {
    lower.contains("invalid_grant") || lower.contains("authorize the app") || lower.contains("reauthoriz")
}

/// Our own rate-limit texts (`SpApiError::RateBound`, the deferrals' reasons). Not "429" or
/// Amazon's "QuotaExceeded": our code never writes them (a 429 is waited out inside the
/// client), so they could only match a number or id inside some other text.
fn rate_limited(lower: &str) -> bool {
    ["rate-bound", "rate limit"]
        .iter()
        .any(|word| lower.contains(word))
}

/// The public message of an attempt's error `detail`: `failed_after` is the attempt count of
/// a job that failed for good, `None` while it is retried.
pub fn public_message(detail: &str, failed_after: Option<u32>) -> String {
    let lower = detail.to_ascii_lowercase();
    if needs_authorization(&lower) {
        public::NEEDS_AUTHORIZATION.to_owned()
    } else if let Some(attempts) = failed_after {
        public::failed_after(attempts)
    } else if rate_limited(&lower) {
        public::RATE_LIMITED.to_owned()
    } else {
        public::WILL_RETRY.to_owned()
    }
}

/// The public message of a seller account's problem, from its status and whether a retry may fix
/// it (never from its text).
pub fn public_account_message(status: AccountStatus, retryable: bool) -> String {
    match status {
        AccountStatus::NeedsReauthorization => public::NEEDS_AUTHORIZATION,
        AccountStatus::MissingRole => public::ROLE_NOT_GRANTED,
        _ if retryable => public::WILL_RETRY,
        _ => public::ACCOUNT_FAILED,
    }
    .to_owned()
}

/// The public message of why a job was put back without spending an attempt.
pub fn public_deferred_reason(reason: &str) -> String {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("being refreshed by another job") {
        public::USER_BUSY.to_owned()
    } else if rate_limited(&lower) {
        public::RATE_WAIT.to_owned()
    } else {
        public::WILL_RETRY.to_owned()
    }
}

/// A seller account that failed in a completed job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountErrorRecord {
    pub account_id: String,
    pub seller_id: String,
    /// The internal detail (admins only; absent from a user's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What it means for the user (see [`public_account_message`]).
    #[serde(default)]
    pub public_message: Option<String>,
    pub retryable: bool,
    /// The operation Amazon refused for a role the seller did not grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_role: Option<String>,
    /// Amazon's `x-amzn-RequestId` of the failing answer (admins only; absent from a user's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
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
    /// The worker running or last running it (admins only; absent from a user's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub accounts_total: Option<u64>,
    #[serde(default)]
    pub accounts_processed: Option<u64>,
    #[serde(default)]
    pub accounts_failed: Option<u64>,
    /// Accounts waiting for their seller (withdrawn grant, role not granted): not refreshed.
    #[serde(default)]
    pub accounts_awaiting_seller: Option<u64>,
    #[serde(default)]
    pub account_errors: Vec<AccountErrorRecord>,
    /// For a completed job, whether every seller account was refreshed; `false` says the job
    /// completed with accounts left out (within `worker.max_failed_account_share`), listed in
    /// `accountErrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_accounts_refreshed: Option<bool>,
    /// Every failed attempt, oldest first.
    #[serde(default)]
    pub errors: Vec<AttemptError>,
    /// The last attempt's error, raw: the internal detail (admins only; absent from a user's
    /// view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What the last error means for the user: "temporarily unavailable, will retry",
    /// "seller authorization needed", "failed after 3 attempts", ... (see [`public_message`]).
    #[serde(default)]
    pub public_error: Option<String>,
    /// Why a job was put back without spending an attempt (its user was busy, rate limits, our
    /// stores unreachable): the internal detail (admins only; absent from a user's view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_reason: Option<String>,
    /// What the deferral means for the user (see [`public_deferred_reason`]).
    #[serde(default)]
    pub public_deferred_reason: Option<String>,
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
    /// The record as a user may see it: the public messages only, no internal detail and no
    /// worker id (records projected before the public fields existed get them derived here).
    /// Admins and viewers see records whole.
    pub fn user_view(mut self) -> Self {
        self.fill_public_fields();
        self.worker_id = None;
        self.last_error = None;
        self.deferred_reason = None;
        for error in &mut self.errors {
            error.message = None;
        }
        for error in &mut self.account_errors {
            error.message = None;
            error.request_id = None;
        }
        self
    }

    /// Public messages for a record stored without them.
    fn fill_public_fields(&mut self) {
        let failed_after = (self.status == Status::Failed).then_some(self.attempts);
        if self.public_error.is_none() {
            self.public_error = self
                .last_error
                .as_deref()
                .map(|e| public_message(e, failed_after));
        }
        if self.public_deferred_reason.is_none() {
            self.public_deferred_reason = self.deferred_reason.as_deref().map(public_deferred_reason);
        }
        let last_attempt = self.errors.iter().map(|e| e.attempt).max();
        for error in &mut self.errors {
            if error.public_message.is_none() {
                let final_one = failed_after.filter(|_| Some(error.attempt) == last_attempt);
                error.public_message = error.message.as_deref().map(|m| public_message(m, final_one));
            }
        }
        for error in &mut self.account_errors {
            if error.public_message.is_none() {
                // Such records kept no flag: our own words for a withdrawn authorization tell.
                error.public_message = error.message.as_deref().map(|m| {
                    let status = if needs_authorization(&m.to_ascii_lowercase()) {
                        AccountStatus::NeedsReauthorization
                    } else {
                        AccountStatus::Failed
                    };
                    public_account_message(status, error.retryable)
                });
            }
        }
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
    /// Jobs per user the status read model keeps in Redis; 0: off.
    pub read_model_jobs: usize,
    /// How long a user's read-model entry lives without a write.
    #[serde(rename = "read_model_ttl_secs", with = "crate::infra::settings::seconds")]
    pub read_model_ttl: Duration,
}

impl JobStatusSettings {
    /// The read model keeps at most as many jobs as a status read may ask for (200), and its
    /// entries must live.
    pub fn validate(&self) -> Result<(), crate::infra::settings::Invalid> {
        use crate::infra::settings::Invalid;
        if self.read_model_jobs > 200 {
            return Err(Invalid::new(
                "job_status.read_model_jobs",
                "must be at most 200 (the most jobs a status read returns)",
            ));
        }
        if self.read_model_jobs > 0 && self.read_model_ttl.is_zero() {
            return Err(Invalid::new(
                "job_status.read_model_ttl_secs",
                "must be at least 1 while the read model is on",
            ));
        }
        Ok(())
    }

    /// Whether the status read model is on.
    pub fn read_model_on(&self) -> bool {
        self.read_model_jobs > 0
    }

    /// The read model these settings describe over `redis` (`None` when it is off).
    pub fn read_model(
        &self,
        redis: sellersync_queue::RedisConnection,
        key_prefix: &str,
    ) -> Option<read_model::ReadModel> {
        read_model::ReadModel::new(redis, key_prefix, self.read_model_jobs, self.read_model_ttl)
    }
}

#[cfg(test)]
mod public_message_tests {
    use super::*;

    #[test]
    fn public_messages_are_fixed_sentences_never_the_error_text() {
        let internal = [
            "Server selection timeout: No available servers. Topology: { Type: Unknown, Servers: [ { Address: 10.0.0.5:27017 } ] }",
            "Kind: I/O error: Connection refused (os error 111)",
            "redis: broken pipe",
        ];
        for detail in internal {
            assert_eq!(public_message(detail, None), public::WILL_RETRY, "{detail}");
            assert_eq!(public_message(detail, Some(3)), "failed after 3 attempts");
        }
        let withdrawn = "the seller must authorize the app again (invalid_grant)";
        assert_eq!(public_message(withdrawn, Some(1)), public::NEEDS_AUTHORIZATION);
        // A status code or an id inside someone else's text is no rate limit.
        assert_eq!(
            public_message("SP-API server error 500 (request 8c74291e)", None),
            public::WILL_RETRY
        );
        assert_eq!(
            public_message("rate-bound: searchOrders has no token for 180s", None),
            public::RATE_LIMITED
        );
        assert_eq!(public_message("boom", Some(1)), "failed after 1 attempt");
        assert_eq!(
            public_deferred_reason("user u1 is being refreshed by another job"),
            public::USER_BUSY
        );
        assert_eq!(
            public_deferred_reason(
                "our data stores are unreachable (Kind: Server selection timeout, mongo-1:27017)"
            ),
            public::WILL_RETRY
        );
    }

    #[test]
    fn an_accounts_public_message_follows_its_report_not_its_text() {
        use AccountStatus::*;
        assert_eq!(
            public_account_message(NeedsReauthorization, false),
            public::NEEDS_AUTHORIZATION
        );
        assert_eq!(
            public_account_message(MissingRole, false),
            public::ROLE_NOT_GRANTED
        );
        assert_eq!(public_account_message(Failed, true), public::WILL_RETRY);
        assert_eq!(public_account_message(Failed, false), public::ACCOUNT_FAILED);
    }

    #[test]
    fn a_users_view_drops_internal_fields_and_derives_missing_public_ones() {
        let record: JobStatusRecord = serde_json::from_value(serde_json::json!({
            "jobId": "j1", "queue": "user-data", "userId": "u1", "status": "failed",
            "attempts": 2, "workerId": "host-1:4242",
            "lastError": "cannot reach mongo-1.internal:27017",
            "deferredReason": "our data stores are unreachable (os error 111)",
            "errors": [
                { "attempt": 1, "message": "redis: broken pipe" },
                { "attempt": 2, "message": "cannot reach mongo-1.internal:27017" }
            ],
            "accountErrors": [{ "accountId": "a1", "sellerId": "s1", "message": "Topology", "retryable": true }]
        }))
        .unwrap();
        let view = serde_json::to_value(record.user_view()).unwrap();
        let text = view.to_string();
        for internal in [
            "mongo-1",
            "redis",
            "os error",
            "Topology",
            "host-1",
            "workerId",
            "lastError",
            "deferredReason",
        ] {
            assert!(!text.contains(internal), "{internal} in {text}");
        }
        assert_eq!(view["publicError"], "failed after 2 attempts");
        assert_eq!(view["errors"][0]["publicMessage"], public::WILL_RETRY);
        assert_eq!(view["errors"][1]["publicMessage"], "failed after 2 attempts");
        assert_eq!(view["accountErrors"][0]["publicMessage"], public::WILL_RETRY);
        assert_eq!(view["publicDeferredReason"], public::WILL_RETRY);
    }
}
