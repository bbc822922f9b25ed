//! What sellersync is about, independent of how jobs run: users and their seller accounts
//! ([`accounts`]), the audit log of admin actions ([`audit`]), Amazon's Selling Partner API
//! ([`spapi`]), the analysis of a seller's orders and inventory ([`analysis`]) and API tokens and
//! roles ([`auth`]). May use [`crate::infra`]; the job path ([`crate::jobs`]) uses it, never the
//! other way round.
pub mod accounts;
pub mod analysis;
pub mod audit;
pub mod auth;
pub mod spapi;
