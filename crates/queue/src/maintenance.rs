//! Duties every running worker performs beside its jobs (run by the apalis backend): heartbeats extending the leases it holds, reaping of expired leases (returning jobs of
//! dead workers), age-based retention, and the idle wait between empty fetches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::QueueResult;
use crate::queue::{Queue, Reaped, now_ms};

/// Fires when an attempt's lease is lost (reaped after a stall of this worker, removed, leased
/// again): the attempt must stop, and nothing it writes later is accepted anyway.
#[derive(Debug, Clone, Default)]
pub struct LeaseLost(Arc<(AtomicBool, Notify)>);

impl LeaseLost {
    pub(crate) fn mark(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    pub fn is_lost(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    /// Resolves once the lease is lost (never, while it is held).
    pub async fn wait(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.is_lost() {
                return;
            }
            notified.await;
        }
    }
}

/// One attempt a worker holds (buffered or running).
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub token: u64,
    pub lost: LeaseLost,
}

/// Attempts a worker holds: job id → its lease. Heartbeats extend these leases.
pub(crate) type Leases = Arc<Mutex<HashMap<String, Held>>>;

/// Forgets the lease of `id` if it is still the one with `token` (a newer attempt of the same job
/// keeps its own).
pub(crate) fn forget(leases: &Leases, id: &str, token: u64) {
    let mut held = leases.lock().expect("leases lock");
    if held.get(id).is_some_and(|h| h.token == token) {
        held.remove(id);
    }
}

/// Heartbeat, reap and retention for `worker_id` until the task is aborted. The heartbeat goes
/// first whenever both are due, so after a stall the worker renews its own leases before it
/// judges anyone's.
pub(crate) async fn run(
    queue: Queue,
    worker_id: String,
    leases: Leases,
    concurrency: usize,
    on_heartbeat: Option<crate::apalis::HeartbeatHook>,
) {
    let mut heartbeat = tokio::time::interval(queue.config().heartbeat());
    let mut reap = tokio::time::interval(queue.config().reap_interval());
    let mut retention = tokio::time::interval(Duration::from_secs(60));
    let started_ms = now_ms();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    loop {
        tokio::select! {
            biased;
            _ = heartbeat.tick() => {
                let held: Vec<(String, u64)> = leases
                    .lock()
                    .expect("leases lock")
                    .iter()
                    .map(|(id, h)| (id.clone(), h.token))
                    .collect();
                let info = serde_json::json!({
                    "host": host, "pid": std::process::id(), "startedAtMs": started_ms,
                    "concurrency": concurrency, "inFlight": held.len(),
                });
                let taken = match queue.heartbeat(&worker_id, &info, &held).await {
                    Ok(lost) => {
                        cancel_lost(&leases, &held, &lost);
                        true
                    }
                    Err(error) => {
                        tracing::warn!(%error, "heartbeat failed");
                        false
                    }
                };
                if let Some(hook) = &on_heartbeat {
                    hook(taken);
                }
            }
            _ = reap.tick() => match queue.reap().await {
                Ok(Reaped { requeued: 0, failed: 0, graced: false }) => {}
                Ok(Reaped { graced: true, .. }) => tracing::warn!("no reaper reached Redis for a while (a Redis stall?): every lease got one more period"),
                Ok(Reaped { requeued, failed, .. }) => tracing::warn!(requeued, failed, "recovered jobs whose lease expired"),
                Err(error) => tracing::warn!(%error, "reaping expired leases failed"),
            },
            _ = retention.tick() => if let Err(error) = queue.apply_retention().await {
                tracing::warn!(%error, "retention failed");
            },
        }
    }
}

/// Marks the attempts whose lease the heartbeat found lost, and forgets them.
fn cancel_lost(leases: &Leases, sent: &[(String, u64)], lost: &[String]) {
    for id in lost {
        let Some((_, token)) = sent.iter().find(|(sent_id, _)| sent_id == id) else {
            continue;
        };
        let removed = {
            let mut held = leases.lock().expect("leases lock");
            match held.get(id) {
                Some(h) if h.token == *token => held.remove(id),
                _ => None,
            }
        };
        if let Some(held) = removed {
            tracing::warn!(job_id = %id, token, "lease lost; stopping the attempt");
            held.lost.mark();
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

/// Retries a queue call while Redis is unavailable, for up to ~60 s (past a long Redis stall or
/// a restart); `None` if it never worked.
pub(crate) async fn retry_unavailable<T, F, Fut>(mut call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = QueueResult<T>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..16 {
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
