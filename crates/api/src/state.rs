//! `AppState`: what every handler may use, built once at start-up.

use std::sync::Arc;

use mongodb::Database;
use redis::aio::ConnectionManager;
use sellersync_core::Settings;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    /// Shared multiplexed connection; clone it per use (cheap).
    pub redis: ConnectionManager,
    pub mongo: Database,
}
