//! Admin endpoints beside the queues: the hourly producer's runs (`GET /api/admin/cron-runs`).

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
use crate::auth::Reader;
use crate::error::ApiError;
use crate::extract::{Query, limit};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cron_runs))
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
