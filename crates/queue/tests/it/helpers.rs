use sellersync_core::infra::connections::connect_redis;
use sellersync_core::testing::TestNamespace;
pub use sellersync_core::testing::eventually;
use sellersync_queue::{Queue, QueueConfig, RedisConnection};

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
        Self::in_namespace(TestNamespace::new(), "test-queue", config).await
    }

    /// Queue `name` in `namespace` (its settings say which Redis: a private cluster, say).
    pub async fn in_namespace(namespace: TestNamespace, name: &str, config: QueueConfig) -> Self {
        let redis = connect_redis(&namespace.settings.redis)
            .await
            .expect("redis is up (scripts/services up)");
        let queue = Queue::new(redis, namespace.key_prefix(), name, config);
        Self { queue, namespace }
    }

    /// Another handle on the same queue with its own connection, as another process would have.
    pub async fn other_handle(&self) -> Queue {
        Queue::new(
            self.connection().await,
            self.namespace.key_prefix(),
            self.queue.name(),
            self.queue.config().clone(),
        )
    }

    /// A separate connection (e.g. for a consumer's wake-ups).
    pub async fn connection(&self) -> RedisConnection {
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
