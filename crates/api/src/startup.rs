//! Building and running the API: connect, migrate if configured, bind, serve until a shutdown
//! signal, then drain in-flight requests for at most `server.shutdown_timeout_ms`, stop the
//! background tasks (producer, live event readers, health watch), the JobStatus projector last,
//! and close MongoDB.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::infra::connections::{close_mongo, lazy_redis, lazy_redis_for_requests, mongo_database};
use sellersync_core::infra::instance::instance_id;
use sellersync_core::jobs::job_status::projector::RunningProjector;
use sellersync_core::jobs::producer::Producer;
use sellersync_core::{CoreError, Settings, bootstrap};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::live::Hub;
use crate::routes;
use crate::state::{AppState, Queues};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Stops background services (the hourly producer, live event readers, health watch) on
    /// shutdown.
    stop: tokio::sync::watch::Sender<bool>,
    /// Those services' tasks: awaited (for at most [`BACKGROUND_STOP_TIMEOUT`]) before MongoDB
    /// is closed under them.
    background: TaskTracker,
    /// Records the queue's events in JobStatus (`job_status.projector`); stopped last.
    projector: Option<RunningProjector>,
}

impl Application {
    /// Connects (Redis lazily, so the API can start and report itself not ready while Redis is
    /// down, and with a short reconnect budget, so requests fail fast while it is), starts applying migrations when configured, and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let redis = lazy_redis_for_requests(&settings.redis)?;
        let mongo = mongo_database(&settings.mongo, "sellersync-api").await?;
        let background = TaskTracker::new();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // In the background: the API starts (and reports itself not ready) while MongoDB is down,
        // and a stop does not wait for MongoDB to come back.
        let (migration_settings, migration_db) = (settings.clone(), mongo.clone());
        let mut migration_stop = stop.subscribe();
        background.spawn(async move {
            let migrate = bootstrap::migrate_if_configured(&migration_settings, &migration_db);
            if let Some(Err(error)) = bootstrap::unless_stopping(&mut migration_stop, migrate).await {
                tracing::error!(%error, "migrations failed");
            }
        });
        let addr = SocketAddr::new(settings.server.host, settings.server.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        if settings.cron.enabled {
            // Its own connection with the full reconnect budget: a short Redis blip should not
            // fail a tick the way it may fail a request.
            let producer = producer(&settings, &lazy_redis(&settings.redis)?, &mongo);
            let options = crate::cron::Options {
                retry: settings.cron.retry(),
                catch_up: settings.cron.catch_up,
                notifier: bootstrap::notifier(&settings, lazy_redis(&settings.redis)?),
                ticks: background.clone(),
            };
            background.spawn(crate::cron::run(
                producer,
                settings.cron.schedule.clone(),
                settings.timezone,
                options,
                stopped,
            ));
        }
        let projected = settings
            .open_queue(lazy_redis(&settings.redis)?, USER_DATA_QUEUE)
            .expect("validated with the configuration");
        let projector = bootstrap::spawn_projector(&settings, projected, mongo.clone(), &instance_id())?;
        let queues = Queues::from_settings(&settings, &redis);
        let live = Hub::start(
            queues.all().cloned().collect(),
            || lazy_redis(&settings.redis).ok(),
            mongo.clone(),
            &settings.events,
            stop.subscribe(),
            background.clone(),
        )
        .await;
        let state = AppState {
            live: Arc::new(live),
            scrapes: Arc::new(crate::monitoring::ScrapeCache::new(settings.server.metrics_cache)),
            queues: Arc::new(queues),
            read_model: settings
                .job_status
                .read_model(redis.clone(), &settings.redis.key_prefix),
            settings: settings.into(),
            redis,
            mongo,
            prometheus: crate::http_metrics::prometheus(),
        };
        if let Some(notifier) = bootstrap::notifier(&state.settings, state.redis.clone())
            .filter(|n| n.wants(sellersync_core::jobs::notify::EventType::QueueUnhealthy))
        {
            background.spawn(crate::health_watch::run(
                state.clone(),
                notifier,
                stop.subscribe(),
            ));
        }
        Ok(Self {
            listener,
            state,
            stop,
            background,
            projector,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish,
    /// for at most the configured shutdown timeout.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let drain_timeout = self.state.settings.server.shutdown_timeout;
        let stop = self.stop;
        let background = self.background;
        let projector = self.projector;
        let mongo = self.state.mongo.clone();
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let app = routes::router(self.state)
            .into_make_service_with_connect_info::<crate::connection::ClientConnection>();
        let server = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            sellersync_core::infra::systemd::stopping();
            // This also ends open live event streams (their subscriptions watch `stop`), so the
            // drain does not wait on them.
            let _ = stop.send(true);
            let _ = stopping_tx.send(());
        });
        let drain_deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(drain_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let served = tokio::select! {
            result = server => result,
            () = drain_deadline => {
                tracing::warn!(timeout_ms = drain_timeout.as_millis() as u64, "requests still running after the shutdown timeout; closing them");
                Ok(())
            }
        };
        stop_background(background).await;
        if let Some(projector) = projector {
            projector.stop().await;
        }
        close_mongo(&mongo).await;
        served
    }
}

/// How long a stopping API waits for its background tasks (a tick's enqueue batch, a reader's
/// user lookup) to notice the stop and end.
const BACKGROUND_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits for the background tasks, which were told to stop; a task still running after
/// [`BACKGROUND_STOP_TIMEOUT`] is left to end with the process.
async fn stop_background(tasks: TaskTracker) {
    tasks.close();
    if tokio::time::timeout(BACKGROUND_STOP_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            running = tasks.len(),
            timeout_ms = BACKGROUND_STOP_TIMEOUT.as_millis() as u64,
            "background tasks still running after the stop timeout; closing MongoDB under them"
        );
    }
}

fn producer(
    settings: &Settings,
    redis: &sellersync_queue::RedisConnection,
    mongo: &mongodb::Database,
) -> Producer {
    Producer {
        db: mongo.clone(),
        redis: redis.clone(),
        queue: settings
            .open_queue(redis.clone(), USER_DATA_QUEUE)
            .expect("validated with the configuration"),
        instance: instance_id(),
        key_prefix: settings.redis.key_prefix.clone(),
        batch_size: settings.cron.batch_size,
        lease_ttl: settings.cron.lease_ttl,
        due_tolerance: settings.cron.due_tolerance,
    }
}
