//! The API's one error type and the one table that turns it into an HTTP status, a stable
//! machine-readable code and a message, sent in the envelope
//! `{"success": false, "error": {"code", "message"}}`.
//!
//! Errors raised outside handlers (tower-http's body limit and timeout, axum's 405) are given the
//! same envelope by [`envelope_layer_errors`], so every error response has one shape.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sellersync_core::CoreError;
use sellersync_queue::QueueError;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Refused to protect the service (a cap was reached); not a failure of anything.
    #[error("{0}")]
    Unavailable(String),
    /// This caller holds too much already (e.g. live event streams).
    #[error("{0}")]
    TooManyRequests(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Every kind of error response the API sends. Codes are part of the API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::TooManyRequests,
        Self::ServiceUnavailable,
        Self::Internal,
    ];

    /// The table.
    pub const fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Self::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The code for a status set by a layer rather than a handler (500 for anything unknown).
    fn for_status(status: StatusCode) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|code| code.status_and_code().0 == status)
            .unwrap_or(Self::Internal)
    }

    /// The message for an error raised outside a handler.
    fn layer_message(self, status: StatusCode) -> &'static str {
        match self {
            Self::PayloadTooLarge => "request body is larger than server.body_limit_bytes",
            Self::MethodNotAllowed => "method not allowed on this route",
            Self::ServiceUnavailable => "the request did not finish within server.request_timeout_ms",
            _ => status.canonical_reason().unwrap_or("request failed"),
        }
    }
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::TooManyRequests(_) => ErrorCode::TooManyRequests,
            Self::Core(CoreError::Queue(e)) | Self::Queue(e) => queue_code(e),
            Self::Core(e) if e.is_unavailable() => ErrorCode::ServiceUnavailable,
            Self::Core(_) => ErrorCode::Internal,
        }
    }

    /// The message clients see. Internal errors are logged in full and reported generically;
    /// an unavailable backing service is named, its error is not.
    fn public_message(&self) -> String {
        match (self.code(), self) {
            (ErrorCode::Internal, _) => {
                "internal error; the request id in the logs has the details".to_owned()
            }
            (ErrorCode::ServiceUnavailable, Self::Core(_) | Self::Queue(_)) => {
                format!("{} is unavailable; try again later", self.unavailable_service())
            }
            _ => self.to_string(),
        }
    }

    /// What a client is shown: status, code and message (logged as `into_response` logs).
    pub fn public_parts(&self) -> (StatusCode, &'static str, String) {
        let code = self.code();
        log(self, code);
        let (status, name) = code.status_and_code();
        (status, name, self.public_message())
    }

    fn unavailable_service(&self) -> &'static str {
        match self {
            Self::Core(CoreError::Mongo(_)) => "MongoDB",
            Self::Core(CoreError::Timeout { service, .. }) => service,
            _ => "Redis",
        }
    }
}

fn queue_code(error: &QueueError) -> ErrorCode {
    match error {
        QueueError::NotFound(_) => ErrorCode::NotFound,
        QueueError::InvalidState { .. } => ErrorCode::Conflict,
        QueueError::InvalidOptions(_) => ErrorCode::BadRequest,
        e if e.is_unavailable() => ErrorCode::ServiceUnavailable,
        _ => ErrorCode::Internal,
    }
}

/// The error envelope, for responses that carry extra fields beside `error` (e.g. `/readyz`).
pub fn envelope(code: ErrorCode, message: &str) -> serde_json::Value {
    let (_, code) = code.status_and_code();
    json!({ "success": false, "error": { "code": code, "message": message } })
}

/// The error envelope as documented in the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: bad_request, unauthorized, forbidden, not_found,
    /// method_not_allowed, conflict, payload_too_large, unsupported_media_type,
    /// too_many_requests, service_unavailable, internal_error.
    pub code: String,
    pub message: String,
}

/// What an error response told its client (the code and the public message), kept on the
/// response so the dashboard can show the same error as a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    pub code: &'static str,
    pub message: String,
}

impl Told {
    /// What an error response without a body of ours (a layer's 405, 413, 503) tells.
    pub fn for_status(status: StatusCode) -> Self {
        let code = ErrorCode::for_status(status);
        Self {
            code: code.status_and_code().1,
            message: code.layer_message(status).to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        log(&self, code);
        let (status, name) = code.status_and_code();
        let message = self.public_message();
        let mut response = (status, Json(envelope(code, &message))).into_response();
        response.extensions_mut().insert(Told { code: name, message });
        response
    }
}

/// Internal errors and unavailable backing services are logged; refusals (a cap reached, bad
/// input) are answers, not failures, and are not.
fn log(error: &ApiError, code: ErrorCode) {
    match (code, error) {
        (ErrorCode::Internal, _) => tracing::error!(%error, "request failed"),
        (ErrorCode::ServiceUnavailable, ApiError::Core(_) | ApiError::Queue(_)) => {
            tracing::warn!(%error, "backing service unavailable");
        }
        _ => {}
    }
}

/// Gives error responses produced by layers (body limit, timeout, 405) the error envelope.
pub async fn envelope_layer_errors<B>(response: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    // JSON already has the envelope; HTML is a dashboard page telling the same error.
    let is_answer = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
    });
    if !(status.is_client_error() || status.is_server_error()) || is_answer {
        return response.map(Body::new);
    }
    let code = ErrorCode::for_status(status);
    let body = envelope(code, code.layer_message(status)).to_string();
    let (mut parts, _) = response.into_parts();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let (status, name) = code.status_and_code();
            assert!(status.is_client_error() || status.is_server_error(), "{name}");
            assert!(seen.insert(name), "duplicate code {name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
            assert_eq!(ErrorCode::for_status(status), *code, "{name}");
        }
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let error = ApiError::Core(CoreError::Migration {
            name: "0001".into(),
            reason: "secret detail".into(),
        });
        assert_eq!(error.code(), ErrorCode::Internal);
        assert!(!error.public_message().contains("secret detail"));
    }

    #[test]
    fn queue_errors_map_to_404_409_and_400() {
        let cases = [
            (QueueError::NotFound("j".into()), StatusCode::NOT_FOUND),
            (
                QueueError::InvalidState {
                    id: "j".into(),
                    state: "active".into(),
                    action: "remove",
                },
                StatusCode::CONFLICT,
            ),
            (QueueError::InvalidOptions("x".into()), StatusCode::BAD_REQUEST),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::Queue(error).code().status_and_code().0, status);
        }
    }
}
