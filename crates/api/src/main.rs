//! `sellersync-api`: parse the command line, load configuration, build the application, serve
//! until SIGTERM/SIGINT (which also stops it while it is still starting).

use std::process::ExitCode;

use sellersync_api::Application;
use sellersync_core::bootstrap::{self, Start};
use sellersync_core::{infra::shutdown, infra::systemd};

const ABOUT: &str =
    "sellersync API: job status, queue control, metrics, the admin dashboard and the hourly producer";

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match bootstrap::start_service("sellersync-api", env!("VERSION_WITH_COMMIT"), ABOUT) {
        Start::Run(settings) => *settings,
        Start::Exit(code) => return code,
    };
    let mut shutdown = Box::pin(shutdown::signal());
    let environment = settings.environment.name();
    let app = match bootstrap::unless_stopped(&mut shutdown, Application::build(settings)).await {
        Some(Ok(app)) => app,
        Some(Err(error)) => {
            tracing::error!(%error, "sellersync-api failed to start");
            return ExitCode::FAILURE;
        }
        None => {
            tracing::info!("sellersync-api stopped before it was ready");
            return ExitCode::SUCCESS;
        }
    };
    tracing::info!(addr = %app.local_addr(), environment, "sellersync-api listening");
    systemd::ready();
    systemd::spawn_watchdog_timer();
    let served = app.run_until_stopped(shutdown).await;
    sellersync_core::infra::telemetry::shutdown();
    match served {
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
