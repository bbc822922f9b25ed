//! Liveness (`/healthz`: the process serves requests) and readiness (`/readyz`: Redis and MongoDB
//! answer within the readiness timeout; 503 naming the failed service otherwise).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sellersync_core::health;
use serde_json::json;

use crate::error::{ErrorCode, envelope};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "success": true, "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = health::check(
        &state.redis,
        &state.mongo,
        state.settings.server.readiness_timeout(),
    )
    .await;
    if readiness.is_ready() {
        return Json(json!({ "success": true, "status": "ready", "checks": readiness })).into_response();
    }
    let message = format!("not ready: {} unavailable", readiness.failed().join(" and "));
    tracing::warn!(checks = ?readiness, "{message}");
    let mut body = envelope(ErrorCode::ServiceUnavailable, &message);
    body["status"] = json!("not_ready");
    body["checks"] = json!(readiness);
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
