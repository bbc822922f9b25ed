//! `QueueError`: what queue operations can fail with.

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {id} is {state}; {action} is not allowed in that state")]
    InvalidState {
        id: String,
        state: String,
        action: &'static str,
    },
    #[error("invalid job options: {0}")]
    InvalidOptions(String),
    #[error("unexpected reply from a queue script: {0}")]
    Protocol(String),
}

impl QueueError {
    /// True when Redis is unreachable, slow or busy: retrying later can help.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Redis(e) => redis_unavailable(e),
            _ => false,
        }
    }
}

/// Error codes a Redis server answers with while it cannot serve for now: a replica during a
/// failover (`READONLY`, `MASTERDOWN`), a restart (`LOADING`), a cluster reshard (`TRYAGAIN`,
/// `CLUSTERDOWN`), memory full (`OOM`), a long script (`BUSY`).
const UNAVAILABLE_CODES: [&str; 7] = [
    "READONLY",
    "MASTERDOWN",
    "LOADING",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "OOM",
    "BUSY",
];

/// True when `e` means "Redis cannot answer now" (connection trouble, a timeout, one of
/// `UNAVAILABLE_CODES`, no master known to the sentinels — during a fail-over — or no cluster
/// node reachable) rather than "this request is wrong".
pub fn redis_unavailable(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::MasterNameNotFoundBySentinel | redis::ErrorKind::ClusterConnectionNotFound
    ) || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.code().is_some_and(|code| UNAVAILABLE_CODES.contains(&code))
}

pub type QueueResult<T> = Result<T, QueueError>;
