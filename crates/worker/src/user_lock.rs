//! One user at a time: a per-user [`Lease`] in Redis (`<prefix>lock:user:<id>`), taken before a
//! refresh, kept alive while it runs and released after it. Its TTL is short (twice the queue's
//! lease), so the lock of a killed worker frees itself within seconds.

use std::time::Duration;

use redis::aio::ConnectionManager;
use sellersync_core::lease::Lease;

#[derive(Clone)]
pub struct UserLocks {
    redis: ConnectionManager,
    prefix: String,
    ttl: Duration,
}

impl UserLocks {
    pub fn new(redis: ConnectionManager, key_prefix: &str, ttl: Duration) -> Self {
        Self {
            redis,
            prefix: format!("{key_prefix}lock:user:"),
            ttl,
        }
    }

    /// Takes the user's lock for `holder`; `None` if someone else holds it.
    pub async fn acquire(&self, user_id: &str, holder: &str) -> redis::RedisResult<Option<Lease>> {
        Lease::acquire(&self.redis, format!("{}{user_id}", self.prefix), holder, self.ttl).await
    }
}
