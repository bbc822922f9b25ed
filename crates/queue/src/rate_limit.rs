//! Token buckets in Redis, shared by every process: a family of buckets under one key prefix, each
//! named by the caller (e.g. one per selling partner and SP-API operation, or one per user).
//!
//! The bucket itself is one Lua implementation ([`bucket.lua`](rate_limit/bucket.lua)) used by
//! every limiter: by [`TokenBuckets`] here (through `take.lua`) and by the fetch of a queue with
//! a [`RateLimit`] on its starts (`fetch_limited.lua`, see [`crate::Queue::fetch`]).
//!
//! `take.lua` refills a bucket from Redis's clock and takes a token or reserves the next one,
//! atomically, so N workers sharing a bucket together stay
//! within its rate. A reservation comes with the time to wait before the call may go; when that
//! wait is longer than the caller accepts, nothing is reserved and the caller learns how long it
//! would have been ([`RateLimitError::WaitTooLong`]), so it can defer the work instead of holding
//! a worker. A bucket can learn its real rate from the server (`x-amzn-RateLimit-Limit` for
//! SP-API) and be emptied when the server refused a call anyway (a 429: someone else spent the
//! tokens).

use std::time::Duration;

use crate::RedisConnection;
use serde::{Deserialize, Serialize};

/// The token bucket's Lua functions, prepended to every script that uses a bucket.
pub(crate) const BUCKET: &str = include_str!("rate_limit/bucket.lua");
const TAKE: &str = include_str!("rate_limit/take.lua");

/// "At most `max` per `interval_ms`", as configured (a queue's job starts, a user's refreshes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Most events per interval, in any window of that length.
    pub max: u32,
    pub interval_ms: u64,
    /// Events that may go back to back after a quiet spell, 1 to `max` (unset: 2, or 1 when `max`
    /// is 1). 1 spaces events evenly but loses the time between a token's arrival and the next
    /// taker; 2 keeps one token in hand, so the limit is reached (measured: 49 of 50/s with
    /// six workers, against 39 with 1).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// Checks the values; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.max == 0 || self.interval_ms == 0 {
            return Err("max and interval_ms must be at least 1".to_owned());
        }
        if let Some(burst) = self.burst.filter(|b| *b == 0 || *b > self.max) {
            return Err(format!("burst must be 1 to max ({}), got {burst}", self.max));
        }
        Ok(())
    }

    /// The burst in effect (see [`RateLimit::burst`]).
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(2).clamp(1, self.max.max(1))
    }

    /// The token bucket that keeps to it: a bucket of `burst` tokens refilled at
    /// `(max - burst + 1) / interval` lets at most `burst + rate * interval - 1 = max` events
    /// through in any window shorter than `interval` (the k-th event after a full bucket waits
    /// for `k - burst` tokens of refill).
    pub fn bucket(&self) -> Limit {
        let burst = self.burst();
        let refills = f64::from(self.max.max(1) - burst + 1);
        Limit {
            rate_per_sec: refills * 1000.0 / self.interval_ms.max(1) as f64,
            burst,
        }
    }
}

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second.
    pub rate_per_sec: f64,
    /// Most tokens the bucket holds (how many calls may go at once after a quiet spell).
    pub burst: u32,
}

impl Limit {
    /// Time for one token to be added.
    /// (A day at most: a rate of 0 or a nonsensical one never makes a wait that cannot be
    /// represented.)
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
    redis: RedisConnection,
    key_prefix: String,
    script: redis::Script,
}

impl TokenBuckets {
    /// Buckets stored at `<key_prefix><name>` (e.g. `sellersync:ratelimit:spapi:`).
    pub fn new(redis: RedisConnection, key_prefix: impl Into<String>) -> Self {
        Self {
            redis,
            key_prefix: key_prefix.into(),
            script: redis::Script::new(&format!("{BUCKET}\n{TAKE}")),
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

/// The most of `times_ms` (any order) that fall in one window `[t, t + window_ms)`: what a
/// limit of "at most N per window" promises to keep at or below N.
pub fn max_in_window(times_ms: &[u64], window_ms: u64) -> usize {
    let mut sorted = times_ms.to_vec();
    sorted.sort_unstable();
    let mut first = 0;
    let mut most = 0;
    for (last, t) in sorted.iter().enumerate() {
        while sorted[first] + window_ms <= *t {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

#[cfg(test)]
mod tests {
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

    use super::*;

    #[test]
    fn a_window_counts_what_lies_within_its_length() {
        assert_eq!(max_in_window(&[], 1000), 0);
        assert_eq!(max_in_window(&[0, 999, 1000, 1999], 1000), 2);
        assert_eq!(max_in_window(&[5, 1, 3, 2000], 1000), 3);
    }

    #[test]
    fn the_bucket_of_a_limit_keeps_to_max_per_interval() {
        let limit = |max, interval_ms, burst| RateLimit {
            max,
            interval_ms,
            burst,
        };
        let even = limit(50, 1000, Some(1)).bucket();
        assert_eq!((even.rate_per_sec, even.burst), (50.0, 1));
        let default = limit(50, 1000, None).bucket();
        assert_eq!((default.rate_per_sec, default.burst), (49.0, 2));
        assert_eq!(limit(1, 1000, None).bucket().burst, 1, "never above max");
        let bursty = limit(4, 3_600_000, Some(3)).bucket();
        assert_eq!(bursty.burst, 3);
        assert!((bursty.rate_per_sec - 2.0 / 3600.0).abs() < 1e-12);
        assert!(limit(2, 1000, Some(3)).validate().is_err());
        assert!(limit(0, 1000, None).validate().is_err());
    }
}
