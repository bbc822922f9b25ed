//! Integration tests of sellersync-core against the real local Redis and MongoDB-wire server
//! (`scripts/services up`). Each test works in its own namespace, so they run in parallel.
mod connections;
mod isolation;
mod migrations;
