//! `sellersync-chaos`: runs the chaos scenario and prints its report as one JSON line; exits 1
//! when a job was lost, failed because of a fault, or JobStatus disagrees with the queue.
//! `--short` is the form the test command runs.

use std::process::ExitCode;

use clap::Parser;
use sellersync_chaos::Scenario;

#[derive(Parser)]
#[command(
    name = "sellersync-chaos",
    version = env!("VERSION_WITH_COMMIT"),
    about = "The system under faults: lost jobs, failures and JobStatus mismatches"
)]
struct Cli {
    /// The short form (about half a minute) instead of the values below.
    #[arg(long)]
    short: bool,
    #[command(flatten)]
    scenario: Scenario,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let scenario = if cli.short {
        Scenario::short()
    } else {
        cli.scenario
    };
    match sellersync_chaos::run(&scenario).await {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).expect("a report serialises"));
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("sellersync-chaos: {error}");
            ExitCode::from(2)
        }
    }
}
