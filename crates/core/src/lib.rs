//! sellersync-core: everything the binaries (API, worker, CLI) share, in four parts that depend
//! downwards only:
//!
//! - [`config`]: the whole configuration, parsed once at start-up into the parts' own settings
//!   types; the binaries read it and pass each part what it needs.
//! - [`jobs`]: the job path — the hourly tick ([`jobs::cron`]) and the producer enqueue user
//!   refreshes, the worker runs them ([`jobs::refresh`]), JobStatus projects the queue's events
//!   ([`jobs::job_status`]), webhooks tell the outside ([`jobs::notify`]).
//! - [`domain`]: users and seller accounts, the SP-API client, the analysis of a seller's data,
//!   API tokens and roles.
//! - [`infra`]: process plumbing — connections, migrations, logging and metrics, readiness,
//!   secrets, shutdown and systemd.
//!
//! [`bootstrap`] holds the start-up steps every binary shares; [`demo`] the demo data.
//! `docs/architecture.md` draws the map.
pub mod bootstrap;
pub mod config;
pub mod demo;
pub mod domain;
pub mod infra;
pub mod jobs;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{ConfigError, Environment, Settings};
pub use infra::error::{CoreError, CoreResult};
pub use infra::secret::Secret;
