//! sellersync-api: the Axum application. `startup` builds it from configuration, `routes` holds
//! one module per resource (each documented in `openapi`), `error` is the single table from error
//! kind to HTTP status and code, `extract` gives axum's extractors that table's errors. `live`
//! follows the queues' event streams for `/api/events`; `dashboard` is the admin UI at `/admin`;
//! `health_watch` tells webhooks when a queue turns unhealthy; `connection` is the TCP connection
//! under a request (the event stream bounds and cuts it); `audit` records every admin action.
pub mod audit;
pub mod auth;
pub mod connection;
pub mod cron;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod health_watch;
pub mod http_metrics;
pub mod live;
pub mod monitoring;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;

pub use startup::Application;
