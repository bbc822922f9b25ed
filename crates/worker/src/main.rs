//! `sellersync-worker`: parse the command line, load configuration, run the worker until
//! SIGTERM/SIGINT.

use std::process::ExitCode;

use sellersync_core::bootstrap::{self, Start};
use sellersync_core::infra::shutdown;

const ABOUT: &str = "sellersync worker: runs user-data refresh jobs from the Redis queue until SIGTERM";

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match bootstrap::start_service("sellersync-worker", env!("VERSION_WITH_COMMIT"), ABOUT) {
        Start::Run(settings) => *settings,
        Start::Exit(code) => return code,
    };
    let shutdown = shutdown::signal();
    let outcome = sellersync_worker::run(settings, shutdown).await;
    sellersync_core::infra::telemetry::shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "sellersync-worker failed");
            ExitCode::FAILURE
        }
    }
}
