//! Integration tests of the worker against the real local Redis and MongoDB-wire server and the
//! SP-API stand-in on a random port.
mod deployments;
mod e2e;
mod helpers;
mod notify;
mod process;
mod self_fencing;
