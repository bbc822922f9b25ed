//! What an SP-API or LWA answer means for the client: done, throttled, worth a retry, a refused
//! access token, or final; and the client's error type.
//!
//! Amazon answers 403 `Unauthorized` for several causes, told apart by `details`:
//! - the access token expired or is invalid ("The access token you provided has expired.", "… is
//!   revoked, malformed or invalid."): refresh it once and retry;
//! - a role the seller did not grant: empty `details` (`amzn/selling-partner-api-models` issues
//!   799, 943, 1167): [`SpApiError::MissingRole`], final, and refreshing the token cannot help;
//! - anything else, such as "The marketplaces you provided are not valid for region.":
//!   [`SpApiError::Denied`], final.
//!
//! Every error Amazon answered keeps its `x-amzn-RequestId` ([`SpApiError::request_id`]), which
//! Amazon's support asks for.

use std::time::Duration;

use reqwest::StatusCode;

use super::models::{self, ApiError, TokenError};

#[derive(Debug, thiserror::Error)]
pub enum SpApiError {
    #[error("the seller's authorization is no longer valid (invalid_grant); the seller must re-authorize")]
    InvalidGrant,
    #[error("the LWA client credentials were rejected ({0})")]
    InvalidClient(String),
    #[error("the seller has not granted the role {operation} needs (403 Unauthorized without details)")]
    MissingRole {
        operation: &'static str,
        request_id: Option<String>,
    },
    #[error("access denied ({status}): {message}")]
    Denied {
        status: u16,
        message: String,
        request_id: Option<String>,
    },
    #[error("request rejected ({status}): {message}")]
    BadRequest {
        status: u16,
        message: String,
        request_id: Option<String>,
    },
    #[error("rate-bound: {operation} has no rate-limit token for another {}s; retry after that", retry_after.as_secs_f64().ceil())]
    RateBound {
        operation: &'static str,
        retry_after: Duration,
    },
    #[error("{0}")]
    RateLimiter(String),
    #[error("SP-API server error {status} after {attempts} attempts")]
    Server {
        status: u16,
        attempts: u32,
        request_id: Option<String>,
    },
    #[error("SP-API did not answer in time after {attempts} attempts")]
    Timeout { attempts: u32 },
    #[error("cannot reach SP-API: {0}")]
    Connection(String),
    #[error("unexpected SP-API response: {0}")]
    Decode(String),
}

impl SpApiError {
    /// True when a later attempt may succeed (rate limits, server errors, timeouts, network).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateBound { .. }
                | Self::RateLimiter(_)
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::Connection(_)
        )
    }

    /// True when the seller withdrew our authorization: only re-authorizing the app helps.
    pub fn needs_reauthorization(&self) -> bool {
        matches!(self, Self::InvalidGrant)
    }

    /// The operation whose role the seller did not grant, for a [`Self::MissingRole`].
    pub fn missing_role(&self) -> Option<&'static str> {
        match self {
            Self::MissingRole { operation, .. } => Some(operation),
            _ => None,
        }
    }

    /// For a rate-bound call: when a rate-limit token will be there. Retrying sooner is pointless,
    /// and waiting for it is no failure (a job can be deferred without spending an attempt).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateBound { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Amazon's `x-amzn-RequestId` of the answer this error came from, if Amazon answered.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::MissingRole { request_id, .. }
            | Self::Denied { request_id, .. }
            | Self::BadRequest { request_id, .. }
            | Self::Server { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

/// What one HTTP exchange came to.
pub(super) enum Outcome {
    /// The body, and the rate `x-amzn-RateLimit-Limit` reported.
    Done(Vec<u8>, Option<f64>),
    /// 429: wait for the bucket, then try again.
    Throttled,
    /// Worth another attempt after a backoff.
    Retry(SpApiError),
    /// 401, or 403 `Unauthorized` about the access token: refresh it.
    TokenRefused(String),
    /// Final: another attempt cannot help.
    Fail(SpApiError),
}

/// Sorts an answer of `operation` into done, throttled, retry, token refused or final.
pub(super) async fn classify(
    sent: Result<reqwest::Response, reqwest::Error>,
    operation: &'static str,
    attempts: u32,
) -> Outcome {
    let response = match sent {
        Ok(response) => response,
        Err(error) if error.is_timeout() => return Outcome::Retry(SpApiError::Timeout { attempts }),
        Err(error) => return Outcome::Retry(SpApiError::Connection(without_url(&error))),
    };
    let status = response.status();
    if status.is_success() {
        let rate = super::usage::reported_rate(response.headers());
        return match response.bytes().await {
            Ok(body) => Outcome::Done(body.to_vec(), rate),
            Err(error) => Outcome::Retry(SpApiError::Connection(without_url(&error))),
        };
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Outcome::Throttled;
    }
    let request_id = response
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if status.is_server_error() {
        let status = status.as_u16();
        return Outcome::Retry(SpApiError::Server {
            status,
            attempts,
            request_id,
        });
    }
    let error = response
        .json::<models::ErrorList>()
        .await
        .ok()
        .and_then(|list| list.errors.into_iter().next());
    refusal(status, error, operation, request_id)
}

/// A 4xx answer (not 429) by its cause.
fn refusal(
    status: StatusCode,
    error: Option<ApiError>,
    operation: &'static str,
    request_id: Option<String>,
) -> Outcome {
    let message = error.as_ref().map(ApiError::to_string).unwrap_or_default();
    let unauthorized =
        status == StatusCode::FORBIDDEN && error.as_ref().is_some_and(|e| e.code == "Unauthorized");
    let details = error
        .as_ref()
        .and_then(|e| e.details.as_deref())
        .unwrap_or("")
        .trim();
    let status = status.as_u16();
    match () {
        _ if status == 401 || (unauthorized && about_the_access_token(details)) => {
            Outcome::TokenRefused(message)
        }
        _ if unauthorized && details.is_empty() => Outcome::Fail(SpApiError::MissingRole {
            operation,
            request_id,
        }),
        _ if status == 403 => Outcome::Fail(SpApiError::Denied {
            status,
            message,
            request_id,
        }),
        _ => Outcome::Fail(SpApiError::BadRequest {
            status,
            message,
            request_id,
        }),
    }
}

/// Amazon's details for an expired or invalid access token both name it: "The access token you
/// provided has expired.", "The access token you provided is revoked, malformed or invalid."
fn about_the_access_token(details: &str) -> bool {
    details.to_ascii_lowercase().contains("access token")
}

/// An LWA 4xx answer as an error: `invalid_grant` means the seller must re-authorize.
pub(super) fn lwa_error(status: u16, error: Option<TokenError>) -> SpApiError {
    let code = error.as_ref().map_or("unknown", |e| e.error.as_str());
    match code {
        "invalid_grant" => SpApiError::InvalidGrant,
        "invalid_client" | "unauthorized_client" => SpApiError::InvalidClient(code.to_owned()),
        _ => SpApiError::BadRequest {
            status,
            message: error
                .map(|e| format!("{}: {}", e.error, e.error_description.unwrap_or_default()))
                .unwrap_or_default(),
            request_id: None,
        },
    }
}

/// reqwest errors name the URL; ours carry no secrets in URLs, but keep messages short.
pub(super) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), url.path());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unauthorized(details: &str) -> Option<ApiError> {
        Some(ApiError {
            code: "Unauthorized".into(),
            message: Some("Access to requested resource is denied.".into()),
            details: Some(details.into()),
        })
    }

    #[test]
    fn a_403_is_told_apart_by_its_details() {
        let op = "getInventorySummaries";
        let id = || Some("req-1".to_owned());
        let expired = refusal(
            StatusCode::FORBIDDEN,
            unauthorized("The access token you provided has expired."),
            op,
            id(),
        );
        assert!(matches!(expired, Outcome::TokenRefused(_)));
        let role = refusal(StatusCode::FORBIDDEN, unauthorized(""), op, id());
        assert!(
            matches!(role, Outcome::Fail(SpApiError::MissingRole { operation, request_id: Some(_) }) if operation == op)
        );
        let region = refusal(
            StatusCode::FORBIDDEN,
            unauthorized("The marketplaces you provided are not valid for region."),
            op,
            id(),
        );
        let Outcome::Fail(error) = region else {
            panic!("final")
        };
        assert!(error.to_string().contains("not valid for region"), "{error}");
        assert_eq!(error.request_id(), Some("req-1"));
        assert!(matches!(
            refusal(StatusCode::UNAUTHORIZED, None, op, None),
            Outcome::TokenRefused(_)
        ));
    }
}
