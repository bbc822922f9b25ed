//! Notifications: webhooks told about events that need a person (a job failed for good, a
//! seller must authorize us again, a queue is unhealthy, an hourly tick gave up).
//!
//! - [`Notifier::notify`] enqueues one delivery job per interested webhook on the
//!   `notifications` queue, so deliveries are at-least-once, retried with the queue's backoff,
//!   survive worker restarts (leases), and are visible with their state in the queue API and
//!   dashboard. A notification's id is stable for its cause, and the delivery job's id is
//!   `<notification id>:<webhook>`, so a cause noticed twice (a replayed queue event) is
//!   delivered once.
//! - The body is the [`Notification`] as JSON, or a Slack incoming-webhook message
//!   ([`slack_message`]) for `format = "slack"`. Every request is signed
//!   ([`signature::sign`]): `X-Sellersync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//!   "<t>.<body>" keyed by the webhook's secret>`; receivers check it with
//!   [`signature::verify`] and refuse timestamps older than the replay window.
//! - [`deliver`] sends one delivery (the worker runs it on the `notifications` queue) with a
//!   [`WebhookClient`]: no redirects followed, and public addresses only unless
//!   `notifications.allow_private_targets` ([`target`]).

mod deliver;
pub mod signature;
pub mod target;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sellersync_queue::{EnqueueOptions, NewJob, Queue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::infra::error::CoreResult;
use crate::infra::secret::Secret;
use crate::infra::settings::Invalid;

pub use deliver::{DeliveryError, deliver};
pub use target::WebhookClient;

/// Shortest webhook signing secret: HMAC-SHA256 wants at least 256 bits of key.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 32;

/// The queue deliveries go through.
pub const NOTIFICATIONS_QUEUE: &str = "notifications";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Sellersync-Signature";
/// The event type header.
pub const EVENT_HEADER: &str = "X-Sellersync-Event";
/// The notification id header (receivers may deduplicate with it: delivery is at-least-once).
pub const ID_HEADER: &str = "X-Sellersync-Notification";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// A job failed for good (no attempt left, or an error no retry can fix).
    #[serde(rename = "job.failed")]
    JobFailed,
    /// A refresh found seller accounts whose seller must authorize sellersync again.
    #[serde(rename = "user.reauthorization_required")]
    ReauthorizationRequired,
    /// A health rule of `/api/admin/queues/health` broke.
    #[serde(rename = "queue.unhealthy")]
    QueueUnhealthy,
    /// An hourly tick failed until the next one was due.
    #[serde(rename = "tick.failed")]
    TickFailed,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobFailed => "job.failed",
            Self::ReauthorizationRequired => "user.reauthorization_required",
            Self::QueueUnhealthy => "queue.unhealthy",
            Self::TickFailed => "tick.failed",
        }
    }
}

/// Body format of a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The [`Notification`] as JSON.
    #[default]
    Json,
    /// A Slack incoming-webhook message (`{"text": ...}`).
    Slack,
}

/// One configured webhook (`[[notifications.webhooks]]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Unique; delivery jobs name the webhook by it (URLs and secrets stay out of Redis).
    pub name: String,
    /// Kept like a secret (a Slack webhook URL is one): never logged or shown by `config`.
    pub url: Secret,
    /// The events it wants (empty: all).
    #[serde(default)]
    pub events: Vec<EventType>,
    /// Signs every request (HMAC-SHA256); at least [`MIN_WEBHOOK_SECRET_LEN`] bytes.
    pub secret: Secret,
    #[serde(default)]
    pub format: Format,
}

impl Webhook {
    fn wants(&self, kind: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }
}

/// The JSON body of a webhook request (format `json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Stable for its cause (e.g. `job.failed:user-data:<job id>:<version>`): deduplicate on it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub occurred_at: DateTime<Utc>,
    /// One line for people.
    pub summary: String,
    /// Event details: `job.failed`: queue, jobId, userId, attempts, error;
    /// `user.reauthorization_required`: userId, jobId, accounts (`[{sellerId, region,
    /// marketplaceId}]`, the ones this refresh found withdrawn); `queue.unhealthy`: issues;
    /// `tick.failed`: tickId, error.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl Notification {
    pub fn new(kind: EventType, cause: &str, summary: impl Into<String>, data: Value) -> Self {
        Self {
            id: format!("{}:{cause}", kind.as_str()),
            kind,
            occurred_at: Utc::now(),
            summary: summary.into(),
            data,
        }
    }
}

/// A delivery job's payload: which webhook gets which notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub webhook: String,
    pub notification: Notification,
}

/// The Slack incoming-webhook message of a notification.
pub fn slack_message(notification: &Notification) -> Value {
    let icon = match notification.kind {
        EventType::JobFailed | EventType::TickFailed => ":x:",
        EventType::ReauthorizationRequired => ":key:",
        EventType::QueueUnhealthy => ":warning:",
    };
    serde_json::json!({
        "text": format!("{icon} *{}* {}", notification.kind.as_str(), notification.summary),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn",
                "text": format!("{icon} *{}*\n{}", notification.kind.as_str(), notification.summary) } },
            { "type": "context", "elements": [ { "type": "mrkdwn",
                "text": format!("`{}` at {}", notification.id, notification.occurred_at.to_rfc3339()) } ] },
        ],
    })
}

/// The notifier of `settings`, enqueueing on `queue` (the `notifications` queue), when any
/// webhook is configured.
pub fn notifier(settings: &NotificationSettings, queue: Queue) -> Option<Notifier> {
    if settings.webhooks.is_empty() {
        return None;
    }
    Some(Notifier::new(queue, settings.webhooks.clone()))
}

/// Enqueues notifications for the configured webhooks.
#[derive(Clone)]
pub struct Notifier {
    queue: Queue,
    webhooks: Vec<Webhook>,
}

impl Notifier {
    /// Delivers through `queue` (the `notifications` queue) to `webhooks`.
    pub fn new(queue: Queue, webhooks: Vec<Webhook>) -> Self {
        Self { queue, webhooks }
    }

    /// Whether any webhook wants `kind`.
    pub fn wants(&self, kind: EventType) -> bool {
        self.webhooks.iter().any(|w| w.wants(kind))
    }

    /// Enqueues a delivery of `notification` to each webhook that wants its type (once per
    /// notification id and webhook). Returns how many new deliveries were enqueued.
    pub async fn notify(&self, notifications: &[Notification]) -> CoreResult<usize> {
        let mut jobs = Vec::new();
        for notification in notifications {
            for hook in self.webhooks.iter().filter(|w| w.wants(notification.kind)) {
                let delivery = Delivery {
                    webhook: hook.name.clone(),
                    notification: notification.clone(),
                };
                let options = EnqueueOptions {
                    job_id: Some(format!("{}:{}", notification.id, hook.name)),
                    ..EnqueueOptions::default()
                };
                jobs.push(NewJob::new(&delivery, options)?);
            }
        }
        if jobs.is_empty() {
            return Ok(0);
        }
        let enqueued = self.queue.enqueue_bulk(&jobs).await?;
        Ok(enqueued.iter().filter(|e| !e.duplicate).count())
    }

    /// `job.failed` notifications for the failed-for-good events of `events` (from `queue`),
    /// with each job's user when its payload names one.
    pub async fn failed_jobs(
        queue: &Queue,
        events: &[sellersync_queue::events::JobEvent],
    ) -> CoreResult<Vec<Notification>> {
        use sellersync_queue::events::EventKind;
        let failed: Vec<_> = events.iter().filter(|e| e.kind == EventKind::Failed).collect();
        if failed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = failed.iter().map(|e| e.job_id.clone()).collect();
        let payloads = queue.payloads(&ids).await?;
        let name = queue.name();
        Ok(failed
            .iter()
            .zip(payloads)
            .map(|(e, payload)| {
                let user_id = payload
                    .and_then(|p| serde_json::from_str::<Value>(&p).ok())
                    .and_then(|p| p.get("userId").cloned())
                    .unwrap_or(Value::Null);
                let error = e.snapshot.last_error.clone().unwrap_or_default();
                Notification::new(
                    EventType::JobFailed,
                    &format!("{name}:{}:{}", e.job_id, e.version),
                    format!("job {} of queue {name} failed for good: {error}", e.job_id),
                    serde_json::json!({
                        "queue": name, "jobId": e.job_id, "userId": user_id,
                        "attempts": e.snapshot.attempt, "error": error, "failedBy": e.failed_by,
                    }),
                )
            })
            .collect())
    }
}

/// Webhook notifications (`crate::jobs::notify`), delivered through the `notifications` queue.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// One request's timeout.
    #[serde(rename = "timeout_ms", with = "crate::infra::settings::millis")]
    pub timeout: Duration,
    /// Receivers should refuse a signature older than this (documented in the signature header).
    #[serde(rename = "replay_window_secs", with = "crate::infra::settings::seconds")]
    pub replay_window: Duration,
    /// How often the API checks queue health for `queue.unhealthy` notifications.
    #[serde(rename = "health_check_interval_ms", with = "crate::infra::settings::millis")]
    pub health_check_interval: Duration,
    /// An unhealthy queue is notified again after this long if it stays unhealthy.
    #[serde(rename = "unhealthy_repeat_ms", with = "crate::infra::settings::millis")]
    pub unhealthy_repeat: Duration,
    /// Lets webhooks reach loopback, private and link-local addresses (receivers inside your
    /// network, tests); off, only public addresses are reached.
    pub allow_private_targets: bool,
    #[serde(default)]
    pub webhooks: Vec<crate::jobs::notify::Webhook>,
}

impl NotificationSettings {
    /// Checks the webhooks: unique names, http(s) URLs (not a private address unless allowed),
    /// a secret of at least [`MIN_WEBHOOK_SECRET_LEN`] bytes each. Errors name the key.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.timeout.is_zero() || self.health_check_interval.is_zero() {
            return Err(Invalid::new(
                "notifications.timeout_ms",
                "timeout_ms and health_check_interval_ms must be at least 1",
            ));
        }
        let mut names = HashSet::new();
        for (i, hook) in self.webhooks.iter().enumerate() {
            let key = format!("notifications.webhooks[{i}]");
            if hook.name.is_empty() || !names.insert(hook.name.as_str()) {
                return Err(Invalid::new(
                    key,
                    format!("name {:?} must be set and unique", hook.name),
                ));
            }
            let url = hook.url.expose();
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(Invalid::new(format!("{key}.url"), "must be an http(s) URL"));
            }
            if !self.allow_private_targets
                && let Some(why) = target::refused_literal(url)
            {
                return Err(Invalid::new(format!("{key}.url"), why));
            }
            if hook.secret.expose().len() < MIN_WEBHOOK_SECRET_LEN {
                return Err(Invalid::new(
                    format!("{key}.secret"),
                    format!(
                        "must be at least {MIN_WEBHOOK_SECRET_LEN} bytes (every request is signed with it); \
                         generate one with `openssl rand -base64 48`"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_have_dotted_names_and_slack_gets_text() {
        let n = Notification::new(
            EventType::TickFailed,
            "2026-11-25T14:00:00Z",
            "tick gave up",
            Value::Null,
        );
        assert_eq!(n.id, "tick.failed:2026-11-25T14:00:00Z");
        let body = serde_json::to_value(&n).unwrap();
        assert_eq!(body["type"], "tick.failed");
        assert!(body["occurredAt"].is_string());
        let slack = slack_message(&n);
        assert!(slack["text"].as_str().unwrap().contains("tick.failed"));
        assert!(slack["text"].as_str().unwrap().contains("tick gave up"));
    }

    #[test]
    fn webhooks_need_unique_names_http_urls_and_a_secret() {
        let hook = |name: &str, url: &str, secret: &str| Webhook {
            name: name.into(),
            url: Secret::new(url),
            events: Vec::new(),
            secret: Secret::new(secret),
            format: Format::Json,
        };
        let settings = |webhooks| NotificationSettings {
            timeout: Duration::from_secs(1),
            replay_window: Duration::from_secs(300),
            health_check_interval: Duration::from_secs(1),
            unhealthy_repeat: Duration::from_secs(1),
            allow_private_targets: false,
            webhooks,
        };
        let s = "0123456789abcdef0123456789abcdef";
        assert!(settings(vec![hook("a", "https://x/h", s)]).validate().is_ok());
        let bad = [
            (
                vec![hook("a", "https://x", s), hook("a", "https://y", s)],
                "",
                "unique",
            ),
            (vec![hook("a", "ftp://x", s)], ".url", "http(s)"),
            (vec![hook("a", "https://x", "")], ".secret", "at least 32 bytes"),
            (
                vec![hook("a", "https://x", &s[1..])],
                ".secret",
                "at least 32 bytes",
            ),
            (
                vec![hook("a", "http://127.0.0.1:9/h", s)],
                ".url",
                "allow_private_targets",
            ),
            (
                vec![hook("a", "http://[fe80::1]/h", s)],
                ".url",
                "not a public address",
            ),
        ];
        for (hooks, field, problem) in bad {
            let Invalid {
                key,
                problem: message,
            } = settings(hooks).validate().unwrap_err();
            assert!(
                key.starts_with("notifications.webhooks[") && key.ends_with(field),
                "{key}"
            );
            assert!(message.contains(problem), "{message}");
            assert!(
                !message.contains(s) && !message.contains("127.0.0.1"),
                "{message}"
            );
        }
        let mut allowed = settings(vec![hook("a", "http://127.0.0.1:9/h", s)]);
        allowed.allow_private_targets = true;
        assert!(allowed.validate().is_ok());
        let mut fields = serde_json::to_string(&hook("a", "https://hooks.slack.com/T/B/tok", "s")).unwrap();
        fields.retain(|c| c != ' ');
        assert!(!fields.contains("tok") && !fields.contains("\"s\""), "{fields}");
    }
}
