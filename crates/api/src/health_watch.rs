//! `queue.unhealthy` notifications: every `notifications.health_check_interval_ms` the API
//! evaluates the health rules of `/api/admin/queues/health`; when a queue breaks one, the
//! webhooks are told once, across every replica (a Redis key, `<prefix>notify:unhealthy`, set
//! only if absent), and again after `notifications.unhealthy_repeat_ms` if it stays unhealthy.
//! Back to healthy, the key goes, so the next problem is told at once.

use redis::AsyncCommands;
use sellersync_core::CoreError;
use sellersync_core::bootstrap::unless_stopping;
use sellersync_core::jobs::notify::{EventType, Notification, Notifier};
use tokio::sync::watch;

use crate::monitoring;
use crate::state::AppState;

/// Checks until `stop` turns true.
pub async fn run(state: AppState, notifier: Notifier, mut stop: watch::Receiver<bool>) {
    let every = state.settings.notifications.health_check_interval;
    while unless_stopping(&mut stop, tokio::time::sleep(every))
        .await
        .is_some()
    {
        if let Err(error) = check(&state, &notifier).await {
            tracing::debug!(%error, "queue health check for notifications failed");
        }
    }
}

/// One check; returns whether a notification was enqueued.
pub async fn check(state: &AppState, notifier: &Notifier) -> Result<bool, crate::error::ApiError> {
    let stats = monitoring::all_stats(&state.queues).await?;
    let (issues, _) = monitoring::health(&state.queues, &state.settings, &stats).await?;
    let key = format!("{}notify:unhealthy", state.settings.redis.key_prefix);
    let mut redis = state.redis.clone();
    if issues.is_empty() {
        let _: i64 = redis.del(&key).await.map_err(CoreError::from)?;
        return Ok(false);
    }
    let now = chrono::Utc::now().timestamp_millis();
    let repeat = state.settings.notifications.unhealthy_repeat.as_millis() as u64;
    let options = redis::SetOptions::default()
        .conditional_set(redis::ExistenceCheck::NX)
        .with_expiration(redis::SetExpiry::PX(repeat));
    let first: Option<String> = redis
        .set_options(&key, now, options)
        .await
        .map_err(CoreError::from)?;
    if first.is_none() {
        return Ok(false);
    }
    let notification = Notification::new(
        EventType::QueueUnhealthy,
        &now.to_string(),
        issues.join("; "),
        serde_json::json!({ "issues": issues }),
    );
    notifier.notify(&[notification]).await?;
    Ok(true)
}
