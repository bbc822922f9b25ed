//! Liveness (`/healthz`: the process serves requests) and readiness (`/readyz`: Redis and MongoDB
//! answer within the readiness timeout; 503 naming the failed service otherwise). No token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sellersync_core::infra::readiness;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ErrorCode, envelope};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = serde_json::Value)))]
async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "success": true, "status": "ok" }))
}

/// Redis and MongoDB answer: the process can serve traffic.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready", body = serde_json::Value),
        (status = 503, description = "A backing service is unavailable", body = crate::error::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = readiness::check(
        &state.redis,
        &state.mongo,
        state.settings.server.readiness_timeout,
    )
    .await;
    if readiness.is_ready() {
        return axum::Json(json!({ "success": true, "status": "ready", "checks": readiness }))
            .into_response();
    }
    let message = format!("not ready: {} unavailable", readiness.failed().join(" and "));
    tracing::warn!(checks = ?readiness, "{message}");
    let mut body = envelope(ErrorCode::ServiceUnavailable, &message);
    body["status"] = json!("not_ready");
    body["checks"] = json!(readiness);
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}
