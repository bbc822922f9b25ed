//! Integration tests of the queue engine against the real local Redis. Each test has its own key
//! prefix (removed afterwards), so tests run in parallel.
mod apalis;
mod cluster;
mod control;
mod events;
mod fencing;
mod helpers;
mod producer;
mod rate_limit;
mod runtime;
