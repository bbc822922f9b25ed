//! The API's one error type and the one table that turns it into an HTTP status, a stable
//! machine-readable code and a message, sent in the envelope
//! `{"success": false, "error": {"code", "message"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sellersync_core::CoreError;
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
    Unavailable(String),
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// Every kind of error response the API sends. Codes are part of the API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        Self::Unauthorized,
        Self::Forbidden,
        Self::BadRequest,
        Self::NotFound,
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
            Self::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
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
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::Core(e) if e.is_unavailable() => ErrorCode::ServiceUnavailable,
            Self::Core(_) => ErrorCode::Internal,
        }
    }

    /// The message clients see. Internal errors are logged in full and reported generically.
    fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "internal error; the request id in the logs has the details".to_owned(),
            _ => self.to_string(),
        }
    }
}

/// The error envelope, for responses that carry extra fields beside `error` (e.g. `/readyz`).
pub fn envelope(code: ErrorCode, message: &str) -> serde_json::Value {
    let (_, code) = code.status_and_code();
    json!({ "success": false, "error": { "code": code, "message": message } })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %self, "request failed");
        }
        let (status, _) = code.status_and_code();
        (status, Json(envelope(code, &self.public_message()))).into_response()
    }
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
}
