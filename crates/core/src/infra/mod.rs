//! Process plumbing that knows nothing of jobs or sellers: connections to Redis (standalone,
//! Cluster, Sentinel) and MongoDB with bounded timeouts, migrations, readiness checks,
//! logging/tracing and the metrics scheme, secrets that do not print, the TLS crypto provider and
//! HTTP clients, instance identity, shutdown signals and systemd notifications, and request
//! coalescing. May use: the queue crate (for its connection types) and nothing else of this
//! crate; every other part may use it.
pub mod coalesce;
pub mod connections;
pub mod error;
pub mod fenced;
pub mod instance;
pub mod metrics;
pub mod migrations;
pub mod readiness;
pub mod secret;
pub mod settings;
pub mod shutdown;
pub mod systemd;
pub mod telemetry;
pub mod tls;
