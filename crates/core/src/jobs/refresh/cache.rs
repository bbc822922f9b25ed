//! What a refresh keeps in Redis: each account's latest summary (`<prefix>cache:summary:<account>`,
//! `refresh.cache_ttl_secs`) and its order book (`<prefix>cache:orders:<account>`,
//! `refresh.order_book_ttl_secs`), written under the attempt's fence ([`FencedStore`]).

use std::time::Duration;

use sellersync_queue::RedisConnection;

use crate::infra::fenced::{Fence, FencedStore};

/// The fenced caches of one deployment (its key prefix).
#[derive(Clone)]
pub struct Caches {
    store: FencedStore,
    key_prefix: String,
}

impl Caches {
    pub fn new(redis: RedisConnection, key_prefix: &str) -> Self {
        Self {
            store: FencedStore::new(redis),
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
        self.store.put(key, data, fence, ttl).await
    }

    /// The data at `key`, if any.
    pub async fn get(&self, key: &str) -> redis::RedisResult<Option<Vec<u8>>> {
        self.store.get(key).await
    }
}
