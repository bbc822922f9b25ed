//! sellersync-queue: our Redis job storage (see `docs/adr/0001-queue-backend.md` for why it is
//! ours). `queue` is one named queue's producer, consumer and control API over atomic Lua
//! scripts; `events` is the stream every transition appends to (read by consumer groups such as
//! the JobStatus projector); `apalis` runs jobs in apalis workers, with leases, heartbeats,
//! reaping, retries and graceful shutdown; `rate_limit` is the token bucket in Redis behind every
//! rate limit (a queue's job starts, SP-API calls, users' refreshes). It knows nothing of users:
//! payloads are JSON.
mod acker;
pub mod apalis;
pub mod config;
pub mod connection;
pub mod error;
pub mod events;
pub mod job;
mod maintenance;
pub mod queue;
pub mod rate_limit;
mod scripts;

pub use config::QueueConfig;
pub use connection::{RedisConnection, SentinelConnection};
pub use error::{QueueError, QueueResult};
pub use job::{
    Counts, DurationHistogram, EnqueueOptions, Enqueued, FailOutcome, JobInfo, JobState, LeasedJob,
    QueueMetrics,
};
pub use maintenance::unless_stopping;
pub use queue::{Ack, Fetched, NewJob, Queue, Reaped, WorkerInfo};
pub use rate_limit::RateLimit;
pub use scripts::SCRIPT_COMMANDS;
