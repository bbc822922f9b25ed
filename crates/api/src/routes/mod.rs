//! The router: one module per resource, each registering its handlers through utoipa-axum so
//! that a route cannot exist without being in the OpenAPI document; assembled here with the
//! cross-cutting layers.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use serde::Serialize;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, envelope_layer_errors};
use crate::state::AppState;
use crate::{http_metrics, openapi};

pub mod actions;
pub mod admin;
pub mod dead_letters;
pub mod events;
pub mod health;
pub mod job_status;
pub mod jobs;
pub mod metrics;
pub mod queues;

/// Header carrying the request id, set when the client did not send one and echoed back.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The success envelope of seeds 003 and 004: `{success: true, message, data}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always true.
    pub success: bool,
    pub message: String,
    pub data: T,
}

pub fn ok<T>(message: impl Into<String>, data: T) -> axum::Json<Envelope<T>> {
    axum::Json(Envelope {
        success: true,
        message: message.into(),
        data,
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobIdData {
    pub job_id: String,
}

/// Every route, documented. `router` serves it; `openapi::document` describes it.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(health::routes())
        .merge(job_status::routes())
        .merge(queues::routes())
        .merge(jobs::routes())
        .merge(metrics::routes())
        .merge(admin::routes())
        .merge(dead_letters::routes())
        .merge(actions::routes())
        .merge(events::routes())
        .merge(openapi::routes())
}

pub fn router(state: AppState) -> Router {
    let server = &state.settings.server;
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        // Outside the timeout, so requests that time out are measured too. (Router::layer wraps
        // each route, so the matched route template is known here.)
        .layer(axum::middleware::from_fn(http_metrics::track))
        .option_layer(cors(&server.cors_allowed_origins))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::map_response(envelope_layer_errors))
        .layer(RequestBodyLimitLayer::new(server.body_limit_bytes))
        // A request that outlives the timeout means the server is too slow right now: 503.
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, server.request_timeout));

    let (mut routes, _) = api().split_for_parts();
    routes = routes
        .route("/docs/assets/{file}", axum::routing::get(openapi::docs_asset))
        .route(
            "/favicon.ico",
            axum::routing::get(crate::dashboard::assets::favicon),
        );
    if state.settings.dashboard.enabled {
        routes = crate::dashboard::mount(routes, &state);
    }
    routes.fallback(not_found).layer(layers).with_state(state)
}

/// CORS for the configured origins; none configured, no CORS headers.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).expect("validated with the configuration"));
        AllowOrigin::list(values)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([HeaderName::from_static(REQUEST_ID_HEADER)])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}
