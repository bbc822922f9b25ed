//! Fencing of writes by older attempts: a [`Fence`] (an attempt's lease token, larger for a newer
//! attempt) and the stores that only take a write whose fence is at least the stored one —
//! MongoDB documents through [`Fence::allows`] in the write's filter, Redis values through
//! [`FencedStore`] (a hash `{fence, data}` per key, written by one script). An older attempt that
//! runs on (a worker cut off from Redis, a frozen process) never overwrites a newer one's data.

use std::time::Duration;

use mongodb::bson::{Document, doc};
use sellersync_queue::RedisConnection;

/// The fence of the attempt that writes: its lease token (larger for a newer attempt, see the
/// queue's `fetch.lua`), or, outside a job, the clock in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fence(pub u64);

impl Fence {
    /// For a refresh outside a job (the CLI, tests, benchmarks): the clock in microseconds,
    /// comparable with lease tokens (which are at least Redis's clock in microseconds).
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_micros().max(0) as u64)
    }

    /// A filter on `field` that only documents written under this fence or an older one (or
    /// never under one) pass.
    pub fn allows(self, field: &str) -> Document {
        doc! { "$or": [ { field: { "$exists": false } }, { field: { "$lte": self.0 as i64 } } ] }
    }
}

/// Writes `data` under `fence` unless a newer fence holds the key; a key of another type (the
/// plain strings of earlier versions) is replaced.
/// KEYS[1]: the hash. ARGV: data, fence, ttl_ms. Returns 1 when written, 0 when fenced out.
const PUT_FENCED: &str = r"
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
  redis.call('DEL', KEYS[1])
elseif tonumber(redis.call('HGET', KEYS[1], 'fence') or '0') > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'fence', ARGV[2], 'data', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Values in Redis written only under a fence at least the stored one's.
#[derive(Clone)]
pub struct FencedStore {
    redis: RedisConnection,
}

impl FencedStore {
    pub fn new(redis: RedisConnection) -> Self {
        Self { redis }
    }

    /// Writes `data` at `key` for `ttl` unless a newer fence holds it; true when written.
    pub async fn put(&self, key: &str, data: &[u8], fence: Fence, ttl: Duration) -> redis::RedisResult<bool> {
        let written: i64 = redis::Script::new(PUT_FENCED)
            .key(key)
            .arg(data)
            .arg(fence.0)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(written == 1)
    }

    /// The data at `key`, if any (a key of another type reads as none).
    pub async fn get(&self, key: &str) -> redis::RedisResult<Option<Vec<u8>>> {
        let read: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("HGET")
            .arg(key)
            .arg("data")
            .query_async(&mut self.redis.clone())
            .await;
        match read {
            Err(error) if error.code() == Some("WRONGTYPE") => Ok(None),
            other => other,
        }
    }
}
