//! This worker process's job metrics (names in `sellersync_core::infra::metrics`): each attempt's
//! outcome once the queue has recorded it, attempt durations and jobs in flight.
//! (JobStatus is not written here: it is projected from the queue's events.)

use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use sellersync_core::infra::metrics::{WORKER_ATTEMPT_DURATION, WORKER_ATTEMPTS, WORKER_IN_FLIGHT};
use sellersync_queue::apalis::{AckOutcome, JobLease, Observer};

/// The observer the worker's backend calls after every attempt.
pub fn observer(queue: &'static str) -> Observer {
    Arc::new(move |_lease: JobLease, outcome: AckOutcome| {
        let outcome = match outcome {
            AckOutcome::Completed { .. } => "completed",
            AckOutcome::Retrying { .. } => "retrying",
            AckOutcome::Failed { .. } => "failed",
            AckOutcome::Deferred { .. } => "deferred",
        };
        metrics::counter!(WORKER_ATTEMPTS, "queue" => queue, "outcome" => outcome).increment(1);
        async {}.boxed()
    })
}

/// Counts one running attempt in `sellersync_worker_jobs_in_flight` while it lives, and records
/// its duration when dropped (however the attempt ended, cancelled included).
pub struct InFlight {
    queue: &'static str,
    started: Instant,
}

impl InFlight {
    pub fn start(queue: &'static str) -> Self {
        metrics::gauge!(WORKER_IN_FLIGHT, "queue" => queue).increment(1.0);
        Self {
            queue,
            started: Instant::now(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(WORKER_IN_FLIGHT, "queue" => self.queue).decrement(1.0);
        metrics::histogram!(WORKER_ATTEMPT_DURATION, "queue" => self.queue)
            .record(self.started.elapsed().as_secs_f64());
    }
}
