//! Token buckets in Redis, shared by every process: a family of buckets under one key prefix, each
//! named by the caller (e.g. one per selling partner and SP-API operation, or one per queue).
//!
//! One Lua script ([`take.lua`](rate_limit/take.lua)) refills a bucket from Redis's clock and takes
//! a token or reserves the next one, atomically, so N workers sharing a bucket together stay
//! within its rate. A reservation comes with the time to wait before the call may go; when that
//! wait is longer than the caller accepts, nothing is reserved and the caller learns how long it
//! would have been ([`RateLimitError::WaitTooLong`]), so it can defer the work instead of holding
//! a worker. A bucket can learn its real rate from the server (`x-amzn-RateLimit-Limit` for
//! SP-API) and be emptied when the server refused a call anyway (a 429: someone else spent the
//! tokens).

use std::time::Duration;

use redis::aio::ConnectionManager;

const TAKE: &str = include_str!("rate_limit/take.lua");

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second.
    pub rate_per_sec: f64,
    /// Most tokens the bucket holds (how many calls may go at once after a quiet spell).
    pub burst: u32,
}

impl Limit {
    /// Time for one token to be added (a day at most: a rate of 0 or a nonsensical one never
    /// makes a wait that cannot be represented).
    pub fn refill_interval(&self) -> Duration {
        const LONGEST: Duration = Duration::from_secs(86_400);
        Duration::try_from_secs_f64(1.0 / self.rate_per_sec)
            .ok()
            .filter(|interval| !interval.is_zero())
            .map_or(LONGEST, |interval| interval.min(LONGEST))
    }
}

/// How one take behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Take {
    /// The longest wait the caller accepts; a longer one reserves nothing.
    pub max_wait: Duration,
    /// A rate the server reported, stored in the bucket for every process from now on.
    pub learned_rate: Option<f64>,
    /// The server refused a call: treat the bucket as empty before taking.
    pub refused: bool,
    /// Wait until the bucket holds a token plus this much refill (capped at a full bucket): a
    /// cushion for a remote bucket that counts calls on arrival, when one call travels faster
    /// than the one before it. Zero for a local resource.
    pub headroom: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// The next token is further away than the caller accepts; nothing was reserved.
    #[error("the next token of {bucket} is {wait:?} away, longer than the {max_wait:?} accepted")]
    WaitTooLong {
        bucket: String,
        wait: Duration,
        max_wait: Duration,
    },
    #[error("rate limiter unavailable: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A family of token buckets under `<key_prefix>`.
#[derive(Clone)]
pub struct TokenBuckets {
    redis: ConnectionManager,
    key_prefix: String,
    script: redis::Script,
}

impl TokenBuckets {
    /// Buckets stored at `<key_prefix><name>` (e.g. `sellersync:ratelimit:spapi:`).
    pub fn new(redis: ConnectionManager, key_prefix: impl Into<String>) -> Self {
        Self {
            redis,
            key_prefix: key_prefix.into(),
            script: redis::Script::new(TAKE),
        }
    }

    /// Takes a token of bucket `name`, or reserves the next one and returns how long to wait
    /// before using it (zero: go now). A bucket never seen before starts full.
    pub async fn reserve(&self, name: &str, limit: Limit, take: Take) -> Result<Duration, RateLimitError> {
        let key = format!("{}{name}", self.key_prefix);
        let max_wait_ms = take.max_wait.as_millis() as u64;
        let waited: i64 = self
            .script
            .key(&key)
            .arg(limit.rate_per_sec)
            .arg(limit.burst.max(1))
            .arg(max_wait_ms)
            .arg(take.learned_rate.filter(|r| *r > 0.0).unwrap_or(0.0))
            .arg(if take.refused { "1" } else { "0" })
            .arg(take.headroom.as_millis() as u64)
            .invoke_async(&mut self.redis.clone())
            .await?;
        let wait = Duration::from_millis(waited.unsigned_abs());
        if waited < 0 {
            return Err(RateLimitError::WaitTooLong {
                bucket: name.to_owned(),
                wait,
                max_wait: take.max_wait,
            });
        }
        Ok(wait)
    }

    /// [`TokenBuckets::reserve`], then waits out the reservation.
    pub async fn acquire(&self, name: &str, limit: Limit, take: Take) -> Result<(), RateLimitError> {
        let wait = self.reserve(name, limit, take).await?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refill_intervals_are_always_representable() {
        let interval = |rate_per_sec| {
            Limit {
                rate_per_sec,
                burst: 1,
            }
            .refill_interval()
        };
        assert_eq!(interval(2.0), Duration::from_millis(500));
        for odd in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE] {
            assert_eq!(interval(odd), Duration::from_secs(86_400), "{odd}");
        }
    }
}
