//! sellersync-api: the Axum application. `startup` builds it from configuration, `routes` holds
//! one module per resource, `error` is the single table from error kind to HTTP status and code.
pub mod auth;
pub mod cron;
pub mod error;
pub mod routes;
pub mod startup;
pub mod state;

pub use startup::Application;
