//! Sending one delivery: the body in the webhook's format, signed, POSTed with a
//! [`WebhookClient`] (no redirects, public addresses only unless allowed); a 2xx is delivered,
//! anything else fails the attempt (retried by the queue) unless no retry can help (a 3xx or
//! 4xx answer, a target refused).

use std::time::Duration;

use super::{
    Delivery, EVENT_HEADER, Format, ID_HEADER, SIGNATURE_HEADER, Webhook, WebhookClient, signature,
    slack_message,
};

/// Why a delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another attempt: a timeout, a refused connection, a 5xx, 408 or 429.
    #[error("{0}")]
    Retryable(String),
    /// No retry can help: the webhook is gone from the configuration, its target is refused,
    /// or the receiver refused the request itself (4xx) or redirected it (3xx).
    #[error("{0}")]
    Permanent(String),
}

/// Sends `delivery` to its webhook among `webhooks`, with `timeout` per request.
pub async fn deliver(
    client: &WebhookClient,
    webhooks: &[Webhook],
    delivery: &Delivery,
    timeout: Duration,
) -> Result<u16, DeliveryError> {
    let Some(hook) = webhooks.iter().find(|w| w.name == delivery.webhook) else {
        return Err(DeliveryError::Permanent(format!(
            "webhook {:?} is no longer configured",
            delivery.webhook
        )));
    };
    let notification = &delivery.notification;
    let body = match hook.format {
        Format::Json => serde_json::to_vec(notification),
        Format::Slack => serde_json::to_vec(&slack_message(notification)),
    }
    .map_err(|e| DeliveryError::Permanent(format!("the notification does not serialise: {e}")))?;
    if let Some(why) = client.refuses(hook.url.expose()) {
        return Err(DeliveryError::Permanent(format!("webhook {}: {why}", hook.name)));
    }
    let now = chrono::Utc::now().timestamp();
    let response = client
        .http()
        .post(hook.url.expose())
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            SIGNATURE_HEADER,
            signature::sign(hook.secret.expose(), now, &body),
        )
        .header(EVENT_HEADER, notification.kind.as_str())
        .header(ID_HEADER, &notification.id)
        .body(body)
        .send()
        .await
        // Without the URL: it may carry a token (Slack's do).
        .map_err(|e| {
            let e = e.without_url();
            let message = format!("webhook {}: request failed: {}", hook.name, error_chain(&e));
            if refused(&e) {
                DeliveryError::Permanent(message)
            } else {
                DeliveryError::Retryable(message)
            }
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let message = format!("webhook {} answered {status}", hook.name);
    if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
        Err(DeliveryError::Retryable(message))
    } else {
        Err(DeliveryError::Permanent(message))
    }
}

/// True when the request failed because its target was refused (see [`super::target`]).
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<super::target::Refused>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// An error with its sources (a refused target says why only in the resolver's error).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
