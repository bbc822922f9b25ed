//! `sellersync`: the operations CLI. Subcommands read the same configuration as the services.

mod bench;

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
        Command::Bench(BenchCommand::Queue(args)) => bench::run(&settings, &args).await,
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
