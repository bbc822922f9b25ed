//! Leases in Redis: a key held by one holder for a TTL, renewed in the background while the
//! work runs and released after it (only by its holder). A holder that dies lets it expire.
//! Used for "one user at a time" in the worker and "one instance per tick" in the producer.
//!
//! A fenced lease ([`Lease::acquire_fenced`]) is held by an owner under a token: a newer token of
//! the same owner takes it over at once (the older holder is known dead: its job was leased
//! again), so a long TTL never delays a recovered job. A holder learns that it lost the lease
//! through [`Lease::lost`].

use std::time::Duration;

use sellersync_queue::RedisConnection;

/// Deletes the key only if we still hold it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Takes the key if it is free, ours, or held by the same owner under an older token.
/// ARGV: holder (`<owner>:<token>`), ttl_ms, owner, token.
const ACQUIRE_FENCED: &str = r"
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  local owner, token = string.match(current, '^(.*):(%d+)$')
  if owner ~= ARGV[3] or tonumber(token) >= tonumber(ARGV[4]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Extends the key only if we still hold it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// A held lease; renewed every third of its TTL until released or dropped.
pub struct Lease {
    redis: RedisConnection,
    key: String,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<bool>,
}

impl Lease {
    /// Takes `key` for `holder` for `ttl`; `None` if someone else holds it.
    pub async fn acquire(
        redis: &RedisConnection,
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
        Ok(Some(Self::held(redis, key, holder.to_owned(), ttl)))
    }

    /// Takes `key` for `owner` under `token` (see the module documentation); `None` if another
    /// owner, or a newer token of this owner, holds it.
    pub async fn acquire_fenced(
        redis: &RedisConnection,
        key: String,
        owner: &str,
        token: u64,
        ttl: Duration,
    ) -> redis::RedisResult<Option<Self>> {
        let holder = format!("{owner}:{token}");
        let taken: i64 = redis::Script::new(ACQUIRE_FENCED)
            .key(&key)
            .arg(&holder)
            .arg(ttl.as_millis() as u64)
            .arg(owner)
            .arg(token)
            .invoke_async(&mut redis.clone())
            .await?;
        Ok((taken == 1).then(|| Self::held(redis, key, holder, ttl)))
    }

    fn held(redis: &RedisConnection, key: String, holder: String, ttl: Duration) -> Self {
        let (lost_tx, lost) = tokio::sync::watch::channel(false);
        // In the holder's span: a lost lease is logged with the job (or tick) it belonged to.
        let renewal = tokio::spawn(tracing::Instrument::in_current_span(renew(
            redis.clone(),
            key.clone(),
            holder.clone(),
            ttl,
            lost_tx,
        )));
        Self {
            redis: redis.clone(),
            key,
            holder,
            renewal,
            lost,
        }
    }

    /// Resolves when a renewal found the key no longer ours (expired during a long stall, or
    /// taken over); never while we hold it.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
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

/// Renews the lease every third of its TTL. It is lost when a renewal finds the key no longer
/// ours, and also when no renewal got through for a whole TTL (Redis unreachable from here): the
/// key may have expired and been taken, so the holder must stop as if it had been.
async fn renew(
    redis: RedisConnection,
    key: String,
    holder: String,
    ttl: Duration,
    lost: tokio::sync::watch::Sender<bool>,
) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.tick().await;
    let mut renewed_at = tokio::time::Instant::now();
    let script = redis::Script::new(RENEW);
    loop {
        tick.tick().await;
        let sent_at = tokio::time::Instant::now();
        let mut conn = redis.clone();
        let mut call = script.key(&key);
        call.arg(&holder).arg(ttl.as_millis() as u64);
        // A renewal stuck on an unreachable Redis ends with the lease's TTL, not later.
        let deadline = renewed_at + ttl;
        match tokio::time::timeout_at(deadline, call.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(0)) => {
                tracing::warn!(key, "lease lost: the key is no longer ours");
                let _ = lost.send(true);
                return;
            }
            Ok(Ok(_)) => renewed_at = sent_at,
            Ok(Err(error)) => tracing::warn!(%error, key, "could not renew a lease"),
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                key,
                ttl_ms = ttl.as_millis() as u64,
                "lease not renewed for its whole TTL; giving it up"
            );
            let _ = lost.send(true);
            return;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Dropped without release (a cancelled job, say): stop renewing; the TTL frees it.
        self.renewal.abort();
    }
}
