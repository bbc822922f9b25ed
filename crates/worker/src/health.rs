//! The worker's liveness, seen from outside: its HTTP endpoint on `worker.metrics_port`
//! (`/metrics`: this process's metrics; `/healthz`: 200 while its heartbeats reach Redis, 503
//! when they have not for three lease periods: its jobs are being handed to other workers),
//! and systemd's watchdog, fed after every heartbeat (a wedged worker stops feeding it and is
//! restarted).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use sellersync_core::systemd;
use sellersync_queue::apalis::HeartbeatHook;
use serde_json::json;

use crate::WorkerError;

/// When the heartbeat loop last ran, and when Redis last took a heartbeat.
#[derive(Debug, Default)]
pub struct Heartbeats {
    last_ok_ms: AtomicU64,
}

impl Heartbeats {
    /// The hook for the backend: records the heartbeat and feeds systemd's watchdog (the loop
    /// ran, whether or not Redis answered: an outage is not a reason to restart).
    pub fn hook(self: &Arc<Self>) -> HeartbeatHook {
        let this = Arc::clone(self);
        Arc::new(move |taken: bool| {
            if taken {
                this.last_ok_ms.store(now_ms(), Ordering::Relaxed);
            }
            systemd::watchdog();
        })
    }

    /// How long ago Redis last took a heartbeat; `None` before the first.
    pub fn since_last_ok(&self) -> Option<Duration> {
        match self.last_ok_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_millis(now_ms().saturating_sub(at))),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Clone)]
struct Endpoint {
    metrics: PrometheusHandle,
    heartbeats: Arc<Heartbeats>,
    worker_id: String,
    /// Heartbeats older than this make `/healthz` answer 503.
    stale_after: Duration,
}

/// Binds `port` (all interfaces, like a Prometheus exporter) and serves `/metrics` and
/// `/healthz` in the background. Port 0 serves nothing.
pub async fn serve(
    port: u16,
    heartbeats: Arc<Heartbeats>,
    worker_id: &str,
    stale_after: Duration,
) -> Result<(), WorkerError> {
    if port == 0 {
        return Ok(());
    }
    let endpoint = Endpoint {
        metrics: sellersync_core::metrics::recorder(),
        heartbeats,
        worker_id: worker_id.to_owned(),
        stale_after,
    };
    let router = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(endpoint);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| WorkerError::Metrics(format!("cannot listen on port {port}: {e}")))?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    });
    tracing::info!(port, "prometheus metrics on /metrics, health on /healthz");
    Ok(())
}

async fn metrics(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        sellersync_core::metrics::render(&endpoint.metrics, "sellersync-worker"),
    )
}

async fn healthz(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    let since = endpoint.heartbeats.since_last_ok();
    let healthy = since.is_some_and(|since| since <= endpoint.stale_after);
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "workerId": endpoint.worker_id,
        "lastHeartbeatMsAgo": since.map(|d| d.as_millis() as u64),
    });
    (status, Json(body))
}
