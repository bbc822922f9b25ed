//! The OpenAPI document: the base (title, security scheme, shared schemas), the error responses
//! every operation can give (added here once rather than on each handler), and the routes that
//! serve the document (`/openapi.json`) and a browsable UI (`/docs`: Swagger UI, vendored and
//! pinned in `assets/vendor/swagger-ui`, compiled into the binary, so it works offline).

use std::sync::OnceLock;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ErrorBody, ErrorDetail};
use crate::state::AppState;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "sellersync API",
        description = "Per-user data refresh: job status for users, queue control and metrics for admins. \
Errors use the envelope {\"success\": false, \"error\": {\"code\", \"message\"}}; successes \
{\"success\": true, \"message\", \"data\"} unless a route says otherwise (seed shapes). \
\n\nWebhooks (configured in [notifications]): sellersync POSTs a Notification (schema below; \
or a Slack message for format = \"slack\") with headers X-Sellersync-Event (the type), \
X-Sellersync-Notification (the notification id: delivery is at-least-once, deduplicate on it) \
and X-Sellersync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\" keyed by \
the webhook's secret>. Refuse a t older than notifications.replay_window_secs (default 300 s). \
A 2xx answer completes the delivery; a timeout, 5xx, 408 or 429 is retried with backoff \
(queue notifications), any other answer fails it for good."
    ),
    components(schemas(ErrorBody, ErrorDetail, sellersync_core::jobs::notify::Notification, sellersync_core::jobs::notify::EventType)),
    modifiers(&BearerAuth),
    tags(
        (name = "job-status", description = "/app/job-status (seed 000): users' and jobs' status, manual enqueue"),
        (name = "admin-queues", description = "/api/admin/queues (seed 003): queue health and control"),
        (name = "jobs", description = "/api/jobs (seed 004): jobs across queues"),
        (name = "metrics", description = "Queue metrics and Prometheus"),
        (name = "admin", description = "The hourly producer"),
        (name = "events", description = "Live job events (Server-Sent Events)"),
        (name = "health", description = "Liveness and readiness"),
        (name = "docs", description = "This document")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "HS256 (JWT_SECRET) or, when configured, RS256; claims sub, role (user | viewer | admin), exp. Viewers may call every GET route admins may, and nothing else.",
            ))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

pub fn base() -> OpenApi {
    ApiDoc::openapi()
}

/// The complete document, built once from the routes.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = crate::routes::api().into_openapi();
        add_common_errors(&mut document);
        document
    })
}

/// Adds to each operation the errors any of its kind can give: 400 when it takes parameters or
/// a body, 401/403 when it needs a token, 503 when Redis or MongoDB is down.
fn add_common_errors(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.post, &mut item.delete]
            .into_iter()
            .flatten()
        {
            let takes_input = operation.parameters.as_ref().is_some_and(|p| !p.is_empty())
                || operation.request_body.is_some();
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            if takes_input {
                add_error(operation, "400", "Bad parameter, query value or body");
            }
            if secured {
                add_error(
                    operation,
                    "401",
                    "Missing, malformed, expired or badly signed token",
                );
                add_error(operation, "403", "The token's role or user may not do this");
            }
            if operation.request_body.is_some() {
                add_error(operation, "413", "Body larger than server.body_limit_bytes");
                add_error(operation, "415", "Body is not application/json");
            }
            add_error(
                operation,
                "503",
                "Redis or MongoDB is unavailable, or the request timed out",
            );
        }
    }
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| response.into());
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "docs",
    responses((status = 200, description = "OpenAPI 3.1 document", body = serde_json::Value)))]
async fn openapi_json() -> axum::Json<&'static OpenApi> {
    axum::Json(document())
}

/// The Swagger UI release in `assets/vendor/swagger-ui`.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// `/docs`: relative URLs, so it also works under a reverse proxy's path prefix.
const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sellersync API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="openapi.json"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/init.js"></script>
</body>
</html>
"#;

/// Starts Swagger UI on this document; no validator badge (it would call out to the internet).
const DOCS_INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.specUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
});
"##;

/// A browsable view of this document (Swagger UI, served from the binary: works offline).
#[utoipa::path(get, path = "/docs", tag = "docs",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}

/// The UI's script, stylesheet and start-up script (not API routes: not in the document).
pub async fn docs_asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (content_type, body): (&str, &'static [u8]) = match file.as_str() {
        "swagger-ui-bundle.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/vendor/swagger-ui/swagger-ui-bundle.js"),
        ),
        "swagger-ui.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../assets/vendor/swagger-ui/swagger-ui.css"),
        ),
        "init.js" => ("text/javascript; charset=utf-8", DOCS_INIT.as_bytes()),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
