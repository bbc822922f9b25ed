use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use sellersync_core::connections::connect_redis;
use sellersync_core::testing::TestNamespace;
use sellersync_queue::{Queue, QueueConfig};

/// A queue in a fresh namespace; the namespace (and its keys) goes when this is dropped.
pub struct TestQueue {
    pub queue: Queue,
    pub namespace: TestNamespace,
}

impl std::ops::Deref for TestQueue {
    type Target = Queue;
    fn deref(&self) -> &Queue {
        &self.queue
    }
}

impl TestQueue {
    pub async fn new(config: QueueConfig) -> Self {
        let namespace = TestNamespace::new();
        let redis = connect_redis(&namespace.settings.redis)
            .await
            .expect("redis is up (scripts/services up)");
        let queue = Queue::new(redis, namespace.key_prefix(), "test-queue", config);
        Self { queue, namespace }
    }

    /// Another handle on the same queue with its own connection, as another process would have.
    pub async fn other_handle(&self) -> Queue {
        Queue::new(
            self.connection().await,
            self.namespace.key_prefix(),
            "test-queue",
            self.queue.config().clone(),
        )
    }

    /// A separate connection (e.g. for a consumer's wake-ups).
    pub async fn connection(&self) -> ConnectionManager {
        connect_redis(&self.namespace.settings.redis).await.unwrap()
    }
}

/// Fast timings for tests.
pub fn fast_config() -> QueueConfig {
    QueueConfig {
        lease_ms: 400,
        heartbeat_ms: 100,
        reap_interval_ms: 100,
        backoff_ms: Some(20),
        max_backoff_ms: 200,
        ..QueueConfig::default()
    }
}

/// Polls `check` every 20 ms until it returns true, failing the test after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
