//! `/app/job-status` (seed 000): "is my data fresh, what happened to my job". A user token may
//! read its own user's status; everything else here is for admins, including the manual enqueue
//! (seed 001's `manualEnqueue`).

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::domain::accounts;
use sellersync_core::jobs::job_status::{self, JobStatusRecord, Status, reads};
use sellersync_core::jobs::payload::Trigger;
use sellersync_core::jobs::producer::{self, Placement, UserJob};
use sellersync_queue::{Counts, JobInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Envelope, ok};
use sellersync_core::domain::audit::Action;

use crate::audit::Acting;
use crate::auth::{Caller, Reader};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query, limit};
use crate::state::AppState;

/// Most user ids one manual enqueue accepts.
const MAX_ENQUEUE: usize = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(user_status))
        .routes(routes!(job_status))
        .routes(routes!(recent))
        .routes(routes!(queue_stats))
        .routes(routes!(failed))
        .routes(routes!(enqueue))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Jobs of history to return, 1–200 (default 10).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A user's freshness and jobs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserStatus {
    user_id: String,
    /// When a refresh last completed (at least one seller account refreshed).
    last_data_update_at: Option<DateTime<Utc>>,
    /// When a refresh was last attempted, whatever its outcome.
    last_attempt_at: Option<DateTime<Utc>>,
    /// Every seller account needs its seller to authorize us again; hourly refreshes are paused
    /// until an account's credentials change.
    needs_reauthorization: bool,
    /// Seller accounts whose last refresh attempt refreshed them (their data is current).
    accounts_current: usize,
    /// Seller accounts with a recorded outcome.
    accounts_total: usize,
    /// Each seller account's last outcome.
    accounts: Vec<AccountFreshness>,
    /// The most recent job, if any.
    latest: Option<JobStatusRecord>,
    /// Most recent jobs first (the latest included).
    history: Vec<JobStatusRecord>,
}

/// One seller account's last refresh.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AccountFreshness {
    account_id: String,
    status: accounts::AccountStatus,
    /// The last attempt refreshed this account: its data is as of `lastRefreshedAt`.
    current: bool,
    /// When the last attempt on the account was made.
    at: Option<DateTime<Utc>>,
    /// When the account's data was last refreshed (its stored summary is from then).
    last_refreshed_at: Option<DateTime<Utc>>,
    /// Amazon operations the seller did not grant the role for (skipped until it authorizes
    /// sellersync again), e.g. `getInventorySummaries`.
    missing_roles: Vec<String>,
    /// What went wrong, for accounts that failed: the internal detail for admins and viewers,
    /// the public message ("seller authorization needed", "temporarily unavailable, will
    /// retry") for user tokens.
    error: Option<String>,
    /// Amazon's request id of the failing answer (admins and viewers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl AccountFreshness {
    /// `outcome` as `whole` (admins, viewers) or as its user sees it.
    fn of(account_id: &str, outcome: &accounts::AccountOutcome, whole: bool) -> Self {
        let error = match &outcome.error {
            // A failure the last attempt recorded is retried unless the seller must act.
            Some(_) if !whole => Some(job_status::public_account_message(outcome.status, true)),
            other => other.clone(),
        };
        Self {
            account_id: account_id.to_owned(),
            status: outcome.status,
            current: outcome.status == accounts::AccountStatus::Ok,
            at: to_utc(outcome.at),
            last_refreshed_at: outcome.refreshed_at.and_then(to_utc),
            missing_roles: outcome.missing_roles.clone(),
            error,
            request_id: outcome.request_id.clone().filter(|_| whole),
        }
    }
}

fn to_utc(t: mongodb::bson::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(t.timestamp_millis())
}

/// The latest job and recent history of one user.
#[utoipa::path(get, path = "/app/job-status/status/user/{userId}", tag = "job-status",
    params(("userId" = String, Path, description = "The user's id"), HistoryQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The user's status", body = Envelope<UserStatus>),
        (status = 404, description = "No such user", body = crate::error::ErrorBody)))]
async fn user_status(
    caller: Caller,
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<Envelope<UserStatus>>, ApiError> {
    caller.may_read_user(&user_id)?;
    let limit = limit(q.limit, 10, 200)?;
    let read_model = state.read_model.as_ref();
    let (user, mut history) = reads::user_status(&state.mongo, read_model, &user_id, limit as usize).await?;
    let whole = caller.0.reads_everything();
    if !whole {
        history = history.into_iter().map(JobStatusRecord::user_view).collect();
    }
    if user.is_none() && history.is_empty() {
        return Err(ApiError::NotFound(format!("no user {user_id:?}")));
    }
    let mut accounts: Vec<AccountFreshness> = user
        .iter()
        .flat_map(|u| &u.account_outcomes)
        .map(|(id, outcome)| AccountFreshness::of(id, outcome, whole))
        .collect();
    accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    let status = UserStatus {
        last_data_update_at: user.as_ref().and_then(|u| u.last_data_update_at).and_then(to_utc),
        last_attempt_at: user.as_ref().and_then(|u| u.last_attempt_at).and_then(to_utc),
        needs_reauthorization: user.as_ref().is_some_and(|u| u.needs_reauthorization),
        accounts_current: accounts.iter().filter(|a| a.current).count(),
        accounts_total: accounts.len(),
        accounts,
        latest: history.first().cloned(),
        history,
        user_id,
    };
    Ok(ok("User job status retrieved successfully", status))
}

/// A job's record with its live queue entry (while Redis still holds it).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct JobStatusDetail {
    #[serde(flatten)]
    record: JobStatusRecord,
    /// The job in the queue; null once retention removed it.
    queue_job: Option<JobInfo>,
}

/// One job's status by id.
#[utoipa::path(get, path = "/app/job-status/status/job/{jobId}", tag = "job-status",
    params(("jobId" = String, Path, description = "The job's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The job's status", body = Envelope<JobStatusDetail>),
        (status = 404, description = "No such job", body = crate::error::ErrorBody)))]
async fn job_status(
    _reader: Reader,
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<axum::Json<Envelope<JobStatusDetail>>, ApiError> {
    let record = reads::job(&state.mongo, state.read_model.as_ref(), &job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {job_id:?}")))?;
    let queue_job = match state.queues.by_path(&record.queue) {
        Ok(queue) => queue.get(&job_id).await?,
        Err(_) => None,
    };
    Ok(ok(
        "Job status retrieved successfully",
        JobStatusDetail { record, queue_job },
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RecentQuery {
    /// Jobs to return, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Only jobs in this status.
    status: Option<Status>,
}

#[derive(Serialize, ToSchema)]
struct JobStatusList {
    jobs: Vec<JobStatusRecord>,
    count: usize,
}

impl JobStatusList {
    fn new(jobs: Vec<JobStatusRecord>) -> Self {
        Self {
            count: jobs.len(),
            jobs,
        }
    }
}

/// The most recently updated jobs, optionally in one status.
#[utoipa::path(get, path = "/app/job-status/recent", tag = "job-status", params(RecentQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Recent jobs, newest first", body = Envelope<JobStatusList>)))]
async fn recent(
    _reader: Reader,
    State(state): State<AppState>,
    Query(q): Query<RecentQuery>,
) -> Result<axum::Json<Envelope<JobStatusList>>, ApiError> {
    let limit = limit(q.limit, 50, 200)?;
    let jobs = job_status::recent(&state.mongo, q.status, limit).await?;
    Ok(ok("Recent jobs retrieved successfully", JobStatusList::new(jobs)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FailedQuery {
    /// Jobs to return, 1–200 (default 100).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// Jobs that failed for good, most recent first.
#[utoipa::path(get, path = "/app/job-status/failed", tag = "job-status", params(FailedQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Failed jobs, newest first", body = Envelope<JobStatusList>)))]
async fn failed(
    _reader: Reader,
    State(state): State<AppState>,
    Query(q): Query<FailedQuery>,
) -> Result<axum::Json<Envelope<JobStatusList>>, ApiError> {
    let limit = limit(q.limit, 100, 200)?;
    let jobs = job_status::recent(&state.mongo, Some(Status::Failed), limit).await?;
    Ok(ok("Failed jobs retrieved successfully", JobStatusList::new(jobs)))
}

/// Seed 000's shape: the counts at the top level.
#[derive(Serialize, ToSchema)]
struct QueueStatsBody {
    success: bool,
    #[serde(flatten)]
    counts: Counts,
}

/// The user-data queue's counts: `{waiting, active, completed, failed, delayed, total}` (and
/// `paused`, the waiting jobs of a paused queue).
#[utoipa::path(get, path = "/app/job-status/queue/stats", tag = "job-status",
    security(("bearer" = [])),
    responses((status = 200, description = "Counts per state", body = QueueStatsBody)))]
async fn queue_stats(
    _reader: Reader,
    State(state): State<AppState>,
) -> Result<axum::Json<QueueStatsBody>, ApiError> {
    let counts = state.queues.by_path(USER_DATA_QUEUE)?.counts().await?;
    Ok(axum::Json(QueueStatsBody {
        success: true,
        counts,
    }))
}

/// One user (`userId`) or several (`userIds`), optionally with a priority and a delay (`delay`
/// in ms or `runAt`, not both).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnqueueRequest {
    #[schema(min_length = 1, max_length = 200, example = "demo-user-000000")]
    user_id: Option<String>,
    /// 1–1000 ids of 1–200 characters.
    #[schema(min_items = 1, max_items = 1000)]
    user_ids: Option<Vec<String>>,
    /// 0 (most urgent, the default) to the queue's `priority_levels` - 1.
    #[schema(minimum = 0, example = 0)]
    priority: Option<u32>,
    /// Run no sooner than this many ms from now (at most 30 days).
    #[schema(minimum = 0, maximum = 2_592_000_000_u64, example = 60000)]
    delay: Option<u64>,
    /// Run no sooner than this time (RFC 3339; a past time means now; at most 30 days ahead).
    #[schema(example = "2030-01-01T09:30:00Z")]
    run_at: Option<String>,
}

/// The longest delay an enqueue accepts.
const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The schedule of a request's `priority`, `delay` and `runAt`.
fn schedule(priority: Option<u32>, delay: Option<u64>, run_at: Option<&str>) -> Result<Placement, ApiError> {
    let delay = match (delay, run_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest("give delay or runAt, not both".into()));
        }
        (Some(ms), None) => Some(Duration::from_millis(ms)),
        (None, Some(at)) => {
            let at = DateTime::parse_from_rfc3339(at).map_err(|e| {
                ApiError::BadRequest(format!("runAt must be an RFC 3339 time, got {at:?}: {e}"))
            })?;
            let ms = (at.timestamp_millis() - Utc::now().timestamp_millis()).max(0);
            Some(Duration::from_millis(ms as u64))
        }
        (None, None) => None,
    };
    if delay.is_some_and(|d| d > MAX_DELAY) {
        return Err(ApiError::BadRequest(
            "delay/runAt must be at most 30 days ahead".into(),
        ));
    }
    Ok(Placement {
        priority: priority.unwrap_or(0),
        delay: delay.filter(|d| !d.is_zero()),
    })
}

impl EnqueueRequest {
    /// The distinct user ids, in request order.
    fn user_ids(self) -> Result<Vec<String>, ApiError> {
        let ids = match (self.user_id, self.user_ids) {
            (Some(id), None) => vec![id],
            (None, Some(ids)) if !ids.is_empty() => ids,
            _ => {
                return Err(ApiError::BadRequest(
                    "give either userId or a non-empty userIds list".into(),
                ));
            }
        };
        if ids.len() > MAX_ENQUEUE {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_ENQUEUE} users per request, got {}",
                ids.len()
            )));
        }
        if let Some(bad) = ids.iter().find(|id| id.trim().is_empty() || id.len() > 200) {
            return Err(ApiError::BadRequest(format!(
                "user ids must be 1-200 characters, got {bad:?}"
            )));
        }
        let mut seen = BTreeSet::new();
        Ok(ids.into_iter().filter(|id| seen.insert(id.clone())).collect())
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnqueueResult {
    /// New jobs.
    enqueued: Vec<UserJob>,
    /// Users that already had a pending job, with that job.
    duplicates: Vec<UserJob>,
    /// Ids with no user; nothing was enqueued for them.
    unknown_users: Vec<String>,
}

/// Enqueue a refresh now for one user or a list (one pending job per user: a user with a
/// pending job is reported as a duplicate with that job's id).
#[utoipa::path(post, path = "/app/job-status/enqueue", tag = "job-status", request_body = EnqueueRequest,
    security(("bearer" = [])),
    responses((status = 202, description = "Enqueued (or already pending)", body = Envelope<EnqueueResult>),
        (status = 404, description = "None of the users exist", body = crate::error::ErrorBody)))]
async fn enqueue(
    acting: Acting,
    State(state): State<AppState>,
    Json(request): Json<EnqueueRequest>,
) -> Result<(StatusCode, axum::Json<Envelope<EnqueueResult>>), ApiError> {
    let when = schedule(request.priority, request.delay, request.run_at.as_deref())?;
    let result = enqueue_users(&state, request.user_ids()?, when).await?;
    acting.record(&state, result.audited()).await;
    Ok((StatusCode::ACCEPTED, ok(result.message(), result)))
}

/// Enqueues a refresh of each existing user of `requested` (404 when none exists).
pub async fn enqueue_users(
    state: &AppState,
    requested: Vec<String>,
    when: Placement,
) -> Result<EnqueueResult, ApiError> {
    let existing = accounts::existing_user_ids(&state.mongo, &requested).await?;
    let (known, unknown_users): (Vec<String>, Vec<String>) =
        requested.into_iter().partition(|id| existing.contains(id));
    if known.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no such users: {}",
            unknown_users.join(", ")
        )));
    }
    let queue = state.queues.by_path(USER_DATA_QUEUE)?;
    let batch = state.settings.cron.batch_size;
    let report = producer::enqueue_scheduled(queue, &known, Trigger::Api, batch, when).await?;
    Ok(EnqueueResult {
        enqueued: report.enqueued,
        duplicates: report.duplicates,
        unknown_users,
    })
}

impl EnqueueResult {
    /// Its audit log entry: the users asked for, and the jobs enqueued for them.
    pub fn audited(&self) -> Action {
        let users = self
            .enqueued
            .iter()
            .chain(&self.duplicates)
            .map(|j| j.user_id.clone());
        Action::new("enqueue")
            .queue(USER_DATA_QUEUE)
            .jobs(self.enqueued.iter().map(|j| j.job_id.clone()))
            .users(users.chain(self.unknown_users.iter().cloned()))
            .detail(self.message())
    }

    pub fn message(&self) -> String {
        format!(
            "{} enqueued, {} already pending, {} unknown",
            self.enqueued.len(),
            self.duplicates.len(),
            self.unknown_users.len()
        )
    }
}
