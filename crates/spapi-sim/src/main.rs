//! `sellersync-spapi-sim`: serve the SP-API stand-in on a local port.

use clap::Parser;
use sellersync_spapi_sim::{SimConfig, router};

#[derive(Parser)]
#[command(
    name = "sellersync-spapi-sim",
    version = env!("VERSION_WITH_COMMIT"),
    about = "A local stand-in for Amazon's Selling Partner API"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SPAPI_SIM_ADDR", default_value = "127.0.0.1:4010")]
    addr: std::net::SocketAddr,
    #[command(flatten)]
    config: SimConfig,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, config = ?args.config, "sellersync-spapi-sim listening");
    axum::serve(listener, router(args.config))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
