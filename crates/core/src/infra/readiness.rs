//! Readiness: does each backing service answer right now, within a bounded time?

use std::time::Duration;

use mongodb::Database;
use sellersync_queue::RedisConnection;
use serde::Serialize;

use crate::infra::connections::{ping_mongo, ping_redis};
use crate::infra::error::{CoreError, CoreResult};

/// The outcome of checking one service. `/readyz` answers anyone, so a down service says only
/// what kind of failure it was; the driver's own error (addresses, topology) goes to the log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Check {
    Up,
    Down { error: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub redis: Check,
    pub mongo: Check,
    /// Things that do not stop serving but need an operator, e.g. a Redis eviction policy that
    /// may delete jobs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.redis == Check::Up && self.mongo == Check::Up
    }

    /// Names of the services that are down, e.g. `["mongo"]`.
    pub fn failed(&self) -> Vec<&'static str> {
        [("redis", &self.redis), ("mongo", &self.mongo)]
            .into_iter()
            .filter(|(_, check)| **check != Check::Up)
            .map(|(name, _)| name)
            .collect()
    }
}

/// Pings Redis and MongoDB concurrently, each bounded by `timeout`.
pub async fn check(redis: &RedisConnection, mongo: &Database, timeout: Duration) -> Readiness {
    let mut redis = redis.clone();
    let (redis_check, mongo) = tokio::join!(
        bounded("redis", timeout, ping_redis(&mut redis)),
        bounded("mongo", timeout, ping_mongo(mongo)),
    );
    let warnings = match redis_check {
        Check::Up => tokio::time::timeout(timeout, eviction_warning(&mut redis))
            .await
            .ok()
            .flatten()
            .into_iter()
            .collect(),
        Check::Down { .. } => Vec::new(),
    };
    Readiness {
        redis: redis_check,
        mongo,
        warnings,
    }
}

/// A warning when Redis may evict keys under memory pressure (`maxmemory-policy` other than
/// `noeviction`): jobs would vanish silently. `None` when the policy is safe or cannot be read
/// (managed services may refuse `CONFIG`).
pub async fn eviction_warning(redis: &mut RedisConnection) -> Option<String> {
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(redis)
        .await
        .ok()?;
    let policy = reply.get(1)?;
    (policy != "noeviction").then(|| {
        format!("redis maxmemory-policy is {policy}: under memory pressure Redis deletes keys, jobs included; set it to noeviction")
    })
}

async fn bounded(
    service: &'static str,
    timeout: Duration,
    ping: impl Future<Output = CoreResult<()>>,
) -> Check {
    let outcome = match tokio::time::timeout(timeout, ping).await {
        Ok(result) => result,
        Err(_) => Err(CoreError::Timeout {
            service,
            timeout_ms: timeout.as_millis() as u64,
        }),
    };
    match outcome {
        Ok(()) => Check::Up,
        Err(error @ CoreError::Timeout { .. }) => Check::Down {
            error: error.to_string(),
        },
        Err(error) => {
            tracing::warn!(service, %error, "readiness check failed");
            Check::Down {
                error: format!("{service} is unreachable or refused the check (details in the log)"),
            }
        }
    }
}
