//! Authentication of the JSON API: `Authorization: Bearer <JWT>`, verified by the configured
//! [`Verifier`](sellersync_core::domain::auth::Verifier) into the caller's claims. [`Caller`] accepts any
//! valid token (handlers then check whose data it may read); [`Reader`] admin and viewer tokens
//! (every admin GET route); [`Admin`] only admin tokens (every route that changes something).
//! The dashboard signs in with the same tokens and keeps a session instead
//! (`dashboard::session`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sellersync_core::domain::auth::Claims;

use crate::error::ApiError;
use crate::state::AppState;

/// A caller with a valid token.
pub struct Caller(pub Claims);

/// A caller with a valid admin or viewer token: may read everything.
pub struct Reader(pub Claims);

/// A caller with a valid admin token: may read and change everything.
pub struct Admin(pub Claims);

impl Caller {
    /// Users may read their own data; admins and viewers anyone's.
    pub fn may_read_user(&self, user_id: &str) -> Result<(), ApiError> {
        if self.0.reads_everything() || self.0.sub == user_id {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "a user token may only read its own user's data".into(),
            ))
        }
    }
}

/// The bearer token of a request, if it sent an `Authorization` header.
pub fn bearer_token(parts: &Parts) -> Option<Result<&str, ApiError>> {
    let header = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    Some(
        header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into())),
    )
}

/// The claims of a valid token; 401 otherwise (saying which check failed, never the key).
pub fn verify(state: &AppState, token: &str) -> Result<Claims, ApiError> {
    state
        .settings
        .verifier
        .verify(token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

/// Like [`verify`], also returning the id of the key that verified the token.
pub fn verify_with_key(state: &AppState, token: &str) -> Result<(Claims, String), ApiError> {
    state
        .settings
        .verifier
        .verify_with_key(token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

/// 403 unless the claims may read everything.
pub fn require_reader(claims: &Claims) -> Result<(), ApiError> {
    if claims.reads_everything() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this endpoint is for admins and viewers".into(),
        ))
    }
}

/// 403 unless the claims are an admin's.
pub fn require_admin(claims: &Claims) -> Result<(), ApiError> {
    if claims.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden("this endpoint is for admins".into()))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization header".into()))??;
        Ok(Caller(verify(state, token)?))
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        require_reader(&claims)?;
        Ok(Reader(claims))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        require_admin(&claims)?;
        Ok(Admin(claims))
    }
}
