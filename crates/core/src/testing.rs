//! Test support (feature `testing`): an isolated namespace per test, a unique Redis key prefix and
//! a unique MongoDB database, on the real local services, removed again when the test ends.
//!
//! Tests run in parallel against one Redis and one MongoDB-wire server; isolation comes from every
//! key and document living under the namespace's prefix and database.

use std::path::PathBuf;

use figment::providers::Serialized;
use figment::value::Value;

use crate::config::{Environment, Settings};
use crate::infra::connections::{close_mongo, connect_redis, delete_keys, mongo_database};

/// The workspace's `config/` folder.
pub fn config_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"))
}

/// A unique Redis key prefix and Mongo database for one test. Dropping it deletes both.
pub struct TestNamespace {
    pub settings: Settings,
}

impl TestNamespace {
    /// Test settings (`config/test.toml` and the environment) with a fresh namespace and port 0.
    pub fn new() -> Self {
        Self::with_overrides(&[])
    }

    /// Like [`TestNamespace::new`], then `overrides` (dotted keys, e.g. `("mongo.uri", ...)`).
    pub fn with_overrides(overrides: &[(&str, Value)]) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut figment = Settings::figment(Environment::Test, &config_dir())
            .merge(Serialized::default("redis.key_prefix", format!("test:{id}:")))
            .merge(Serialized::default("mongo.database", format!("test_{id}")))
            .merge(Serialized::default("server.port", 0));
        for (key, value) in overrides {
            figment = figment.merge(Serialized::default(key, value.clone()));
        }
        let settings = Settings::from_figment(Environment::Test, figment).unwrap_or_else(|e| panic!("{e}"));
        Self { settings }
    }

    pub fn key_prefix(&self) -> &str {
        &self.settings.redis.key_prefix
    }

    pub fn database(&self) -> &str {
        &self.settings.mongo.database
    }
}

impl Default for TestNamespace {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be shutting down: clean up on a thread
        // with a runtime of its own. Failures are ignored; a namespace is unique either way.
        let settings = self.settings.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                if let Ok(mut redis) = connect_redis(&settings.redis).await {
                    let _ = delete_keys(&mut redis, &settings.redis.key_prefix).await;
                }
                if let Ok(db) = mongo_database(&settings.mongo, "sellersync-test-cleanup").await {
                    let _ = db.drop().await;
                    close_mongo(&db).await;
                }
            });
            Some(())
        });
        let _ = cleanup.join();
    }
}

/// Polls `check` every 20 ms until it holds, failing the test after `limit` with `what`.
pub async fn eventually<F, Fut>(limit: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Sends SIGTERM to a child process.
pub fn sigterm(child: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(
        sent.is_ok_and(|status| status.success()),
        "could not signal pid {}",
        child.id()
    );
}

/// Waits for a child to exit, failing the test after `limit`.
pub fn wait_exit(child: &mut std::process::Child, limit: std::time::Duration) -> std::process::ExitStatus {
    exit_within(child, limit).unwrap_or_else(|| panic!("process still running after {limit:?}"))
}

/// The child's exit status if it exits within `limit`; `None` if it is still running then.
pub fn exit_within(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("child status") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A private Redis server on its own port with every write on disk (AOF, fsync always), which a
/// test can stop, crash and restart without touching the shared one. Killed and removed on drop.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts one on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sellersync-redis-{port}"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        redis.restart();
        redis
    }

    /// Settings overrides pointing at this server (`redis.port`).
    pub fn overrides(&self) -> Vec<(&'static str, Value)> {
        vec![("redis.port", Value::from(self.port))]
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory; waits until it accepts.
    pub fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services up)");
        self.child = Some(child);
        wait_for_port(self.port, "private redis");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The MongoDB-wire server's launcher that `scripts/services` installs (`var/venv`), unless
/// `SECANTUSD` names another.
fn secantusd() -> PathBuf {
    std::env::var_os("SECANTUSD").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../var/venv/bin/secantusd-py"
            ))
        },
        PathBuf::from,
    )
}

/// A private MongoDB-wire server (SecantusDB) on its own port and data directory, which a test
/// or the chaos suite can freeze (SIGSTOP), stop and restart without touching the shared one.
/// Killed and removed on drop.
pub struct PrivateMongo {
    pub port: u16,
    dir: PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateMongo {
    /// Starts one on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sellersync-mongo-{port}"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut mongo = Self {
            port,
            dir,
            child: None,
        };
        mongo.restart();
        mongo
    }

    /// `mongodb://127.0.0.1:<port>/?directConnection=true`
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Stops the server (SIGTERM, then waits for it to exit, as a restart needs the port).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "-TERM");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            signal(child, "-STOP");
        }
    }

    /// Thaws a frozen server (SIGCONT).
    pub fn thaw(&self) {
        if let Some(child) = &self.child {
            signal(child, "-CONT");
        }
    }

    /// Starts the server again on the same port and data; waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new(secantusd())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--standalone",
            ])
            .arg("--storage-path")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("secantusd-py is installed (scripts/services up)");
        self.child = Some(child);
        wait_for_port(self.port, "private mongodb");
    }
}

impl Drop for PrivateMongo {
    fn drop(&mut self) {
        self.thaw();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn signal(child: &std::process::Child, which: &str) {
    let _ = std::process::Command::new("kill")
        .args([which, &child.id().to_string()])
        .status();
}

/// Every document of `collection`, in natural order.
pub async fn all_documents(db: &mongodb::Database, collection: &str) -> Vec<mongodb::bson::Document> {
    use futures::TryStreamExt;
    db.collection(collection)
        .find(mongodb::bson::doc! {})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("documents")
}

/// A free TCP port on 127.0.0.1 with nothing listening on it (connections are refused).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A stand-in OpenTelemetry collector: accepts OTLP/HTTP exports (any POST) on a random port
/// and keeps their bodies (protobuf), for tests of span export. It answers from tasks of the
/// test's runtime: use a multi-threaded one when the test blocks (waiting for a child process).
pub struct OtlpCollector {
    /// The base URL to configure as `log.otlp_endpoint`.
    pub url: String,
    bodies: Received,
}

/// The path and body of every request a collector received.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

impl OtlpCollector {
    pub async fn spawn() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = Received::default();
        let kept = std::sync::Arc::clone(&bodies);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = std::sync::Arc::clone(&kept);
                tokio::spawn(async move {
                    if let Some(request) = read_http_request(stream).await {
                        kept.lock().unwrap().push(request);
                    }
                });
            }
        });
        Self { url, bodies }
    }

    /// The paths and bodies received so far.
    pub fn requests(&self) -> Vec<(String, Vec<u8>)> {
        self.bodies.lock().unwrap().clone()
    }

    /// True when an export to `/v1/traces` contains `bytes` (a trace id, say).
    pub fn received(&self, bytes: &[u8]) -> bool {
        self.requests()
            .iter()
            .any(|(path, body)| path == "/v1/traces" && body.windows(bytes.len()).any(|w| w == bytes))
    }
}

/// Reads one HTTP/1.1 request (head and a Content-Length body), answers 200, and returns its
/// path and body.
async fn read_http_request(mut stream: tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buffer[..n]);
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buffer[..n]);
    }
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
    Some((path, data[head_end..].to_vec()))
}

/// The 16 bytes of the trace id in a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id_bytes(traceparent: &str) -> Vec<u8> {
    let hex = traceparent.split('-').nth(1).expect("a traceparent");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A stand-in for systemd's notification socket (`NOTIFY_SOCKET`): receives a service's
/// `sd_notify` datagrams (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, ...).
pub struct NotifySocket {
    pub path: PathBuf,
    socket: std::os::unix::net::UnixDatagram,
}

impl NotifySocket {
    /// Binds a socket named after `name` in the temporary directory.
    pub fn bind(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{}.notify", name.replace(':', "-")));
        let _ = std::fs::remove_file(&path);
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("a notification socket");
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("a read timeout");
        Self { path, socket }
    }

    /// The messages received until one has the line `what` (that one included); fails the test
    /// after 30 s without it.
    pub fn until(&self, what: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = self
                .socket
                .recv(&mut buffer)
                .unwrap_or_else(|e| panic!("no {what} (after {seen:?}): {e}"));
            let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
            let found = message.lines().any(|line| line == what);
            seen.push(message);
            if found {
                return seen;
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `redis-cli -p <port> <args>` and returns its output (empty when the server does not
/// answer).
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    redis_cli_as(port, None, args)
}

/// [`redis_cli`] signed in with `password` (through `REDISCLI_AUTH`, not the command line).
fn redis_cli_as(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut command = std::process::Command::new("redis-cli");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    if let Some(password) = password {
        command.env("REDISCLI_AUTH", password);
    }
    command
        .stderr(std::process::Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Polls `check` every 20 ms (blocking) until it holds, failing the test after `limit`.
fn wait_until(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `redis-server` processes of one test with their data directory; killed and removed on drop.
struct Servers {
    dir: PathBuf,
    children: Vec<(u16, std::process::Child)>,
}

impl Servers {
    fn new(kind: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sellersync-{kind}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self {
            dir,
            children: Vec::new(),
        }
    }

    /// Starts `redis-server <args>` (in the data directory) listening on `port`; waits until it
    /// accepts connections.
    fn spawn(&mut self, port: u16, args: &[String]) {
        let child = std::process::Command::new("redis-server")
            .args(args)
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services up)");
        self.children.push((port, child));
        wait_for_port(port, "private redis");
    }

    /// Kills the server on `port` (as a crash would).
    fn kill(&mut self, port: u16) {
        if let Some(at) = self.children.iter().position(|(p, _)| *p == port) {
            let (_, mut child) = self.children.remove(at);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Arguments of a private, diskless `redis-server` on `port`.
fn server_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `redis-server` arguments that require `password` of clients and of each other (a replica
/// signs in to its master with it); none without a password.
fn password_args(password: Option<&str>) -> Vec<String> {
    password
        .map(|p| {
            ["--requirepass", p, "--masterauth", p]
                .map(str::to_owned)
                .to_vec()
        })
        .unwrap_or_default()
}

/// A private Redis Cluster of three masters (no replicas) on free ports, every slot assigned
/// and the cluster state `ok`; killed and removed on drop.
pub struct PrivateCluster {
    pub ports: Vec<u16>,
    /// The password every node requires, if any.
    password: Option<String>,
    /// Kills the nodes on drop.
    _servers: Servers,
}

impl PrivateCluster {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A cluster whose nodes require `password` (`requirepass`, and `masterauth` between them).
    pub fn start_with(password: Option<&str>) -> Self {
        let mut servers = Servers::new("cluster");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for port in &ports {
            let mut args = server_args(*port);
            args.extend(password_args(password));
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--cluster-port",
                    &free_port().to_string(),
                    "--cluster-node-timeout",
                    "5000",
                ]
                .map(str::to_owned),
            );
            servers.spawn(*port, &args);
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut create = std::process::Command::new("redis-cli");
        create
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"]);
        if let Some(password) = password {
            create.env("REDISCLI_AUTH", password);
        }
        let created = create
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("redis-cli is installed (scripts/services up)");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = Self {
            ports,
            password: password.map(str::to_owned),
            _servers: servers,
        };
        wait_until(std::time::Duration::from_secs(30), "cluster state ok", || {
            cluster.ports.iter().all(|port| {
                let info = cluster.cli(*port, &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
            })
        });
        cluster
    }

    /// `redis-cli` on node `port`, signed in if the nodes require it.
    fn cli(&self, port: u16, args: &[&str]) -> String {
        redis_cli_as(port, self.password.as_deref(), args)
    }

    /// `127.0.0.1:<port>` of every node, for `redis.cluster_nodes`.
    pub fn nodes(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
    }

    /// Settings overrides for this cluster (`redis.mode`, `redis.cluster_nodes`, and
    /// `redis.password` when the nodes require one).
    pub fn overrides(&self) -> Vec<(&'static str, Value)> {
        let mut overrides = vec![
            ("redis.mode", Value::from("cluster")),
            ("redis.cluster_nodes", Value::from(self.nodes())),
        ];
        if let Some(password) = &self.password {
            overrides.push(("redis.password", Value::from(password.clone())));
        }
        overrides
    }

    /// The port of the master serving `key`'s slot.
    pub fn node_of(&self, key: &str) -> u16 {
        let slot: u16 = self
            .cli(self.ports[0], &["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("a slot");
        let ranges = self.cli(self.ports[0], &["CLUSTER", "SLOTS"]);
        // redis-cli prints each range as lines: start, end, master ip, master port, ...
        let lines: Vec<&str> = ranges.lines().map(str::trim).collect();
        lines
            .windows(4)
            .find_map(|w| {
                let (start, end) = (w[0].parse::<u16>().ok()?, w[1].parse::<u16>().ok()?);
                let port = w[3].parse::<u16>().ok()?;
                (w[2] == "127.0.0.1" && self.ports.contains(&port) && (start..=end).contains(&slot))
                    .then_some(port)
            })
            .expect("a node serves every slot")
    }
}

/// A private Redis Sentinel deployment: a master, one replica, and three sentinels monitoring
/// the master as [`PrivateSentinel::MASTER`] (quorum 2, down after 1 s); killed and removed on
/// drop.
pub struct PrivateSentinel {
    /// The data nodes: the first is the initial master, the second its replica.
    pub data_ports: [u16; 2],
    pub sentinel_ports: Vec<u16>,
    /// The passwords the data nodes and the sentinels require, if any.
    passwords: SentinelPasswords,
    servers: Servers,
}

/// What a [`PrivateSentinel`] deployment requires to sign in (`requirepass`): on the data
/// nodes (the replica and the sentinels use it too), and on the sentinels themselves.
#[derive(Debug, Clone, Default)]
pub struct SentinelPasswords {
    pub data: Option<String>,
    pub sentinel: Option<String>,
}

impl PrivateSentinel {
    /// The master's name the sentinels know.
    pub const MASTER: &'static str = "sellersync-test";

    pub fn start() -> Self {
        Self::start_with(SentinelPasswords::default())
    }

    /// A deployment whose data nodes and sentinels require `passwords`.
    pub fn start_with(passwords: SentinelPasswords) -> Self {
        let mut servers = Servers::new("sentinel");
        let data_ports = [free_port(), free_port()];
        let auth = password_args(passwords.data.as_deref());
        servers.spawn(
            data_ports[0],
            &[server_args(data_ports[0]), auth.clone()].concat(),
        );
        let mut replica = server_args(data_ports[1]);
        replica.extend([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            data_ports[0].to_string(),
        ]);
        servers.spawn(data_ports[1], &[replica, auth].concat());
        wait_until(std::time::Duration::from_secs(30), "the replica in sync", || {
            redis_cli_as(data_ports[1], passwords.data.as_deref(), &["INFO", "replication"])
                .contains("master_link_status:up")
        });
        let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for port in &sentinel_ports {
            let config = servers.dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &config,
                sentinel_config(*port, &servers.dir, data_ports[0], &passwords),
            )
            .expect("a sentinel configuration");
            servers.spawn(*port, &[config.display().to_string(), "--sentinel".to_owned()]);
        }
        let deployment = Self {
            data_ports,
            sentinel_ports,
            passwords,
            servers,
        };
        wait_until(
            std::time::Duration::from_secs(30),
            "sentinels that know the replica and each other",
            || {
                deployment.sentinel_ports.iter().all(|port| {
                    let master = deployment.sentinel_cli(*port, &["SENTINEL", "MASTER", Self::MASTER]);
                    let known = |field: &str| {
                        let lines: Vec<&str> = master.lines().collect();
                        lines
                            .iter()
                            .position(|line| *line == field)
                            .and_then(|at| lines.get(at + 1))
                            .and_then(|value| value.parse::<u32>().ok())
                            .unwrap_or(0)
                    };
                    known("num-slaves") == 1 && known("num-other-sentinels") == 2
                })
            },
        );
        deployment
    }

    /// `127.0.0.1:<port>` of every sentinel, for `redis.sentinels`.
    pub fn sentinels(&self) -> Vec<String> {
        self.sentinel_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// Settings overrides for this deployment (`redis.mode`, `redis.sentinels`,
    /// `redis.sentinel_master`).
    pub fn overrides(&self) -> Vec<(&'static str, Value)> {
        let mut overrides = vec![
            ("redis.mode", Value::from("sentinel")),
            ("redis.sentinels", Value::from(self.sentinels())),
            ("redis.sentinel_master", Value::from(Self::MASTER)),
        ];
        if let Some(password) = &self.passwords.data {
            overrides.push(("redis.password", Value::from(password.clone())));
        }
        if let Some(password) = &self.passwords.sentinel {
            overrides.push(("redis.sentinel_password", Value::from(password.clone())));
        }
        overrides
    }

    /// `redis-cli` on data node `port`, signed in if the data nodes require it.
    fn data_cli(&self, port: u16, args: &[&str]) -> String {
        redis_cli_as(port, self.passwords.data.as_deref(), args)
    }

    /// `redis-cli` on sentinel `port`, signed in if the sentinels require it.
    fn sentinel_cli(&self, port: u16, args: &[&str]) -> String {
        redis_cli_as(port, self.passwords.sentinel.as_deref(), args)
    }

    /// The port of the master the first answering sentinel names.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinel_ports.iter().find_map(|port| {
            let reply = self.sentinel_cli(*port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER]);
            reply.lines().nth(1)?.trim().parse().ok()
        })
    }

    /// A planned fail-over that loses no write: pauses writes on the master, waits until the
    /// replica has everything, then has a sentinel promote it (`SENTINEL FAILOVER`); returns when
    /// every sentinel names the new master and it accepts writes.
    pub fn failover(&self) -> u16 {
        let old = self.master_port().expect("a master");
        let new = *self.data_ports.iter().find(|p| **p != old).expect("a replica");
        let _ = self.data_cli(old, &["CLIENT", "PAUSE", "20000", "WRITE"]);
        wait_until(
            std::time::Duration::from_secs(20),
            "the replica caught up",
            || {
                let offset = |port: u16, field: &str| {
                    self.data_cli(port, &["INFO", "replication"])
                        .lines()
                        .find_map(|line| line.strip_prefix(field).map(|v| v.trim().to_owned()))
                };
                let master = offset(old, "master_repl_offset:");
                master.is_some() && master == offset(new, "slave_repl_offset:")
            },
        );
        let answer = self.sentinel_cli(self.sentinel_ports[0], &["SENTINEL", "FAILOVER", Self::MASTER]);
        assert_eq!(answer, "OK", "SENTINEL FAILOVER");
        self.wait_for_master(new);
        // The old master, now a replica, keeps no paused clients.
        let _ = self.data_cli(old, &["CLIENT", "UNPAUSE"]);
        new
    }

    /// Kills the master (as a crash would); the sentinels fail over on their own. Returns when
    /// every sentinel names the new master.
    pub fn kill_master(&mut self) -> u16 {
        let old = self.master_port().expect("a master");
        let new = *self.data_ports.iter().find(|p| **p != old).expect("a replica");
        self.servers.kill(old);
        self.wait_for_master(new);
        new
    }

    fn wait_for_master(&self, port: u16) {
        wait_until(
            std::time::Duration::from_secs(60),
            "the sentinels to name the new master",
            || {
                self.sentinel_ports.iter().all(|sentinel| {
                    self.sentinel_cli(*sentinel, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER])
                        .lines()
                        .nth(1)
                        .is_some_and(|p| p.trim() == port.to_string())
                }) && self.data_cli(port, &["ROLE"]).starts_with("master")
            },
        );
    }
}

/// One sentinel's configuration: monitor the master on `master` as [`PrivateSentinel::MASTER`],
/// sign in to the data nodes and to the other sentinels with `passwords`, and require the
/// sentinel password of its own clients.
fn sentinel_config(port: u16, dir: &std::path::Path, master: u16, passwords: &SentinelPasswords) -> String {
    let name = PrivateSentinel::MASTER;
    let mut config = format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
         sentinel monitor {name} 127.0.0.1 {master} 2\n\
         sentinel down-after-milliseconds {name} 1000\n\
         sentinel failover-timeout {name} 5000\n\
         sentinel parallel-syncs {name} 1\n",
        dir = dir.display(),
    );
    if let Some(password) = &passwords.data {
        config.push_str(&format!("sentinel auth-pass {name} {password}\n"));
    }
    if let Some(password) = &passwords.sentinel {
        config.push_str(&format!(
            "requirepass {password}\nsentinel sentinel-pass {password}\n"
        ));
    }
    config
}
