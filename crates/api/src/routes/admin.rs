//! Admin endpoints beside the queues: the hourly producer's runs (`GET /api/admin/cron-runs`),
//! and ending dashboard sessions at once (`POST /api/admin/dashboard/sessions/revoke`: someone
//! was demoted or left).

use axum::extract::State;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use sellersync_core::CoreError;
use sellersync_core::jobs::producer::CRON_RUNS;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Envelope, ok};
use crate::auth::{Admin, Reader};
use crate::dashboard::session::{Revoke, revoke};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Query, limit};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cron_runs))
        .routes(routes!(revoke_sessions))
}

/// Whose dashboard sessions to end: one subject's, or all.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// The subject (a token's `sub`) whose sessions end.
    sub: Option<String>,
    /// End every session.
    #[serde(default)]
    all: bool,
}

#[derive(Serialize, ToSchema)]
struct Revoked {
    /// Sessions ended.
    revoked: usize,
}

/// Ends dashboard sessions at once: one subject's (demoted, or gone) or everyone's. Their
/// browsers are sent to sign in again on their next request.
#[utoipa::path(post, path = "/api/admin/dashboard/sessions/revoke", tag = "admin",
    request_body = RevokeRequest, security(("bearer" = [])),
    responses((status = 200, description = "Sessions ended", body = Envelope<Revoked>),
        (status = 400, description = "Neither or both of sub and all", body = ErrorBody)))]
async fn revoke_sessions(
    Admin(admin): Admin,
    State(state): State<AppState>,
    Json(request): Json<RevokeRequest>,
) -> Result<axum::Json<Envelope<Revoked>>, ApiError> {
    let whose = match (request.sub.as_deref(), request.all) {
        (Some(sub), false) if !sub.is_empty() => Revoke::Subject(sub),
        (None, true) => Revoke::All,
        _ => {
            return Err(ApiError::BadRequest(
                r#"send either {"sub": "<subject>"} or {"all": true}"#.into(),
            ));
        }
    };
    let revoked = revoke(&state, whose).await?;
    tracing::info!(by = %admin.sub, sub = request.sub.as_deref().unwrap_or("*"), revoked, "dashboard sessions revoked");
    Ok(ok(
        format!("{revoked} dashboard sessions ended"),
        Revoked { revoked },
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CronRunsQuery {
    /// Runs to return, 1–200 (default 24).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct CronRuns {
    /// `cron_runs` documents: tick, instance, selected, enqueued, duplicates, duration, error.
    runs: Vec<serde_json::Value>,
    count: usize,
}

/// The hourly producer's most recent ticks first.
#[utoipa::path(get, path = "/api/admin/cron-runs", tag = "admin", params(CronRunsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Producer runs", body = Envelope<CronRuns>)))]
async fn cron_runs(
    _reader: Reader,
    State(state): State<AppState>,
    Query(q): Query<CronRunsQuery>,
) -> Result<axum::Json<Envelope<CronRuns>>, ApiError> {
    let limit = limit(q.limit, 24, 200)?;
    let runs = recent_cron_runs(&state.mongo, limit).await?;
    let runs: Vec<serde_json::Value> = runs
        .into_iter()
        .map(|d| mongodb::bson::Bson::Document(d).into_relaxed_extjson())
        .collect();
    Ok(ok(
        "Cron runs retrieved successfully",
        CronRuns {
            count: runs.len(),
            runs,
        },
    ))
}

/// The producer's `limit` most recent runs, newest tick first.
pub async fn recent_cron_runs(db: &mongodb::Database, limit: i64) -> Result<Vec<Document>, ApiError> {
    let runs = db
        .collection::<Document>(CRON_RUNS)
        .find(doc! {})
        .sort(doc! { "tickAt": -1 })
        .limit(limit)
        .await
        .map_err(CoreError::from)?
        .try_collect()
        .await
        .map_err(CoreError::from)?;
    Ok(runs)
}
