//! What a refresh keeps in Redis: each account's latest summary (`<prefix>cache:summary:<account>`,
//! `refresh.cache_ttl_secs`) and its order book (`<prefix>cache:orders:<account>`,
//! `refresh.order_book_ttl_secs`). Each is a hash `{fence, data}` written by one script only when
//! the writer's fence is at least the stored one ([`Fence`]): an older attempt that runs on (a
//! worker cut off from Redis, a frozen process) never replaces a newer attempt's data.

use std::time::Duration;

use sellersync_queue::RedisConnection;

use crate::domain::accounts::Fence;

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

/// The fenced caches of one deployment (its key prefix).
#[derive(Clone)]
pub struct Caches {
    redis: RedisConnection,
    key_prefix: String,
}

impl Caches {
    pub fn new(redis: RedisConnection, key_prefix: &str) -> Self {
        Self {
            redis,
            key_prefix: key_prefix.to_owned(),
        }
    }

    pub fn summary_key(&self, account_id: &str) -> String {
        format!("{}cache:summary:{account_id}", self.key_prefix)
    }

    pub fn order_book_key(&self, account_id: &str) -> String {
        format!("{}cache:orders:{account_id}", self.key_prefix)
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
