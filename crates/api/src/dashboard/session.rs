//! Dashboard sessions. An admin or viewer signs in by pasting a token; the API verifies it and
//! keeps a session in Redis (`<prefix>dashboard:session:<sha256 of the id>`, so a copy of Redis
//! holds no usable cookie), with a random CSRF token, for `dashboard.session_ttl_minutes` and
//! never past the token's own expiry. The browser holds only the random id, in an HttpOnly,
//! SameSite=Strict cookie (Secure when `dashboard.secure_cookie`). Every state-changing form
//! carries the CSRF token and is refused (403) without it.

use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use base64::Engine as _;
use rand::RngCore as _;
use redis::AsyncCommands as _;
use sellersync_core::CoreError;
use sellersync_core::domain::auth::{Claims, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// The cookie holding the session id.
pub const COOKIE: &str = "sellersync_session";

/// A signed-in admin or viewer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub sub: String,
    pub role: Role,
    /// The token every state-changing form must carry.
    pub csrf: String,
    /// When the session ends (seconds since the epoch).
    pub exp: u64,
}

impl Session {
    pub fn claims(&self) -> Claims {
        Claims {
            sub: self.sub.clone(),
            role: self.role,
            iat: 0,
            exp: self.exp,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The session of the request's cookie, if it has a live one.
    pub async fn of_request(parts: &Parts, state: &AppState) -> Result<Option<Session>, ApiError> {
        let Some(id) = cookie_value(parts, COOKIE) else {
            return Ok(None);
        };
        let stored: Option<String> = state
            .redis
            .clone()
            .get(key(state, &id))
            .await
            .map_err(CoreError::from)?;
        Ok(stored.and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// 403 unless `sent` is this session's CSRF token.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), ApiError> {
        match sent {
            Some(sent) if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(ApiError::Forbidden(
                "this form is missing its CSRF token or the token is stale; reload the page and try again"
                    .into(),
            )),
        }
    }

    /// 403 unless an admin signed in (viewers change nothing).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "viewers may look but not change anything".into(),
            ))
        }
    }
}

/// Starts a session for a verified token's claims (admins and viewers only). Returns the
/// `Set-Cookie` value.
pub async fn start(state: &AppState, claims: &Claims) -> Result<HeaderValue, ApiError> {
    crate::auth::require_reader(claims)?;
    let now = jsonwebtoken_now();
    let ttl = state.settings.dashboard.session_ttl_minutes * 60;
    let exp = (now + ttl).min(claims.exp);
    let lifetime = exp.saturating_sub(now).max(1);
    let id = random_token();
    let session = Session {
        sub: claims.sub.clone(),
        role: claims.role,
        csrf: random_token(),
        exp,
    };
    let json = serde_json::to_string(&session).expect("a session serialises");
    let _: () = state
        .redis
        .clone()
        .set_ex(key(state, &id), json, lifetime)
        .await
        .map_err(CoreError::from)?;
    Ok(cookie(state, &id, lifetime))
}

/// Ends the request's session; returns the `Set-Cookie` value that clears the cookie.
pub async fn end(parts: &Parts, state: &AppState) -> Result<HeaderValue, ApiError> {
    if let Some(id) = cookie_value(parts, COOKIE) {
        let _: () = state
            .redis
            .clone()
            .del(key(state, &id))
            .await
            .map_err(CoreError::from)?;
    }
    Ok(cookie(state, "", 0))
}

fn cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let dashboard = &state.settings.dashboard;
    // The cookie also goes to /api/events, which lives outside the dashboard's path.
    let path = if dashboard.public_prefix.is_empty() {
        "/"
    } else {
        dashboard.public_prefix.as_str()
    };
    let secure = if dashboard.secure_cookie { "; Secure" } else { "" };
    let text = format!("{COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&text).expect("a cookie of safe characters")
}

fn key(state: &AppState, id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}dashboard:session:{hex}", state.settings.redis.key_prefix)
}

/// 32 random bytes, URL-safe base64.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jsonwebtoken_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_must_match_exactly() {
        let session = Session {
            sub: "ops".into(),
            role: Role::Viewer,
            csrf: "abc".into(),
            exp: 0,
        };
        assert!(session.check_csrf(Some("abc")).is_ok());
        assert!(session.check_csrf(Some("abd")).is_err());
        assert!(session.check_csrf(Some("ab")).is_err());
        assert!(session.check_csrf(None).is_err());
        assert!(session.require_admin().is_err());
    }

    #[test]
    fn tokens_are_random_and_cookies_are_found_among_others() {
        assert_ne!(random_token(), random_token());
        let request = axum::http::Request::builder()
            .header(header::COOKIE, "a=1; sellersync_session=xyz; b=2")
            .body(())
            .unwrap();
        let (parts, _) = request.into_parts();
        assert_eq!(cookie_value(&parts, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&parts, "nope"), None);
    }
}
