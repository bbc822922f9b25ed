//! Integration tests of the API: the real application on a random port, against the real local
//! Redis and MongoDB-wire server, each test in its own namespace (see `helpers`).
mod auth;
mod browser;
mod cron;
mod dashboard;
mod errors;
mod events;
mod health;
mod helpers;
mod hostile;
mod http;
mod job_status;
mod jobs;
mod lifecycle;
mod metrics;
mod monitoring_assets;
mod openapi;
mod process;
mod queues;
