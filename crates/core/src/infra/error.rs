//! `CoreError`: what can go wrong below the HTTP and worker layers (Redis, MongoDB, migrations).
//! The API maps it to a status in its own error table; binaries print it and exit.

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("queue: {0}")]
    Queue(#[from] sellersync_queue::QueueError),
    #[error("{setting}: {reason}")]
    Config { setting: &'static str, reason: String },
    #[error("{service} did not answer within {timeout_ms} ms")]
    Timeout { service: &'static str, timeout_ms: u64 },
    #[error("migration {name}: {reason}")]
    Migration { name: String, reason: String },
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("invalid seller account: {0}")]
    InvalidAccount(#[from] crate::domain::spapi::marketplaces::MarketplaceError),
    #[error("JobStatus projection: {0}")]
    Projection(String),
    /// MongoDB refused a write for a reason a retry cannot fix (any write error but a duplicate
    /// key: a document too large, a field it will not store).
    #[error("MongoDB refused a write: {0}")]
    Refused(String),
    /// The error of a bulk call made for many requests at once (see `coalesce`).
    #[error("{0}")]
    Shared(std::sync::Arc<CoreError>),
    #[error("internal: {0}")]
    Coalescer(&'static str),
}

impl CoreError {
    /// True when the error means a backing service is unreachable or slow (worth a retry, and a
    /// 503 rather than a 500 at the API).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Redis(e) => sellersync_queue::error::redis_unavailable(e),
            Self::Mongo(e) => mongo_unavailable(e),
            Self::Queue(e) => e.is_unavailable(),
            Self::Timeout { .. } => true,
            Self::Shared(e) => e.is_unavailable(),
            Self::Migration { .. }
            | Self::Encode { .. }
            | Self::Projection(_)
            | Self::Refused(_)
            | Self::Coalescer(_)
            | Self::InvalidAccount(_)
            | Self::Config { .. } => false,
        }
    }
}

impl CoreError {
    /// True when MongoDB refused the write itself (not "not now": no retry will change its
    /// mind), e.g. a poison event the projector must set aside.
    pub fn is_refusal(&self) -> bool {
        use mongodb::error::ErrorKind;
        match self {
            Self::Refused(_) | Self::Encode { .. } => true,
            Self::Mongo(e) => {
                !mongo_unavailable(e)
                    && matches!(
                        e.kind.as_ref(),
                        ErrorKind::Command(_) | ErrorKind::Write(_) | ErrorKind::InvalidArgument { .. }
                    )
            }
            Self::Shared(e) => e.is_refusal(),
            _ => false,
        }
    }
}

/// Server codes that mean "not now" (a shutdown, a failover, the network), not "never".
const MONGO_TRANSIENT_CODES: [i32; 10] = [6, 7, 89, 91, 189, 9001, 10107, 11600, 11602, 13435];

fn mongo_unavailable(error: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match error.kind.as_ref() {
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
            true
        }
        ErrorKind::Command(command) => MONGO_TRANSIENT_CODES.contains(&command.code),
        _ => error.contains_label("RetryableWriteError") || error.contains_label("TransientTransactionError"),
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
