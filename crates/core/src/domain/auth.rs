//! API tokens: JWTs with `sub` (user id), `role` (`user` | `viewer` | `admin`), `iat` and `exp`, and `iss` /
//! `aud` when configured. [`Verifier`] checks HS256 tokens against `JWT_SECRET` and, when
//! `auth.jwt_public_key_file` is set, RS256 tokens against that public key, and RS256 tokens with a
//! `kid` against the keys of `auth.jwks_file` (rotated without a restart). Any other algorithm,
//! `alg: none` included, is refused. [`mint`] signs HS256 tokens for operators
//! (`sellersync token mint`), the local run and tests.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::infra::secret::Secret;
use crate::infra::settings::{Environment, Invalid, optional_secret};

/// Shortest JWT secret accepted: HS256 wants at least 256 bits of key.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// `auth.*`: how tokens are verified and minted.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 key. Required outside development/test unless an RS256 public key is configured.
    #[serde(default, deserialize_with = "optional_secret")]
    pub jwt_secret: Option<Secret>,
    /// PEM file with an RSA public key: RS256 tokens (from an identity provider) are accepted too.
    #[serde(default)]
    pub jwt_public_key_file: Option<std::path::PathBuf>,
    /// JWKS file (`{"keys": [...]}`) of RS256 keys chosen by the token's `kid`; read again when
    /// it changes, so keys rotate without a restart.
    #[serde(default)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// When set, tokens must carry this `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(rename = "leeway_secs", with = "crate::infra::settings::seconds")]
    pub leeway: Duration,
    /// Longest lifetime of a token this deployment mints (the CLI's `token`, dashboard sessions).
    #[serde(rename = "max_token_lifetime_secs", with = "crate::infra::settings::seconds")]
    pub max_token_lifetime: Duration,
}

impl AuthSettings {
    /// The verifier these settings describe, after the checks a deployment needs: outside
    /// development and test an HS256 secret must be long and not guessable, and RS256 keys
    /// need an issuer and an audience; key files must be readable keys.
    pub fn verifier(&self, environment: Environment) -> Result<Verifier, Invalid> {
        self.check_secret(environment)?;
        let rs256 = self.jwt_public_key_file.is_some() || self.jwks_file.is_some();
        let unscoped = rs256 && (self.issuer.is_none() || self.audience.is_none());
        if unscoped && !environment.is_local() {
            let missing = if self.issuer.is_none() {
                "auth.issuer"
            } else {
                "auth.audience"
            };
            return Err(Invalid::new(
                missing,
                "is required with auth.jwt_public_key_file: without issuer and audience checks, any app of the same identity provider could sign in",
            ));
        }
        if self.max_token_lifetime.as_secs() == 0 {
            return Err(Invalid::new("auth.max_token_lifetime_secs", "must be at least 1"));
        }
        Verifier::from_settings(self)
    }

    fn check_secret(&self, environment: Environment) -> Result<(), Invalid> {
        let rs256 = self.jwt_public_key_file.is_some() || self.jwks_file.is_some();
        let key = "auth.jwt_secret";
        match &self.jwt_secret {
            None if environment.is_local() || rs256 => Ok(()),
            None => Err(Invalid::new(
                key,
                format!("is required when SELLERSYNC_ENV={}", environment.name()),
            )),
            Some(secret) if secret.expose().len() < MIN_JWT_SECRET_LEN => Err(Invalid::new(
                key,
                format!("must be at least {MIN_JWT_SECRET_LEN} bytes long"),
            )),
            Some(secret) if !environment.is_local() => match weak_secret(secret.expose()) {
                Some(why) => Err(Invalid::new(
                    key,
                    format!("{why}; generate one with `openssl rand -base64 48`"),
                )),
                None => Ok(()),
            },
            Some(_) => Ok(()),
        }
    }
}

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
    if ttl > auth.max_token_lifetime {
        return Err(TokenError::Invalid(format!(
            "a token may live at most {} s (auth.max_token_lifetime_secs)",
            auth.max_token_lifetime.as_secs()
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

/// Names a key without revealing it: `<kind>:<first 128 bits of SHA-256 over a label and the
/// key material>` (a secret of at least 256 bits cannot be recovered from it).
fn key_id(kind: &str, material: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"sellersync key id\0");
    hash.update(material);
    format!("{kind}:{}", hex::encode(&hash.finalize()[..16]))
}

/// RS256 keys by `kid` from a JWKS file (`auth.jwks_file`), read again when the file changes, so
/// an identity provider's keys can be rotated without a restart: publish the new key beside the
/// old one, switch signing, remove the old key later.
struct Jwks {
    path: std::path::PathBuf,
    state: std::sync::RwLock<JwksState>,
}

struct JwksState {
    modified: Option<std::time::SystemTime>,
    checked: std::time::Instant,
    /// Each key by `kid`, with its [`key_id`].
    keys: std::collections::HashMap<String, (DecodingKey, String)>,
}

/// How often a verification looks at the file's modification time.
const JWKS_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Jwks {
    fn load(path: &std::path::Path) -> Result<Self, String> {
        let (modified, keys) = Self::read(path)?;
        Ok(Self {
            path: path.to_owned(),
            state: std::sync::RwLock::new(JwksState {
                modified,
                checked: std::time::Instant::now(),
                keys,
            }),
        })
    }

    /// The file's RS256 keys that have a `kid`; the error names what is wrong.
    #[allow(clippy::type_complexity)]
    fn read(
        path: &std::path::Path,
    ) -> Result<
        (
            Option<std::time::SystemTime>,
            std::collections::HashMap<String, (DecodingKey, String)>,
        ),
        String,
    > {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not a JWKS document: {e}", path.display()))?;
        let mut keys = std::collections::HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let key =
                DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?} in {}: {e}", path.display()))?;
            let material = serde_json::to_vec(jwk).unwrap_or_default();
            let id = key_id(&format!("jwks:{kid}"), &material);
            keys.insert(kid, (key, id));
        }
        if keys.is_empty() {
            return Err(format!("{} holds no key with a kid", path.display()));
        }
        Ok((modified, keys))
    }

    /// The key `kid`, after reloading the file if it changed (a file that became unreadable
    /// keeps the keys last read, and says so in the log).
    fn key(&self, kid: &str) -> Option<(DecodingKey, String)> {
        self.reload_if_changed();
        self.state.read().expect("not poisoned").keys.get(kid).cloned()
    }

    fn reload_if_changed(&self) {
        {
            let state = self.state.read().expect("not poisoned");
            if state.checked.elapsed() < JWKS_CHECK_INTERVAL {
                return;
            }
        }
        let mut state = self.state.write().expect("not poisoned");
        state.checked = std::time::Instant::now();
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified == state.modified {
            return;
        }
        match Self::read(&self.path) {
            Ok((modified, keys)) => {
                tracing::info!(path = %self.path.display(), keys = keys.len(), "JWKS reloaded");
                state.modified = modified;
                state.keys = keys;
            }
            Err(problem) => tracing::warn!(%problem, "JWKS not reloaded; keeping the keys last read"),
        }
    }
}

/// Verifies tokens as configured in `[auth]`. Built once, when the settings are loaded
/// ([`AuthSettings::verifier`]); the default has no key and refuses every token.
#[derive(Clone, Default)]
pub struct Verifier {
    /// The HS256 key and its [`key_id`].
    hs256: Option<(DecodingKey, String)>,
    /// The RS256 public key and its [`key_id`].
    rs256: Option<(DecodingKey, String)>,
    jwks: Option<std::sync::Arc<Jwks>>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_secs: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .field("jwks", &self.jwks.as_ref().map(|j| j.path.display().to_string()))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Verifier {
    /// Reads the RS256 public key and the JWKS file if configured; the error names the setting
    /// and what is wrong with its file.
    fn from_settings(auth: &AuthSettings) -> Result<Self, Invalid> {
        let rs256 = match &auth.jwt_public_key_file {
            None => None,
            Some(path) => {
                let problem = |problem: String| Invalid::new("auth.jwt_public_key_file", problem);
                let pem = std::fs::read(path)
                    .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    problem(format!("{} is not an RSA public key in PEM: {e}", path.display()))
                })?;
                Some((key, key_id("rs256", &pem)))
            }
        };
        let jwks = auth
            .jwks_file
            .as_deref()
            .map(Jwks::load)
            .transpose()
            .map_err(|problem| Invalid::new("auth.jwks_file", problem))?
            .map(std::sync::Arc::new);
        Ok(Self {
            jwks,
            hs256: auth.jwt_secret.as_ref().map(|secret| {
                let bytes = secret.expose().as_bytes();
                (DecodingKey::from_secret(bytes), key_id("hs256", bytes))
            }),
            rs256,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            leeway_secs: auth.leeway.as_secs(),
        })
    }

    /// Checks the algorithm, signature, expiry (with the leeway) and, when configured, issuer
    /// and audience. The error says which check failed, never the key.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_with_key(token).map(|(claims, _)| claims)
    }

    /// Like [`Verifier::verify`], also returning the id of the key that verified the token (see
    /// [`Verifier::trusts`]).
    pub fn verify_with_key(&self, token: &str) -> Result<(Claims, String), TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("malformed token or unsupported algorithm".into()))?;
        let by_kid = match (&header.kid, &self.jwks, header.alg) {
            (Some(kid), Some(jwks), Algorithm::RS256) => Some(
                jwks.key(kid)
                    .ok_or_else(|| TokenError::Invalid(format!("no key {kid:?} in the configured JWKS")))?,
            ),
            _ => None,
        };
        let key = match header.alg {
            _ if by_kid.is_some() => by_kid.as_ref(),
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            _ => None,
        }
        .ok_or_else(|| {
            let hint = match header.alg {
                Algorithm::HS256 => " (JWT_SECRET is not set)",
                Algorithm::RS256 => " (neither auth.jwt_public_key_file nor, with a kid, auth.jwks_file)",
                _ => "",
            };
            TokenError::Invalid(format!("algorithm {:?} is not accepted{hint}", header.alg))
        })?;
        let (key, id) = key;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation(header.alg))
            .map(|data| (data.claims, id.clone()))
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// True while the key `key_id` (from [`Verifier::verify_with_key`]) still verifies tokens:
    /// false once `JWT_SECRET` or the public key file changed (a restart), or the key left the
    /// JWKS file. What a session begun with a token is re-checked against on every request.
    pub fn trusts(&self, key_id: &str) -> bool {
        let current = |key: &Option<(DecodingKey, String)>| key.as_ref().is_some_and(|(_, id)| id == key_id);
        match key_id.split_once(':') {
            Some(("hs256", _)) => current(&self.hs256),
            Some(("rs256", _)) => current(&self.rs256),
            Some(("jwks", rest)) => {
                let Some((kid, _)) = rest.rsplit_once(':') else {
                    return false;
                };
                self.jwks
                    .as_ref()
                    .and_then(|jwks| jwks.key(kid))
                    .is_some_and(|(_, id)| id == key_id)
            }
            _ => false,
        }
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
            leeway: Duration::from_secs(60),
            max_token_lifetime: Duration::from_secs(3600),
            jwks_file: None,
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
    fn a_key_id_is_trusted_until_the_key_changes() {
        let auth = settings("0123456789abcdef0123456789abcdef");
        let verifier = Verifier::from_settings(&auth).unwrap();
        let token = mint(&auth, "ops", Role::Admin, Duration::from_secs(60)).unwrap();
        let (_, id) = verifier.verify_with_key(&token).unwrap();
        assert!(
            id.starts_with("hs256:") && !id.contains("0123456789abcdef"),
            "{id}"
        );
        assert!(verifier.trusts(&id));
        let rotated = Verifier::from_settings(&settings("another-secret-another-secret-xx")).unwrap();
        assert!(
            !rotated.trusts(&id),
            "a rotated secret ends what the old one began"
        );
        assert!(!verifier.trusts("") && !verifier.trusts("rs256:x") && !verifier.trusts("jwks:k"));
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
