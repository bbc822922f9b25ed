//! Admin actions beside seed 003's: retry, remove or promote a selection of jobs at once, promote
//! a delayed job (run it now), and override the priority of a job that has not started. Admin
//! only, each recorded in the audit log. The dashboard's buttons call the same functions.

use axum::extract::State;
use sellersync_queue::{JobState, Queue, QueueError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Envelope, JobIdData, ok};
use sellersync_core::domain::audit::Action;

use crate::audit::Acting;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Most jobs one bulk action takes.
pub const MAX_BULK: usize = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(bulk))
        .routes(routes!(promote))
        .routes(routes!(set_priority))
}

/// What to do with each selected job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// Failed jobs run again with a fresh attempt budget.
    Retry,
    /// Jobs that are not running are deleted.
    Remove,
    /// Delayed jobs (delay, retry backoff, deferral) are due now.
    Promote,
}

impl BulkAction {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "retry" => Ok(Self::Retry),
            "remove" => Ok(Self::Remove),
            "promote" => Ok(Self::Promote),
            other => Err(ApiError::BadRequest(format!(
                "action must be retry, remove or promote, got {other:?}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Remove => "remove",
            Self::Promote => "promote",
        }
    }

    /// Whether a job in `state` can take this action (the others are skipped).
    pub fn applies_to(self, state: JobState) -> bool {
        match self {
            Self::Retry => state == JobState::Failed,
            Self::Remove => state != JobState::Active,
            Self::Promote => state == JobState::Delayed,
        }
    }

    /// Its audit log entry, for `result` in `queue`.
    pub fn audited(self, queue: &str, result: &BulkResult) -> Action {
        Action::new(format!("bulk-{}", self.as_str()))
            .queue(queue)
            .jobs(&result.done)
            .detail(result.message())
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BulkRequest {
    action: BulkAction,
    /// 1–1000 job ids.
    ids: Vec<String>,
}

/// What a bulk action did.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkResult {
    /// Ids the action applied to.
    pub done: Vec<String>,
    /// Ids it did not apply to, each with why (not found, or in a state that forbids it).
    pub skipped: Vec<Skipped>,
}

impl BulkResult {
    pub fn message(&self) -> String {
        format!("{} jobs done, {} skipped", self.done.len(), self.skipped.len())
    }

    /// Adds another chunk's result.
    pub fn extend(&mut self, other: BulkResult) {
        self.done.extend(other.done);
        self.skipped.extend(other.skipped);
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub job_id: String,
    pub reason: String,
}

/// Applies `action` to each of `ids` in `queue`; one id's refusal does not stop the others.
pub async fn apply_bulk(queue: &Queue, action: BulkAction, ids: &[String]) -> Result<BulkResult, ApiError> {
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(ApiError::BadRequest(format!(
            "select 1 to {MAX_BULK} jobs, got {}",
            ids.len()
        )));
    }
    let outcomes = match action {
        BulkAction::Retry => queue.retry_many(ids).await?,
        BulkAction::Remove | BulkAction::Promote => {
            let mut outcomes = Vec::with_capacity(ids.len());
            for id in ids {
                outcomes.push(match action {
                    BulkAction::Promote => queue.promote(id).await,
                    _ => queue.remove(id).await,
                });
            }
            outcomes
        }
    };
    let mut result = BulkResult::default();
    for (id, outcome) in ids.iter().zip(outcomes) {
        match outcome {
            Ok(()) => result.done.push(id.clone()),
            Err(e @ (QueueError::NotFound(_) | QueueError::InvalidState { .. })) => {
                result.skipped.push(Skipped {
                    job_id: id.clone(),
                    reason: skip_reason(&e),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(
        queue = queue.name(),
        ?action,
        done = result.done.len(),
        skipped = result.skipped.len(),
        "bulk action"
    );
    Ok(result)
}

fn skip_reason(error: &QueueError) -> String {
    match error {
        QueueError::NotFound(_) => "not found".to_owned(),
        QueueError::InvalidState { state, .. } => format!("it is {state}"),
        other => other.to_string(),
    }
}

/// Retries, removes or promotes a selection of jobs of one queue.
#[utoipa::path(post, path = "/api/admin/queues/{name}/jobs/bulk", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data")),
    request_body = BulkRequest, security(("bearer" = [])),
    responses((status = 200, description = "Which ids were done and which skipped", body = Envelope<BulkResult>),
        (status = 404, description = "No such queue", body = ErrorBody)))]
async fn bulk(
    acting: Acting,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(request): Json<BulkRequest>,
) -> Result<axum::Json<Envelope<BulkResult>>, ApiError> {
    let queue = state.queues.by_path(&name)?;
    let result = apply_bulk(queue, request.action, &request.ids).await?;
    acting
        .record(&state, request.action.audited(&name, &result))
        .await;
    Ok(ok(result.message(), result))
}

/// Makes a delayed job (delay, retry backoff or deferral) due now (409 unless delayed).
#[utoipa::path(post, path = "/api/admin/queues/{name}/job/{id}/promote", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data"), ("id" = String, Path, description = "Job id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Promoted", body = Envelope<JobIdData>),
        (status = 404, description = "No such queue or job", body = ErrorBody),
        (status = 409, description = "The job is not delayed", body = ErrorBody)))]
async fn promote(
    acting: Acting,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<Envelope<JobIdData>>, ApiError> {
    state.queues.by_path(&name)?.promote(&id).await?;
    acting
        .record(&state, Action::new("promote").queue(&name).jobs([&id]))
        .await;
    Ok(ok("Job promoted successfully", JobIdData { job_id: id }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PriorityRequest {
    /// 0 (most urgent) to the queue's `priority_levels` - 1.
    #[schema(minimum = 0, example = 0)]
    priority: u32,
}

/// Overrides the priority of a waiting or delayed job: a waiting job moves to its new
/// priority's line, keeping its place among the jobs already there (409 once it started).
#[utoipa::path(post, path = "/api/admin/queues/{name}/job/{id}/priority", tag = "admin-queues",
    params(("name" = String, Path, description = "Queue name", example = "user-data"), ("id" = String, Path, description = "Job id")),
    request_body = PriorityRequest, security(("bearer" = [])),
    responses((status = 200, description = "Priority changed", body = Envelope<JobIdData>),
        (status = 400, description = "Priority out of range", body = ErrorBody),
        (status = 404, description = "No such queue or job", body = ErrorBody),
        (status = 409, description = "The job is not waiting or delayed", body = ErrorBody)))]
async fn set_priority(
    acting: Acting,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Json(request): Json<PriorityRequest>,
) -> Result<axum::Json<Envelope<JobIdData>>, ApiError> {
    state
        .queues
        .by_path(&name)?
        .set_priority(&id, request.priority)
        .await?;
    let detail = format!("priority {}", request.priority);
    acting
        .record(
            &state,
            Action::new("priority").queue(&name).jobs([&id]).detail(detail),
        )
        .await;
    Ok(ok("Job priority changed successfully", JobIdData { job_id: id }))
}
