//! JobStatus dead letters (`/api/admin/job-status/dead-letters`): the queue events the projector
//! set aside because MongoDB refuses them, for admins and viewers to see, and for admins to
//! replay once the cause is fixed (recorded in the audit log).

use axum::extract::State;
use sellersync_core::jobs::job_status::dead_letters::{self, DeadLetter, Replayed};
use sellersync_core::jobs::job_status::projection::Retention;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Envelope, ok};
use sellersync_core::domain::audit::Action;

use crate::audit::Acting;
use crate::auth::Reader;
use crate::error::ApiError;
use crate::extract::{Query, limit};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(replay))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Dead letters to return, 1–500 (default 100), oldest first.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct DeadLetters {
    letters: Vec<DeadLetter>,
    count: usize,
}

/// Queue events MongoDB refused, oldest first: each with its queue, job, transition, refusal
/// and the event whole.
#[utoipa::path(get, path = "/api/admin/job-status/dead-letters", tag = "admin", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Dead letters", body = Envelope<DeadLetters>),
        (status = 400, description = "A limit out of range", body = crate::error::ErrorBody)))]
async fn list(
    _reader: Reader,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Envelope<DeadLetters>>, ApiError> {
    let limit = limit(q.limit, 100, 500)?;
    let letters = dead_letters::list(&state.mongo, limit).await?;
    Ok(ok(
        "Dead letters retrieved successfully",
        DeadLetters {
            count: letters.len(),
            letters,
        },
    ))
}

/// Projects every dead letter again: those MongoDB now takes are recorded in JobStatus and
/// deleted, the rest stay with their new refusal.
#[utoipa::path(post, path = "/api/admin/job-status/dead-letters/replay", tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, description = "What the replay did", body = Envelope<Replayed>)))]
async fn replay(
    acting: Acting,
    State(state): State<AppState>,
) -> Result<axum::Json<Envelope<Replayed>>, ApiError> {
    let mut done = Replayed::default();
    for queue in state.queues.all() {
        let retention = Retention::of(queue.config(), state.settings.job_status.pending_retention);
        let replayed = dead_letters::replay(&state.mongo, queue, &retention).await?;
        done.replayed += replayed.replayed;
        done.still_refused += replayed.still_refused;
    }
    tracing::info!(by = %acting.claims.sub, replayed = done.replayed, still_refused = done.still_refused, "JobStatus dead letters replayed");
    let message = format!(
        "{} dead letters replayed, {} still refused",
        done.replayed, done.still_refused
    );
    acting
        .record(
            &state,
            Action::new("replay-dead-letters").detail(message.as_str()),
        )
        .await;
    Ok(ok(message, done))
}
