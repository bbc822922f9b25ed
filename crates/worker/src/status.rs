//! Records each attempt's outcome, once the queue has recorded it, in JobStatus and in metrics.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use mongodb::Database;
use sellersync_core::job_status;
use sellersync_core::refresh::RefreshReport;
use sellersync_queue::QueueConfig;
use sellersync_queue::apalis::{AckOutcome, Lease, Observer};

/// The observer the worker's backend calls after every attempt.
pub fn observer(db: Database, queue: &QueueConfig) -> Observer {
    let completed_retention = Duration::from_millis(queue.completed_max_age_ms);
    let failed_retention = Duration::from_millis(queue.failed_max_age_ms);
    Arc::new(move |lease: Lease, outcome: AckOutcome| {
        let db = db.clone();
        async move {
            count(&outcome);
            let written = match &outcome {
                AckOutcome::Completed { result } => {
                    let report: RefreshReport = serde_json::from_value(result["report"].clone()).unwrap_or_default();
                    let duration_ms = result["durationMs"].as_u64().unwrap_or(0);
                    metrics::histogram!("sellersync_job_duration_seconds").record(duration_ms as f64 / 1000.0);
                    job_status::record_completed(&db, &lease.job_id, &report, duration_ms, completed_retention).await
                }
                AckOutcome::Retrying { error, at_ms } => {
                    let at = DateTime::<Utc>::from_timestamp_millis(*at_ms as i64).unwrap_or_else(Utc::now);
                    job_status::record_retrying(&db, &lease.job_id, lease.attempt, error, at).await
                }
                AckOutcome::Failed { error } => {
                    job_status::record_failed(&db, &lease.job_id, lease.attempt, error, failed_retention).await
                }
                AckOutcome::Deferred { reason } => job_status::record_deferred(&db, &lease.job_id, reason).await,
            };
            if let Err(error) = written {
                tracing::error!(%error, job_id = %lease.job_id, ?outcome, "could not record the job's outcome in job_status");
            }
        }
        .boxed()
    })
}

fn count(outcome: &AckOutcome) {
    let name = match outcome {
        AckOutcome::Completed { .. } => "sellersync_jobs_completed_total",
        AckOutcome::Retrying { .. } => "sellersync_jobs_retried_total",
        AckOutcome::Failed { .. } => "sellersync_jobs_failed_total",
        AckOutcome::Deferred { .. } => "sellersync_jobs_deferred_total",
    };
    metrics::counter!(name).increment(1);
}
