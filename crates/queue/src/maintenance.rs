//! Duties every running worker performs beside its jobs (run by the apalis backend): heartbeats
//! extending the leases it holds, self-fencing (an attempt whose lease could not be renewed for
//! a lease period and a heartbeat is stopped by its own worker, before another worker can have
//! it: a worker cut off from Redis does not run on until the job timeout), reaping of expired
//! leases (returning jobs of dead workers), age-based retention, and the idle wait between empty
//! fetches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use backon::{ExponentialBuilder, Retryable};

use crate::error::{QueueError, QueueResult};
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

/// One attempt a worker holds (buffered, running, or finished with its outcome on its way).
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub token: u64,
    pub lost: LeaseLost,
    /// Its handler has returned: the lease stays held (and heartbeated) until the outcome is
    /// recorded, but its slot is as good as free (see `RedisBackend::fetch`).
    pub finished: bool,
    /// When the call that last renewed the lease in Redis (its lease, or a heartbeat Redis
    /// took) was sent: Redis's deadline for it is no earlier than this plus the lease.
    pub renewed_at: Instant,
}

/// Called after every heartbeat of the backend's maintenance loop, with whether Redis took it:
/// proof that the worker's loop runs (a systemd watchdog, a health endpoint).
pub type HeartbeatHook = Arc<dyn Fn(bool) + Send + Sync>;

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

/// Marks the attempt `id`/`token` finished (its handler returned).
pub(crate) fn mark_finished(leases: &Leases, id: &str, token: u64) {
    let mut held = leases.lock().expect("leases lock");
    if let Some(h) = held.get_mut(id).filter(|h| h.token == token) {
        h.finished = true;
    }
}

/// Attempts whose handler has not returned yet (buffered or running).
pub(crate) fn unfinished(leases: &Leases) -> usize {
    leases
        .lock()
        .expect("leases lock")
        .values()
        .filter(|h| !h.finished)
        .count()
}

/// Heartbeat, self-fencing, reap and retention for `worker_id` until the task is aborted.
pub(crate) async fn run(
    queue: Queue,
    worker_id: String,
    leases: Leases,
    concurrency: usize,
    on_heartbeat: Option<HeartbeatHook>,
) {
    // Separate loops: a heartbeat or reap stuck on an unreachable Redis must not hold up the
    // self-fencing that exists for exactly that case.
    let limit = queue.config().lease() + queue.config().heartbeat();
    tokio::select! {
        () = duties(queue.clone(), worker_id.clone(), Arc::clone(&leases), concurrency, on_heartbeat) => {}
        () = self_fence(queue, worker_id, leases, limit) => {}
    }
}

/// Heartbeat, reap and retention. The heartbeat goes first whenever both are due, so after a
/// stall the worker renews its own leases before it judges anyone's.
async fn duties(
    queue: Queue,
    worker_id: String,
    leases: Leases,
    concurrency: usize,
    on_heartbeat: Option<HeartbeatHook>,
) {
    let mut heartbeat = tokio::time::interval(queue.config().heartbeat());
    let mut reap = tokio::time::interval(queue.config().reap_interval());
    let mut retention = tokio::time::interval(Duration::from_secs(60));
    // The first trim one period after start (as a projector's), not at once.
    let mut trim = tokio::time::interval_at(Instant::now() + EVENT_TRIM_EVERY, EVENT_TRIM_EVERY);
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
                let sent_at = Instant::now();
                let taken = match queue.heartbeat(&worker_id, &info, &held).await {
                    Ok(lost) => {
                        cancel_lost(&leases, &held, &lost);
                        renewed(&leases, &held, sent_at);
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
            // Bounds the event stream even where no projector runs.
            _ = trim.tick() => if let Err(error) = queue.trim_events().await {
                tracing::debug!(%error, "trimming the event stream failed");
            },
        }
    }
}

/// How often every worker trims its queue's event stream (behind its consumer groups, and to the
/// cap).
const EVENT_TRIM_EVERY: Duration = Duration::from_secs(10);

/// Records that Redis renewed the leases `sent` (those still held under the same token) by a
/// call sent at `sent_at`.
fn renewed(leases: &Leases, sent: &[(String, u64)], sent_at: Instant) {
    let mut held = leases.lock().expect("leases lock");
    for (id, token) in sent {
        if let Some(h) = held.get_mut(id).filter(|h| h.token == *token) {
            h.renewed_at = h.renewed_at.max(sent_at);
        }
    }
}

/// Every heartbeat interval, stops the attempts whose lease was not renewed for `limit` (a lease
/// period and a heartbeat): Redis may have let it expire, and another worker may run the job
/// next. Their jobs are handed back as soon as Redis answers, if the leases are still ours (a
/// Redis paused for everyone: no stall, the job just runs again); if another worker holds them
/// (this one was cut off), the hand-back is refused and changes nothing.
async fn self_fence(queue: Queue, worker_id: String, leases: Leases, limit: Duration) {
    let mut tick = tokio::time::interval(queue.config().heartbeat());
    loop {
        tick.tick().await;
        let stopped: Vec<(String, u64)> = expired(&leases, Instant::now(), limit)
            .into_iter()
            .map(|(id, held)| {
                tracing::warn!(job_id = %id, token = held.token, stale_ms = held.renewed_at.elapsed().as_millis() as u64, "lease not renewed for a lease period; stopping the attempt");
                held.lost.mark();
                (id, held.token)
            })
            .collect();
        if !stopped.is_empty() {
            let (queue, worker_id) = (queue.clone(), worker_id.clone());
            tokio::spawn(async move {
                retry_unavailable(|| queue.hand_back(&worker_id, &stopped, false)).await;
            });
        }
    }
}

/// Takes out of `leases` those not renewed within `limit` of `now`.
fn expired(leases: &Leases, now: Instant, limit: Duration) -> Vec<(String, Held)> {
    let mut held = leases.lock().expect("leases lock");
    let stale: Vec<String> = held
        .iter()
        .filter(|(_, h)| now.duration_since(h.renewed_at) >= limit)
        .map(|(id, _)| id.clone())
        .collect();
    stale
        .into_iter()
        .filter_map(|id| held.remove(&id).map(|h| (id, h)))
        .collect()
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

/// Runs `work` unless `stop` turns true first (`None` then, and `work` is dropped): how a
/// task told to stop through a watch channel ends its waits. The backend's fetch uses it, and
/// so do the API's background tasks (through `sellersync_core::bootstrap`).
pub async fn unless_stopping<T>(
    stop: &mut tokio::sync::watch::Receiver<bool>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        value = work => Some(value),
        _ = stop.wait_for(|stopped| *stopped) => None,
    }
}

/// Retries a queue call while Redis is unavailable, for up to ~60 s (past a long Redis stall or
/// a restart); `None` if it never worked.
pub(crate) async fn retry_unavailable<T, F, Fut>(call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = QueueResult<T>>,
{
    let result = call
        .retry(unavailable_backoff())
        .when(QueueError::is_unavailable)
        .notify(|error, _| tracing::warn!(%error, "redis unavailable; retrying"))
        .await;
    match result {
        Ok(value) => Some(value),
        Err(error) if error.is_unavailable() => {
            tracing::error!(%error, "redis still unavailable; giving up on this call");
            None
        }
        Err(error) => {
            tracing::error!(%error, "queue call failed");
            None
        }
    }
}

/// [`retry_unavailable`]'s waits: 100 ms doubling up to 5 s, 15 of them (16 calls, ~60 s).
fn unavailable_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_max_times(15)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use backon::BackoffBuilder;

    use super::*;

    #[test]
    fn a_lease_not_renewed_for_the_limit_is_taken_out_and_its_attempt_stopped() {
        let leases: Leases = Arc::default();
        let start = Instant::now();
        let held = |token, renewed_at| Held {
            token,
            lost: LeaseLost::default(),
            finished: false,
            renewed_at,
        };
        leases.lock().unwrap().insert("old".into(), held(1, start));
        leases
            .lock()
            .unwrap()
            .insert("fresh".into(), held(2, start + Duration::from_secs(4)));
        let limit = Duration::from_secs(5);
        assert!(expired(&leases, start + Duration::from_millis(4999), limit).is_empty());
        let gone = expired(&leases, start + limit, limit);
        assert_eq!(
            gone.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["old"]
        );
        assert!(leases.lock().unwrap().contains_key("fresh"));

        renewed(&leases, &[("fresh".into(), 2)], start + Duration::from_secs(6));
        assert!(
            expired(&leases, start + Duration::from_secs(10), limit).is_empty(),
            "renewed"
        );
    }

    #[tokio::test]
    async fn work_under_way_ends_when_its_task_is_told_to_stop() {
        let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
        assert_eq!(unless_stopping(&mut stop, async { 7 }).await, Some(7));
        let pending =
            tokio::spawn(async move { unless_stopping(&mut stop, std::future::pending::<()>()).await });
        tokio::task::yield_now().await;
        assert!(
            !pending.is_finished(),
            "work runs until it is done or its task is told to stop"
        );
        stop_tx.send(true).unwrap();
        let stopped = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("the work ends when its task is told to stop")
            .unwrap();
        assert_eq!(stopped, None);
    }

    fn unavailable() -> QueueError {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        QueueError::Redis(redis::RedisError::from(refused))
    }

    #[test]
    fn unavailable_calls_wait_100_ms_doubling_to_5_s_fifteen_times() {
        let waits: Vec<u64> = unavailable_backoff()
            .build()
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(waits.len(), 15);
        assert_eq!(&waits[..7], &[100, 200, 400, 800, 1600, 3200, 5000]);
        assert!(waits[7..].iter().all(|w| *w == 5000), "{waits:?}");
    }

    #[tokio::test]
    async fn an_unavailable_call_is_retried_and_any_other_error_is_not() {
        let calls = AtomicU32::new(0);
        let value = retry_unavailable(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(unavailable()),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!((value, calls.load(Ordering::SeqCst)), (Some(7), 3));

        let calls = AtomicU32::new(0);
        let value: Option<u32> = retry_unavailable(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(QueueError::NotFound("j".into()))
        })
        .await;
        assert_eq!((value, calls.load(Ordering::SeqCst)), (None, 1));
    }
}
