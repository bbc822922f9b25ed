//! Integration tests of the worker process against the real local Redis and MongoDB-wire server.
mod process;
