//! sellersync-worker: a worker process. Today it connects to Redis and MongoDB (waiting for them
//! if they are still starting), announces itself with its unique worker id and stays up until
//! SIGTERM/SIGINT. The apalis workers running `process_user_data` plug in here.

use sellersync_core::connections::{connect_redis, mongo_database, ping_mongo};
use sellersync_core::instance::instance_id;
use sellersync_core::{CoreError, Settings, bootstrap};

/// Connects, logs the ready line and runs until `shutdown` resolves.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), CoreError> {
    let worker_id = instance_id();
    tracing::info!(worker_id, "sellersync-worker starting");
    let _redis = bootstrap::retry_while_unavailable("redis", || connect_redis(&settings.redis)).await?;
    let mongo = mongo_database(&settings.mongo, "sellersync-worker").await?;
    bootstrap::retry_while_unavailable("mongodb", || ping_mongo(&mongo)).await?;
    bootstrap::migrate_if_configured(&settings, &mongo).await?;
    tracing::info!(
        worker_id,
        concurrency = settings.worker.concurrency,
        "sellersync-worker ready"
    );
    shutdown.await;
    tracing::info!(worker_id, "sellersync-worker stopped");
    Ok(())
}
