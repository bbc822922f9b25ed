//! Start-up steps every binary shares: load configuration or exit naming the bad setting, set up
//! logging, apply migrations when configured, and wait for a backing service to come up.

use std::process::ExitCode;
use std::time::Duration;

use mongodb::Database;

use crate::config::Settings;
use crate::error::{CoreError, CoreResult};
use crate::{migrations, telemetry};

/// Exit status for a configuration error (sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// Loads the configuration and installs logging. On a bad setting, prints one line naming it to
/// stderr and returns the exit code the caller should return from `main`.
pub fn init(program: &str) -> Result<Settings, ExitCode> {
    match Settings::load() {
        Ok(settings) => {
            telemetry::init(&settings.log);
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
