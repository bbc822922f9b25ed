//! `sellersync doctor`: is this deployment ready for traffic? It checks the configuration (valid,
//! and its risky values: [`settings`]), Redis (version, eviction policy, persistence, the ACL
//! rights the queue's scripts need, clock skew against Redis `TIME`: [`redis`]), MongoDB
//! (reachable, migrations applied and their indexes present: [`mongo`]) and Login with Amazon
//! (the configured client id and secret accepted: [`lwa`]). `--offline` checks only what needs
//! no network. Human lines or `--json`; the exit status is the worst outcome ([`Outcome`]).
//! Nothing here prints a secret: details name settings, never their values.

mod lwa;
mod mongo;
mod redis;
mod settings;

use std::process::ExitCode;
use std::time::Duration;

use sellersync_core::Settings;
use sellersync_core::bootstrap::EXIT_CONFIG;
use serde::Serialize;

/// How long one service's checks may take in all: a hung server is reported, not waited for.
const SERVICE_LIMIT: Duration = Duration::from_secs(15);

/// What one check found, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not run (`--offline`).
    Skipped,
    /// Worth knowing; nothing to fix.
    Note,
    /// Works, but risky or not as recommended.
    Warn,
    /// Wrong: fix it before traffic.
    Fail,
    /// The service could not be reached (or did not answer in time).
    Unreachable,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Skipped => "skip",
            Self::Note => "note",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Unreachable => "DOWN",
        }
    }
}

/// One finding: which check (a stable name, e.g. `redis.eviction`), its status and what it saw.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn new(check: &'static str, status: Status, detail: impl Into<String>) -> Self {
        Self {
            check,
            status,
            detail: detail.into(),
        }
    }
}

/// The run's result, and the exit status that says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// 0: every check passed (notes and skipped checks included).
    Healthy,
    /// 10: something is risky, nothing is broken.
    Warnings,
    /// 11: a check failed.
    Failed,
    /// 12: Redis, MongoDB or the LWA endpoint could not be reached.
    Unreachable,
    /// 78: the configuration does not load (nothing else was checked).
    ConfigInvalid,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::Warnings => 10,
            Self::Failed => 11,
            Self::Unreachable => 12,
            Self::ConfigInvalid => EXIT_CONFIG,
        }
    }

    fn of(checks: &[Check]) -> Self {
        match checks.iter().map(|c| c.status).max() {
            Some(Status::Unreachable) => Self::Unreachable,
            Some(Status::Fail) => Self::Failed,
            Some(Status::Warn) => Self::Warnings,
            _ => Self::Healthy,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    outcome: Outcome,
    exit_code: u8,
    /// `SELLERSYNC_ENV`, when the configuration loaded.
    environment: Option<&'static str>,
    offline: bool,
    checks: Vec<Check>,
}

/// Runs the checks and prints them; the exit status is the outcome's.
pub async fn run(offline: bool, json: bool) -> ExitCode {
    sellersync_core::infra::tls::install_crypto_provider();
    let report = match Settings::load() {
        Err(error) => Report {
            outcome: Outcome::ConfigInvalid,
            exit_code: Outcome::ConfigInvalid.exit_code(),
            environment: None,
            offline,
            checks: vec![Check::new("config", Status::Fail, error.to_string())],
        },
        Ok(settings) => {
            let checks = checks(&settings, offline).await;
            let outcome = Outcome::of(&checks);
            Report {
                outcome,
                exit_code: outcome.exit_code(),
                environment: Some(settings.environment.name()),
                offline,
                checks,
            }
        }
    };
    if json {
        println!("{}", serde_json::to_string(&report).expect("a report serialises"));
    } else {
        print_human(&report);
    }
    ExitCode::from(report.exit_code)
}

/// Every check for `settings`: the configuration's at once, the services' concurrently.
async fn checks(settings: &Settings, offline: bool) -> Vec<Check> {
    let mut checks = settings::checks(settings);
    if offline {
        for check in ["redis", "mongo", "lwa"] {
            checks.push(Check::new(check, Status::Skipped, "--offline"));
        }
        return checks;
    }
    let (redis, mongo, lwa) = tokio::join!(
        redis::checks(settings),
        mongo::checks(settings),
        lwa::check(settings)
    );
    checks.extend(redis);
    checks.extend(mongo);
    checks.push(lwa);
    checks
}

/// Runs `work` for at most [`SERVICE_LIMIT`]; `None` when it did not finish.
async fn bounded<T>(work: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(SERVICE_LIMIT, work).await.ok()
}

/// The check a service that did not answer in time gets.
fn no_answer(check: &'static str, service: &str) -> Check {
    Check::new(
        check,
        Status::Unreachable,
        format!("{service} did not answer within {} s", SERVICE_LIMIT.as_secs()),
    )
}

fn print_human(report: &Report) {
    match report.environment {
        Some(environment) => println!("sellersync doctor: SELLERSYNC_ENV={environment}"),
        None => println!("sellersync doctor: the configuration does not load"),
    }
    let width = report.checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    for check in &report.checks {
        println!(
            "  {:<4}  {:<width$}  {}",
            check.status.label(),
            check.check,
            check.detail
        );
    }
    let count = |status: Status| report.checks.iter().filter(|c| c.status == status).count();
    let tally: Vec<String> = [
        (Status::Unreachable, "unreachable", "unreachable"),
        (Status::Fail, "failed", "failed"),
        (Status::Warn, "warning", "warnings"),
        (Status::Note, "note", "notes"),
        (Status::Ok, "ok", "ok"),
        (Status::Skipped, "skipped", "skipped"),
    ]
    .into_iter()
    .filter(|(status, ..)| count(*status) > 0)
    .map(|(status, one, many)| match count(status) {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    })
    .collect();
    let outcome = serde_json::to_value(report.outcome).expect("an outcome serialises");
    println!(
        "outcome: {} (exit {}): {}",
        outcome.as_str().unwrap_or_default(),
        report.exit_code,
        tally.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_status_sets_the_outcome_and_its_exit_code() {
        let with = |statuses: &[Status]| {
            let checks: Vec<Check> = statuses.iter().map(|s| Check::new("x", *s, "")).collect();
            Outcome::of(&checks).exit_code()
        };
        assert_eq!(with(&[Status::Ok, Status::Note, Status::Skipped]), 0);
        assert_eq!(with(&[Status::Ok, Status::Warn, Status::Note]), 10);
        assert_eq!(with(&[Status::Warn, Status::Fail]), 11);
        assert_eq!(with(&[Status::Fail, Status::Unreachable, Status::Warn]), 12);
        assert_eq!(Outcome::ConfigInvalid.exit_code(), 78);
    }
}
