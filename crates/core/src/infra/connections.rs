//! Connections to Redis and MongoDB with bounded timeouts, and their settings ([`RedisSettings`],
//! [`MongoSettings`]: the `redis.*` and `mongo.*` sections, read by `crate::config`).
//!
//! Redis connections are [`RedisConnection`]s, by `redis.mode`: redis-rs's `ConnectionManager`
//! (one multiplexed connection that reconnects by itself) for a single server, its async cluster
//! connection for a Redis Cluster, and a [`SentinelConnection`] (the master the sentinels name,
//! asked again after a fail-over) for Sentinel. All have an explicit response timeout: the library
//! default of 500 ms turns a short Redis stall into failed commands. TLS, the CA, the client
//! certificate, the ACL user and the password apply to every node. MongoDB uses the official
//! driver's pooled `Client`.

use std::time::Duration;

use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError, TlsMode,
};
use sellersync_queue::{RedisConnection, SentinelConnection};

use serde::{Deserialize, Serialize};

use crate::infra::error::{CoreError, CoreResult};
use crate::infra::secret::Secret;
use crate::infra::settings::{Invalid, optional_secret, positive};

/// Reconnect attempts of the Redis connection manager before a command fails; with the backoff
/// below this spans roughly 10 s, after which callers see an error and retry on their own terms.
const REDIS_RECONNECT_RETRIES: usize = 6;

/// The least Redis ACL the API and workers need, for `ACL SETUSER <user> on ><password>
/// ~<key_prefix>* resetchannels <these rules>`: reads, writes, streams and scripts on the
/// deployment's keys, no dangerous commands except `INFO` (metrics) and `CONFIG GET` (the
/// eviction-policy check; optional), `ROLE` (a Sentinel client checks it reached the master) and
/// `CLUSTER SLOTS` (a Cluster client learns the slot map). Tested in `tests/it/tls.rs`;
/// docs/operations.md shows it.
pub const REDIS_ACL_RULES: &str = "-@all +@read +@write +@stream +@scripting +@connection +@transaction -@dangerous +info +time +config|get +client|setname +role +cluster|slots";

/// The Redis client the settings describe: `redis.url`, else `host:port` (TLS when `redis.tls`),
/// with the ACL user and password when set, and the configured CA and client certificate.
fn redis_client(settings: &RedisSettings) -> CoreResult<redis::Client> {
    let info = match &settings.url {
        Some(url) => url
            .expose()
            .into_connection_info()
            .map_err(|e| CoreError::Config {
                setting: "redis.url",
                // The driver's message never quotes the URL; ours neither (it may hold a password).
                reason: e.to_string(),
            })?,
        None => {
            let addr = if settings.tls {
                ConnectionAddr::TcpTls {
                    host: settings.host.clone(),
                    port: settings.port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(settings.host.clone(), settings.port)
            };
            addr.into_connection_info()?
                .set_redis_settings(RedisConnectionInfo::default().set_db(settings.db))
        }
    };
    let mut handshake = info.redis_settings().clone();
    if let Some(username) = settings.username.as_deref().filter(|u| !u.is_empty()) {
        handshake = handshake.set_username(username);
    }
    if let Some(password) = &settings.password {
        handshake = handshake.set_password(password.expose());
    }
    let info = info.set_redis_settings(handshake);
    if settings.tls_ca_file.is_none() && settings.tls_cert_file.is_none() {
        return Ok(redis::Client::open(info)?);
    }
    Ok(redis::Client::build_with_tls(info, tls_certificates(settings)?)?)
}

/// The CA and client certificate files, read (PEM).
fn tls_certificates(settings: &RedisSettings) -> CoreResult<redis::TlsCertificates> {
    let read = |setting: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| CoreError::Config {
            setting,
            reason: format!("cannot read {}: {e}", path.display()),
        })
    };
    let root_cert = settings
        .tls_ca_file
        .as_deref()
        .map(|path| read("redis.tls_ca_file", path))
        .transpose()?;
    let client_tls = match (&settings.tls_cert_file, &settings.tls_key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("redis.tls_cert_file", cert)?,
            client_key: read("redis.tls_key_file", key)?,
        }),
        _ => None,
    };
    Ok(redis::TlsCertificates {
        client_tls,
        root_cert,
    })
}

fn redis_manager_config(settings: &RedisSettings, retries: usize) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.response_timeout))
        .set_number_of_retries(retries)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(3))
}

/// `host:port` (a validated setting) as an address, TLS when the settings say so.
fn node_addr(settings: &RedisSettings, address: &str) -> CoreResult<ConnectionAddr> {
    let (host, port) = parse_address(address).map_err(|reason| CoreError::Config {
        setting: "redis.cluster_nodes",
        reason,
    })?;
    Ok(if settings.uses_tls() {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    })
}

fn has_certificates(settings: &RedisSettings) -> bool {
    settings.tls_ca_file.is_some() || settings.tls_cert_file.is_some()
}

/// The cluster client: seeds from `redis.cluster_nodes` (else the url or host:port), every node
/// with the same TLS, CA, client certificate, user and password.
fn cluster_client(settings: &RedisSettings, retries: u32) -> CoreResult<ClusterClient> {
    let seeds = if settings.cluster_nodes.is_empty() {
        vec![redis_client(settings)?.get_connection_info().clone()]
    } else {
        settings
            .cluster_nodes
            .iter()
            .map(|node| Ok(node_addr(settings, node)?.into_connection_info()?))
            .collect::<CoreResult<Vec<_>>>()?
    };
    let mut builder = ClusterClientBuilder::new(seeds)
        .connection_timeout(settings.connect_timeout)
        .response_timeout(settings.response_timeout)
        .retries(retries);
    if let Some(username) = settings.username.as_deref().filter(|u| !u.is_empty()) {
        builder = builder.username(username);
    }
    if let Some(password) = &settings.password {
        builder = builder.password(password.expose());
    }
    if settings.uses_tls() {
        builder = builder.tls(TlsMode::Secure);
    }
    if has_certificates(settings) {
        builder = builder.certs(tls_certificates(settings)?);
    }
    Ok(builder.build()?)
}

fn cluster_config(settings: &RedisSettings) -> ClusterConfig {
    ClusterConfig::new()
        .set_connection_timeout(settings.connect_timeout)
        .set_response_timeout(settings.response_timeout)
}

/// A connection to the master the sentinels name (connects on first use).
fn sentinel_connection(settings: &RedisSettings) -> CoreResult<SentinelConnection> {
    let sentinels = settings
        .sentinels
        .iter()
        .map(|address| {
            node_addr(settings, address).map_err(|_| CoreError::Config {
                setting: "redis.sentinels",
                reason: format!("{address:?} is not host:port"),
            })
        })
        .collect::<CoreResult<Vec<_>>>()?;
    let master = settings.sentinel_master.as_deref().unwrap_or_default();
    let mut builder = SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)?
        .set_client_to_redis_db(settings.db);
    if let Some(username) = settings.username.as_deref().filter(|u| !u.is_empty()) {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &settings.password {
        builder = builder.set_client_to_redis_password(password.expose());
    }
    if let Some(username) = settings.sentinel_username.as_deref().filter(|u| !u.is_empty()) {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = &settings.sentinel_password {
        builder = builder.set_client_to_sentinel_password(password.expose());
    }
    if settings.uses_tls() {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
    }
    if has_certificates(settings) {
        let certificates = tls_certificates(settings)?;
        builder = builder
            .set_client_to_redis_certificates(certificates.clone())
            .set_client_to_sentinel_certificates(certificates);
    }
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.response_timeout));
    Ok(SentinelConnection::new(
        builder.build()?,
        master,
        config,
        settings.db,
        settings.connect_timeout * 2,
    ))
}

/// A connection of the kind `redis.mode` names, connecting on first use; `retries`: reconnect
/// attempts before a command fails.
fn lazy_connection(settings: &RedisSettings, retries: usize) -> CoreResult<RedisConnection> {
    Ok(match settings.mode {
        RedisMode::Standalone => ConnectionManager::new_lazy_with_config(
            redis_client(settings)?,
            redis_manager_config(settings, retries),
        )?
        .into(),
        RedisMode::Cluster => cluster_client(settings, retries as u32)?
            .get_pending_async_connection_with_config(cluster_config(settings))
            .into(),
        RedisMode::Sentinel => sentinel_connection(settings)?.into(),
    })
}

/// Connects now and fails if Redis does not answer within the connect timeout.
pub async fn connect_redis(settings: &RedisSettings) -> CoreResult<RedisConnection> {
    let connect = async {
        Ok::<_, CoreError>(match settings.mode {
            RedisMode::Standalone => {
                let client = redis_client(settings)?;
                // One plain connection first: refused credentials fail at once, where the
                // manager would retry them like an outage (a wrong password took 17 s to fail).
                let probe = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(settings.connect_timeout))
                    .set_response_timeout(Some(settings.response_timeout));
                drop(
                    client
                        .get_multiplexed_async_connection_with_config(&probe)
                        .await
                        .map_err(refused_credentials_or)?,
                );
                ConnectionManager::new_with_config(
                    client,
                    redis_manager_config(settings, REDIS_RECONNECT_RETRIES),
                )
                .await
                .map_err(refused_credentials_or)?
                .into()
            }
            RedisMode::Cluster => cluster_client(settings, REDIS_RECONNECT_RETRIES as u32)?
                .get_async_connection_with_config(cluster_config(settings))
                .await
                .map_err(refused_credentials_or)?
                .into(),
            RedisMode::Sentinel => {
                let connection = sentinel_connection(settings)?;
                if let Err(error) = connection.connect().await {
                    return Err(explain_sentinel_failure(error, &connection, settings).await);
                }
                connection.into()
            }
        })
    };
    // Boxed: the three connection kinds' futures nested inline make callers' futures too deep
    // for the compiler's layout queries.
    tokio::time::timeout(settings.connect_timeout * 2, Box::pin(connect))
        .await
        .map_err(|_| CoreError::Timeout {
            service: "redis",
            timeout_ms: settings.connect_timeout.as_millis() as u64 * 2,
        })?
}

/// A configuration error naming the credentials' settings when Redis refused them (waiting
/// would never help), else `error` as it is.
fn refused_credentials_or(error: RedisError) -> CoreError {
    refused_credentials_or_as(
        error,
        "redis.password",
        "Redis",
        "REDIS_USERNAME / REDIS_PASSWORD, or the URL's",
    )
}

/// The same for the credentials `who` checks, set by `settings`, named as `setting`.
fn refused_credentials_or_as(
    error: RedisError,
    setting: &'static str,
    who: &str,
    settings: &str,
) -> CoreError {
    if !refused_credentials(&error) {
        return error.into();
    }
    CoreError::Config {
        setting,
        reason: format!("{who} refused the credentials ({settings} user and password)"),
    }
}

/// Whether Redis refused the credentials. A cluster's first connect reports its nodes' errors
/// only as text (an I/O error "Failed to create initial connections" whose detail is the last
/// node's error), hence the detail's check (`core::it deployments` tests both forms).
fn refused_credentials(error: &RedisError) -> bool {
    error.kind() == redis::ErrorKind::AuthenticationFailed
        || error
            .detail()
            .is_some_and(|detail| detail.ends_with("AuthenticationFailed"))
}

/// `error` of a first sentinel lookup, or a configuration error when waiting would never help:
/// naming `redis.sentinel_master` when the sentinels do not know that name at all, and the
/// password that was refused (the sentinels' or the master's) when one was.
async fn explain_sentinel_failure(
    error: RedisError,
    connection: &SentinelConnection,
    settings: &RedisSettings,
) -> CoreError {
    if refused_credentials(&error) {
        // Asking a sentinel alone tells whose credentials were refused.
        let sentinels_refuse = connection
            .master_known()
            .await
            .is_err_and(|e| refused_credentials(&e));
        return if sentinels_refuse {
            refused_credentials_or_as(
                error,
                "redis.sentinel_password",
                "the sentinels",
                "REDIS_SENTINEL_USERNAME / REDIS_SENTINEL_PASSWORD",
            )
        } else {
            refused_credentials_or(error)
        };
    }
    if error.kind() != redis::ErrorKind::MasterNameNotFoundBySentinel
        || connection.master_known().await.unwrap_or(true)
    {
        return error.into();
    }
    let master = settings.sentinel_master.as_deref().unwrap_or_default();
    CoreError::Config {
        setting: "redis.sentinel_master",
        reason: format!(
            "the sentinels know no master named {master:?} (the name of `sentinel monitor <name> ...` in sentinel.conf)"
        ),
    }
}

/// A connection that connects on first use, so a process can start (and report itself not
/// ready) while Redis is down.
pub fn lazy_redis(settings: &RedisSettings) -> CoreResult<RedisConnection> {
    lazy_connection(settings, REDIS_RECONNECT_RETRIES)
}

/// Like [`lazy_redis`], for answering requests: a reconnect gives up after one quick retry, so
/// while Redis is down a request gets its 503 in well under a second (each request tries
/// again) instead of waiting out the backoff.
pub fn lazy_redis_for_requests(settings: &RedisSettings) -> CoreResult<RedisConnection> {
    lazy_connection(settings, 1)
}

/// The MongoDB client and this deployment's database. No I/O happens until the first operation;
/// use [`ping_mongo`] to check the server answers.
pub async fn mongo_database(settings: &MongoSettings, app_name: &str) -> CoreResult<Database> {
    let mut options = ClientOptions::parse(settings.uri.expose()).await?;
    options.app_name = Some(app_name.to_owned());
    options.connect_timeout = Some(settings.connect_timeout);
    options.server_selection_timeout = Some(settings.server_selection_timeout);
    // The driver's defaults, stated: a replica-set election is ridden out by one retry.
    options.retry_writes = Some(true);
    options.retry_reads = Some(true);
    options.command_event_handler = Some(count_commands());
    let client = Client::with_options(options)?;
    Ok(client.database(&settings.database))
}

/// How long [`close_mongo`] waits for the server to take the `endSessions` of a closing client.
const MONGO_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Ends this process's MongoDB sessions and closes its connection pools while the Tokio runtime
/// still runs: the last thing a process does with MongoDB, before `main` returns.
///
/// Why: a `Client` left to be dropped cleans up in a task of its own; when that task runs while
/// the runtime is tearing down, it can find the connection pool's task already gone and panic
/// inside the driver (`cmap/connection_requester.rs`, `SendError`). That was the worker panic
/// seen in CI after "sellersync-worker stopped". Once a client is shut down, dropping it does
/// nothing. Live cursors are not waited for (`immediate`); with no server reachable the driver
/// skips `endSessions`, and a server that does not answer gets [`MONGO_CLOSE_TIMEOUT`].
pub async fn close_mongo(db: &Database) {
    let closing = db.client().clone().shutdown().immediate(true);
    if tokio::time::timeout(MONGO_CLOSE_TIMEOUT, closing).await.is_err() {
        tracing::warn!(
            timeout_ms = MONGO_CLOSE_TIMEOUT.as_millis() as u64,
            "MongoDB did not take the end of this process's sessions in time; they expire on the server"
        );
    }
}

/// Counts every MongoDB command this process sends (`sellersync_mongodb_commands_total`, by
/// command name) and those that failed: round trips per job are a number to watch.
fn count_commands() -> mongodb::event::EventHandler<mongodb::event::command::CommandEvent> {
    use mongodb::event::command::CommandEvent;
    mongodb::event::EventHandler::callback(|event: CommandEvent| match event {
        CommandEvent::Started(started) => {
            metrics::counter!("sellersync_mongodb_commands_total", "command" => started.command_name)
                .increment(1);
        }
        CommandEvent::Failed(failed) => {
            metrics::counter!("sellersync_mongodb_command_failures_total", "command" => failed.command_name)
                .increment(1);
        }
        _ => {}
    })
}

/// Runs one MongoDB operation with a bound: the driver has no socket timeout, so a half-open
/// connection would otherwise hold the caller for minutes. Past the bound it is
/// [`CoreError::Timeout`], which counts as unavailable (retried later, never a failure).
pub async fn mongo_op<T>(
    timeout: Duration,
    operation: impl std::future::Future<Output = CoreResult<T>>,
) -> CoreResult<T> {
    tokio::time::timeout(timeout, operation)
        .await
        .unwrap_or(Err(CoreError::Timeout {
            service: "MongoDB",
            timeout_ms: timeout.as_millis() as u64,
        }))
}

pub async fn ping_redis(redis: &mut RedisConnection) -> CoreResult<()> {
    let _: String = redis::cmd("PING").query_async(redis).await?;
    Ok(())
}

pub async fn ping_mongo(db: &Database) -> CoreResult<()> {
    db.run_command(mongodb::bson::doc! { "ping": 1 }).await?;
    Ok(())
}

/// Deletes every key starting with `prefix` (SCAN, never KEYS; on a cluster, on every master).
pub async fn delete_keys(redis: &mut RedisConnection, prefix: &str) -> redis::RedisResult<usize> {
    let pattern = format!("{}*", escape_glob(prefix));
    if let RedisConnection::Cluster(cluster) = redis {
        return delete_keys_in_cluster(cluster, &pattern).await;
    }
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        if !keys.is_empty() {
            deleted += keys.len();
            let _: () = redis::cmd("UNLINK").arg(&keys).query_async(redis).await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// [`delete_keys`] on a cluster: SCAN each master (CLUSTER SLOTS names them), UNLINK key by key
/// (keys of different slots cannot share a command).
async fn delete_keys_in_cluster(
    cluster: &mut redis::cluster_async::ClusterConnection,
    pattern: &str,
) -> redis::RedisResult<usize> {
    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
    let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER").arg("SLOTS").query_async(cluster).await?;
    let mut masters: Vec<(String, u16)> = slots
        .into_iter()
        .filter_map(|range| {
            // Each range: start, end, then its master as [ip, port, id, ...].
            let master: Vec<redis::Value> = redis::from_redis_value(range.get(2)?.clone()).ok()?;
            let host: String = redis::from_redis_value(master.first()?.clone()).ok()?;
            let port: u16 = redis::from_redis_value(master.get(1)?.clone()).ok()?;
            Some((host, port))
        })
        .collect();
    masters.sort();
    masters.dedup();
    let mut deleted = 0;
    for (host, port) in masters {
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
            let reply = cluster.route_command(scan, route.clone()).await?;
            let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)?;
            for key in &keys {
                let _: () = redis::cmd("UNLINK").arg(key).query_async(cluster).await?;
            }
            deleted += keys.len();
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}

fn escape_glob(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '*' | '?' | '[' | ']' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// How Redis is deployed: one server (`standalone`), a Redis Cluster (`cluster`), or a
    /// master found through Redis Sentinel (`sentinel`).
    #[serde(default)]
    pub mode: RedisMode,
    /// Cluster mode: `host:port` of some cluster nodes to learn the cluster from (a list, or one
    /// comma-separated string); empty: `url`, else `host:port`.
    #[serde(default, deserialize_with = "address_list")]
    pub cluster_nodes: Vec<String>,
    /// Sentinel mode: `host:port` of the sentinels (a list, or one comma-separated string).
    #[serde(default, deserialize_with = "address_list")]
    pub sentinels: Vec<String>,
    /// Sentinel mode: the name the sentinels know the master by (`sentinel monitor <name> ...`).
    #[serde(default)]
    pub sentinel_master: Option<String>,
    /// Sentinel mode: ACL user and password of the sentinels themselves, when they require one
    /// (`requirepass`/ACL in sentinel.conf); the data nodes use `username`/`password`.
    #[serde(default)]
    pub sentinel_username: Option<String>,
    #[serde(default, deserialize_with = "optional_secret")]
    pub sentinel_password: Option<Secret>,
    /// `redis://` or `rediss://` (TLS) URL, e.g. of a managed Redis; a secret (it may hold a
    /// password). When set, it gives the address, user, password and database, and `host`,
    /// `port`, `db` are not used; `username`/`password` still override its credentials.
    #[serde(default, deserialize_with = "optional_secret")]
    pub url: Option<Secret>,
    pub host: String,
    pub port: u16,
    /// ACL user name (Redis 6+); without it the `default` user.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "optional_secret")]
    pub password: Option<Secret>,
    pub db: i64,
    /// TLS to `host:port` (a `rediss://` URL turns it on too).
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA that signed the server's certificate; default: the system's roots.
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate and key, for servers that require them (`tls-auth-clients yes`).
    #[serde(default)]
    pub tls_cert_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<std::path::PathBuf>,
    pub key_prefix: String,
    #[serde(rename = "connect_timeout_ms", with = "crate::infra::settings::millis")]
    pub connect_timeout: Duration,
    #[serde(rename = "response_timeout_ms", with = "crate::infra::settings::millis")]
    pub response_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSettings {
    /// A secret: a MongoDB URI may carry a password. Log [`MongoSettings::redacted_uri`] instead.
    pub uri: Secret,
    pub database: String,
    #[serde(rename = "connect_timeout_ms", with = "crate::infra::settings::millis")]
    pub connect_timeout: Duration,
    #[serde(
        rename = "server_selection_timeout_ms",
        with = "crate::infra::settings::millis"
    )]
    pub server_selection_timeout: Duration,
    /// Bound on one operation on the job path (a refresh's reads and writes, a JobStatus batch):
    /// a half-open connection fails the operation (retried later) instead of holding a slot.
    #[serde(rename = "operation_timeout_ms", with = "crate::infra::settings::millis")]
    pub operation_timeout: Duration,
    pub migrate_on_start: bool,
}

impl RedisSettings {
    /// True when connections use TLS (`tls`, or a `rediss://` URL).
    pub fn uses_tls(&self) -> bool {
        self.tls
            || self
                .url
                .as_ref()
                .is_some_and(|u| u.expose().starts_with("rediss://"))
    }

    /// What serde cannot check: an address, a URL scheme, TLS files that exist, positive timeouts.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.port == 0 {
            return Err(Invalid::new("redis.port", "must be a port number 1-65535, got 0"));
        }
        if self.host.trim().is_empty() {
            return Err(Invalid::new("redis.host", "must not be empty"));
        }
        positive("redis.connect_timeout_ms", self.connect_timeout)?;
        positive("redis.response_timeout_ms", self.response_timeout)?;
        if let Some(url) = &self.url {
            let url = url.expose();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                // Never echo the URL: it may carry a password.
                return Err(Invalid::new("redis.url", "must start with redis:// or rediss://"));
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(Invalid::new(
                "redis.tls_cert_file",
                "a client certificate needs its key (redis.tls_key_file), and the other way round",
            ));
        }
        for (key, file) in [
            ("redis.tls_ca_file", &self.tls_ca_file),
            ("redis.tls_cert_file", &self.tls_cert_file),
            ("redis.tls_key_file", &self.tls_key_file),
        ] {
            let Some(path) = file else { continue };
            if !self.uses_tls() {
                return Err(Invalid::new(
                    key,
                    "is set but TLS is off (set redis.tls or use a rediss:// URL)",
                ));
            }
            if std::fs::metadata(path).is_err() {
                return Err(Invalid::new(key, format!("cannot read {}", path.display())));
            }
        }
        self.validate_mode()
    }
}

/// How Redis is deployed (`redis.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    #[default]
    Standalone,
    Cluster,
    Sentinel,
}

/// A list of `host:port` addresses, given as a list or as one comma-separated string (as an
/// environment variable is).
fn address_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let items = match List::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("expected host:port addresses (a list or comma-separated)"))?
    {
        List::One(text) => text.split(',').map(str::to_owned).collect(),
        List::Many(items) => items,
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

/// `host:port` split, or why not.
pub fn parse_address(address: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{address:?} has no valid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{address:?} has no host"));
    }
    Ok((host.to_owned(), port))
}

impl RedisSettings {
    /// Checks the cluster and sentinel settings against `mode`.
    fn validate_mode(&self) -> Result<(), Invalid> {
        for (key, list) in [
            ("redis.cluster_nodes", &self.cluster_nodes),
            ("redis.sentinels", &self.sentinels),
        ] {
            for address in list {
                parse_address(address).map_err(|problem| Invalid::new(key, problem))?;
            }
        }
        match self.mode {
            RedisMode::Standalone => Ok(()),
            RedisMode::Cluster => {
                if self.db != 0 {
                    return Err(Invalid::new(
                        "redis.db",
                        "must be 0 in cluster mode (a Redis Cluster has only database 0)",
                    ));
                }
                if self.key_prefix.contains(['{', '}']) {
                    // Every key of a queue shares the hash tag `{<queue>}`; a brace in the prefix
                    // would become the tag instead, or break it.
                    return Err(Invalid::new(
                        "redis.key_prefix",
                        "must not contain { or } in cluster mode (the queue name is each key's hash tag)",
                    ));
                }
                Ok(())
            }
            RedisMode::Sentinel => {
                if self.sentinels.is_empty() {
                    return Err(Invalid::new(
                        "redis.sentinels",
                        "must list at least one sentinel (host:port) in sentinel mode",
                    ));
                }
                if self
                    .sentinel_master
                    .as_deref()
                    .is_none_or(|m| m.trim().is_empty())
                {
                    return Err(Invalid::new(
                        "redis.sentinel_master",
                        "must name the master (as in `sentinel monitor <name> ...`) in sentinel mode",
                    ));
                }
                if self.url.is_some() {
                    return Err(Invalid::new(
                        "redis.url",
                        "is not used in sentinel mode (the sentinels name the master); set redis.username, redis.password, redis.db and redis.tls instead",
                    ));
                }
                Ok(())
            }
        }
    }
}

impl MongoSettings {
    /// A database name MongoDB accepts, a `mongodb://` URI, positive timeouts.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.database.trim().is_empty() || self.database.contains(['/', '\\', '.', ' ', '"', '$']) {
            return Err(Invalid::new(
                "mongo.database",
                format!("{:?} is not a valid database name", self.database),
            ));
        }
        let uri = self.uri.expose();
        if !uri.starts_with("mongodb://") && !uri.starts_with("mongodb+srv://") {
            return Err(Invalid::new(
                "mongo.uri",
                "must start with mongodb:// or mongodb+srv://",
            ));
        }
        positive("mongo.connect_timeout_ms", self.connect_timeout)?;
        positive("mongo.server_selection_timeout_ms", self.server_selection_timeout)?;
        positive("mongo.operation_timeout_ms", self.operation_timeout)
    }

    /// The URI with any `user:password@` removed, for log lines.
    pub fn redacted_uri(&self) -> String {
        redact_userinfo(self.uri.expose())
    }
}

fn redact_userinfo(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return crate::infra::secret::REDACTED.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!(
            "{scheme}://{}@{}",
            crate::infra::secret::REDACTED,
            &rest[at + 1..]
        ),
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod operation_timeout_tests {
    use super::*;

    #[tokio::test]
    async fn an_operation_past_its_bound_is_an_unavailable_timeout() {
        let hung = std::future::pending::<CoreResult<()>>();
        let error = mongo_op(Duration::from_millis(20), hung).await.unwrap_err();
        assert!(matches!(
            error,
            CoreError::Timeout {
                service: "MongoDB",
                timeout_ms: 20
            }
        ));
        assert!(error.is_unavailable(), "retried later, never a failure");
        let quick = mongo_op(Duration::from_secs(1), async { Ok(7) }).await.unwrap();
        assert_eq!(quick, 7);
    }
}
