//! `/api/jobs` (seed 004): jobs across every queue by id, listing with filters, per-queue
//! counts, removal and retry. Admin only, except that a user token may read one of its own jobs
//! (`GET /api/jobs/{id}`, seed 004's clients poll it). Also the job listing `/api/admin/queues`
//! reuses.

use std::collections::BTreeMap;

use axum::extract::State;
use futures::future::try_join_all;
use sellersync_core::domain::accounts::AccountStatus;
use sellersync_core::jobs::job_status;
use sellersync_core::jobs::refresh::AccountError;
use sellersync_queue::{Counts, JobInfo, JobState, Queue};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Envelope, JobIdData, ok};
use sellersync_core::domain::audit::Action;

use crate::audit::Acting;
use crate::auth::{Caller, Reader};
use crate::error::ApiError;
use crate::extract::{Path, Query, limit};
use crate::monitoring;
use crate::state::{AppState, Queues};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stats_all))
        .routes(routes!(get_job, remove_job))
        .routes(routes!(retry_job))
}

/// A page of jobs.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobInfo>,
    /// Jobs in this response.
    pub count: usize,
    /// Jobs matching the filter in all.
    pub total: u64,
}

/// The states a listing without a state filter covers.
const LISTED: [JobState; 5] = [
    JobState::Waiting,
    JobState::Active,
    JobState::Delayed,
    JobState::Completed,
    JobState::Failed,
];

/// Up to `limit` jobs of `queues` in `state` (every state when `None`), newest first.
pub async fn list_jobs(
    queues: &[&Queue],
    state: Option<JobState>,
    limit: usize,
) -> Result<JobList, ApiError> {
    let states: Vec<JobState> = state.map_or_else(|| LISTED.to_vec(), |s| vec![s]);
    let pages = queues
        .iter()
        .flat_map(|q| states.iter().map(move |s| q.list(*s, 0, limit)));
    let mut jobs: Vec<JobInfo> = try_join_all(pages).await?.into_iter().flatten().collect();
    jobs.sort_by(|a, b| {
        b.created_at_ms
            .cmp(&a.created_at_ms)
            .then_with(|| b.id.cmp(&a.id))
    });
    jobs.truncate(limit);
    let counts = try_join_all(queues.iter().map(|q| q.counts())).await?;
    let total = counts.iter().map(|c| count_in(c, state)).sum();
    Ok(JobList {
        count: jobs.len(),
        jobs,
        total,
    })
}

/// The jobs of `counts` in `state` (all when `None`).
pub fn count_in(counts: &Counts, state: Option<JobState>) -> u64 {
    match state {
        None => counts.total,
        Some(JobState::Waiting) => counts.waiting + counts.paused,
        Some(JobState::Active) => counts.active,
        Some(JobState::Delayed) => counts.delayed,
        Some(JobState::Completed) => counts.completed,
        Some(JobState::Failed) => counts.failed,
        Some(JobState::Paused) => counts.paused,
    }
}

/// The queue holding job `id`, and the job.
async fn find(queues: &Queues, id: &str) -> Result<(Queue, JobInfo), ApiError> {
    for queue in queues.all() {
        if let Some(job) = queue.get(id).await? {
            return Ok((queue.clone(), job));
        }
    }
    Err(ApiError::NotFound(format!("no job {id:?} in any queue")))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this queue (default: all).
    queue: Option<String>,
    /// Only jobs in this state (default: all).
    state: Option<JobState>,
    /// Jobs to return, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// Jobs of every queue or one, optionally in one state, newest first.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, description = "Jobs", body = Envelope<JobList>)))]
async fn list(
    _reader: Reader,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Envelope<JobList>>, ApiError> {
    let limit = limit(q.limit, 50, 200)? as usize;
    let queues: Vec<&Queue> = match &q.queue {
        Some(name) => vec![state.queues.by_query(name)?],
        None => state.queues.all().collect(),
    };
    let list = list_jobs(&queues, q.state, limit).await?;
    Ok(ok("Jobs retrieved successfully", list))
}

/// Counts per queue.
#[utoipa::path(get, path = "/api/jobs/stats/all", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, description = "Counts by queue name", body = Envelope<BTreeMap<String, Counts>>)))]
async fn stats_all(
    _reader: Reader,
    State(state): State<AppState>,
) -> Result<axum::Json<Envelope<BTreeMap<String, Counts>>>, ApiError> {
    let counts = monitoring::counts_by_name(&monitoring::snapshot(&state.queues).await?);
    Ok(ok("Job statistics retrieved successfully", counts))
}

/// One job, from whichever queue holds it. Admins and viewers read any job whole; a user token
/// only the jobs of its own user (403 otherwise), without worker id or internal error text.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")), security(("bearer" = [])),
    responses((status = 200, description = "The job", body = Envelope<JobInfo>),
        (status = 403, description = "A user token asked for another user's job", body = crate::error::ErrorBody),
        (status = 404, description = "No such job", body = crate::error::ErrorBody)))]
async fn get_job(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Envelope<JobInfo>>, ApiError> {
    let (_, job) = find(&state.queues, &id).await?;
    caller.may_read_user(job_user(&job).unwrap_or_default())?;
    let job = if caller.0.reads_everything() {
        job
    } else {
        user_view(job)
    };
    Ok(ok("Job status retrieved successfully", job))
}

/// A queue job as its user may see it: no worker id, the public message as `failedReason`,
/// and in a refresh's result each account error's public message instead of its detail
/// (`docs/api.md`, "What users see").
fn user_view(mut job: JobInfo) -> JobInfo {
    job.worker_id = None;
    let failed_after = (job.state == JobState::Failed).then_some(job.attempts);
    job.last_error = job
        .last_error
        .map(|error| job_status::public_message(&error, failed_after));
    let account_errors = job
        .result
        .as_mut()
        .and_then(|result| result.get_mut("errors"))
        .and_then(serde_json::Value::as_array_mut);
    for error in account_errors.into_iter().flatten() {
        let status = serde_json::from_value::<AccountError>(error.clone())
            .map_or(AccountStatus::Failed, |e| e.status());
        let retryable = error["retryable"].as_bool().unwrap_or(true);
        error["message"] = json!(job_status::public_account_message(status, retryable));
        if let Some(fields) = error.as_object_mut() {
            fields.remove("requestId");
        }
    }
    job
}

/// The audit entry of `action` done to `job`: its queue, id and user.
pub fn job_action(action: &str, job: &JobInfo) -> Action {
    Action::new(action)
        .queue(&job.queue)
        .jobs([&job.id])
        .users(job_user(job))
}

/// The user a job works for (its payload's `userId`), if it has one.
fn job_user(job: &JobInfo) -> Option<&str> {
    job.data.get("userId").and_then(serde_json::Value::as_str)
}

/// Removes a job that is not running (409 while active).
#[utoipa::path(delete, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")), security(("bearer" = [])),
    responses((status = 200, description = "Removed", body = Envelope<Option<String>>),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
        (status = 409, description = "The job is running", body = crate::error::ErrorBody)))]
async fn remove_job(
    acting: Acting,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Envelope<serde_json::Value>>, ApiError> {
    let (queue, job) = find(&state.queues, &id).await?;
    queue.remove(&id).await?;
    acting.record(&state, job_action("remove", &job)).await;
    Ok(ok("Job removed successfully", json!(null)))
}

/// Runs a failed job again with a fresh attempt budget (409 unless failed).
#[utoipa::path(post, path = "/api/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")), security(("bearer" = [])),
    responses((status = 200, description = "Retried", body = Envelope<JobIdData>),
        (status = 404, description = "No such job", body = crate::error::ErrorBody),
        (status = 409, description = "The job has not failed", body = crate::error::ErrorBody)))]
async fn retry_job(
    acting: Acting,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Envelope<JobIdData>>, ApiError> {
    let (queue, job) = find(&state.queues, &id).await?;
    queue.retry(&id).await?;
    acting.record(&state, job_action("retry", &job)).await;
    Ok(ok("Job retry initiated successfully", JobIdData { job_id: id }))
}
