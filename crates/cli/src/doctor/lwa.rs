//! Login with Amazon's check (`lwa`): the configured client id and secret are accepted by the
//! token endpoint (`SpApiClient::check_client_credentials`: no seller's token is involved).

use sellersync_core::Settings;
use sellersync_core::domain::spapi::{SpApiClient, SpApiError};

use super::{Check, Status, bounded, no_answer};

pub async fn check(settings: &Settings) -> Check {
    let mut spapi = settings.spapi.clone();
    let endpoint = spapi.token_url.clone();
    // One try: the doctor reports an outage instead of riding it out.
    spapi.max_retries = 0;
    let client = match SpApiClient::new(spapi) {
        Ok(client) => client,
        Err(error) => return Check::new("lwa", Status::Fail, error.to_string()),
    };
    let Some(answer) = bounded(client.check_client_credentials()).await else {
        return no_answer("lwa", &endpoint);
    };
    match answer {
        Ok(()) => Check::new(
            "lwa",
            Status::Ok,
            format!("{endpoint} accepts client id {}", settings.spapi.lwa_client_id),
        ),
        Err(SpApiError::InvalidClient(code)) => Check::new(
            "lwa",
            Status::Fail,
            format!(
                "{endpoint} refused the client id and secret ({code}): check LWA_CLIENT_ID and LWA_CLIENT_SECRET"
            ),
        ),
        Err(error) if error.is_retryable() => {
            Check::new("lwa", Status::Unreachable, format!("{endpoint}: {error}"))
        }
        Err(error) => Check::new("lwa", Status::Fail, format!("{endpoint}: {error}")),
    }
}
