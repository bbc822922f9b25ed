//! `AppState`: what every handler may use, built once at start-up, and the registry of the
//! configured queues.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use mongodb::Database;
use sellersync_core::Settings;
use sellersync_queue::Queue;
use sellersync_queue::RedisConnection;

use crate::error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    /// Shared multiplexed connection; clone it per use (cheap).
    pub redis: RedisConnection,
    pub mongo: Database,
    pub queues: Arc<Queues>,
    /// Renders the API's own metrics (HTTP requests) for `/metrics`.
    pub prometheus: PrometheusHandle,
    /// Live job events for `/api/events` and the dashboard.
    pub live: Arc<crate::live::Hub>,
    /// The Redis and MongoDB part of `/metrics`, computed once per `server.metrics_cache_ms`.
    pub scrapes: Arc<crate::monitoring::ScrapeCache>,
    /// The status read model (`job_status.read_model_jobs`; `None` when off).
    pub read_model: Option<sellersync_core::jobs::job_status::read_model::ReadModel>,
}

/// Every queue in `[queues.*]`, by name.
pub struct Queues(BTreeMap<String, Queue>);

impl Queues {
    pub fn from_settings(settings: &Settings, redis: &RedisConnection) -> Self {
        let queues = settings
            .queues
            .keys()
            .map(|name| {
                let queue = settings
                    .open_queue(redis.clone(), name)
                    .expect("a configured queue");
                (name.clone(), queue)
            })
            .collect();
        Self(queues)
    }

    pub fn all(&self) -> impl Iterator<Item = &Queue> {
        self.0.values()
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// A queue named in the path: unknown is 404.
    pub fn by_path(&self, name: &str) -> Result<&Queue, ApiError> {
        self.0.get(name).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no queue named {name:?} (queues: {})",
                self.names().join(", ")
            ))
        })
    }

    /// A queue named in a query value: unknown is 400.
    pub fn by_query(&self, name: &str) -> Result<&Queue, ApiError> {
        self.0.get(name).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown queue {name:?} (queues: {})",
                self.names().join(", ")
            ))
        })
    }
}
