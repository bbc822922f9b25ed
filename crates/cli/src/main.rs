//! `sellersync`: the operations CLI. Subcommands read the same configuration as the services
//! (plus `--env-file`, the services' environment file). Human tables and progress bars by
//! default, `--json` for scripts. The benchmarks live in the separate `sellersync-bench`.

mod args;
mod doctor;
mod ops;
mod output;

use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use sellersync_core::infra::connections::{close_mongo, mongo_database};
use sellersync_core::{Settings, bootstrap, infra::migrations};

use crate::args::{Cli, Command};
use crate::output::Progress;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "sellersync", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &cli.env_file
        && let Err(error) = load_env_file(path)
    {
        eprintln!("sellersync: --env-file {}: {error}", path.display());
        return ExitCode::from(bootstrap::EXIT_CONFIG);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Command::Doctor { offline } = cli.command {
        // Not through `bootstrap::init`: a configuration that does not load is one of its findings.
        return runtime.block_on(doctor::run(offline, cli.json));
    }
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let settings = match bootstrap::init("sellersync") {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let json = cli.json;
    let result = match cli.command {
        Command::Migrate => with_database(&settings, async |db| migrate(db, &settings, json).await).await,
        Command::Config { get } => show_config(&settings, get.as_deref()),
        Command::Stats => async { ops::Ops::connect(&settings, json).await?.stats().await }.await,
        Command::Workers => async { ops::Ops::connect(&settings, json).await?.workers().await }.await,
        Command::Jobs(c) => async { ops::Ops::connect(&settings, json).await?.jobs(c).await }.await,
        Command::Queues(c) => async { ops::Ops::connect(&settings, json).await?.queues(c).await }.await,
        Command::Token(c) => ops::token(&settings, c),
        Command::Enqueue {
            users,
            all,
            all_stale,
            priority,
            delay,
            run_at,
        } => {
            let schedule = schedule(priority, delay, run_at);
            let users = Selection {
                users,
                all,
                all_stale,
            };
            with_database(&settings, async |db| {
                enqueue(db, &settings, users, schedule, json).await
            })
            .await
        }
        Command::RebuildReadModel => {
            with_database(&settings, async |db| {
                rebuild_read_model(db, &settings, json).await
            })
            .await
        }
        Command::SeedDemo { users, accounts } => {
            with_database(&settings, async |db| seed_demo(db, users, accounts, json).await).await
        }
        Command::Completions { .. } | Command::Doctor { .. } => {
            unreachable!("answered before configuration is loaded")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sellersync: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a `KEY=value` file (systemd's `EnvironmentFile`, as `deploy/sellersync.env.example`)
/// into this process's environment. Variables already set win, so one can still be overridden
/// on the command line.
fn load_env_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not KEY=value", number + 1))?;
        let (key, value) = (key.trim(), unquote(value.trim()));
        if std::env::var_os(key).is_none() {
            // SAFETY: called from `main` before the runtime starts: the process has one thread.
            unsafe { std::env::set_var(key, value) };
        }
    }
    Ok(())
}

fn unquote(value: &str) -> &str {
    ['"', '\'']
        .iter()
        .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
        .unwrap_or(value)
}

fn show_config(settings: &Settings, key: Option<&str>) -> Result<(), String> {
    let all = serde_json::to_value(settings).expect("settings serialise");
    let Some(key) = key else {
        println!("{}", serde_json::to_string_pretty(&all).expect("JSON prints"));
        return Ok(());
    };
    match all.pointer(&format!("/{}", key.replace('.', "/"))) {
        Some(serde_json::Value::String(text)) => println!("{text}"),
        Some(value) => println!("{value}"),
        None => return Err(format!("unknown setting {key:?}")),
    }
    Ok(())
}

/// Users enqueued per round of the progress bar.
const ENQUEUE_CHUNK: usize = 1000;

/// When and how urgently the enqueued jobs run: `--delay` from now, or `--run-at` (a time in
/// the past is now).
fn schedule(
    priority: u32,
    delay: Option<std::time::Duration>,
    run_at: Option<chrono::DateTime<chrono::FixedOffset>>,
) -> sellersync_core::jobs::producer::Placement {
    let delay = delay.or_else(|| {
        let ms = (run_at?.timestamp_millis() - chrono::Utc::now().timestamp_millis()).max(0);
        Some(std::time::Duration::from_millis(ms as u64))
    });
    sellersync_core::jobs::producer::Placement {
        priority,
        delay: delay.filter(|d| !d.is_zero()),
    }
}

/// Runs `work` against the configured database, then closes the MongoDB client while the
/// runtime still runs (see `close_mongo`: a client left to be dropped at exit can panic inside
/// the driver).
async fn with_database<T>(
    settings: &Settings,
    work: impl AsyncFnOnce(&mongodb::Database) -> Result<T, String>,
) -> Result<T, String> {
    let db = mongo_database(&settings.mongo, "sellersync-cli")
        .await
        .map_err(|e| e.to_string())?;
    let result = work(&db).await;
    close_mongo(&db).await;
    result
}

/// Which users `enqueue` takes: those named, every active one (`--all`) or every stale one
/// (`--all-stale`).
struct Selection {
    users: Vec<String>,
    all: bool,
    all_stale: bool,
}

async fn enqueue(
    db: &mongodb::Database,
    settings: &Settings,
    selection: Selection,
    schedule: sellersync_core::jobs::producer::Placement,
    json: bool,
) -> Result<(), String> {
    use sellersync_core::config::USER_DATA_QUEUE;
    let Selection {
        users,
        all,
        all_stale,
    } = selection;
    let redis = sellersync_core::infra::connections::connect_redis(&settings.redis)
        .await
        .map_err(|e| e.to_string())?;
    let queue = settings.open_queue(redis, USER_DATA_QUEUE).expect("validated");
    let users = if all {
        let found = Progress::spinner(json, "reading active users");
        let users = sellersync_core::domain::accounts::active_user_ids(db)
            .await
            .map_err(|e| e.to_string())?;
        found.finish(&format!("{} active users", users.len()));
        users
    } else if all_stale {
        stale_user_ids(db, settings.cron.due_tolerance, json).await?
    } else {
        users
    };
    let trigger = sellersync_core::jobs::payload::Trigger::Manual;
    let bar = Progress::bar(json, users.len() as u64, "enqueueing");
    let mut report = sellersync_core::jobs::producer::EnqueueReport::default();
    for chunk in users.chunks(ENQUEUE_CHUNK) {
        let part = sellersync_core::jobs::producer::enqueue_scheduled(&queue, chunk, trigger, 50, schedule)
            .await
            .map_err(|e| e.to_string())?;
        report.enqueued.extend(part.enqueued);
        report.duplicates.extend(part.duplicates);
        bar.inc(chunk.len() as u64);
    }
    bar.finish("done");
    if json {
        println!("{}", serde_json::to_string(&report).expect("a report serialises"));
    } else {
        println!(
            "enqueued {} jobs, {} users already had a pending job",
            report.enqueued.len(),
            report.duplicates.len()
        );
    }
    Ok(())
}

/// Every stale user, read in batches (a spinner counts them).
async fn stale_user_ids(
    db: &mongodb::Database,
    tolerance: std::time::Duration,
    quiet: bool,
) -> Result<Vec<String>, String> {
    let mut stale = sellersync_core::jobs::producer::StaleUsers::open(db, chrono::Utc::now(), tolerance)
        .await
        .map_err(|e| e.to_string())?;
    let found = Progress::spinner(quiet, "finding stale users");
    let mut users = Vec::new();
    while let Some(batch) = stale.next_batch(1000).await.map_err(|e| e.to_string())? {
        users.extend(batch);
        found.message(&format!("{} stale users found so far", users.len()));
    }
    found.finish(&format!("{} stale users", users.len()));
    Ok(users)
}

async fn seed_demo(db: &mongodb::Database, users: usize, accounts: usize, json: bool) -> Result<(), String> {
    migrations::apply(db).await.map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let bar = Progress::bar(json, users as u64, "seeding users");
    let progress = |done: usize| bar.set(done as u64);
    let inserted = sellersync_core::demo::seed(db, users, accounts, &progress)
        .await
        .map_err(|e| e.to_string())?;
    bar.finish("done");
    let seconds = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({ "users": users, "accountsPerUser": accounts, "inserted": inserted, "seconds": seconds })
        );
    } else {
        println!(
            "demo data: {users} users with {accounts} seller accounts each ({inserted} new documents, {seconds:.1} s)"
        );
    }
    Ok(())
}

async fn rebuild_read_model(db: &mongodb::Database, settings: &Settings, json: bool) -> Result<(), String> {
    let redis = sellersync_core::infra::connections::connect_redis(&settings.redis)
        .await
        .map_err(|e| e.to_string())?;
    let Some(read_model) = settings.job_status.read_model(redis, &settings.redis.key_prefix) else {
        return Err("the status read model is off (job_status.read_model_jobs = 0)".to_owned());
    };
    let started = std::time::Instant::now();
    let bar = Progress::spinner(json, "loading users");
    let users = read_model
        .rebuild(db, &|done| bar.set(done as u64))
        .await
        .map_err(|e| e.to_string())?;
    bar.finish("done");
    let seconds = started.elapsed().as_secs_f64();
    if json {
        println!("{}", serde_json::json!({ "users": users, "seconds": seconds }));
    } else {
        println!("status read model rebuilt: {users} users ({seconds:.1} s)");
    }
    Ok(())
}

async fn migrate(db: &mongodb::Database, settings: &Settings, json: bool) -> Result<(), String> {
    let report = migrations::apply(db).await.map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&report).expect("a report serialises"));
    } else {
        println!(
            "migrations on {}: {} applied, {} already applied",
            settings.mongo.database,
            report.applied.len(),
            report.already_applied.len()
        );
        for name in &report.applied {
            println!("  applied {name}");
        }
    }
    Ok(())
}
