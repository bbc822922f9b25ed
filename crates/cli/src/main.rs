//! `sellersync`: the operations CLI. Subcommands read the same configuration as the services.

mod bench;
mod ops;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sellersync_core::connections::mongo_database;
use sellersync_core::{Settings, bootstrap, migrations};

#[derive(Parser)]
#[command(name = "sellersync", version, about = "Operate a sellersync deployment")]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the MongoDB migrations (indexes) that have not been applied yet.
    Migrate,
    /// Print the effective configuration (secrets redacted), or one setting with --get.
    Config {
        /// A dotted setting name, e.g. `worker.instances`.
        #[arg(long)]
        get: Option<String>,
    },
    /// Create demo users with seller accounts that the SP-API stand-in accepts (idempotent).
    SeedDemo {
        #[arg(long, default_value_t = 20)]
        users: usize,
        /// Seller accounts per user (they cycle through the na, eu and fe regions).
        #[arg(long, default_value_t = 2)]
        accounts: usize,
    },
    /// Enqueue refresh jobs (one pending job per user; users with one are reported as duplicates).
    Enqueue(EnqueueArgs),
    /// Jobs per state for every configured queue.
    Stats,
    /// Live workers: id, host, started, in-flight jobs, last heartbeat.
    Workers,
    /// Inspect and act on single jobs.
    #[command(subcommand)]
    Jobs(ops::JobsCommand),
    /// Pause, resume and clean queues.
    #[command(subcommand)]
    Queues(ops::QueuesCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(ops::TokenCommand),
    /// Benchmarks; they print one JSON line per scenario. Use a release build.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A benchmark worker process (started by `bench queue`).
    #[command(hide = true)]
    BenchWorker(bench::WorkerArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The queue engine: enqueue, end-to-end processing, pickup latency, commands and memory per
    /// job, crash recovery. Uses a temporary key prefix on the configured Redis.
    Queue(bench::BenchArgs),
    /// process_user_data against the SP-API stand-in with a fixed latency per call.
    Refresh(bench::RefreshBenchArgs),
    /// Users refreshed per second end to end: queue, worker processes, stand-in, JobStatus.
    E2e(bench::E2eBenchArgs),
    /// The hourly producer: select and enqueue N stale users, timed per part.
    Cron(bench::CronBenchArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match bootstrap::init("sellersync") {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Migrate => migrate(&settings, cli.json).await.map_err(|e| e.to_string()),
        Command::Config { get } => show_config(&settings, get.as_deref()),
        Command::Stats => async { ops::Ops::connect(&settings, cli.json).await?.stats().await }.await,
        Command::Workers => async { ops::Ops::connect(&settings, cli.json).await?.workers().await }.await,
        Command::Jobs(c) => async { ops::Ops::connect(&settings, cli.json).await?.jobs(c).await }.await,
        Command::Queues(c) => async { ops::Ops::connect(&settings, cli.json).await?.queues(c).await }.await,
        Command::Token(c) => ops::token(&settings, c),
        Command::Enqueue(args) => enqueue(&settings, args, cli.json).await,
        Command::SeedDemo { users, accounts } => seed_demo(&settings, users, accounts, cli.json).await,
        Command::Bench(BenchCommand::Queue(args)) => bench::run(&settings, &args).await,
        Command::Bench(BenchCommand::Refresh(args)) => bench::refresh(&settings, &args).await,
        Command::Bench(BenchCommand::E2e(args)) => bench::e2e(&settings, &args).await,
        Command::Bench(BenchCommand::Cron(args)) => bench::cron(&settings, &args).await,
        Command::BenchWorker(args) => bench::worker(&settings, &args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sellersync: {error}");
            ExitCode::FAILURE
        }
    }
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

#[derive(clap::Args)]
struct EnqueueArgs {
    /// A user id; repeat for several.
    #[arg(long = "user", required_unless_present_any = ["all", "all_stale"])]
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
    /// Run no sooner than this many ms from now.
    #[arg(long, conflicts_with = "run_at")]
    delay: Option<u64>,
    /// Run no sooner than this time (RFC 3339, e.g. 2030-01-01T09:30:00Z).
    #[arg(long)]
    run_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl EnqueueArgs {
    fn schedule(&self) -> sellersync_core::producer::Schedule {
        let delay = match (self.delay, self.run_at) {
            (Some(ms), _) => Some(std::time::Duration::from_millis(ms)),
            (None, Some(at)) => {
                let ms = (at.timestamp_millis() - chrono::Utc::now().timestamp_millis()).max(0);
                Some(std::time::Duration::from_millis(ms as u64))
            }
            (None, None) => None,
        };
        sellersync_core::producer::Schedule {
            priority: self.priority,
            delay: delay.filter(|d| !d.is_zero()),
        }
    }
}

async fn enqueue(settings: &Settings, args: EnqueueArgs, json: bool) -> Result<(), String> {
    let schedule = args.schedule();
    let EnqueueArgs {
        users,
        all,
        all_stale,
        ..
    } = args;
    use sellersync_core::config::USER_DATA_QUEUE;
    let db = mongo_database(&settings.mongo, "sellersync-cli")
        .await
        .map_err(|e| e.to_string())?;
    let redis = sellersync_core::connections::connect_redis(&settings.redis)
        .await
        .map_err(|e| e.to_string())?;
    let config = settings.queue(USER_DATA_QUEUE).expect("validated");
    let queue = sellersync_queue::Queue::new(redis, &settings.redis.key_prefix, USER_DATA_QUEUE, config);
    let users = if all {
        sellersync_core::accounts::active_user_ids(&db)
            .await
            .map_err(|e| e.to_string())?
    } else if all_stale {
        stale_user_ids(&db, settings.cron.due_tolerance(), json).await?
    } else {
        users
    };
    let trigger = sellersync_core::jobs::Trigger::Manual;
    let report = sellersync_core::producer::enqueue_scheduled(&queue, &users, trigger, 50, schedule)
        .await
        .map_err(|e| e.to_string())?;
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

/// Every stale user, read in batches (progress on stderr).
async fn stale_user_ids(
    db: &mongodb::Database,
    tolerance: std::time::Duration,
    quiet: bool,
) -> Result<Vec<String>, String> {
    let mut stale = sellersync_core::cron::StaleUsers::open(db, chrono::Utc::now(), tolerance)
        .await
        .map_err(|e| e.to_string())?;
    let mut users = Vec::new();
    while let Some(batch) = stale.next_batch(1000).await.map_err(|e| e.to_string())? {
        users.extend(batch);
        if !quiet {
            eprintln!("  {} stale users found so far", users.len());
        }
    }
    Ok(users)
}

async fn seed_demo(settings: &Settings, users: usize, accounts: usize, json: bool) -> Result<(), String> {
    let db = mongo_database(&settings.mongo, "sellersync-cli")
        .await
        .map_err(|e| e.to_string())?;
    migrations::apply(&db).await.map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let report_every = (users / 20).max(1000);
    let progress = |done: usize| {
        if !json && (done.is_multiple_of(report_every) || done == users) {
            eprintln!(
                "  {done}/{users} users ({:.0}%)",
                done as f64 * 100.0 / users.max(1) as f64
            );
        }
    };
    let inserted = sellersync_core::demo::seed(&db, users, accounts, &progress)
        .await
        .map_err(|e| e.to_string())?;
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

async fn migrate(settings: &Settings, json: bool) -> Result<(), sellersync_core::CoreError> {
    let db = mongo_database(&settings.mongo, "sellersync-cli").await?;
    let report = migrations::apply(&db).await?;
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
