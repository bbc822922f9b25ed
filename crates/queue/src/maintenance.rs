//! Duties every running worker performs beside its jobs (run by the apalis backend): heartbeats extending the leases it holds, reaping of expired leases (returning jobs of
//! dead workers), age-based retention, and the idle wait between empty fetches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::QueueResult;
use crate::queue::{Queue, now_ms};

/// Jobs a worker holds (buffered or running): job id → attempt. Heartbeats extend these leases.
pub(crate) type Leases = Arc<Mutex<HashMap<String, u32>>>;

/// Heartbeat, reap and retention for `worker_id` until the task is aborted.
pub(crate) async fn run(queue: Queue, worker_id: String, leases: Leases, concurrency: usize) {
    let mut heartbeat = tokio::time::interval(queue.config().heartbeat());
    let mut reap = tokio::time::interval(queue.config().reap_interval());
    let mut retention = tokio::time::interval(Duration::from_secs(60));
    let started_ms = now_ms();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let ids: Vec<String> = leases.lock().expect("leases lock").keys().cloned().collect();
                let info = serde_json::json!({
                    "host": host, "pid": std::process::id(), "startedAtMs": started_ms,
                    "concurrency": concurrency, "inFlight": ids.len(),
                });
                if let Err(error) = queue.heartbeat(&worker_id, &info, &ids).await {
                    tracing::warn!(%error, "heartbeat failed");
                }
            }
            _ = reap.tick() => match queue.reap().await {
                Ok((0, 0)) => {}
                Ok((requeued, failed)) => tracing::warn!(requeued, failed, "recovered jobs whose lease expired"),
                Err(error) => tracing::warn!(%error, "reaping expired leases failed"),
            },
            _ = retention.tick() => if let Err(error) = queue.apply_retention().await {
                tracing::warn!(%error, "retention failed");
            },
        }
    }
}

/// How long to block when a fetch found nothing: until the next delayed job is due, at most `idle`.
pub(crate) fn idle_wait(idle: Duration, next_due_ms: Option<u64>, paused: bool) -> Duration {
    let until_due = next_due_ms
        .filter(|_| !paused)
        .map(|due| Duration::from_millis(due.saturating_sub(now_ms())));
    until_due
        .map_or(idle, |d| d.min(idle))
        .max(Duration::from_millis(10))
}

/// Retries a queue call while Redis is unavailable, for up to ~30 s; `None` if it never worked.
pub(crate) async fn retry_unavailable<T, F, Fut>(mut call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = QueueResult<T>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..10 {
        match call().await {
            Ok(value) => return Some(value),
            Err(error) if error.is_unavailable() => {
                tracing::warn!(%error, "redis unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                tracing::error!(%error, "queue call failed");
                return None;
            }
        }
    }
    None
}
