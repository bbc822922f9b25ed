//! `sellersync-bench`: sellersync's benchmarks, a development tool. It carries the SP-API
//! stand-in and the benchmark harness, which the production binaries (`sellersync`,
//! `sellersync-api`, `sellersync-worker`) do not: build it with `cargo build --release -p
//! sellersync-bench` where you benchmark. Every scenario prints one JSON line. Settings come
//! from the same configuration as the services, but every benchmark works in a namespace of its
//! own (key prefix and database, see `harness`), never in the deployment's data.

mod cron;
mod e2e;
mod harness;
mod metrics;
mod queue;
mod refresh;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sellersync_core::bootstrap;

#[derive(Parser)]
#[command(
    name = "sellersync-bench",
    version = env!("VERSION_WITH_COMMIT"),
    about = "Benchmark sellersync (prints JSON lines; use a release build)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The queue engine: enqueue, end-to-end processing, pickup latency, commands and memory per
    /// job, crash recovery. Uses a temporary key prefix on the configured Redis.
    Queue(queue::BenchArgs),
    /// process_user_data against the SP-API stand-in with a fixed latency per call.
    Refresh(refresh::RefreshBenchArgs),
    /// Users refreshed per second end to end: queue, worker processes, stand-in, JobStatus.
    E2e(e2e::E2eBenchArgs),
    /// The hourly producer: select and enqueue N stale users, timed per part.
    Cron(cron::CronBenchArgs),
    /// Scraping the API's /metrics with many jobs active: Redis latency idle and during parallel
    /// scrapes.
    Metrics(metrics::MetricsBenchArgs),
    /// A benchmark worker process (started by `queue`).
    #[command(hide = true)]
    Worker(queue::WorkerArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match bootstrap::init("sellersync-bench") {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Queue(args) => queue::run(&settings, &args).await,
        Command::Refresh(args) => refresh::refresh(&settings, &args).await,
        Command::E2e(args) => e2e::e2e(&settings, &args).await,
        Command::Cron(args) => cron::cron(&settings, &args).await,
        Command::Metrics(args) => metrics::metrics(&settings, &args).await,
        Command::Worker(args) => queue::worker(&settings, &args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sellersync-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
