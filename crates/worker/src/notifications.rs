//! The `notifications` queue's handler: deliver one webhook request per job (see
//! `sellersync_core::jobs::notify`). A 2xx completes the job; a timeout, 5xx, 408 or 429 fails the
//! attempt, retried with the queue's backoff; anything else (a redirect, a 4xx, a refused
//! target) fails it for good.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use sellersync_core::jobs::notify::{self, Delivery, DeliveryError, Webhook, WebhookClient};
use sellersync_queue::apalis::NonRetryable;

/// What every delivery shares.
#[derive(Clone)]
pub struct DeliveryState {
    pub client: WebhookClient,
    pub webhooks: Arc<Vec<Webhook>>,
    pub timeout: Duration,
}

impl DeliveryState {
    pub fn new(settings: &sellersync_core::Settings) -> Self {
        Self {
            client: WebhookClient::new(settings.notifications.allow_private_targets),
            webhooks: Arc::new(settings.notifications.webhooks.clone()),
            timeout: settings.notifications.timeout,
        }
    }
}

/// The apalis handler of delivery jobs; the receiver's status becomes the job's result.
pub async fn deliver(delivery: Delivery, state: Data<DeliveryState>) -> Result<u16, BoxDynError> {
    match notify::deliver(&state.client, &state.webhooks, &delivery, state.timeout).await {
        Ok(status) => Ok(status),
        Err(DeliveryError::Permanent(message)) => Err(NonRetryable(message).into()),
        Err(error @ DeliveryError::Retryable(_)) => Err(error.into()),
    }
}
