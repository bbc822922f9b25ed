//! Authentication: `Authorization: Bearer <JWT>`, verified by the configured
//! [`Verifier`](sellersync_core::auth::Verifier) into the caller's claims. [`Caller`] accepts any
//! valid token (handlers then check whose data it may read); [`Admin`] only admin tokens.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sellersync_core::auth::Claims;

use crate::error::ApiError;
use crate::state::AppState;

/// A caller with a valid token.
pub struct Caller(pub Claims);

/// A caller with a valid admin token.
pub struct Admin(pub Claims);

impl Caller {
    /// Users may read their own data; admins anyone's.
    pub fn may_read_user(&self, user_id: &str) -> Result<(), ApiError> {
        if self.0.is_admin() || self.0.sub == user_id {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "a user token may only read its own user's data".into(),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization header".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into()))?;
        let claims = state
            .verifier
            .verify(token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        Ok(Caller(claims))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        if !claims.is_admin() {
            return Err(ApiError::Forbidden("this endpoint is for admins".into()));
        }
        Ok(Admin(claims))
    }
}
