//! Rate limits: the token buckets in Redis live in the queue crate (one implementation behind
//! every limit: a queue's job starts, SP-API calls per seller and operation, users' refreshes);
//! this module re-exports them for the domain code.

pub use sellersync_queue::rate_limit::{Limit, RateLimit, RateLimitError, Take, TokenBuckets};
