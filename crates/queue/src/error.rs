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
    /// True when Redis is unreachable or slow: retrying later can help.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Redis(e) => {
                e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
            }
            _ => false,
        }
    }
}

pub type QueueResult<T> = Result<T, QueueError>;
