//! The API's own HTTP metrics: requests and their latency per route, recorded by [`track`] with
//! the `metrics` facade into the process-wide recorder of `sellersync_core::infra::metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;
use sellersync_core::infra::metrics::{HTTP_REQUEST_DURATION as DURATION, HTTP_REQUESTS as REQUESTS};

/// The process-wide recorder (shared with everything else this process records).
pub fn prometheus() -> PrometheusHandle {
    sellersync_core::infra::metrics::recorder()
}

/// Counts the request and records its duration, labelled by route template (not the raw path,
/// so ids do not explode the label set), method and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}
