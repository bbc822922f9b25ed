//! `sellersync-spapi-sim`: serve the SP-API stand-in on local ports, one per region (LWA and the
//! test controls on the NA host).

use clap::Parser;
use sellersync_spapi_sim::{SimConfig, serve};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "sellersync-spapi-sim",
    version = env!("VERSION_WITH_COMMIT"),
    about = "A local stand-in for Amazon's Selling Partner API"
)]
struct Args {
    /// The NA host (and LWA, and the /_sim test controls).
    #[arg(long, env = "SPAPI_SIM_ADDR", default_value = "127.0.0.1:4010")]
    addr: std::net::SocketAddr,
    /// The EU host.
    #[arg(long, env = "SPAPI_SIM_EU_ADDR", default_value = "127.0.0.1:4011")]
    eu_addr: std::net::SocketAddr,
    /// The FE host.
    #[arg(long, env = "SPAPI_SIM_FE_ADDR", default_value = "127.0.0.1:4012")]
    fe_addr: std::net::SocketAddr,
    #[command(flatten)]
    config: SimConfig,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let args = Args::parse();
    let listeners = [
        TcpListener::bind(args.addr).await?,
        TcpListener::bind(args.eu_addr).await?,
        TcpListener::bind(args.fe_addr).await?,
    ];
    tracing::info!(na = %args.addr, eu = %args.eu_addr, fe = %args.fe_addr, config = ?args.config, "sellersync-spapi-sim listening");
    serve(args.config, listeners, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
