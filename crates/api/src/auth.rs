//! Authentication: `Authorization: Bearer <JWT>` (HS256 with `JWT_SECRET`), verified into the
//! caller's claims. [`Admin`] extracts only admin callers.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sellersync_core::auth::{self, Claims, Role};

use crate::error::ApiError;
use crate::state::AppState;

/// A verified admin caller.
pub struct Admin(pub Claims);

impl FromRequestParts<AppState> for Admin {
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
            .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into()))?;
        let secret = state.settings.auth.jwt_secret.as_ref().ok_or_else(|| {
            ApiError::Unauthorized("tokens cannot be verified: JWT_SECRET is not set".into())
        })?;
        let claims = auth::verify(secret, token.trim()).map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        if claims.role != Role::Admin {
            return Err(ApiError::Forbidden("this endpoint is for admins".into()));
        }
        Ok(Admin(claims))
    }
}
