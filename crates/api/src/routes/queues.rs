//! `/api/admin/queues` (seed 003 section 7): health, stats, jobs and control of each named
//! queue. Admin only. A queue named in the path that is not configured is a 404.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use sellersync_queue::{JobInfo, JobState};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::{JobList, list_jobs};
use super::{Envelope, JobIdData, ok};
use sellersync_core::domain::audit::Action;

use crate::audit::Acting;
use crate::auth::Reader;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{OptionalJson, Path, Query, limit};
use crate::monitoring::{self, Activity, QueueStats};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(stats))
        .routes(routes!(queue_stats))
        .routes(routes!(jobs))
        .routes(routes!(get_job, remove_job))
        .routes(routes!(retry_job))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(clean))
        .routes(routes!(retry_failed))
}

/// Seed 003's health shape, at the top level.
#[derive(Serialize, ToSchema)]
struct HealthBody {
    success: bool,
    /// False when any queue has an issue.
    healthy: bool,
    /// e.g. "user-data: 150 failed jobs".
    issues: Vec<String>,
    stats: BTreeMap<String, QueueStats>,
    /// Per queue: stuck active jobs and the failure rate of the window.
    activity: BTreeMap<String, Activity>,
}

/// Health of every queue: an issue per queue above `monitoring.failed_threshold` failed or
/// `monitoring.waiting_threshold` waiting jobs, whose JobStatus projection is more than
/// `job_status.max_lag_ms` behind, with active jobs running longer than `worker.job_timeout_ms`,
/// or failing more than `monitoring.failure_rate_threshold` of the jobs finished in the last
/// `monitoring.failure_rate_window_ms` (once `failure_rate_min_finished` finished).
#[utoipa::path(get, path = "/api/admin/queues/health", tag = "admin-queues", security(("bearer" = [])),
    responses((status = 200, description = "Health (200 also when unhealthy)", body = HealthBody)))]
async fn health(_reader: Reader, State(state): State<AppState>) -> Result<axum::Json<HealthBody>, ApiError> {
    let stats = monitoring::all_stats(&state.queues).await?;
    let (issues, activity) = monitoring::health(&state.queues, &state.settings, &stats).await?;
    Ok(axum::Json(HealthBody {
        success: true,
        healthy: issues.is_empty(),
        issues,
        stats,
        activity,
    }))
}

/// Stats of every queue, by name.
#[utoipa::path(get, path = "/api/admin/queues/stats", tag = "admin-queues", security(("bearer" = [])),
    responses((status = 200, description = "Stats by queue name", body = Envelope<BTreeMap<String, QueueStats>>)))]
async fn stats(
    _reader: Reader,
    State(state): State<AppState>,
) -> Result<axum::Json<Envelope<BTreeMap<String, QueueStats>>>, ApiError> {
    let stats = monitoring::all_stats(&state.queues).await?;
    Ok(ok("Queue statistics retrieved successfully", stats))
}

/// Stats of one queue.
#[utoipa::path(get, path = "/api/admin/queues/{name}/stats", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data")), security(("bearer" = [])),
    responses((status = 200, description = "The queue's stats", body = Envelope<QueueStats>),
        (status = 404, description = "No such queue", body = ErrorBody)))]
async fn queue_stats(
    _reader: Reader,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Envelope<QueueStats>>, ApiError> {
    let stats = monitoring::stats(state.queues.by_path(&name)?).await?;
    Ok(ok("Queue statistics retrieved successfully", stats))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct JobsQuery {
    /// Only jobs in this state (default: all).
    status: Option<JobState>,
    /// Jobs to return, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// Jobs of one queue, newest first.
#[utoipa::path(get, path = "/api/admin/queues/{name}/jobs", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data"), JobsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Jobs", body = Envelope<JobList>),
        (status = 404, description = "No such queue", body = ErrorBody)))]
async fn jobs(
    _reader: Reader,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<JobsQuery>,
) -> Result<axum::Json<Envelope<JobList>>, ApiError> {
    let queue = state.queues.by_path(&name)?;
    let limit = limit(q.limit, 50, 200)? as usize;
    let list = list_jobs(&[queue], q.status, limit).await?;
    Ok(ok("Jobs retrieved successfully", list))
}

/// One job of a queue.
#[utoipa::path(get, path = "/api/admin/queues/{name}/job/{id}", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data"), ("id" = String, Path, description = "Job id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The job", body = Envelope<JobInfo>),
        (status = 404, description = "No such queue or job", body = ErrorBody)))]
async fn get_job(
    _reader: Reader,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<Envelope<JobInfo>>, ApiError> {
    let job = state
        .queues
        .by_path(&name)?
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id:?} in queue {name:?}")))?;
    Ok(ok("Job retrieved successfully", job))
}

/// Removes a job that is not running (409 while active).
#[utoipa::path(delete, path = "/api/admin/queues/{name}/job/{id}", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data"), ("id" = String, Path, description = "Job id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Removed", body = Envelope<Option<String>>),
        (status = 404, description = "No such queue or job", body = ErrorBody),
        (status = 409, description = "The job is running", body = ErrorBody)))]
async fn remove_job(
    acting: Acting,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<Envelope<serde_json::Value>>, ApiError> {
    state.queues.by_path(&name)?.remove(&id).await?;
    acting
        .record(&state, Action::new("remove").queue(&name).jobs([&id]))
        .await;
    Ok(ok("Job removed successfully", json!(null)))
}

/// Runs a failed job again with a fresh attempt budget (409 unless failed).
#[utoipa::path(post, path = "/api/admin/queues/{name}/job/{id}/retry", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data"), ("id" = String, Path, description = "Job id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Retried", body = Envelope<JobIdData>),
        (status = 404, description = "No such queue or job", body = ErrorBody),
        (status = 409, description = "The job has not failed", body = ErrorBody)))]
async fn retry_job(
    acting: Acting,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<Envelope<JobIdData>>, ApiError> {
    state.queues.by_path(&name)?.retry(&id).await?;
    acting
        .record(&state, Action::new("retry").queue(&name).jobs([&id]))
        .await;
    Ok(ok("Job retry initiated successfully", JobIdData { job_id: id }))
}

/// Workers stop taking jobs from the queue; running jobs finish.
#[utoipa::path(post, path = "/api/admin/queues/{name}/pause", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data")), security(("bearer" = [])),
    responses((status = 200, description = "Paused; the queue's stats", body = Envelope<QueueStats>),
        (status = 404, description = "No such queue", body = ErrorBody)))]
async fn pause(
    acting: Acting,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Envelope<QueueStats>>, ApiError> {
    set_paused(&state, &acting, &name, true).await
}

/// Workers take jobs from the queue again.
#[utoipa::path(post, path = "/api/admin/queues/{name}/resume", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data")), security(("bearer" = [])),
    responses((status = 200, description = "Resumed; the queue's stats", body = Envelope<QueueStats>),
        (status = 404, description = "No such queue", body = ErrorBody)))]
async fn resume(
    acting: Acting,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<Envelope<QueueStats>>, ApiError> {
    set_paused(&state, &acting, &name, false).await
}

async fn set_paused(
    state: &AppState,
    acting: &Acting,
    name: &str,
    paused: bool,
) -> Result<axum::Json<Envelope<QueueStats>>, ApiError> {
    let queue = state.queues.by_path(name)?;
    let (verb, action) = if paused {
        queue.pause().await?;
        ("paused", "pause")
    } else {
        queue.resume().await?;
        ("resumed", "resume")
    };
    tracing::info!(queue = %name, by = %acting.claims.sub, "queue {verb}");
    acting.record(state, Action::new(action).queue(name)).await;
    Ok(ok(
        format!("Queue {verb} successfully"),
        monitoring::stats(queue).await?,
    ))
}

/// Which finished jobs to delete. Every field is optional.
#[derive(Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
struct CleanRequest {
    /// Only jobs finished longer ago than this, in ms (BullMQ's `grace`; default one day).
    #[serde(alias = "grace")]
    older_than_ms: u64,
    /// `completed` or `failed` (default `completed`).
    status: JobState,
    /// Most jobs to delete, 1–100000 (default 1000).
    #[schema(minimum = 1, maximum = 100000)]
    limit: i64,
}

impl Default for CleanRequest {
    fn default() -> Self {
        Self {
            older_than_ms: 24 * 60 * 60 * 1000,
            status: JobState::Completed,
            limit: 1000,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CleanResult {
    removed: usize,
    status: JobState,
    older_than_ms: u64,
}

/// Deletes finished jobs older than an age.
#[utoipa::path(post, path = "/api/admin/queues/{name}/clean", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data")), request_body(content = Option<CleanRequest>),
    security(("bearer" = [])),
    responses((status = 200, description = "How many were deleted", body = Envelope<CleanResult>),
        (status = 404, description = "No such queue", body = ErrorBody)))]
async fn clean(
    acting: Acting,
    State(state): State<AppState>,
    Path(name): Path<String>,
    OptionalJson(request): OptionalJson<CleanRequest>,
) -> Result<axum::Json<Envelope<CleanResult>>, ApiError> {
    let queue = state.queues.by_path(&name)?;
    if !matches!(request.status, JobState::Completed | JobState::Failed) {
        return Err(ApiError::BadRequest(format!(
            "status must be completed or failed, got {}",
            request.status.as_str()
        )));
    }
    let limit = limit(Some(request.limit), 1000, 100_000)? as usize;
    let removed = queue
        .clean(
            request.status,
            Duration::from_millis(request.older_than_ms),
            limit,
        )
        .await?;
    tracing::info!(queue = %name, removed, status = request.status.as_str(), "queue cleaned");
    let detail = format!(
        "{removed} {} jobs older than {} ms removed",
        request.status.as_str(),
        request.older_than_ms
    );
    acting
        .record(&state, Action::new("clean").queue(&name).detail(detail))
        .await;
    let result = CleanResult {
        removed,
        status: request.status,
        older_than_ms: request.older_than_ms,
    };
    Ok(ok(format!("{removed} jobs removed"), result))
}

/// How many failed jobs to retry.
#[derive(Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
struct RetryFailedRequest {
    /// 1–10000 (default 100), oldest failure first.
    #[schema(minimum = 1, maximum = 10000)]
    limit: i64,
}

impl Default for RetryFailedRequest {
    fn default() -> Self {
        Self { limit: 100 }
    }
}

#[derive(Serialize, ToSchema)]
struct RetriedCount {
    retried: usize,
}

/// Retries failed jobs, oldest failure first.
#[utoipa::path(post, path = "/api/admin/queues/{name}/jobs/retry-failed", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data")), request_body(content = Option<RetryFailedRequest>),
    security(("bearer" = [])),
    responses((status = 200, description = "How many were retried", body = Envelope<RetriedCount>),
        (status = 404, description = "No such queue", body = ErrorBody)))]
async fn retry_failed(
    acting: Acting,
    State(state): State<AppState>,
    Path(name): Path<String>,
    OptionalJson(request): OptionalJson<RetryFailedRequest>,
) -> Result<axum::Json<Envelope<RetriedCount>>, ApiError> {
    let queue = state.queues.by_path(&name)?;
    let limit = limit(Some(request.limit), 100, 10_000)? as usize;
    let retried = queue.retry_failed(limit).await?;
    tracing::info!(queue = %name, retried, "failed jobs retried");
    let detail = format!("{retried} failed jobs retried (at most {limit})");
    acting
        .record(&state, Action::new("retry-failed").queue(&name).detail(detail))
        .await;
    Ok(ok(
        format!("{retried} failed jobs retried"),
        RetriedCount { retried },
    ))
}
