//! Integration tests of sellersync-core against the real local Redis and MongoDB-wire server
//! (`scripts/services up`) and the SP-API stand-in on a random port. Each test works in its own
//! namespace, so they run in parallel.
mod analysis_truth;
mod connections;
mod contract;
mod cron;
mod demo;
mod deployments;
mod fencing;
mod isolation;
mod migrations;
mod parsing;
mod projector;
mod rate_limit;
mod refresh;
mod refresh_spapi;
mod seller_roles;
mod sim;
mod sim_rules;
mod spapi;
mod tls;
