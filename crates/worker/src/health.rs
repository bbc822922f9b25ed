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
use sellersync_core::infra::systemd;
use sellersync_queue::apalis::HeartbeatHook;
use serde_json::json;

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
    bind: std::net::IpAddr,
    port: u16,
    heartbeats: Arc<Heartbeats>,
    worker_id: &str,
    stale_after: Duration,
) {
    if port == 0 {
        return;
    }
    let endpoint = Endpoint {
        metrics: sellersync_core::infra::metrics::recorder(),
        heartbeats,
        worker_id: worker_id.to_owned(),
        stale_after,
    };
    let router = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(endpoint);
    let listener = match tokio::net::TcpListener::bind((bind, port)).await {
        Ok(listener) => listener,
        // Two workers on one host with the same METRICS_PORT: the second one still works jobs.
        Err(error) => {
            tracing::error!(%bind, port, %error, "metrics endpoint not started (is another process using METRICS_PORT?); this worker runs on without /metrics and /healthz");
            return;
        }
    };
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    });
    tracing::info!(%bind, port, "prometheus metrics on /metrics, health on /healthz");
}

async fn metrics(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        sellersync_core::infra::metrics::render(&endpoint.metrics, "sellersync-worker"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn a_taken_port_is_logged_and_the_worker_goes_on() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let loopback = "127.0.0.1".parse().unwrap();
        // Returns (no error, no panic) with the port still held by the other listener.
        serve(loopback, port, Arc::default(), "w1", Duration::from_secs(30)).await;
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
    }

    #[tokio::test]
    async fn the_endpoint_listens_on_the_configured_address_only() {
        let port = free_port();
        let loopback = "127.0.0.1".parse().unwrap();
        serve(loopback, port, Arc::default(), "w1", Duration::from_secs(30)).await;
        let health = sellersync_core::infra::tls::http_client()
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 503, "no heartbeat yet");
        let listeners = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let wildcard = format!("00000000:{port:04X}");
        assert!(!listeners.contains(&wildcard), "not on every interface");
    }
}
