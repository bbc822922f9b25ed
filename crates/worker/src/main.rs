//! `sellersync-worker`: load configuration, run the worker until SIGTERM/SIGINT.

use std::process::ExitCode;

use sellersync_core::{bootstrap, shutdown};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match bootstrap::init("sellersync-worker") {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let shutdown = shutdown::signal();
    match sellersync_worker::run(settings, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "sellersync-worker failed");
            ExitCode::FAILURE
        }
    }
}
