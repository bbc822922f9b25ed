//! Whether Login with Amazon accepts the configured client id and secret, without a seller:
//! `sellersync doctor`'s LWA check.

use super::{Credentials, Region, SpApiClient, SpApiError};
use crate::infra::secret::Secret;

/// A refresh token no LWA grant can have (real ones start with `Atzr|`).
const PROBE_REFRESH_TOKEN: &str = "sellersync-doctor-probe";

impl SpApiClient {
    /// Exchanges a refresh token that cannot be valid. LWA authenticates the client before it
    /// looks at the grant (OAuth 2.0, RFC 6749 section 5.2), so `invalid_grant` means the client
    /// id and secret were accepted, and `invalid_client` that they were not
    /// ([`SpApiError::InvalidClient`]). Any other error is returned as it is (an unreachable
    /// endpoint is [`SpApiError::Connection`] or [`SpApiError::Timeout`]).
    pub async fn check_client_credentials(&self) -> Result<(), SpApiError> {
        let probe = Credentials {
            account_id: PROBE_REFRESH_TOKEN.to_owned(),
            seller_id: PROBE_REFRESH_TOKEN.to_owned(),
            region: Region::Na,
            refresh_token: Secret::new(PROBE_REFRESH_TOKEN),
        };
        match self.exchange(&probe).await {
            Ok(_) | Err(SpApiError::InvalidGrant) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
