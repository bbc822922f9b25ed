//! Login with Amazon (the token endpoint) and access-token checks on API calls.
//!
//! Amazon answers an expired, revoked or malformed access token with 403 and error code
//! `Unauthorized`; the reason is in `details` (the models' 403 response: "Possible reasons include
//! Access Denied, Unauthorized, Expired Token, or Invalid Signature", `orders_2026-01-01.json`).
//! A refresh token whose grant the seller withdrew gets LWA's `invalid_grant` (400). A call to an
//! operation whose role the seller did not grant gets the same 403 `Unauthorized` with empty
//! `details` (as Amazon answers it: `amzn/selling-partner-api-models` issues 799, 943, 1167).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::{Host, Rejection, SimState, api_error, delay};

/// The message of every 403 `Unauthorized`.
pub const DENIED: &str = "Access to requested resource is denied.";
pub const EXPIRED: &str = "The access token you provided has expired.";
pub const REVOKED: &str = "The access token you provided is revoked, malformed or invalid.";

#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: String,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn now_ms() -> u64 {
    Utc::now().timestamp_millis() as u64
}

fn lwa_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    (status, Json(body)).into_response()
}

fn invalid_grant() -> Response {
    lwa_error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "The request has an invalid grant parameter : refresh_token",
    )
}

fn is_revoked(sim: &SimState, seller: &str) -> bool {
    seller.starts_with("REVOKED") || sim.revoked.lock().expect("revoked lock").contains(seller)
}

/// `POST /auth/o2/token` with `grant_type=refresh_token`.
pub async fn token(State(host): State<Host>, Form(form): Form<TokenForm>) -> Response {
    let sim = &host.sim;
    sim.counters.token.fetch_add(1, Ordering::Relaxed);
    delay(sim).await;
    if form.grant_type != "refresh_token" {
        return lwa_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only refresh_token is supported",
        );
    }
    if form.client_id.as_deref().unwrap_or("").is_empty()
        || form.client_secret.as_deref().unwrap_or("").is_empty()
    {
        return lwa_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    let refresh = form.refresh_token.unwrap_or_default();
    let seller = refresh
        .strip_prefix("Atzr|")
        .and_then(|rest| rest.split('|').next())
        .filter(|s| !s.is_empty());
    let Some(seller) = seller.filter(|s| !is_revoked(sim, s)) else {
        return invalid_grant();
    };
    let expires = now_ms() + sim.config.token_ttl_secs * 1000;
    Json(json!({
        "access_token": format!("Atza|{seller}|{expires}"),
        "token_type": "bearer",
        "expires_in": sim.config.token_ttl_secs,
        "refresh_token": refresh,
    }))
    .into_response()
}

/// The seller whose valid access token the call carries, or Amazon's 403 `Unauthorized`.
pub fn check_access_token(sim: &SimState, headers: &HeaderMap) -> Result<String, Rejection> {
    let token = headers
        .get("x-amz-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = token.strip_prefix("Atza|").unwrap_or("").split('|');
    let seller = parts.next().filter(|s| !s.is_empty());
    let expires = parts.next().and_then(|e| e.parse::<u64>().ok());
    let denied = |details: &str| Err(api_error(StatusCode::FORBIDDEN, "Unauthorized", DENIED, details));
    match (seller, expires) {
        (Some(seller), _) if is_revoked(sim, seller) => denied(REVOKED),
        (Some(_), Some(expires)) if expires <= now_ms() => denied(EXPIRED),
        (Some(seller), Some(_)) => Ok(seller.to_owned()),
        _ => denied(REVOKED),
    }
}

/// 403 for an operation whose role the seller did not grant: `Unauthorized` with empty details.
pub fn missing_role() -> Rejection {
    api_error(StatusCode::FORBIDDEN, "Unauthorized", DENIED, "")
}
