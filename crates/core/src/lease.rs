//! Leases in Redis: a key held by one holder for a TTL, renewed in the background while the
//! work runs and released after it (only by its holder). A holder that dies lets it expire.
//! Used for "one user at a time" in the worker and "one instance per tick" in the producer.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Deletes the key only if we still hold it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Extends the key only if we still hold it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// A held lease; renewed every third of its TTL until released or dropped.
pub struct Lease {
    redis: ConnectionManager,
    key: String,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes `key` for `holder` for `ttl`; `None` if someone else holds it.
    pub async fn acquire(
        redis: &ConnectionManager,
        key: String,
        holder: &str,
        ttl: Duration,
    ) -> redis::RedisResult<Option<Self>> {
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut redis.clone())
            .await?;
        if taken.is_none() {
            return Ok(None);
        }
        let renewal = tokio::spawn(renew(redis.clone(), key.clone(), holder.to_owned(), ttl));
        Ok(Some(Self {
            redis: redis.clone(),
            key,
            holder: holder.to_owned(),
            renewal,
        }))
    }

    pub async fn release(self) -> redis::RedisResult<()> {
        self.renewal.abort();
        let _: i64 = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.holder)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }
}

async fn renew(redis: ConnectionManager, key: String, holder: String, ttl: Duration) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        let renewed: redis::RedisResult<i64> = redis::Script::new(RENEW)
            .key(&key)
            .arg(&holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut redis.clone())
            .await;
        if let Err(error) = renewed {
            tracing::warn!(%error, key, "could not renew a lease");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Dropped without release (a cancelled job, say): stop renewing; the TTL frees it.
        self.renewal.abort();
    }
}
