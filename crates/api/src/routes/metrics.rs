//! Metrics: `/api/metrics/queues` (seed 004: counts per queue and an overall health, admin) and
//! `/metrics` (Prometheus text: queue depth per state, jobs completed/failed/retried, the job
//! duration histogram from Redis, and the API's HTTP request metrics). Both need an admin or
//! viewer token (Prometheus sends one with `authorization: credentials_file`): the API listens
//! where user clients reach it, and a scrape reads Redis and MongoDB, so its expensive part is
//! computed at most once per `server.metrics_cache_ms` however many scrapes come
//! ([`monitoring::ScrapeCache`]).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use sellersync_queue::Counts;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Envelope, ok};
use crate::auth::Reader;
use crate::error::ApiError;
use crate::monitoring;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(queue_metrics))
        .routes(routes!(prometheus))
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// `healthy` or `unhealthy`.
    status: &'static str,
    message: String,
}

/// Counts per queue name, plus `health`.
#[derive(Serialize, ToSchema)]
struct QueueMetricsData {
    #[serde(flatten)]
    queues: BTreeMap<String, Counts>,
    health: Health,
}

/// Counts of every queue and an overall health (the thresholds of `/api/admin/queues/health`).
#[utoipa::path(get, path = "/api/metrics/queues", tag = "metrics", security(("bearer" = [])),
    responses((status = 200, description = "Counts by queue name, and health", body = Envelope<QueueMetricsData>)))]
async fn queue_metrics(
    _reader: Reader,
    State(state): State<AppState>,
) -> Result<axum::Json<Envelope<QueueMetricsData>>, ApiError> {
    let snapshot = monitoring::snapshot(&state.queues).await?;
    let stats = monitoring::stats_by_name(&snapshot);
    let queues = monitoring::counts_by_name(&snapshot);
    let (issues, _) = monitoring::health(&state.queues, &state.settings, &stats).await?;
    let health = if issues.is_empty() {
        Health {
            status: "healthy",
            message: "All queues operating normally".into(),
        }
    } else {
        Health {
            status: "unhealthy",
            message: issues.join("; "),
        }
    };
    Ok(ok("Queue metrics retrieved", QueueMetricsData { queues, health }))
}

/// Prometheus text exposition format 0.0.4 (admin or viewer token). The families read from Redis
/// and MongoDB are at most `server.metrics_cache_ms` old.
#[utoipa::path(get, path = "/metrics", tag = "metrics", security(("bearer" = [])),
    responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain")))]
async fn prometheus(_reader: Reader, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let stored = state
        .scrapes
        .text(&state.queues, &state.settings, &state.mongo)
        .await?;
    let mut text = String::from(&*stored);
    text.push_str(&state.scrapes.computations_text());
    text.push_str(&sellersync_core::infra::metrics::render(
        &state.prometheus,
        "sellersync-api",
    ));
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    ))
}
