//! sellersync-core: what every sellersync binary shares: configuration, secrets, connections to
//! Redis and MongoDB, migrations, readiness checks, logging set-up, instance identity and shutdown
//! signals. Domain logic (users, SP-API, analysis, `process_user_data`, JobStatus) lands here too.
pub mod accounts;
pub mod analysis;
pub mod auth;
pub mod bootstrap;
pub mod coalesce;
pub mod config;
pub mod connections;
pub mod cron;
pub mod demo;
pub mod error;
pub mod health;
pub mod instance;
pub mod job_status;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod migrations;
pub mod notify;
pub mod producer;
pub mod rate_limit;
pub mod refresh;
pub mod secret;
pub mod shutdown;
pub mod spapi;
pub mod systemd;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{ConfigError, Environment, Settings};
pub use error::{CoreError, CoreResult};
pub use secret::Secret;
