//! The user-refresh job handler: take the user's lock, run `process_user_data`, and turn its
//! outcome into the queue's terms: complete (the report is the job's result), retry, fail, or
//! defer without spending the attempt when the user is busy, over its refresh rate limit, or our
//! own stores are unreachable.
//! The handler writes no JobStatus: the queue's events are projected there.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use sellersync_core::domain::accounts::Fence;
use sellersync_core::jobs::notify::{EventType, Notification, Notifier};
use sellersync_core::jobs::payload::RefreshUser;
use sellersync_core::jobs::refresh::{RefreshReport, Refresher};
use sellersync_queue::Queue;
use sellersync_queue::apalis::{Defer, JobLease, NonRetryable};
use sellersync_queue::rate_limit::{Limit, RateLimit, RateLimitError, Take, TokenBuckets};
use tracing::Instrument;

use crate::outcome_metrics::InFlight;
use crate::user_lock::UserLocks;

/// An attempt stopped because it lost its lease or lock (its outcome is not recorded: the queue
/// refuses writes of a lost lease).
#[derive(Debug, thiserror::Error)]
#[error("attempt stopped: {0}")]
pub struct AttemptStopped(&'static str);

/// What every job of this process shares.
#[derive(Clone)]
pub struct WorkerState {
    pub worker_id: String,
    pub refresher: Refresher,
    pub queue: Queue,
    pub locks: UserLocks,
    pub settings: Arc<sellersync_core::Settings>,
    /// The per-user refresh limit (`worker.user_rate_limit`), if configured.
    pub user_limit: Option<UserLimit>,
    /// Webhooks to tell about accounts waiting for re-authorization, if configured.
    pub notifier: Option<Notifier>,
}

/// Refreshes per user and window: one token bucket per user (`<prefix>ratelimit:user:<id>`).
#[derive(Clone)]
pub struct UserLimit {
    pub buckets: TokenBuckets,
    pub limit: Limit,
}

impl UserLimit {
    pub fn new(redis: sellersync_queue::RedisConnection, key_prefix: &str, limit: RateLimit) -> Self {
        Self {
            buckets: TokenBuckets::new(redis, format!("{key_prefix}ratelimit:user:")),
            limit: limit.bucket(),
        }
    }

    /// Takes a refresh of `user_id` now, or says how long until one is allowed (nothing taken).
    pub async fn take(&self, user_id: &str) -> Result<Option<std::time::Duration>, BoxDynError> {
        let now = Take::default();
        match self.buckets.reserve(user_id, self.limit, now).await {
            Ok(_) => Ok(None),
            Err(RateLimitError::WaitTooLong { wait, .. }) => Ok(Some(wait)),
            Err(error) => Err(error.into()),
        }
    }
}

/// The apalis handler of `RefreshUser` jobs. Its report becomes the completed job's result.
///
/// Everything it logs (and every task it spawns) is inside a `job` span carrying `queue`,
/// `job_id`, `attempt` and `user_id`, so each log line of an attempt names its job.
pub async fn refresh_user(
    job: RefreshUser,
    lease: Data<JobLease>,
    state: Data<WorkerState>,
) -> Result<RefreshReport, BoxDynError> {
    let span = tracing::info_span!(
        "job",
        queue = RefreshUser::QUEUE,
        job_id = %lease.job_id,
        attempt = lease.attempt,
        user_id = %job.user_id,
        trigger = job.trigger.as_str(),
    );
    if let Some(traceparent) = &lease.traceparent {
        sellersync_core::infra::telemetry::set_parent(&span, traceparent);
    }
    async move {
        let _in_flight = InFlight::start(RefreshUser::QUEUE);
        let started = std::time::Instant::now();
        tracing::info!("job started");
        let outcome = attempt(&job, &lease, &state).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &outcome {
            Ok(report) => tracing::info!(
                elapsed_ms,
                accounts = report.accounts_total,
                accounts_failed = report.accounts_failed,
                "job finished"
            ),
            Err(error) => tracing::warn!(elapsed_ms, %error, "job attempt did not complete"),
        }
        outcome
    }
    .instrument(span)
    .await
}

async fn attempt(
    job: &RefreshUser,
    lease: &JobLease,
    state: &WorkerState,
) -> Result<RefreshReport, BoxDynError> {
    if let Some(limit) = &state.user_limit
        && let Some(delay) = limit.take(&job.user_id).await?
    {
        return Err(Defer {
            delay,
            reason: format!("user {} is over its refresh rate limit", job.user_id),
        }
        .into());
    }
    let Some(lock) = state
        .locks
        .acquire(&job.user_id, &lease.job_id, lease.token)
        .await?
    else {
        let delay = state.settings.worker.user_busy_delay;
        return Err(Defer {
            delay,
            reason: format!("user {} is being refreshed by another job", job.user_id),
        }
        .into());
    };
    // The attempt stops as soon as its queue lease or its user lock is lost: another attempt
    // may already run, and whatever this one would still write is refused anyway.
    let outcome = tokio::select! {
        outcome = run_locked(job, lease, state) => outcome,
        () = lease.lost.wait() => Err(AttemptStopped("its queue lease was lost").into()),
        () = lock.lost() => Err(AttemptStopped("its user lock was lost").into()),
    };
    if let Err(error) = lock.release().await {
        tracing::warn!(%error, user_id = %job.user_id, "could not release the user lock; it expires by itself");
    }
    outcome
}

async fn run_locked(
    job: &RefreshUser,
    lease: &JobLease,
    state: &WorkerState,
) -> Result<RefreshReport, BoxDynError> {
    let progress = |percent: u8| report_progress(state, lease, percent);
    // Every write of the user's data is fenced by the attempt's token: an attempt that runs on
    // after losing its lease (cut off from Redis, frozen) cannot overwrite a newer one's.
    let fence = Fence(lease.token);
    match state
        .refresher
        .refresh_job(&job.user_id, &lease.job_id, fence, &progress)
        .await
    {
        Ok(report) => {
            notify_reauthorization(state, job, lease, &report).await;
            match report.rate_bound_retry_after() {
                // SP-API's rate limits for this seller are used up for now: run again when they
                // refill, without spending an attempt.
                Some(delay) => Err(Defer {
                    delay,
                    reason: format!("SP-API rate limits of user {} are used up for now", job.user_id),
                }
                .into()),
                None => judge(report, state.settings.worker.max_failed_account_share),
            }
        }
        Err(error) if error.is_store_unavailable() => Err(Defer {
            delay: state.settings.worker.store_unavailable_delay,
            reason: format!("our data stores are unreachable ({error}); the refresh waits"),
        }
        .into()),
        Err(error) if error.is_retryable() => Err(error.into()),
        Err(error) => Err(NonRetryable(error.to_string()).into()),
    }
}

/// Tells the webhooks about seller accounts this refresh found withdrawn (LWA `invalid_grant`;
/// they are then skipped until re-authorized, so each is told once). A failure to enqueue is
/// logged, not fatal: the job's own outcome matters more.
async fn notify_reauthorization(
    state: &WorkerState,
    job: &RefreshUser,
    lease: &JobLease,
    report: &RefreshReport,
) {
    let Some(notifier) = &state.notifier else {
        return;
    };
    let accounts: Vec<serde_json::Value> = report
        .needing_reauthorization()
        .map(|a| serde_json::json!({ "sellerId": a.seller_id, "region": a.region, "marketplaceId": a.marketplace_id }))
        .collect();
    if accounts.is_empty() {
        return;
    }
    let notification = Notification::new(
        EventType::ReauthorizationRequired,
        &format!("{}:{}", job.user_id, lease.job_id),
        format!(
            "{} seller accounts of user {} must authorize sellersync again",
            accounts.len(),
            job.user_id
        ),
        serde_json::json!({ "userId": job.user_id, "jobId": lease.job_id, "accounts": accounts }),
    );
    if let Err(error) = notifier.notify(&[notification]).await {
        tracing::warn!(%error, user_id = %job.user_id, "could not enqueue a re-authorization notification");
    }
}

/// Completed unless too many accounts failed (accounts waiting for their seller to authorize
/// us again count as failed); then the attempt fails, retryably if any of the failures may pass
/// on a retry.
fn judge(report: RefreshReport, max_failed_share: f64) -> Result<RefreshReport, BoxDynError> {
    let unusable = report.accounts_failed + report.accounts_awaiting_reauthorization;
    let failed_share = if report.accounts_total == 0 {
        0.0
    } else {
        unusable as f64 / report.accounts_total as f64
    };
    if unusable > 0 && failed_share > max_failed_share {
        // Accounts skipped as still awaiting re-authorization leave no error of this run: say
        // why in the words of the error that put them there (their public message follows).
        let first = report.errors.first().map_or_else(
            || sellersync_core::domain::spapi::SpApiError::InvalidGrant.to_string(),
            |e| e.message.clone(),
        );
        let message = format!(
            "{unusable} of {} seller accounts failed: {first}",
            report.accounts_total
        );
        return if report.has_retryable_failures() {
            Err(message.into())
        } else {
            Err(NonRetryable(message).into())
        };
    }
    Ok(report)
}

/// Progress goes to the queue (whose event reaches JobStatus), without holding up the job.
fn report_progress(state: &WorkerState, lease: &JobLease, percent: u8) {
    let (queue, lease) = (state.queue.clone(), lease.clone());
    tokio::spawn(
        async move {
            if let Err(error) = queue.set_progress(&lease.job_id, lease.token, percent).await {
                tracing::debug!(%error, "progress not recorded");
            }
        }
        .in_current_span(),
    );
}

#[cfg(test)]
mod tests {
    use sellersync_core::jobs::refresh::AccountError;

    use super::*;

    fn report(total: usize, failed: usize, retryable: bool) -> RefreshReport {
        let error = AccountError {
            account_id: "a".into(),
            seller_id: "s".into(),
            region: "na".into(),
            marketplace_id: "m".into(),
            message: "boom".into(),
            retryable,
            ..AccountError::default()
        };
        RefreshReport {
            accounts_total: total,
            accounts_processed: total - failed,
            accounts_failed: failed,
            errors: vec![error; failed],
            ..RefreshReport::default()
        }
    }

    #[test]
    fn a_few_failed_accounts_still_complete() {
        assert!(judge(report(4, 2, true), 0.5).is_ok(), "2 of 4 is not above half");
        assert!(judge(report(0, 0, true), 0.5).is_ok());
    }

    #[test]
    fn accounts_waiting_for_reauthorization_count_as_failed() {
        let mut waiting = report(1, 0, false);
        waiting.accounts_processed = 0;
        waiting.accounts_awaiting_reauthorization = 1;
        let error = judge(waiting, 0.5).unwrap_err();
        assert!(error.downcast_ref::<NonRetryable>().is_some());
        assert_eq!(
            sellersync_core::jobs::job_status::public_message(&error.to_string(), Some(1)),
            sellersync_core::jobs::job_status::public::NEEDS_AUTHORIZATION,
            "{error}"
        );
    }

    #[test]
    fn too_many_failed_accounts_fail_retryably_only_when_a_retry_can_help() {
        let retryable = judge(report(2, 2, true), 0.5).unwrap_err();
        assert!(retryable.downcast_ref::<NonRetryable>().is_none());
        let permanent = judge(report(1, 1, false), 0.5).unwrap_err();
        assert!(permanent.downcast_ref::<NonRetryable>().is_some());
        assert!(permanent.to_string().contains("1 of 1"));
    }
}
