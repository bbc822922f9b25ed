//! API tokens: JWTs with `sub` (user id), `role` (`user` | `viewer` | `admin`), `iat` and `exp`, and `iss` /
//! `aud` when configured. [`Verifier`] checks HS256 tokens against `JWT_SECRET` and, when
//! `auth.jwt_public_key_file` is set, RS256 tokens against that public key. Any other algorithm,
//! `alg: none` included, is refused. [`mint`] signs HS256 tokens for operators
//! (`sellersync token mint`), the local run and tests.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::AuthSettings;
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads its own user's data.
    User,
    /// Reads everything an admin reads (every admin GET route, the dashboard), changes nothing.
    Viewer,
    /// Reads and controls everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Viewer => "viewer",
            Self::Admin => "admin",
        }
    }
}

/// The claims the API uses. `iss` and `aud` are checked by [`Verifier`] but not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default)]
    pub iat: u64,
    pub exp: u64,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Admins and viewers read every user's data and every queue.
    pub fn reads_everything(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Viewer)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no JWT secret is configured (JWT_SECRET)")]
    NoSecret,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Why an HS256 secret is too weak for a deployment, if it is: a placeholder (the words of an
/// example file), or guessable (under 128 bits by its character frequencies: repeated or
/// few distinct characters).
pub fn weak_secret(secret: &str) -> Option<&'static str> {
    const PLACEHOLDERS: [&str; 6] = [
        "change-me",
        "changeme",
        "placeholder",
        "example",
        "your-secret",
        "secret-key",
    ];
    let lower = secret.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return Some("is a placeholder, not a secret");
    }
    let mut counts = std::collections::HashMap::new();
    for byte in secret.bytes() {
        *counts.entry(byte).or_insert(0u32) += 1;
    }
    let len = secret.len() as f64;
    let bits_per_char: f64 = counts
        .values()
        .map(|&n| {
            let p = f64::from(n) / len;
            -p * p.log2()
        })
        .sum();
    (bits_per_char * len < 128.0).then_some("is guessable (under 128 bits of entropy)")
}

/// A signed HS256 token for `subject` with `role`, valid for `ttl` (at most
/// `auth.max_token_lifetime_secs`), carrying the configured issuer and audience.
pub fn mint(auth: &AuthSettings, subject: &str, role: Role, ttl: Duration) -> Result<String, TokenError> {
    let secret = auth.jwt_secret.as_ref().ok_or(TokenError::NoSecret)?;
    if ttl.as_secs() > auth.max_token_lifetime_secs {
        return Err(TokenError::Invalid(format!(
            "a token may live at most {} s (auth.max_token_lifetime_secs)",
            auth.max_token_lifetime_secs
        )));
    }
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({ "sub": subject, "role": role, "iat": now, "exp": now + ttl.as_secs() });
    if let Some(issuer) = &auth.issuer {
        claims["iss"] = json!(issuer);
    }
    if let Some(audience) = &auth.audience {
        claims["aud"] = json!(audience);
    }
    sign_hs256(secret, &claims)
}

/// Signs any claims with HS256 (tests use it to forge tokens with odd claims).
pub fn sign_hs256(secret: &Secret, claims: &serde_json::Value) -> Result<String, TokenError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .map_err(|e| TokenError::Invalid(e.to_string()))
}

/// Verifies tokens as configured in `[auth]`. Built once at start-up.
#[derive(Clone)]
pub struct Verifier {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Verifier {
    /// Reads the RS256 public key if one is configured; the error names what is wrong with it.
    pub fn from_settings(auth: &AuthSettings) -> Result<Self, String> {
        let rs256 = match &auth.jwt_public_key_file {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let key = DecodingKey::from_rsa_pem(&pem)
                    .map_err(|e| format!("{} is not an RSA public key in PEM: {e}", path.display()))?;
                Some(key)
            }
        };
        Ok(Self {
            hs256: auth
                .jwt_secret
                .as_ref()
                .map(|secret| DecodingKey::from_secret(secret.expose().as_bytes())),
            rs256,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            leeway_secs: auth.leeway_secs,
        })
    }

    /// Checks the algorithm, signature, expiry (with the leeway) and, when configured, issuer
    /// and audience. The error says which check failed, never the key.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("malformed token or unsupported algorithm".into()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or_else(|| {
            let hint = match header.alg {
                Algorithm::HS256 => " (JWT_SECRET is not set)",
                Algorithm::RS256 => " (auth.jwt_public_key_file is not set)",
                _ => "",
            };
            TokenError::Invalid(format!("algorithm {:?} is not accepted{hint}", header.alg))
        })?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation(header.alg))
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: &str) -> AuthSettings {
        AuthSettings {
            jwt_secret: Some(Secret::new(secret)),
            jwt_public_key_file: None,
            issuer: None,
            audience: None,
            leeway_secs: 60,
            max_token_lifetime_secs: 3600,
        }
    }

    #[test]
    fn tokens_not_yet_valid_and_minted_beyond_the_lifetime_are_refused() {
        let auth = settings("0123456789abcdef0123456789abcdef");
        let verifier = Verifier::from_settings(&auth).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let early = json!({ "sub": "u1", "role": "user", "exp": now + 7200, "nbf": now + 3600 });
        let token = sign_hs256(auth.jwt_secret.as_ref().unwrap(), &early).unwrap();
        assert!(verifier.verify(&token).is_err(), "nbf an hour ahead");
        assert!(mint(&auth, "u1", Role::User, Duration::from_secs(3601)).is_err());
        assert!(mint(&auth, "u1", Role::User, Duration::from_secs(3600)).is_ok());
    }

    #[test]
    fn placeholder_and_guessable_secrets_are_weak() {
        assert!(weak_secret("change-me-to-at-least-32-random-bytes").is_some());
        assert!(weak_secret(&"a".repeat(64)).is_some());
        assert!(
            weak_secret(&"abcd".repeat(10)).is_some(),
            "2 bits a character: 80 bits"
        );
        assert!(weak_secret("q7Vd2LmX9pRt4KwZ8sNc3HyB6fJu1EaG5oTi0").is_none());
    }

    #[test]
    fn minted_tokens_verify_and_tampering_is_refused() {
        let auth = settings("0123456789abcdef0123456789abcdef");
        let token = mint(&auth, "admin-1", Role::Admin, Duration::from_secs(60)).unwrap();
        let claims = Verifier::from_settings(&auth).unwrap().verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("admin-1", Role::Admin));
        let other = Verifier::from_settings(&settings("another-secret-another-secret-xx")).unwrap();
        assert!(other.verify(&token).is_err());
        let mut no_secret = auth.clone();
        no_secret.jwt_secret = None;
        assert!(matches!(
            mint(&no_secret, "x", Role::User, Duration::from_secs(1)),
            Err(TokenError::NoSecret)
        ));
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let mut auth = settings("0123456789abcdef0123456789abcdef");
        let plain = mint(&auth, "u1", Role::User, Duration::from_secs(60)).unwrap();
        auth.issuer = Some("https://id.example".into());
        auth.audience = Some("sellersync".into());
        let verifier = Verifier::from_settings(&auth).unwrap();
        let error = verifier.verify(&plain).unwrap_err().to_string();
        assert!(error.contains("Missing required claim"), "{error}");
        let good = mint(&auth, "u1", Role::User, Duration::from_secs(60)).unwrap();
        assert_eq!(verifier.verify(&good).unwrap().sub, "u1");
        let mut other = auth.clone();
        other.audience = Some("someone-else".into());
        let wrong_audience = mint(&other, "u1", Role::User, Duration::from_secs(60)).unwrap();
        assert!(verifier.verify(&wrong_audience).is_err());
    }

    #[test]
    fn alg_none_and_unknown_algorithms_are_refused() {
        let auth = settings("0123456789abcdef0123456789abcdef");
        let verifier = Verifier::from_settings(&auth).unwrap();
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let exp = jsonwebtoken::get_current_timestamp() + 60;
        let claims = b64(&format!(r#"{{"sub":"a","role":"admin","exp":{exp}}}"#));
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"HS512","typ":"JWT"}"#] {
            let token = format!("{}.{claims}.", b64(header));
            assert!(verifier.verify(&token).is_err(), "{header}");
        }
    }
}
