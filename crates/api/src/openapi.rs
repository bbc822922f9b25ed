//! The OpenAPI document: the base (title, security scheme, shared schemas), the error responses
//! every operation can give (added here once rather than on each handler), and the routes that
//! serve the document (`/openapi.json`) and a browsable UI (`/docs`, Scalar).

use std::sync::OnceLock;

use axum::response::Html;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_scalar::Scalar;

use crate::error::{ErrorBody, ErrorDetail};
use crate::state::AppState;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "sellersync API",
        description = "Per-user data refresh: job status for users, queue control and metrics for admins. \
Errors use the envelope {\"success\": false, \"error\": {\"code\", \"message\"}}; successes \
{\"success\": true, \"message\", \"data\"} unless a route says otherwise (seed shapes)."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "job-status", description = "/app/job-status (seed 000): users' and jobs' status, manual enqueue"),
        (name = "admin-queues", description = "/api/admin/queues (seed 003): queue health and control"),
        (name = "jobs", description = "/api/jobs (seed 004): jobs across queues"),
        (name = "metrics", description = "Queue metrics and Prometheus"),
        (name = "admin", description = "The hourly producer"),
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
                "HS256 (JWT_SECRET) or, when configured, RS256; claims sub, role (user | admin), exp",
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

/// A browsable view of this document (Scalar; its script loads from a CDN in the browser).
#[utoipa::path(get, path = "/docs", tag = "docs",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn docs() -> Html<&'static str> {
    static HTML: OnceLock<String> = OnceLock::new();
    Html(HTML.get_or_init(|| Scalar::new(document().clone()).to_html()))
}
