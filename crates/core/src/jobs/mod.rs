//! The job path, in the order a refresh travels it:
//!
//! 1. [`cron`] says when the hourly ticks are; at each, the [`producer`] picks the users due for
//!    a refresh (one instance per tick, by a [`lease`]) and enqueues them ([`payload`] is what a
//!    job carries);
//! 2. the queue (`sellersync-queue`) holds the jobs; the worker crate runs them with
//!    [`refresh`] (SP-API → analysis → MongoDB), bounded by the queue crate's token buckets
//!    (`sellersync_queue::rate_limit`);
//! 3. [`job_status`] projects the queue's events into the JobStatus records the API serves;
//! 4. [`notify`] delivers webhooks about failed jobs, unhealthy queues and failed ticks.
//!
//! May use [`crate::domain`] and [`crate::infra`].
pub mod cron;
pub mod job_status;
pub mod lease;
pub mod notify;
pub mod payload;
pub mod producer;
pub mod refresh;
