//! Building blocks of the settings types that each part of the crate owns (`RedisSettings` in
//! [`super::connections`], `AuthSettings` in [`crate::domain::auth`], ...): durations written in
//! milliseconds, optional secrets, and the error a part's own check returns. [`crate::config`]
//! composes the parts' settings and turns an [`Invalid`] into a `ConfigError` naming the
//! setting's environment variable.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::secret::Secret;

/// A setting a part rejected: its dotted key (`redis.tls_cert_file`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct Invalid {
    pub key: String,
    pub problem: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Which deployment this is; picks `config/<name>.toml` and relaxes a few checks in development.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Test,
    Staging,
    Production,
}

impl Environment {
    pub fn parse(name: &str) -> Result<Self, Invalid> {
        match name.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "staging" => Ok(Self::Staging),
            "production" | "prod" => Ok(Self::Production),
            other => Err(Invalid::new(
                "SELLERSYNC_ENV",
                format!("unknown environment {other:?} (expected development, test, staging or production)"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }

    /// Development and test may run without a configured JWT secret.
    pub fn is_local(self) -> bool {
        matches!(self, Self::Development | Self::Test)
    }
}

/// Rejects a zero duration: every timeout and interval in the settings must be positive.
pub fn positive(key: &str, value: Duration) -> Result<(), Invalid> {
    if value.is_zero() {
        return Err(Invalid::new(key, "must be greater than 0 milliseconds"));
    }
    Ok(())
}

/// `#[serde(with = "millis")]`: a [`Duration`] written as whole milliseconds (`*_ms` keys).
pub mod millis {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// `#[serde(with = "seconds")]`: a [`Duration`] written as whole seconds (`*_secs` keys).
pub mod seconds {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

/// Empty strings count as "not set", so `REDIS_PASSWORD=` behaves like an absent password. Numbers
/// are accepted too: figment reads `REDIS_PASSWORD=12345` from the environment as an integer.
pub fn optional_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let value = Option::<Scalar>::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("expected a string"))?;
    Ok(value
        .map(|v| match v {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        })
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

/// An `http://` or `https://` URL, checked when the settings are read.
pub fn http_url(key: &str, url: &str) -> Result<(), Invalid> {
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    Err(Invalid::new(key, format!("{url:?} is not an http(s) URL")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, serde::Serialize)]
    struct Timeouts {
        #[serde(rename = "wait_ms", with = "millis")]
        wait: Duration,
        #[serde(rename = "ttl_secs", with = "seconds")]
        ttl: Duration,
    }

    #[test]
    fn durations_read_and_write_their_unit() {
        let t: Timeouts = serde_json::from_str(r#"{"wait_ms": 1500, "ttl_secs": 60}"#).unwrap();
        assert_eq!(
            (t.wait, t.ttl),
            (Duration::from_millis(1500), Duration::from_secs(60))
        );
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"wait_ms":1500,"ttl_secs":60}"#
        );
        assert!(positive("x", Duration::ZERO).is_err());
        assert!(http_url("k", "ftp://x").unwrap_err().problem.contains("ftp://x"));
    }
}
