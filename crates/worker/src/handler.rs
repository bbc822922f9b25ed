//! The user-refresh job handler: take the user's lock, record the attempt as active, run
//! `process_user_data`, and turn its outcome into the queue's terms (complete, retry, fail, or
//! defer when the user is busy).

use std::sync::Arc;
use std::time::Instant;

use apalis::prelude::{BoxDynError, Data};
use mongodb::Database;
use sellersync_core::job_status::{self, Started};
use sellersync_core::jobs::RefreshUser;
use sellersync_core::refresh::{RefreshError, RefreshReport, Refresher};
use sellersync_queue::Queue;
use sellersync_queue::apalis::{Defer, Lease, NonRetryable};
use serde_json::json;

use crate::user_lock::UserLocks;

/// What every job of this process shares.
#[derive(Clone)]
pub struct WorkerState {
    pub worker_id: String,
    pub refresher: Refresher,
    pub db: Database,
    pub queue: Queue,
    pub locks: UserLocks,
    pub settings: Arc<sellersync_core::Settings>,
}

/// The apalis handler of `RefreshUser` jobs. Returns the run's report and duration, which the
/// outcome observer writes to JobStatus.
pub async fn refresh_user(
    job: RefreshUser,
    lease: Data<Lease>,
    state: Data<WorkerState>,
) -> Result<serde_json::Value, BoxDynError> {
    let holder = format!("{}:{}", state.worker_id, lease.job_id);
    let Some(lock) = state.locks.acquire(&job.user_id, &holder).await? else {
        let delay = state.settings.worker.user_busy_delay();
        return Err(Defer {
            delay,
            reason: format!("user {} is being refreshed by another job", job.user_id),
        }
        .into());
    };
    let outcome = run_locked(&job, &lease, &state).await;
    if let Err(error) = lock.release().await {
        tracing::warn!(%error, user_id = %job.user_id, "could not release the user lock; it expires by itself");
    }
    outcome
}

async fn run_locked(
    job: &RefreshUser,
    lease: &Lease,
    state: &WorkerState,
) -> Result<serde_json::Value, BoxDynError> {
    let started = Started {
        job_id: &lease.job_id,
        queue: state.queue.name(),
        user_id: &job.user_id,
        worker_id: &state.worker_id,
        attempt: lease.attempt,
        max_attempts: state.queue.config().max_attempts(),
    };
    job_status::record_active(&state.db, &started).await?;
    let clock = Instant::now();
    let progress = |percent: u8| report_progress(state, lease, percent);
    let report = state.refresher.process_user_data(&job.user_id, &progress).await;
    let duration_ms = clock.elapsed().as_millis() as u64;
    match report {
        Ok(report) => judge(
            report,
            duration_ms,
            state.settings.worker.max_failed_account_share,
        ),
        Err(error @ (RefreshError::UnknownUser(_) | RefreshError::InactiveUser(_))) => {
            Err(NonRetryable(error.to_string()).into())
        }
        Err(error) if error.is_retryable() => Err(error.into()),
        Err(error) => Err(NonRetryable(error.to_string()).into()),
    }
}

/// Completed unless too many accounts failed; then the attempt fails, retryably if any of the
/// failures may pass on a retry.
fn judge(
    report: RefreshReport,
    duration_ms: u64,
    max_failed_share: f64,
) -> Result<serde_json::Value, BoxDynError> {
    let failed_share = if report.accounts_total == 0 {
        0.0
    } else {
        report.accounts_failed as f64 / report.accounts_total as f64
    };
    if report.accounts_failed > 0 && failed_share > max_failed_share {
        let first = report
            .errors
            .first()
            .map(|e| e.message.as_str())
            .unwrap_or_default();
        let message = format!(
            "{} of {} seller accounts failed: {first}",
            report.accounts_failed, report.accounts_total
        );
        return if report.has_retryable_failures() {
            Err(message.into())
        } else {
            Err(NonRetryable(message).into())
        };
    }
    Ok(json!({ "report": report, "durationMs": duration_ms }))
}

/// Progress goes to the queue (for the admin API) and to JobStatus, without holding up the job.
fn report_progress(state: &WorkerState, lease: &Lease, percent: u8) {
    let (queue, db, lease) = (state.queue.clone(), state.db.clone(), lease.clone());
    tokio::spawn(async move {
        let _ = queue.set_progress(&lease.job_id, lease.attempt, percent).await;
        if let Err(error) = job_status::record_progress(&db, &lease.job_id, percent).await {
            tracing::debug!(%error, "progress not recorded");
        }
    });
}

#[cfg(test)]
mod tests {
    use sellersync_core::refresh::AccountError;

    use super::*;

    fn report(total: usize, failed: usize, retryable: bool) -> RefreshReport {
        let error = AccountError {
            account_id: "a".into(),
            seller_id: "s".into(),
            region: "na".into(),
            marketplace_id: "m".into(),
            message: "boom".into(),
            retryable,
        };
        RefreshReport {
            accounts_total: total,
            accounts_processed: total - failed,
            accounts_failed: failed,
            errors: vec![error; failed],
        }
    }

    #[test]
    fn a_few_failed_accounts_still_complete() {
        assert!(
            judge(report(4, 2, true), 10, 0.5).is_ok(),
            "2 of 4 is not above half"
        );
        assert!(judge(report(0, 0, true), 10, 0.5).is_ok());
    }

    #[test]
    fn too_many_failed_accounts_fail_retryably_only_when_a_retry_can_help() {
        let retryable = judge(report(2, 2, true), 10, 0.5).unwrap_err();
        assert!(retryable.downcast_ref::<NonRetryable>().is_none());
        let permanent = judge(report(1, 1, false), 10, 0.5).unwrap_err();
        assert!(permanent.downcast_ref::<NonRetryable>().is_some());
        assert!(permanent.to_string().contains("1 of 1"));
    }
}
