//! Admin endpoints. Today: the hourly producer's runs (`GET /api/admin/cron-runs?limit`).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use sellersync_core::cron::CRON_RUNS;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/admin/cron-runs", get(cron_runs))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<String>,
}

/// Most recent ticks first; `limit` 1–200, default 24.
async fn cron_runs(
    _admin: Admin,
    State(state): State<AppState>,
    Query(q): Query<Limit>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = match q.limit.as_deref() {
        None => 24,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be an integer from 1 to 200, got {raw:?}"))
            })?,
    };
    let runs: Vec<Document> = state
        .mongo
        .collection::<Document>(CRON_RUNS)
        .find(doc! {})
        .sort(doc! { "tickAt": -1 })
        .limit(limit)
        .await
        .map_err(sellersync_core::CoreError::from)?
        .try_collect()
        .await
        .map_err(sellersync_core::CoreError::from)?;
    let runs: Vec<serde_json::Value> = runs
        .into_iter()
        .map(|d| mongodb::bson::Bson::Document(d).into_relaxed_extjson())
        .collect();
    Ok(Json(
        json!({ "success": true, "data": { "runs": runs, "count": runs.len() } }),
    ))
}
