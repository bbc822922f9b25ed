//! `RedisConnection`: the one connection type the queue and every process use, whatever the
//! deployment — a single server (redis-rs's `ConnectionManager`, which reconnects by itself), a
//! Redis Cluster (redis-rs's async cluster connection, which routes each command by its key's
//! slot and follows MOVED/ASK and topology changes), or a master found through Redis Sentinel
//! ([`SentinelConnection`], which asks the sentinels again after the master went away, at most
//! once per [`LOOKUP_RETRY_INTERVAL`] while they name none).
//!
//! Every form is multiplexed and cheap to clone (clones share the connection); a blocking
//! command (BLPOP, XREAD BLOCK) needs a connection of its own, as with a single server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::error::redis_unavailable;

/// A Redis connection of any deployment kind; see the module documentation.
#[derive(Clone)]
pub enum RedisConnection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConnection),
}

impl RedisConnection {
    /// True when connected to a Redis Cluster: keys of different slots cannot share a command,
    /// a pipeline or a script.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Standalone(_) => "RedisConnection::Standalone",
            Self::Cluster(_) => "RedisConnection::Cluster",
            Self::Sentinel(_) => "RedisConnection::Sentinel",
        })
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(manager: ConnectionManager) -> Self {
        Self::Standalone(manager)
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(cluster: ClusterConnection) -> Self {
        Self::Cluster(cluster)
    }
}

impl From<SentinelConnection> for RedisConnection {
    fn from(sentinel: SentinelConnection) -> Self {
        Self::Sentinel(sentinel)
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
        }
    }
}

/// A multiplexed connection to the master the sentinels name. It connects on first use; after
/// a command fails because the master is gone or no longer a master (a connection error, a
/// timeout, `READONLY`, `MASTERDOWN`, ...), the connection is dropped and the next command asks
/// the sentinels again, so after a fail-over new commands go to the new master. The failed
/// command itself is not repeated: its error counts as "unavailable" and callers retry later,
/// as they do for a single server that restarts.
#[derive(Clone)]
pub struct SentinelConnection {
    inner: Arc<SentinelInner>,
}

struct SentinelInner {
    /// Asks the sentinels (one lookup at a time).
    client: tokio::sync::Mutex<SentinelClient>,
    /// The name the sentinels know the master by.
    master: String,
    config: AsyncConnectionConfig,
    db: i64,
    /// Bound on one lookup and connect (a sentinel that does not answer must not hang commands).
    lookup_timeout: Duration,
    /// The connection to the current master, with its generation.
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    generations: AtomicU64,
    /// When the last lookup failed, and how (see [`LOOKUP_RETRY_INTERVAL`]).
    last_failure: Mutex<Option<(Instant, RedisError)>>,
}

/// While no master is known, the sentinels are asked at most once per this interval: commands
/// that waited for a lookup that failed, or come within the interval after it, fail with its
/// error at once. Without it, N commands in flight when the master went away would ask one
/// after another (lookups take turns), the last waiting N lookups' time before failing.
pub const LOOKUP_RETRY_INTERVAL: Duration = Duration::from_millis(500);

impl SentinelConnection {
    /// No I/O happens until the first command. `master` is the name `client` looks up;
    /// `lookup_timeout` bounds asking the sentinels and connecting to the master.
    pub fn new(
        client: SentinelClient,
        master: &str,
        config: AsyncConnectionConfig,
        db: i64,
        lookup_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(SentinelInner {
                client: tokio::sync::Mutex::new(client),
                master: master.to_owned(),
                config,
                db,
                lookup_timeout,
                current: Mutex::new(None),
                generations: AtomicU64::new(0),
                last_failure: Mutex::new(None),
            }),
        }
    }

    /// Connects to the master now (if not connected), so a failure shows at once.
    pub async fn connect(&self) -> RedisResult<()> {
        self.inner.connection().await.map(|_| ())
    }

    /// Whether the first sentinel that answers knows a master by this name at all, up or down
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME` answers nil for a name it does not monitor). Tells a
    /// misspelt master name, which no wait will fix, from a master that is down for now: both
    /// fail a lookup with `MasterNameNotFoundBySentinel`.
    pub async fn master_known(&self) -> RedisResult<bool> {
        let ask = async {
            let sentinel = self.inner.client.lock().await.async_get_sentinel_client().await?;
            let mut connection = sentinel.get_multiplexed_async_connection().await?;
            let address: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.inner.master)
                .query_async(&mut connection)
                .await?;
            Ok(address.is_some())
        };
        tokio::time::timeout(self.inner.lookup_timeout, ask)
            .await
            .unwrap_or_else(|_| Err(no_answer()))
    }
}

/// The error of a lookup or connect that took longer than its bound.
fn no_answer() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from the sentinels or the master they named",
    ))
}

impl SentinelInner {
    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current.lock().expect("sentinel connection lock").clone()
    }

    /// The current master's connection, asking the sentinels for the master if there is none
    /// (unless they were just asked in vain: [`LOOKUP_RETRY_INTERVAL`]).
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let asked = Instant::now();
        let mut client = self.client.lock().await;
        // Another command may have connected, or failed to, while this one waited for the lock.
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        if let Some(error) = self.recent_failure(asked) {
            return Err(error);
        }
        let lookup = tokio::time::timeout(
            self.lookup_timeout,
            client.get_async_connection_with_config(&self.config),
        )
        .await
        .unwrap_or_else(|_| Err(no_answer()));
        let connection = match lookup {
            Ok(connection) => connection,
            Err(error) => {
                *self.last_failure.lock().expect("sentinel failure lock") =
                    Some((Instant::now(), error.clone()));
                return Err(error);
            }
        };
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().expect("sentinel connection lock") = Some((generation, connection.clone()));
        Ok((generation, connection))
    }

    /// The error of a lookup that failed after `asked` (while the caller waited for its turn) or
    /// within [`LOOKUP_RETRY_INTERVAL`].
    fn recent_failure(&self, asked: Instant) -> Option<RedisError> {
        let last = self.last_failure.lock().expect("sentinel failure lock");
        let (at, error) = last.as_ref()?;
        (*at >= asked || at.elapsed() < LOOKUP_RETRY_INTERVAL).then(|| error.clone())
    }

    /// After a failed command: forgets the connection of `generation` when the error says the
    /// master may have changed (a newer connection is kept).
    fn check(&self, generation: u64, outcome: Result<&[Value], &RedisError>) {
        let error = match outcome {
            Err(error) => error.clone(),
            // A pipeline's replies carry the errors of its commands.
            Ok(replies) => match replies.iter().find_map(|reply| match reply {
                Value::ServerError(error) => Some(RedisError::from(error.clone())),
                _ => None,
            }) {
                Some(error) => error,
                None => return,
            },
        };
        if !redis_unavailable(&error) {
            return;
        }
        let mut current = self.current.lock().expect("sentinel connection lock");
        if current.as_ref().is_some_and(|(held, _)| *held == generation) {
            tracing::warn!(%error, "redis master unavailable; asking the sentinels again on the next command");
            *current = None;
        }
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut connection) = self.inner.connection().await?;
            let reply = connection.req_packed_command(cmd).await;
            self.inner
                .check(generation, reply.as_ref().map(std::slice::from_ref));
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut connection) = self.inner.connection().await?;
            let reply = connection.req_packed_commands(pipeline, offset, count).await;
            self.inner.check(generation, reply.as_ref().map(Vec::as_slice));
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::sentinel::SentinelServerType;

    /// Sentinels that accept connections and never answer: every lookup runs into its bound.
    async fn silent_sentinel() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        (listener, url)
    }

    #[tokio::test]
    async fn commands_waiting_for_a_lookup_that_fails_fail_with_it_instead_of_asking_in_turn() {
        let (_listener, url) = silent_sentinel().await;
        let client = SentinelClient::build(vec![url], "main", None, SentinelServerType::Master).unwrap();
        let lookup_timeout = Duration::from_millis(300);
        let connection =
            SentinelConnection::new(client, "main", AsyncConnectionConfig::new(), 0, lookup_timeout);
        let started = Instant::now();
        let commands = (0..20).map(|_| {
            let mut connection = connection.clone();
            async move { redis::cmd("PING").query_async::<String>(&mut connection).await }
        });
        let outcomes = futures::future::join_all(commands).await;
        assert!(
            outcomes.iter().all(Result::is_err),
            "no master, no reply: {outcomes:?}"
        );
        // One lookup for all of them (asking in turn would take 20 × 300 ms).
        let took = started.elapsed();
        assert!(took < lookup_timeout * 4, "20 commands failed after {took:?}");
        // Once the interval has passed, the sentinels are asked again (and time out again).
        tokio::time::sleep(LOOKUP_RETRY_INTERVAL).await;
        let again = Instant::now();
        let mut connection = connection.clone();
        assert!(
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .is_err()
        );
        assert!(
            again.elapsed() >= lookup_timeout,
            "asked again: {:?}",
            again.elapsed()
        );
    }
}
