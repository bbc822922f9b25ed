//! The command line: every subcommand and flag with its help, enumerations checked by clap
//! (before anything connects), durations in human form (`30s`, `15m`, `7d`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_queue::JobState;

#[derive(Parser)]
#[command(
    name = "sellersync",
    version = env!("VERSION_WITH_COMMIT"),
    about = "Operate a sellersync deployment",
    after_help = "Settings come from config/, SELLERSYNC_ENV and the environment, as for the services. \
                  On a server, pass the services' environment file: --env-file /etc/sellersync/sellersync.env"
)]
pub struct Cli {
    /// Print machine-readable JSON instead of tables, and no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    /// Read KEY=value settings from this file first (systemd's EnvironmentFile format);
    /// variables already set in the environment win.
    #[arg(long, global = true, env = "SELLERSYNC_ENV_FILE", value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Apply the MongoDB migrations (indexes) that have not been applied yet.
    Migrate,
    /// Print the effective configuration (secrets redacted), or one setting with --get.
    Config {
        /// A dotted setting name, e.g. `worker.instances`.
        #[arg(long, value_name = "SETTING")]
        get: Option<String>,
    },
    /// Create demo users with seller accounts that the SP-API stand-in accepts (idempotent).
    SeedDemo {
        /// How many demo users (demo-user-000000, ...).
        #[arg(long, default_value_t = 20)]
        users: usize,
        /// Seller accounts per user (they cycle through the na, eu and fe regions).
        #[arg(long, default_value_t = 2)]
        accounts: usize,
    },
    /// Enqueue refresh jobs (one pending job per user; users with one are reported as duplicates).
    Enqueue {
        /// A user id; repeat for several.
        #[arg(long = "user", value_name = "USER_ID", required_unless_present_any = ["all", "all_stale"])]
        users: Vec<String>,
        /// Every active user.
        #[arg(long, conflicts_with_all = ["users", "all_stale"])]
        all: bool,
        /// Every user whose data is stale (what the hourly producer selects).
        #[arg(long, conflicts_with = "users")]
        all_stale: bool,
        /// 0 is the most urgent; at most the queue's priority_levels - 1.
        #[arg(long, default_value_t = 0)]
        priority: u32,
        /// Run no sooner than this from now, e.g. `30s`, `15m`, `2h` (a bare number is seconds).
        #[arg(long, conflicts_with = "run_at", value_parser = duration)]
        delay: Option<std::time::Duration>,
        /// Run no sooner than this time (RFC 3339, e.g. 2030-01-01T09:30:00Z).
        #[arg(long)]
        run_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
    /// Refill the status read model in Redis from MongoDB (after a Redis loss): every user's
    /// freshness and latest jobs.
    RebuildReadModel,
    /// Jobs per state for every configured queue.
    Stats,
    /// Live workers: id, host, started, in-flight jobs, last heartbeat.
    Workers,
    /// Inspect and act on single jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Pause, resume, clean and retry queues.
    #[command(subcommand)]
    Queues(QueuesCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check that this deployment is ready for traffic: the configuration and its risky values,
    /// Redis (version, eviction policy, persistence, ACL rights, clock skew), MongoDB (migrations
    /// and indexes) and the LWA credentials. Exit status: 0 healthy, 10 warnings, 11 a check
    /// failed, 12 a service unreachable, 78 the configuration does not load.
    Doctor {
        /// Check only what needs no network or service: the configuration and its risky values.
        #[arg(long)]
        offline: bool,
    },
    /// Print a shell completion script, e.g. `sellersync completions bash > /etc/bash_completion.d/sellersync`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

/// A job state, as the queue names it.
#[derive(Clone, Copy, ValueEnum)]
pub enum State {
    Waiting,
    Active,
    Delayed,
    Completed,
    Failed,
    Paused,
}

impl From<State> for JobState {
    fn from(state: State) -> Self {
        match state {
            State::Waiting => Self::Waiting,
            State::Active => Self::Active,
            State::Delayed => Self::Delayed,
            State::Completed => Self::Completed,
            State::Failed => Self::Failed,
            State::Paused => Self::Paused,
        }
    }
}

/// The states a queue can be cleaned of.
#[derive(Clone, Copy, ValueEnum)]
pub enum FinishedState {
    Completed,
    Failed,
}

impl From<FinishedState> for JobState {
    fn from(state: FinishedState) -> Self {
        match state {
            FinishedState::Completed => Self::Completed,
            FinishedState::Failed => Self::Failed,
        }
    }
}

/// `30s`, `15m`, `12h`, `7d`, `1h 30m`; a bare number is seconds (the old `--*-secs` flags).
fn duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.trim().parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 30s, 15m, 12h, 7d)"))
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Jobs in a state, newest first.
    List {
        /// The queue to list.
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
        /// Which jobs.
        #[arg(long, value_enum, default_value = "failed")]
        state: State,
        /// At most this many jobs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Skip this many (newest) jobs first: the next page.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Only this user's jobs (looks through at most 10000 jobs of the state).
        #[arg(long, value_name = "USER_ID")]
        user: Option<String>,
    },
    /// One job, whole.
    Show {
        /// The job id.
        id: String,
        /// The job's queue.
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
    /// Put a failed job back to waiting.
    Retry {
        /// The job id.
        id: String,
        /// The job's queue.
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
    /// Override the priority of a waiting or delayed job (0 is the most urgent).
    Priority {
        /// The job id.
        id: String,
        /// The new priority.
        priority: u32,
        /// The job's queue.
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
    /// Make a delayed (or retry-scheduled) job due now.
    Promote {
        /// The job id.
        id: String,
        /// The job's queue.
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
    /// Delete a job that is not running.
    Remove {
        /// The job id.
        id: String,
        /// The job's queue.
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
}

#[derive(Subcommand)]
pub enum QueuesCommand {
    /// Workers stop taking jobs from the queue; running jobs finish.
    Pause {
        /// The queue.
        name: String,
    },
    /// Workers take jobs from the queue again.
    Resume {
        /// The queue.
        name: String,
    },
    /// Delete finished jobs older than an age.
    Clean {
        /// The queue.
        name: String,
        /// Which finished jobs.
        #[arg(long, value_enum, default_value = "completed")]
        state: FinishedState,
        /// Only jobs that finished longer ago than this (30s, 15m, 12h, 7d).
        #[arg(long, value_parser = duration, default_value = "1h", value_name = "AGE", alias = "older-than-secs")]
        older_than: Duration,
        /// At most this many jobs.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Put failed jobs back to waiting, oldest failure first.
    RetryFailed {
        /// The queue.
        name: String,
        /// At most this many jobs.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a signed API token (HS256 with JWT_SECRET).
    Mint {
        /// The token's subject: a user id, or an operator name for admin tokens.
        #[arg(long)]
        sub: String,
        /// What the token may do: read its own user's data, read everything, or everything.
        #[arg(long, value_enum, default_value = "user")]
        role: TokenRole,
        /// How long the token is valid (30s, 15m, 12h, 7d).
        #[arg(long, value_parser = duration, default_value = "1h", value_name = "DURATION", alias = "ttl-secs")]
        ttl: Duration,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TokenRole {
    User,
    Viewer,
    Admin,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_every_flag_has_help() {
        let command = Cli::command();
        command.clone().debug_assert();
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} {id} has no help text");
            }
            for sub in command.get_subcommands() {
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no help text",
                    sub.get_name()
                );
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&command, "sellersync");
    }

    #[test]
    fn bad_enum_values_and_durations_are_refused_by_the_parser() {
        for args in [
            &["sellersync", "jobs", "list", "--state", "bogus"][..],
            &[
                "sellersync",
                "queues",
                "clean",
                "user-data",
                "--older-than",
                "soon",
            ],
            &["sellersync", "token", "mint", "--sub", "x", "--role", "root"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
        let parsed =
            Cli::try_parse_from(["sellersync", "queues", "clean", "q", "--older-than", "7d"]).unwrap();
        let Command::Queues(QueuesCommand::Clean { older_than, .. }) = parsed.command else {
            panic!("parsed as clean");
        };
        assert_eq!(older_than, Duration::from_secs(7 * 24 * 3600));
    }
}
