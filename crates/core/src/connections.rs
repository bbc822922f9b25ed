//! Connections to Redis and MongoDB, built from [`crate::config`] with bounded timeouts.
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
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, TlsMode};
use sellersync_queue::{RedisConnection, SentinelConnection};

use crate::config::{MongoSettings, RedisMode, RedisSettings, parse_address};
use crate::error::{CoreError, CoreResult};

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
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_response_timeout(Some(settings.response_timeout()))
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
        .connection_timeout(settings.connect_timeout())
        .response_timeout(settings.response_timeout())
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
        .set_connection_timeout(settings.connect_timeout())
        .set_response_timeout(settings.response_timeout())
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
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_response_timeout(Some(settings.response_timeout()));
    Ok(SentinelConnection::new(
        builder.build()?,
        config,
        settings.db,
        settings.connect_timeout() * 2,
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
            RedisMode::Standalone => ConnectionManager::new_with_config(
                redis_client(settings)?,
                redis_manager_config(settings, REDIS_RECONNECT_RETRIES),
            )
            .await?
            .into(),
            RedisMode::Cluster => cluster_client(settings, REDIS_RECONNECT_RETRIES as u32)?
                .get_async_connection_with_config(cluster_config(settings))
                .await?
                .into(),
            RedisMode::Sentinel => {
                let connection = sentinel_connection(settings)?;
                connection.connect().await?;
                connection.into()
            }
        })
    };
    // Boxed: the three connection kinds' futures nested inline make callers' futures too deep
    // for the compiler's layout queries.
    tokio::time::timeout(settings.connect_timeout() * 2, Box::pin(connect))
        .await
        .map_err(|_| CoreError::Timeout {
            service: "redis",
            timeout_ms: settings.connect_timeout_ms * 2,
        })?
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
    options.connect_timeout = Some(settings.connect_timeout());
    options.server_selection_timeout = Some(settings.server_selection_timeout());
    // The driver's defaults, stated: a replica-set election is ridden out by one retry.
    options.retry_writes = Some(true);
    options.retry_reads = Some(true);
    options.command_event_handler = Some(count_commands());
    let client = Client::with_options(options)?;
    Ok(client.database(&settings.database))
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
