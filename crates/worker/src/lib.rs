//! sellersync-worker: one worker process. It runs an apalis `Monitor` with a worker on the
//! `user-data` queue (our Redis backend, `WORKER_CONCURRENCY` jobs at once, a per-job timeout,
//! panics caught), whose handler runs `process_user_data`, and a JobStatus projector beside it
//! (`job_status.projector`). It tells systemd when it is ready and feeds its watchdog from the
//! queue heartbeats; with `METRICS_PORT` it serves `/metrics` and `/healthz` ([`health`]).
//! SIGTERM/SIGINT stops it at once while it still waits for Redis or MongoDB; once running, it
//! stops fetching, lets running jobs finish within the drain timeout, hands back whatever is
//! still leased, then stops the projector. With webhooks configured it also runs a worker on the
//! `notifications` queue (`notifications`), and a projector for it.

pub mod handler;
pub mod health;
pub mod notifications;
pub mod outcome_metrics;
pub mod user_lock;

use std::sync::{Arc, Mutex};

use apalis::layers::WorkerBuilderExt;
use apalis::prelude::{Monitor, WorkerBuilder};
use mongodb::Database;
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::domain::spapi::SpApiClient;
use sellersync_core::infra::connections::{
    close_mongo, connect_redis, lazy_redis, mongo_database, ping_mongo,
};
use sellersync_core::infra::instance::instance_id;
use sellersync_core::jobs::notify::{Delivery, NOTIFICATIONS_QUEUE};
use sellersync_core::jobs::payload::RefreshUser;
use sellersync_core::jobs::refresh::{Caches, RefreshStore, Refresher};
use sellersync_core::{CoreError, Settings, bootstrap, infra::systemd};
use sellersync_queue::RedisConnection;
use sellersync_queue::apalis::{HeldLeases, RedisBackend};

use crate::handler::{UserLimit, WorkerState, refresh_user};
use crate::health::Heartbeats;
use crate::notifications::DeliveryState;
use crate::user_lock::UserLocks;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("SP-API client: {0}")]
    SpApi(#[from] sellersync_core::domain::spapi::SpApiError),
    #[error("worker monitor: {0}")]
    Monitor(String),
}

/// Connects, logs the ready line, runs jobs until `shutdown` resolves, then drains.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    let worker_id = instance_id();
    tracing::info!(worker_id, "sellersync-worker starting");
    let mut shutdown = Box::pin(shutdown);
    let Some((redis, mongo)) = connect(&settings, &mut shutdown).await? else {
        tracing::info!(worker_id, "sellersync-worker stopped before it was ready");
        return Ok(());
    };

    let queue = settings
        .open_queue(redis.clone(), USER_DATA_QUEUE)
        .expect("validated with the configuration");
    let prefix = settings.redis.key_prefix.clone();
    let concurrency = queue.config().concurrency() as usize;
    let job_timeout = settings.worker.job_timeout;
    let state = WorkerState {
        worker_id: worker_id.clone(),
        refresher: Refresher {
            store: RefreshStore::with_operation_timeout(mongo.clone(), settings.mongo.operation_timeout),
            redis: redis.clone(),
            spapi: Arc::new(
                SpApiClient::new(settings.spapi.clone())?.with_shared_rate_limits(redis.clone(), &prefix),
            ),
            settings: settings.refresh.clone(),
            caches: Caches::new(redis.clone(), &prefix),
        },
        queue: queue.clone(),
        locks: UserLocks::new(redis.clone(), &prefix, user_lock_ttl(queue.config())),
        settings: Arc::new(settings.clone()),
        user_limit: settings
            .worker
            .user_rate_limit
            .map(|limit| UserLimit::new(redis.clone(), &prefix, limit)),
        notifier: sellersync_core::bootstrap::notifier(&settings, redis.clone()),
    };
    let observer = outcome_metrics::observer(USER_DATA_QUEUE);
    let heartbeats = Arc::new(Heartbeats::default());
    health::serve(
        settings.worker.metrics_bind,
        settings.worker.metrics_port,
        Arc::clone(&heartbeats),
        &worker_id,
        queue.config().lease() * 3,
    )
    .await;
    let on_heartbeat = heartbeats.hook();
    metrics::gauge!(sellersync_core::infra::metrics::WORKER_CONCURRENCY, "queue" => USER_DATA_QUEUE)
        .set(concurrency as f64);
    let mut projectors = vec![sellersync_core::bootstrap::spawn_projector(
        &settings,
        queue.clone(),
        mongo.clone(),
        &worker_id,
    )?];
    let held: Arc<Mutex<Vec<(String, HeldLeases)>>> = Arc::default();
    let redis_settings = settings.redis.clone();

    let factory_held = Arc::clone(&held);
    let factory_id = worker_id.clone();
    let mut monitor = Monitor::new()
        .register(move |_| {
            // Its own connection for blocking wake-ups; connects on first use.
            let wake = lazy_redis(&redis_settings).expect("settings were validated");
            let backend = RedisBackend::<RefreshUser>::new(queue.clone(), wake, concurrency)
                .with_observer(observer.clone())
                .with_heartbeat_hook(on_heartbeat.clone());
            factory_held
                .lock()
                .expect("held leases lock")
                .push((factory_id.clone(), backend.held_leases()));
            WorkerBuilder::new(factory_id.clone())
                .backend(backend)
                .data(state.clone())
                .concurrency(concurrency)
                .timeout(job_timeout)
                .catch_panic()
                .build(refresh_user)
        })
        .shutdown_timeout(settings.worker.drain_timeout);
    if !settings.notifications.webhooks.is_empty() {
        let deliveries = settings
            .open_queue(redis.clone(), NOTIFICATIONS_QUEUE)
            .expect("validated with the configuration");
        projectors.push(sellersync_core::bootstrap::spawn_projector(
            &settings,
            deliveries.clone(),
            mongo.clone(),
            &worker_id,
        )?);
        let (held, name) = (Arc::clone(&held), format!("{worker_id}-notify"));
        let (redis_settings, state) = (settings.redis.clone(), DeliveryState::new(&settings));
        let concurrency = deliveries.config().concurrency() as usize;
        monitor = monitor.register(move |_| {
            let wake = lazy_redis(&redis_settings).expect("settings were validated");
            let backend = RedisBackend::<Delivery>::new(deliveries.clone(), wake, concurrency);
            held.lock()
                .expect("held leases lock")
                .push((name.clone(), backend.held_leases()));
            WorkerBuilder::new(name.clone())
                .backend(backend)
                .data(state.clone())
                .concurrency(concurrency)
                .catch_panic()
                .build(notifications::deliver)
        });
    }
    tracing::info!(
        worker_id,
        concurrency,
        queue = USER_DATA_QUEUE,
        "sellersync-worker ready"
    );
    systemd::ready();
    let outcome = monitor
        .run_with_signal(async move {
            shutdown.await;
            systemd::stopping();
            tracing::info!("draining: no new jobs; running jobs may finish");
            Ok(())
        })
        .await;
    let backends: Vec<(String, HeldLeases)> = held.lock().expect("held leases lock").drain(..).collect();
    for (name, leases) in backends {
        match leases.release(&name).await {
            Ok(0) => {}
            Ok(count) => tracing::warn!(count, "handed unfinished jobs back to the queue"),
            Err(error) => tracing::warn!(%error, "could not hand jobs back; their leases will expire"),
        }
    }
    for projector in projectors.into_iter().flatten() {
        projector.stop().await;
    }
    close_mongo(&mongo).await;
    outcome.map_err(|e| WorkerError::Monitor(e.to_string()))?;
    tracing::info!(worker_id, "sellersync-worker stopped");
    Ok(())
}

/// Connects to Redis and MongoDB, waiting while they are unavailable, and applies migrations
/// when configured. Waiting can take long, so `shutdown` still stops it (`None` then); the
/// MongoDB client is closed on every way out but success (see [`close_mongo`]).
async fn connect(
    settings: &Settings,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Result<Option<(RedisConnection, Database)>, WorkerError> {
    let redis = bootstrap::retry_while_unavailable("redis", || connect_redis(&settings.redis));
    let Some(redis) = bootstrap::unless_stopped(shutdown, redis).await.transpose()? else {
        return Ok(None);
    };
    if let Some(warning) = sellersync_core::infra::readiness::eviction_warning(&mut redis.clone()).await {
        tracing::warn!(warning, "redis configuration puts jobs at risk");
    }
    // Making the client does not wait for the server; the ping does.
    let mongo = mongo_database(&settings.mongo, "sellersync-worker").await?;
    let ready = async {
        bootstrap::retry_while_unavailable("mongodb", || ping_mongo(&mongo)).await?;
        bootstrap::migrate_if_configured(settings, &mongo).await
    };
    match bootstrap::unless_stopped(shutdown, ready).await {
        Some(Ok(())) => Ok(Some((redis, mongo))),
        Some(Err(error)) => {
            close_mongo(&mongo).await;
            Err(error.into())
        }
        None => {
            close_mongo(&mongo).await;
            Ok(None)
        }
    }
}

/// How long a user lock outlives its last renewal: long enough to ride out a Redis stall of
/// several leases (a later attempt of the same job takes the lock over at once anyway).
fn user_lock_ttl(queue: &sellersync_queue::QueueConfig) -> std::time::Duration {
    queue.lease() * 5
}
