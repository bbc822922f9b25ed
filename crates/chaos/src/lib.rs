//! The chaos suite: the real system under the faults operators meet, then a check that nothing
//! was lost and that JobStatus tells the truth.
//!
//! A run starts a private Redis (AOF, fsync always) and a private MongoDB-wire server (so they
//! can be paused, frozen, stopped and restarted), the SP-API stand-in, and real
//! `sellersync-worker` processes. It enqueues users in waves and, while they run: an admin removes
//! waiting jobs and retries failed ones, a worker is SIGKILLed and replaced by one whose clock is
//! skewed, Redis is paused (`CLIENT PAUSE`), MongoDB is frozen (SIGSTOP) and thawed, then stopped
//! and restarted, Redis is restarted, a fail-over loses the last leases' writes, and a worker is
//! drained (SIGTERM). When every job has
//! finished and the projection has caught up, it compares every job's queue state with its
//! JobStatus record, audits the queue's history for leases lost by live workers, and prints a
//! [`Report`].
//!
//! - [`fleet`]: the worker processes.
//! - [`check`]: the comparison of queue and JobStatus.
//! - [`audit`]: the queue's history of the run.
//! - [`lost_write`]: the fail-over that lost writes.
//! - [`scenario`]: the timeline.

pub mod audit;
pub mod check;
pub mod fleet;
pub mod lost_write;
pub mod scenario;

pub use scenario::{Report, Scenario, run};
