//! Dashboard sessions. An admin or viewer signs in by pasting a token; the API verifies it and
//! keeps a session in Redis (`<prefix>dashboard:session:<sha256 of the id>`, so a copy of Redis
//! holds no usable cookie), with a random CSRF token, for `dashboard.session_ttl_minutes` and
//! never past the token's own expiry. The browser holds only the random id, in an HttpOnly,
//! SameSite=Strict cookie (Secure when `dashboard.secure_cookie`, which production requires).
//! Every state-changing form carries the CSRF token and is refused (403) without it; so does the
//! sign-in form, whose token (no session exists yet) is a random value also sent as a cookie
//! scoped to the sign-in path (double submit).
//!
//! Revocation: a session remembers which key verified its token and is re-checked against the
//! verifier on every request, so rotating `JWT_SECRET` (or removing a key from the JWKS) ends
//! every session it began at once. Each subject's sessions are indexed
//! (`<prefix>dashboard:subject:<sha256 of the subject>`), so demoting someone ends theirs at once
//! too: `POST /api/admin/dashboard/sessions/revoke` (one subject, or all).

use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use base64::Engine as _;
use rand::RngCore as _;
use redis::AsyncCommands as _;
use sellersync_core::CoreError;
use sellersync_core::domain::auth::{Claims, Role};
use sellersync_core::infra::connections::delete_keys;
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
    /// The key that verified the token it began with ([`Verifier::trusts`]); sessions of an
    /// older release have none and end.
    ///
    /// [`Verifier::trusts`]: sellersync_core::domain::auth::Verifier::trusts
    #[serde(default)]
    pub key: String,
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

    /// The session of the request's cookie, if it has a live one whose key is still trusted (a
    /// session whose key is not is deleted).
    pub async fn of_request(parts: &Parts, state: &AppState) -> Result<Option<Session>, ApiError> {
        let Some(id) = cookie_value(parts, COOKIE) else {
            return Ok(None);
        };
        let key = session_key(state, &id);
        let mut redis = state.redis.clone();
        let stored: Option<String> = redis.get(&key).await.map_err(CoreError::from)?;
        let Some(session) = stored.and_then(|json| serde_json::from_str::<Session>(&json).ok()) else {
            return Ok(None);
        };
        if !state.settings.verifier.trusts(&session.key) {
            tracing::info!(sub = %session.sub, "dashboard session ended: its token's key is no longer trusted");
            let _: Result<(), _> = redis.del(&key).await;
            return Ok(None);
        }
        Ok(Some(session))
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

/// Starts a session for a token (admins and viewers only), after verifying it. Returns the
/// `Set-Cookie` value.
pub async fn start(state: &AppState, token: &str) -> Result<HeaderValue, ApiError> {
    let (claims, verified_by) = crate::auth::verify_with_key(state, token)?;
    crate::auth::require_reader(&claims)?;
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
        key: verified_by,
    };
    let json = serde_json::to_string(&session).expect("a session serialises");
    let key = session_key(state, &id);
    let index = subject_key(state, &claims.sub);
    let mut redis = state.redis.clone();
    let _: () = redis
        .set_ex(&key, json, lifetime)
        .await
        .map_err(CoreError::from)?;
    // Every session of the subject lives at most `ttl`: the index may live that long.
    let _: () = redis::pipe()
        .sadd(&index, &key)
        .expire(&index, ttl as i64)
        .query_async(&mut redis)
        .await
        .map_err(CoreError::from)?;
    Ok(cookie(state, COOKIE, &id, &cookie_path(state), lifetime))
}

/// Ends the request's session; returns the `Set-Cookie` value that clears the cookie.
pub async fn end(parts: &Parts, state: &AppState) -> Result<HeaderValue, ApiError> {
    if let Some(id) = cookie_value(parts, COOKIE) {
        let _: () = state
            .redis
            .clone()
            .del(session_key(state, &id))
            .await
            .map_err(CoreError::from)?;
    }
    Ok(cookie(state, COOKIE, "", &cookie_path(state), 0))
}

/// Whose sessions to end.
pub enum Revoke<'a> {
    Subject(&'a str),
    All,
}

/// Ends sessions at once (someone was demoted or left); how many there were.
pub async fn revoke(state: &AppState, whose: Revoke<'_>) -> Result<usize, ApiError> {
    let mut redis = state.redis.clone();
    let ended = match whose {
        Revoke::Subject(sub) => {
            let index = subject_key(state, sub);
            let sessions: Vec<String> = redis.smembers(&index).await.map_err(CoreError::from)?;
            let mut ended = 0;
            // One key at a time: in a cluster they live in different slots.
            for key in &sessions {
                let deleted: usize = redis.del(key).await.map_err(CoreError::from)?;
                ended += deleted;
            }
            let _: () = redis.del(&index).await.map_err(CoreError::from)?;
            ended
        }
        Revoke::All => {
            let prefix = format!("{}dashboard:session:", state.settings.redis.key_prefix);
            let ended = delete_keys(&mut redis, &prefix).await.map_err(CoreError::from)?;
            let indexes = format!("{}dashboard:subject:", state.settings.redis.key_prefix);
            delete_keys(&mut redis, &indexes).await.map_err(CoreError::from)?;
            ended
        }
    };
    Ok(ended)
}

/// The cookie of a double-submitted sign-in form: a random value in a cookie only the sign-in
/// path receives, and the same value in the form.
pub const LOGIN_COOKIE: &str = "sellersync_login";

/// A new sign-in form token and the `Set-Cookie` value that goes with it (an hour).
pub fn login_token(state: &AppState) -> (String, HeaderValue) {
    let token = random_token();
    let path = format!("{}/login", state.settings.dashboard.public_path());
    let cookie = cookie(state, LOGIN_COOKIE, &token, &path, 3600);
    (token, cookie)
}

/// 403 unless the sign-in form carries the token of its cookie.
pub fn check_login_csrf(parts: &Parts, sent: Option<&str>) -> Result<(), ApiError> {
    match (cookie_value(parts, LOGIN_COOKIE), sent) {
        (Some(expected), Some(sent)) if constant_time_eq(sent.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::Forbidden(
            "the sign-in form expired or did not come from this page; try again".into(),
        )),
    }
}

/// Where the session cookie goes: everywhere under the public prefix (it also goes to
/// `/api/events`, outside the dashboard's path).
fn cookie_path(state: &AppState) -> String {
    let prefix = &state.settings.dashboard.public_prefix;
    if prefix.is_empty() {
        "/".to_owned()
    } else {
        prefix.clone()
    }
}

fn cookie(state: &AppState, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if state.settings.dashboard.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&text).expect("a cookie of safe characters")
}

fn session_key(state: &AppState, id: &str) -> String {
    format!(
        "{}dashboard:session:{}",
        state.settings.redis.key_prefix,
        sha256_hex(id)
    )
}

fn subject_key(state: &AppState, sub: &str) -> String {
    format!(
        "{}dashboard:subject:{}",
        state.settings.redis.key_prefix,
        sha256_hex(sub)
    )
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
            key: String::new(),
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
