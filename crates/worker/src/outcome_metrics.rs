//! Counts each attempt's outcome, once the queue has recorded it, in this process's metrics.
//! (JobStatus is not written here: it is projected from the queue's events.)

use std::sync::Arc;

use futures::FutureExt;
use sellersync_queue::apalis::{AckOutcome, Lease, Observer};

/// The observer the worker's backend calls after every attempt.
pub fn observer() -> Observer {
    Arc::new(|_lease: Lease, outcome: AckOutcome| {
        let name = match outcome {
            AckOutcome::Completed { .. } => "sellersync_jobs_completed_total",
            AckOutcome::Retrying { .. } => "sellersync_jobs_retried_total",
            AckOutcome::Failed { .. } => "sellersync_jobs_failed_total",
            AckOutcome::Deferred { .. } => "sellersync_jobs_deferred_total",
        };
        metrics::counter!(name).increment(1);
        async {}.boxed()
    })
}
