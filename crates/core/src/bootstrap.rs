//! Start-up steps every binary shares: the service binaries' command line (`--help`,
//! `--version`, `--check-config`), loading configuration or exiting naming the bad setting,
//! setting up logging, applying migrations when configured, waiting for a backing service to
//! come up, and wiring the parts the settings switch on (the JobStatus projector, the webhook
//! notifier). The one module below the binaries that reads the whole [`Settings`].

use std::process::ExitCode;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use mongodb::Database;

use sellersync_queue::Queue;
use sellersync_queue::RedisConnection;

use crate::config::Settings;
use crate::infra::connections::lazy_redis;
use crate::infra::error::{CoreError, CoreResult};
use crate::infra::{migrations, telemetry};
use crate::jobs::job_status::projection::Retention;
use crate::jobs::job_status::projector::{Projector, RunningProjector};
use crate::jobs::notify::{self, NOTIFICATIONS_QUEUE, Notifier};

/// Exit status for a configuration error (sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// The command line of a service binary (`sellersync-api`, `sellersync-worker`): it takes no
/// settings (those come from the configuration files and the environment), only these flags.
#[derive(Debug, clap::Parser)]
struct ServiceArgs {
    /// Validate the configuration, print the effective configuration (secrets redacted) as JSON
    /// and exit: 0 when it is valid, 78 naming the bad setting when not. Connects to nothing.
    #[arg(long)]
    check_config: bool,
}

/// What a service binary was asked to do.
pub enum Start {
    /// Run, with these settings (logging is installed).
    Run(Box<Settings>),
    /// Exit now with this code (`--check-config` done, or a configuration error printed).
    Exit(ExitCode),
}

/// Parses a service binary's command line, then loads the configuration. `--help` and
/// `--version` print and exit 0 before anything else happens; `--check-config` prints the
/// effective configuration and exits. `about` is the one-line description `--help` shows.
pub fn start_service(program: &'static str, version: &'static str, about: &'static str) -> Start {
    use clap::{CommandFactory, FromArgMatches};
    let command = ServiceArgs::command()
        .name(program)
        .version(version)
        .about(about)
        .after_help(
            "Settings come from config/default.toml, config/$SELLERSYNC_ENV.toml and the \
             environment; docs/configuration.md lists them all.",
        );
    let args = ServiceArgs::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    if args.check_config {
        return Start::Exit(check_config(program));
    }
    match init(program) {
        Ok(settings) => Start::Run(Box::new(settings)),
        Err(code) => Start::Exit(code),
    }
}

/// `--check-config`: validates and prints the effective configuration, redacted.
fn check_config(program: &str) -> ExitCode {
    match Settings::load() {
        Ok(settings) => {
            let redacted = serde_json::to_string_pretty(&settings).expect("settings serialise");
            println!("{redacted}");
            eprintln!(
                "{program}: configuration is valid ({})",
                settings.environment.name()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{program}: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Runs `work` unless `shutdown` resolves first; `None` then. For start-up steps that may wait
/// a long time for a backing service: a process that cannot reach Redis yet still stops
/// promptly on SIGTERM.
pub async fn unless_stopped<T>(
    shutdown: &mut (impl Future<Output = ()> + Unpin),
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        value = work => Some(value),
        () = shutdown => None,
    }
}

/// The same for a background task told to stop through a watch channel (`stop` turning true);
/// the queue crate owns it (the worker's backend uses it too).
pub use sellersync_queue::unless_stopping;

/// Loads the configuration and installs logging. On a bad setting, prints one line naming it to
/// stderr and returns the exit code the caller should return from `main`.
pub fn init(program: &str) -> Result<Settings, ExitCode> {
    match Settings::load() {
        Ok(settings) => {
            telemetry::init(&settings.log, program);
            Ok(settings)
        }
        Err(error) => {
            eprintln!("{program}: {error}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// How [`retry_while_unavailable`] waits between tries: from 200 ms, doubling, up to 5 s, for
/// as long as it takes.
pub fn startup_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .without_max_times()
}

/// Runs `attempt` until it succeeds or fails with an error that is not about availability,
/// backing off by [`startup_backoff`]. Used while Redis or MongoDB is still starting.
pub async fn retry_while_unavailable<T, F, Fut>(what: &str, attempt: F) -> CoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CoreResult<T>>,
{
    attempt
        .retry(startup_backoff())
        .when(CoreError::is_unavailable)
        .notify(|error, delay| {
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "{what} unavailable; retrying");
        })
        .await
}

/// Applies migrations if `mongo.migrate_on_start` is set, waiting for MongoDB if it is not up yet.
pub async fn migrate_if_configured(settings: &Settings, db: &Database) -> Result<(), CoreError> {
    if !settings.mongo.migrate_on_start {
        return Ok(());
    }
    let report = retry_while_unavailable("mongodb", || migrations::apply(db)).await?;
    tracing::info!(applied = ?report.applied, already_applied = report.already_applied.len(), "migrations checked");
    Ok(())
}

/// The webhook notifier, when any webhook is configured; it enqueues on the `notifications`
/// queue over `redis`.
pub fn notifier(settings: &Settings, redis: RedisConnection) -> Option<Notifier> {
    let queue = settings
        .open_queue(redis, NOTIFICATIONS_QUEUE)
        .expect("the notifications queue is required by the configuration");
    notify::notifier(&settings.notifications, queue)
}

/// Starts a JobStatus projector for `queue` in this process, unless `job_status.projector` is
/// off. `consumer` names this process in the consumer group (its instance id).
pub fn spawn_projector(
    settings: &Settings,
    queue: Queue,
    db: Database,
    consumer: &str,
) -> CoreResult<Option<RunningProjector>> {
    if !settings.job_status.projector {
        return Ok(None);
    }
    let retention = Retention::of(queue.config(), settings.job_status.pending_retention);
    let reader = lazy_redis(&settings.redis)?;
    // Failed deliveries are not notified (that could loop); they show in the queue's API.
    let notifier = (queue.name() != NOTIFICATIONS_QUEUE)
        .then(|| notifier(settings, queue.connection()))
        .flatten();
    let read_model = settings
        .job_status
        .read_model(queue.connection(), &settings.redis.key_prefix)
        .map(|model| {
            let reader = lazy_redis(&settings.redis)?;
            let projector =
                Projector::for_read_model(queue.clone(), model, reader, consumer.to_owned(), retention);
            Ok::<_, CoreError>(projector.spawn())
        })
        .transpose()?;
    let projector = Projector::new(queue, db, reader, consumer.to_owned(), retention)
        .with_notifier(notifier)
        .with_operation_timeout(settings.mongo.operation_timeout);
    Ok(Some(projector.spawn().beside(read_model)))
}
