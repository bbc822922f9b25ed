//! Recording admin actions in the audit log (`sellersync_core::domain::audit`). The JSON API's
//! admin routes take an [`Acting`] admin (the token's claims and where the request came from);
//! the dashboard builds one from its session. Both record what they did with
//! [`Acting::record`] once it is done. An entry that cannot be written is logged with every
//! field and does not fail the answer: the action already happened.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sellersync_core::domain::audit::{self, Action, Actor};
use sellersync_core::domain::auth::Claims;

use crate::auth::{Caller, require_admin};
use crate::connection::ClientConnection;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest `X-Forwarded-For` kept in an entry.
const MAX_FORWARDED: usize = 200;

/// An admin acting through the JSON API (403 for anyone else), and who to record it as.
pub struct Acting {
    pub claims: Claims,
    pub actor: Actor,
}

impl FromRequestParts<AppState> for Acting {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        require_admin(&claims)?;
        let actor = actor(&claims, "api", parts).await;
        Ok(Self { claims, actor })
    }
}

impl Acting {
    /// An admin signed in to the dashboard.
    pub async fn dashboard(claims: Claims, parts: &mut Parts) -> Self {
        let actor = actor(&claims, "dashboard", parts).await;
        Self { claims, actor }
    }

    /// Writes the audit entry of `action`, done.
    pub async fn record(&self, state: &AppState, action: Action) {
        let retention = state.settings.audit.retention();
        if let Err(error) = audit::record(&state.mongo, &self.actor, &action, retention).await {
            tracing::error!(
                %error,
                sub = %self.actor.sub,
                via = self.actor.via,
                from = %self.actor.from,
                action = %action.name,
                queue = action.queue.as_deref().unwrap_or_default(),
                jobs = ?action.job_ids,
                users = ?action.user_ids,
                detail = %action.detail,
                "could not write the audit log entry of an admin action"
            );
        }
    }
}

async fn actor(claims: &Claims, via: &'static str, parts: &mut Parts) -> Actor {
    let Ok(connection) = ClientConnection::from_request_parts(parts, &()).await;
    Actor {
        sub: claims.sub.clone(),
        role: claims.role.as_str().to_owned(),
        via,
        from: client_address(connection.peer(), parts),
    }
}

/// The peer's address, and what `X-Forwarded-For` says when a proxy sent one (as sent: it
/// names, it does not prove).
fn client_address(peer: Option<std::net::SocketAddr>, parts: &Parts) -> String {
    let peer = peer.map_or_else(|| "unknown".to_owned(), |addr| addr.ip().to_string());
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match forwarded {
        Some(chain) => {
            let chain: String = chain.chars().take(MAX_FORWARDED).collect();
            format!("{peer} (X-Forwarded-For: {chain})")
        }
        None => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_names_the_peer_and_what_a_proxy_forwarded() {
        let request = |forwarded: Option<&str>| {
            let mut builder = axum::http::Request::builder();
            if let Some(value) = forwarded {
                builder = builder.header("x-forwarded-for", value);
            }
            builder.body(()).unwrap().into_parts().0
        };
        let peer = Some("10.0.0.7:55000".parse().unwrap());
        assert_eq!(client_address(peer, &request(None)), "10.0.0.7");
        assert_eq!(
            client_address(peer, &request(Some("203.0.113.9, 10.0.0.1"))),
            "10.0.0.7 (X-Forwarded-For: 203.0.113.9, 10.0.0.1)"
        );
        let long = "1".repeat(500);
        assert!(client_address(None, &request(Some(&long))).len() < 250);
    }
}
