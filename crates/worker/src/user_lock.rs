//! One user at a time: a per-user lease in Redis (`<prefix>lock:user:<id>`), taken before a
//! refresh, kept alive while it runs and released after it. Its TTL is short (twice the queue's
//! lease), so the lock of a killed worker frees itself within seconds.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Deletes the lock only if we still hold it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Extends the lock only if we still hold it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

#[derive(Clone)]
pub struct UserLocks {
    redis: ConnectionManager,
    prefix: String,
    ttl: Duration,
}

/// A held user lock; renewed in the background until [`UserLock::release`].
pub struct UserLock {
    locks: UserLocks,
    key: String,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
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
    pub async fn acquire(&self, user_id: &str, holder: &str) -> redis::RedisResult<Option<UserLock>> {
        let key = format!("{}{user_id}", self.prefix);
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .query_async(&mut self.redis.clone())
            .await?;
        if taken.is_none() {
            return Ok(None);
        }
        let renewal = tokio::spawn(renew(self.clone(), key.clone(), holder.to_owned()));
        Ok(Some(UserLock {
            locks: self.clone(),
            key,
            holder: holder.to_owned(),
            renewal,
        }))
    }
}

async fn renew(locks: UserLocks, key: String, holder: String) {
    let mut tick = tokio::time::interval(locks.ttl / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        let renewed: redis::RedisResult<i64> = redis::Script::new(RENEW)
            .key(&key)
            .arg(&holder)
            .arg(locks.ttl.as_millis() as u64)
            .invoke_async(&mut locks.redis.clone())
            .await;
        if let Err(error) = renewed {
            tracing::warn!(%error, "could not renew a user lock");
        }
    }
}

impl UserLock {
    pub async fn release(self) -> redis::RedisResult<()> {
        self.renewal.abort();
        let _: i64 = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.holder)
            .invoke_async(&mut self.locks.redis.clone())
            .await?;
        Ok(())
    }
}

impl Drop for UserLock {
    fn drop(&mut self) {
        // A cancelled job (timeout, shutdown) drops its lock: stop renewing; the TTL frees it.
        self.renewal.abort();
    }
}
