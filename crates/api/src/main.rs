//! `sellersync-api`: load configuration, build the application, serve until SIGTERM/SIGINT.

use std::process::ExitCode;

use sellersync_api::Application;
use sellersync_core::{bootstrap, shutdown};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match bootstrap::init("sellersync-api") {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let shutdown = shutdown::signal();
    let environment = settings.environment.name();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "sellersync-api failed to start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %app.local_addr(), environment, "sellersync-api listening");
    match app.run_until_stopped(shutdown).await {
        Ok(()) => {
            tracing::info!("sellersync-api stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "sellersync-api failed");
            ExitCode::FAILURE
        }
    }
}
