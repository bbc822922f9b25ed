//! API tokens: HS256 JWTs with `sub` (user id), `role` (`user` | `admin`), `iat` and `exp`.
//! Minted here for operators (`sellersync token mint`) and the local run; the API verifies them.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no JWT secret is configured (JWT_SECRET)")]
    NoSecret,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// A signed token for `subject` with `role`, valid for `ttl`.
pub fn mint(secret: Option<&Secret>, subject: &str, role: Role, ttl: Duration) -> Result<String, TokenError> {
    let secret = secret.ok_or(TokenError::NoSecret)?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        role,
        iat: now,
        exp: now + ttl.as_secs(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .map_err(|e| TokenError::Invalid(e.to_string()))
}

/// Checks signature (HS256 only; `alg: none` and others are refused) and expiry (60 s leeway).
pub fn verify(secret: &Secret, token: &str) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 60;
    jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.expose().as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| TokenError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_tampering_is_refused() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let token = mint(Some(&secret), "admin-1", Role::Admin, Duration::from_secs(60)).unwrap();
        let claims = verify(&secret, &token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("admin-1", Role::Admin));
        let other = Secret::new("another-secret-another-secret-xx");
        assert!(verify(&other, &token).is_err());
        assert!(matches!(
            mint(None, "x", Role::User, Duration::from_secs(1)),
            Err(TokenError::NoSecret)
        ));
    }
}
