//! `spapi.*`: how the SP-API client reaches Amazon (Login with Amazon credentials, one endpoint
//! per region, timeouts, retries and the longest wait for rate-limit tokens).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Region;
use crate::infra::secret::Secret;
use crate::infra::settings::{Environment, Invalid, http_url, positive};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpApiSettings {
    pub lwa_client_id: String,
    pub lwa_client_secret: Secret,
    pub token_url: String,
    #[serde(rename = "request_timeout_ms", with = "crate::infra::settings::millis")]
    pub request_timeout: Duration,
    pub max_retries: u32,
    #[serde(rename = "initial_backoff_ms", with = "crate::infra::settings::millis")]
    pub initial_backoff: Duration,
    #[serde(rename = "max_backoff_ms", with = "crate::infra::settings::millis")]
    pub max_backoff: Duration,
    /// Longest one call waits for rate-limit tokens (Amazon's usage plans) before its account is
    /// reported rate-bound, to be retried after the wait instead.
    #[serde(rename = "rate_limit_max_wait_ms", with = "crate::infra::settings::millis")]
    pub rate_limit_max_wait: Duration,
    pub endpoints: SpApiEndpoints,
}

/// The SP-API's base URL in each [`Region`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpApiEndpoints {
    pub na: String,
    pub eu: String,
    pub fe: String,
}

impl SpApiSettings {
    pub fn endpoint(&self, region: Region) -> &str {
        match region {
            Region::Na => &self.endpoints.na,
            Region::Eu => &self.endpoints.eu,
            Region::Fe => &self.endpoints.fe,
        }
    }

    /// Credentials are required outside development and test; every URL is http(s).
    pub fn validate(&self, environment: Environment) -> Result<(), Invalid> {
        if !environment.is_local() {
            for (key, missing) in [
                ("spapi.lwa_client_id", self.lwa_client_id.is_empty()),
                ("spapi.lwa_client_secret", self.lwa_client_secret.is_empty()),
            ] {
                if missing {
                    let problem = format!("is required when SELLERSYNC_ENV={}", environment.name());
                    return Err(Invalid::new(key, problem));
                }
            }
        }
        http_url("spapi.token_url", &self.token_url)?;
        http_url("spapi.endpoints.na", &self.endpoints.na)?;
        http_url("spapi.endpoints.eu", &self.endpoints.eu)?;
        http_url("spapi.endpoints.fe", &self.endpoints.fe)?;
        positive("spapi.request_timeout_ms", self.request_timeout)
    }
}
