//! Start-up steps every binary shares: the service binaries' command line (`--help`,
//! `--version`, `--check-config`), loading configuration or exiting naming the bad setting,
//! setting up logging, applying migrations when configured, and waiting for a backing service
//! to come up.

use std::process::ExitCode;
use std::time::Duration;

use mongodb::Database;

use crate::config::Settings;
use crate::error::{CoreError, CoreResult};
use crate::{migrations, telemetry};

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

/// Runs `attempt` until it succeeds or fails with an error that is not about availability,
/// backing off from 200 ms to 5 s between tries. Used while Redis or MongoDB is still starting.
pub async fn retry_while_unavailable<T, F, Fut>(what: &str, mut attempt: F) -> CoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CoreResult<T>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match attempt().await {
            Err(error) if error.is_unavailable() => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "{what} unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
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
