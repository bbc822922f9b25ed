//! The chaos suite: the real system under the faults operators meet, then a check that nothing
//! was lost and that JobStatus tells the truth.
//!
//! A run starts a private MongoDB-wire server (so it can be frozen and stopped), the SP-API
//! stand-in, and real `sellersync-worker` processes on the shared Redis under a fresh key prefix.
//! It enqueues users in waves and, while they run: an admin removes waiting jobs and retries
//! failed ones, a worker is SIGKILLed and replaced, MongoDB is frozen (SIGSTOP) and thawed, then
//! stopped and restarted. When every job has finished and the projection has caught up, it
//! compares every job's queue state with its JobStatus record and prints a [`Report`].
//!
//! - [`fleet`]: the worker processes.
//! - [`check`]: the comparison of queue and JobStatus.
//! - [`scenario`]: the timeline.

pub mod check;
pub mod fleet;
pub mod scenario;

pub use scenario::{Report, Scenario, run};
