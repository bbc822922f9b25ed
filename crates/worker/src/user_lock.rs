//! One user at a time: a per-user fenced [`Lease`] in Redis (`<prefix>lock:user:<id>`), held by
//! the job under its attempt's lease token, taken before a refresh, kept alive while it runs and
//! released after it. A later attempt of the same job takes it over at once (the earlier one lost
//! its lease), so the TTL can be long enough to ride out a Redis stall; the lock of a dead worker
//! running another job of the user frees itself after the TTL.

use std::time::Duration;

use sellersync_core::jobs::lease::Lease;
use sellersync_queue::RedisConnection;

#[derive(Clone)]
pub struct UserLocks {
    redis: RedisConnection,
    prefix: String,
    ttl: Duration,
}

impl UserLocks {
    pub fn new(redis: RedisConnection, key_prefix: &str, ttl: Duration) -> Self {
        Self {
            redis,
            prefix: format!("{key_prefix}lock:user:"),
            ttl,
        }
    }

    /// Takes the user's lock for attempt `token` of job `job_id`; `None` if another job (or a
    /// newer attempt of this one) holds it.
    pub async fn acquire(
        &self,
        user_id: &str,
        job_id: &str,
        token: u64,
    ) -> redis::RedisResult<Option<Lease>> {
        let key = format!("{}{user_id}", self.prefix);
        Lease::acquire_fenced(&self.redis, key, job_id, token, self.ttl).await
    }
}
