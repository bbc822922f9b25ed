//! Typed configuration, loaded once at start-up and passed down explicitly.
//!
//! Layers, later ones winning:
//! 1. `config/default.toml`, compiled into the binary (the one place defaults are written down);
//! 2. `<config dir>/<SELLERSYNC_ENV>.toml`, if present (`SELLERSYNC_CONFIG_DIR`, default `config`);
//! 3. `SELLERSYNC_<SECTION>__<KEY>` environment variables, for any setting;
//! 4. the seeds' plain names (`REDIS_HOST`, `PORT`, ...), listed in [`ENV_VARS`].
//!
//! Loading validates everything; a bad value becomes a [`ConfigError`] whose one-line message names
//! the setting (as its environment variable) and what is wrong with it. Nothing reads the
//! environment after start-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use sellersync_queue::QueueConfig;

use crate::secret::Secret;

/// The queue of per-user data refresh jobs.
pub const USER_DATA_QUEUE: &str = "user-data";

/// The defaults, compiled in so a binary started from any directory has them.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Plain environment variable names (the seeds' names) and the setting each one sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("PORT", "server.port"),
    ("REDIS_URL", "redis.url"),
    ("REDIS_MODE", "redis.mode"),
    ("REDIS_CLUSTER_NODES", "redis.cluster_nodes"),
    ("REDIS_SENTINELS", "redis.sentinels"),
    ("REDIS_SENTINEL_MASTER", "redis.sentinel_master"),
    ("REDIS_SENTINEL_USERNAME", "redis.sentinel_username"),
    ("REDIS_SENTINEL_PASSWORD", "redis.sentinel_password"),
    ("REDIS_USERNAME", "redis.username"),
    ("REDIS_TLS", "redis.tls"),
    ("REDIS_TLS_CA_FILE", "redis.tls_ca_file"),
    ("REDIS_TLS_CERT_FILE", "redis.tls_cert_file"),
    ("REDIS_TLS_KEY_FILE", "redis.tls_key_file"),
    ("REDIS_HOST", "redis.host"),
    ("REDIS_PORT", "redis.port"),
    ("REDIS_PASSWORD", "redis.password"),
    ("REDIS_DB", "redis.db"),
    ("REDIS_KEY_PREFIX", "redis.key_prefix"),
    ("MONGODB_URI", "mongo.uri"),
    ("MONGODB_DATABASE", "mongo.database"),
    ("MIGRATE_ON_START", "mongo.migrate_on_start"),
    ("JWT_SECRET", "auth.jwt_secret"),
    ("WORKER_CONCURRENCY", "worker.concurrency"),
    ("WORKER_INSTANCES", "worker.instances"),
    ("TIMEZONE", "timezone"),
    ("JOB_MAX_RETRIES", "jobs.max_retries"),
    ("JOB_RETRY_DELAY", "jobs.retry_delay_ms"),
    ("METRICS_PORT", "worker.metrics_port"),
    ("METRICS_BIND", "worker.metrics_bind"),
    ("CRON_ENABLED", "cron.enabled"),
    ("LWA_CLIENT_ID", "spapi.lwa_client_id"),
    ("LWA_CLIENT_SECRET", "spapi.lwa_client_secret"),
    ("LOG_LEVEL", "log.level"),
    ("LOG_FORMAT", "log.format"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "log.otlp_endpoint"),
];

/// Also sets `log.level` (tracing's filter directives), over `LOG_LEVEL` when both are set.
pub const RUST_LOG: &str = "RUST_LOG";

/// `SELLERSYNC_*` variables that steer the scripts and process set-up, not settings.
const PROCESS_VARS: &[&str] = &[
    "ENV",
    "CONFIG_DIR",
    "ENV_FILE",
    "LOG_DIR",
    "VAR_DIR",
    "BIN_DIR",
    "CARGO_PROFILE",
];

/// Shortest JWT secret accepted: HS256 wants at least 256 bits of key.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// A configuration problem that stops start-up.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {problem}")]
pub struct ConfigError {
    /// The setting, named as the environment variable that sets it.
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }

    /// Names a setting by its dotted key: the seed's variable where there is one, else the
    /// `SELLERSYNC_SECTION__KEY` form, which sets any setting.
    fn for_key(key: &str, problem: impl Into<String>) -> Self {
        Self::new(env_var_for(key), problem)
    }
}

fn env_var_for(key: &str) -> String {
    ENV_VARS
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(var, _)| (*var).to_owned())
        .unwrap_or_else(|| format!("SELLERSYNC_{}", key.replace('.', "__").to_uppercase()))
}

/// Which deployment this is; picks `config/<name>.toml` and relaxes a few checks in development.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Test,
    Staging,
    Production,
}

impl Environment {
    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "staging" => Ok(Self::Staging),
            "production" | "prod" => Ok(Self::Production),
            other => Err(ConfigError::new(
                "SELLERSYNC_ENV",
                format!("unknown environment {other:?} (expected development, test, staging or production)"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }

    /// Development and test may run without a configured JWT secret.
    pub fn is_local(self) -> bool {
        matches!(self, Self::Development | Self::Test)
    }
}

/// The whole configuration of a process.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// From `SELLERSYNC_ENV`, not from the files.
    #[serde(skip_deserializing)]
    pub environment: Environment,
    #[serde(deserialize_with = "timezone", serialize_with = "timezone_name")]
    pub timezone: Tz,
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub mongo: MongoSettings,
    pub auth: AuthSettings,
    pub worker: WorkerSettings,
    pub jobs: JobSettings,
    pub cron: CronSettings,
    pub spapi: SpApiSettings,
    pub refresh: RefreshSettings,
    /// Named queues; `user-data` must be among them.
    pub queues: BTreeMap<String, QueueConfig>,
    pub monitoring: MonitoringSettings,
    pub job_status: JobStatusSettings,
    pub log: LogSettings,
    pub dashboard: DashboardSettings,
    pub events: EventsSettings,
    pub notifications: NotificationSettings,
}

/// Webhook notifications (`crate::notify`), delivered through the `notifications` queue.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// One request's timeout.
    pub timeout_ms: u64,
    /// Receivers should refuse a signature older than this (documented in the signature header).
    pub replay_window_secs: u64,
    /// How often the API checks queue health for `queue.unhealthy` notifications.
    pub health_check_interval_ms: u64,
    /// An unhealthy queue is notified again after this long if it stays unhealthy.
    pub unhealthy_repeat_ms: u64,
    #[serde(default)]
    pub webhooks: Vec<crate::notify::Webhook>,
}

/// The admin dashboard served by the API (`crates/api/src/dashboard`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSettings {
    pub enabled: bool,
    /// Where the API serves it, e.g. `/admin`.
    pub path: String,
    /// What a reverse proxy puts before every URL of the API (e.g. `/sellersync` when the proxy
    /// forwards `/sellersync/*` without it); links, assets and the session cookie carry it.
    pub public_prefix: String,
    /// A session lasts this long, and never longer than the token it was signed in with.
    pub session_ttl_minutes: u64,
    /// Send the session cookie only over HTTPS (on everywhere but local runs and tests).
    pub secure_cookie: bool,
    /// Jobs per page.
    pub page_size: usize,
}

impl DashboardSettings {
    /// The dashboard's public URL path: `public_prefix` + `path`.
    pub fn public_path(&self) -> String {
        format!("{}{}", self.public_prefix, self.path)
    }
}

/// Live job events (`GET /api/events`, Server-Sent Events).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSettings {
    /// A comment line is sent this often when there is nothing else, so proxies keep the
    /// connection open.
    pub heartbeat_ms: u64,
    /// Events queued for one client; a client that falls this far behind is disconnected (it
    /// may reconnect with `Last-Event-ID` and resume).
    pub client_buffer: usize,
    /// Most clients connected to one API process at once; more are refused with 503.
    pub max_subscribers: usize,
}

/// JobStatus: the projection of the queue's events into MongoDB.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobStatusSettings {
    /// Run a projector in this process (workers and the API do by default; any number may).
    pub projector: bool,
    /// How long queued, active and retrying records are kept (finished ones follow their
    /// queue's retention).
    pub pending_retention_ms: u64,
    /// A projection further behind than this makes the queue unhealthy.
    pub max_lag_ms: u64,
}

impl JobStatusSettings {
    pub fn pending_retention(&self) -> Duration {
        Duration::from_millis(self.pending_retention_ms)
    }
}

/// When the queue health endpoints call a queue unhealthy (seed 003: failed > 10, waiting > 100).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSettings {
    pub failed_threshold: u64,
    pub waiting_threshold: u64,
    /// A queue failing more than this share (0–1) of the jobs finished in the window is unhealthy.
    pub failure_rate_threshold: f64,
    pub failure_rate_window_ms: u64,
    /// Fewer jobs finished in the window than this are too few to judge the failure rate.
    pub failure_rate_min_finished: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: std::net::IpAddr,
    /// 0 asks the OS for any free port (tests do).
    pub port: u16,
    pub request_timeout_ms: u64,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_ms: u64,
    pub readiness_timeout_ms: u64,
    /// Origins allowed to call the API from a browser (CORS). Empty: no CORS headers; `["*"]`: any.
    pub cors_allowed_origins: Vec<String>,
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
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSettings {
    /// A secret: a MongoDB URI may carry a password. Log [`MongoSettings::redacted_uri`] instead.
    pub uri: Secret,
    pub database: String,
    pub connect_timeout_ms: u64,
    pub server_selection_timeout_ms: u64,
    /// Bound on one operation on the job path (a refresh's reads and writes, a JobStatus batch):
    /// a half-open connection fails the operation (retried later) instead of holding a slot.
    pub operation_timeout_ms: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 key. Required outside development/test unless an RS256 public key is configured.
    #[serde(default, deserialize_with = "optional_secret")]
    pub jwt_secret: Option<Secret>,
    /// PEM file with an RSA public key: RS256 tokens (from an identity provider) are accepted too.
    #[serde(default)]
    pub jwt_public_key_file: Option<std::path::PathBuf>,
    /// JWKS file (`{"keys": [...]}`) of RS256 keys chosen by the token's `kid`; read again when
    /// it changes, so keys rotate without a restart.
    #[serde(default)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// When set, tokens must carry this `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Longest lifetime of a token this deployment mints (the CLI's `token`, dashboard sessions).
    pub max_token_lifetime_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub concurrency: u32,
    pub instances: u32,
    pub job_timeout_ms: u64,
    pub drain_timeout_ms: u64,
    pub max_failed_account_share: f64,
    pub user_busy_delay_ms: u64,
    pub store_unavailable_delay_ms: u64,
    pub metrics_port: u16,
    /// The address the metrics endpoint listens on: loopback by default (it has no auth); a
    /// private network's address, or `0.0.0.0`, for a Prometheus on another host.
    pub metrics_bind: std::net::IpAddr,
    /// At most `max` refreshes of one user per `interval_ms` (unset: no limit); a refresh over
    /// it waits (deferred, no attempt spent) until the user's bucket refills.
    #[serde(default)]
    pub user_rate_limit: Option<crate::rate_limit::RateLimit>,
}

impl WorkerSettings {
    pub fn job_timeout(&self) -> Duration {
        Duration::from_millis(self.job_timeout_ms)
    }
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
    pub fn store_unavailable_delay(&self) -> Duration {
        Duration::from_millis(self.store_unavailable_delay_ms)
    }
    pub fn user_busy_delay(&self) -> Duration {
        Duration::from_millis(self.user_busy_delay_ms)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub max_retries: u32,
    pub retry_delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CronSettings {
    pub enabled: bool,
    pub schedule: String,
    pub batch_size: usize,
    pub lease_ttl_ms: u64,
    /// A user is due at a tick if its interval has passed at the tick plus this much, so a user
    /// refreshed a little after the previous tick is not left for another hour.
    pub due_tolerance_ms: u64,
    /// A failed tick is retried after this, doubling up to `retry_max_ms`, until the next tick.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// At start-up, run the latest past tick (within 25 hours) if it was not completed.
    pub catch_up: bool,
}

impl CronSettings {
    pub fn due_tolerance(&self) -> Duration {
        Duration::from_millis(self.due_tolerance_ms)
    }

    pub fn retry(&self) -> crate::cron::TickRetry {
        crate::cron::TickRetry {
            initial: Duration::from_millis(self.retry_initial_ms),
            max: Duration::from_millis(self.retry_max_ms.max(self.retry_initial_ms)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpApiSettings {
    pub lwa_client_id: String,
    pub lwa_client_secret: Secret,
    pub token_url: String,
    pub request_timeout_ms: u64,
    pub max_retries: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Longest one call waits for rate-limit tokens (Amazon's usage plans) before its account is
    /// reported rate-bound, to be retried after the wait instead.
    pub rate_limit_max_wait_ms: u64,
    pub endpoints: SpApiEndpoints,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpApiEndpoints {
    pub na: String,
    pub eu: String,
    pub fe: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshSettings {
    pub account_concurrency: usize,
    pub item_concurrency: usize,
    pub window_days: u32,
    pub stockout_days: u32,
    pub top_skus: usize,
    pub cache_ttl_secs: u64,
    /// Lifetime of an account's order book (incremental refresh); 0 lists every window whole.
    pub order_book_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
    /// OpenTelemetry collector's OTLP/HTTP base URL (spans go to `<it>/v1/traces`); empty: no
    /// export. Needs a build with the `otlp` feature.
    pub otlp_endpoint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

impl Settings {
    /// Loads the configuration of this process: `SELLERSYNC_ENV` (default `development`),
    /// `SELLERSYNC_CONFIG_DIR` (default `config`), then every layer described in the module doc.
    pub fn load() -> Result<Self, ConfigError> {
        let environment = match std::env::var("SELLERSYNC_ENV") {
            Ok(name) => Environment::parse(&name)?,
            Err(_) => Environment::Development,
        };
        let dir =
            std::env::var_os("SELLERSYNC_CONFIG_DIR").map_or_else(|| PathBuf::from("config"), PathBuf::from);
        Self::from_figment(environment, Self::figment(environment, &dir))
    }

    /// The layered sources for `environment`, reading overrides from `config_dir` and the process
    /// environment. Tests merge their own values on top before calling [`Settings::from_figment`].
    pub fn figment(environment: Environment, config_dir: &Path) -> Figment {
        let env_file = config_dir.join(format!("{}.toml", environment.name()));
        Figment::new()
            .merge(Toml::string(DEFAULT_TOML))
            .merge(Toml::file(env_file))
            .merge(Env::prefixed("SELLERSYNC_").ignore(PROCESS_VARS).split("__"))
            .merge(Env::raw().filter_map(|var| {
                ENV_VARS
                    .iter()
                    .find(|(name, _)| var == *name)
                    .map(|(_, key)| (*key).into())
            }))
            // The Rust convention wins over LOG_LEVEL when both are set.
            .merge(Env::raw().filter_map(|var| (var == RUST_LOG).then(|| "log.level".into())))
    }

    pub fn from_figment(environment: Environment, figment: Figment) -> Result<Self, ConfigError> {
        let mut settings: Self = figment.extract().map_err(from_figment_error)?;
        settings.environment = environment;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let s = self;
        if s.redis.port == 0 {
            return Err(ConfigError::for_key(
                "redis.port",
                "must be a port number 1-65535, got 0",
            ));
        }
        if s.redis.host.trim().is_empty() {
            return Err(ConfigError::for_key("redis.host", "must not be empty"));
        }
        s.redis.validate_tls_and_url()?;
        s.redis.validate_mode()?;
        if s.mongo.database.trim().is_empty() || s.mongo.database.contains(['/', '\\', '.', ' ', '"', '$']) {
            return Err(ConfigError::for_key(
                "mongo.database",
                format!("{:?} is not a valid database name", s.mongo.database),
            ));
        }
        if !s.mongo.uri.expose().starts_with("mongodb://")
            && !s.mongo.uri.expose().starts_with("mongodb+srv://")
        {
            return Err(ConfigError::for_key(
                "mongo.uri",
                "must start with mongodb:// or mongodb+srv://",
            ));
        }
        if s.worker.concurrency == 0 {
            return Err(ConfigError::for_key(
                "worker.concurrency",
                "must be at least 1, got 0",
            ));
        }
        if s.worker.instances == 0 {
            return Err(ConfigError::for_key(
                "worker.instances",
                "must be at least 1, got 0",
            ));
        }
        if !(0.0..=1.0).contains(&s.monitoring.failure_rate_threshold) {
            return Err(ConfigError::for_key(
                "monitoring.failure_rate_threshold",
                "must be between 0 and 1",
            ));
        }
        if s.monitoring.failure_rate_window_ms == 0 {
            return Err(ConfigError::for_key(
                "monitoring.failure_rate_window_ms",
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&s.worker.max_failed_account_share) {
            return Err(ConfigError::for_key(
                "worker.max_failed_account_share",
                "must be between 0 and 1",
            ));
        }
        if let Some(limit) = &s.worker.user_rate_limit {
            limit
                .validate()
                .map_err(|problem| ConfigError::for_key("worker.user_rate_limit", problem))?;
        }
        if s.jobs.max_retries == 0 {
            return Err(ConfigError::for_key(
                "jobs.max_retries",
                "must be at least 1 (the first attempt counts), got 0",
            ));
        }
        for (key, value) in [
            ("redis.connect_timeout_ms", s.redis.connect_timeout_ms),
            ("redis.response_timeout_ms", s.redis.response_timeout_ms),
            ("mongo.connect_timeout_ms", s.mongo.connect_timeout_ms),
            (
                "mongo.server_selection_timeout_ms",
                s.mongo.server_selection_timeout_ms,
            ),
            ("mongo.operation_timeout_ms", s.mongo.operation_timeout_ms),
            ("server.request_timeout_ms", s.server.request_timeout_ms),
            ("server.readiness_timeout_ms", s.server.readiness_timeout_ms),
            ("worker.job_timeout_ms", s.worker.job_timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::for_key(key, "must be greater than 0 milliseconds"));
            }
        }
        if s.server.body_limit_bytes == 0 {
            return Err(ConfigError::for_key(
                "server.body_limit_bytes",
                "must be greater than 0",
            ));
        }
        self.validate_auth()?;
        self.validate_cors()?;
        self.validate_dashboard()?;
        self.validate_queues()?;
        self.validate_spapi()?;
        let otlp = &s.log.otlp_endpoint;
        if !otlp.is_empty() && !otlp.starts_with("http://") && !otlp.starts_with("https://") {
            return Err(ConfigError::for_key(
                "log.otlp_endpoint",
                format!("{otlp:?} is not an http(s) URL"),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&s.log.level).map_err(|e| {
            ConfigError::for_key(
                "log.level",
                format!("{:?} is not a valid filter: {e}", s.log.level),
            )
        })?;
        Ok(())
    }

    fn validate_spapi(&self) -> Result<(), ConfigError> {
        let sp = &self.spapi;
        if !self.environment.is_local() && (sp.lwa_client_id.is_empty() || sp.lwa_client_secret.is_empty()) {
            let key = if sp.lwa_client_id.is_empty() {
                "spapi.lwa_client_id"
            } else {
                "spapi.lwa_client_secret"
            };
            return Err(ConfigError::for_key(
                key,
                format!("is required when SELLERSYNC_ENV={}", self.environment.name()),
            ));
        }
        let urls = [
            ("spapi.token_url", &sp.token_url),
            ("spapi.endpoints.na", &sp.endpoints.na),
            ("spapi.endpoints.eu", &sp.endpoints.eu),
            ("spapi.endpoints.fe", &sp.endpoints.fe),
        ];
        for (key, url) in urls {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(ConfigError::for_key(
                    key,
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
        crate::cron::parse_schedule(&self.cron.schedule)
            .map_err(|problem| ConfigError::for_key("cron.schedule", problem))?;
        if self.cron.batch_size == 0 || self.cron.lease_ttl_ms < 3 {
            return Err(ConfigError::for_key(
                "cron.batch_size",
                "batch_size and lease_ttl_ms must be positive",
            ));
        }
        if self.cron.retry_initial_ms == 0 {
            return Err(ConfigError::for_key(
                "cron.retry_initial_ms",
                "must be at least 1",
            ));
        }
        let r = &self.refresh;
        for (key, value) in [
            ("spapi.request_timeout_ms", sp.request_timeout_ms),
            ("refresh.account_concurrency", r.account_concurrency as u64),
            ("refresh.item_concurrency", r.item_concurrency as u64),
            ("refresh.window_days", u64::from(r.window_days)),
            ("refresh.cache_ttl_secs", r.cache_ttl_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::for_key(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    fn validate_queues(&self) -> Result<(), ConfigError> {
        for required in [USER_DATA_QUEUE, crate::notify::NOTIFICATIONS_QUEUE] {
            if !self.queues.contains_key(required) {
                return Err(ConfigError::new(
                    format!("queues.{required}"),
                    format!("is missing; the {required} queue must be configured"),
                ));
            }
        }
        crate::notify::validate(&self.notifications)
            .map_err(|(key, problem)| ConfigError::new(format!("notifications.{key}"), problem))?;
        for name in self.queues.keys() {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(ConfigError::new(
                    format!("queues.{name}"),
                    "queue names may use letters, digits, '-' and '_' only",
                ));
            }
            let config = self.queue(name).expect("listed queue");
            config
                .validate()
                .map_err(|problem| ConfigError::new(format!("queues.{name}"), problem))?;
        }
        Ok(())
    }

    /// Queue `name`'s configuration with unset values taken from the process-wide settings.
    pub fn queue(&self, name: &str) -> Option<QueueConfig> {
        let config = self.queues.get(name)?.clone();
        Some(config.inherit(
            self.worker.concurrency,
            self.jobs.max_retries,
            self.jobs.retry_delay_ms,
        ))
    }

    fn validate_dashboard(&self) -> Result<(), ConfigError> {
        let d = &self.dashboard;
        let bad_path =
            |p: &str| !p.starts_with('/') || p.ends_with('/') || p.contains(['?', '#', ' ', '"', '<', '>']);
        if bad_path(&d.path) {
            return Err(ConfigError::for_key(
                "dashboard.path",
                format!("{:?} must start with / and not end with / (e.g. /admin)", d.path),
            ));
        }
        if !d.public_prefix.is_empty() && bad_path(&d.public_prefix) {
            return Err(ConfigError::for_key(
                "dashboard.public_prefix",
                format!(
                    "{:?} must be empty or start with / and not end with / (e.g. /sellersync)",
                    d.public_prefix
                ),
            ));
        }
        for (key, value) in [
            ("dashboard.session_ttl_minutes", d.session_ttl_minutes),
            ("dashboard.page_size", d.page_size as u64),
            ("events.heartbeat_ms", self.events.heartbeat_ms),
            ("events.client_buffer", self.events.client_buffer as u64),
            ("events.max_subscribers", self.events.max_subscribers as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::for_key(key, "must be greater than 0"));
            }
        }
        Ok(())
    }

    fn validate_cors(&self) -> Result<(), ConfigError> {
        let origins = &self.server.cors_allowed_origins;
        let key = "server.cors_allowed_origins";
        if origins.len() > 1 && origins.iter().any(|o| o == "*") {
            return Err(ConfigError::for_key(
                key,
                "\"*\" cannot be combined with other origins",
            ));
        }
        for origin in origins.iter().filter(|o| *o != "*") {
            let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && origin.chars().all(|c| c.is_ascii_graphic());
            if !valid {
                return Err(ConfigError::for_key(
                    key,
                    format!(
                        "{origin:?} is not an origin like https://admin.example.com (scheme and host, no path)"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        crate::auth::Verifier::from_settings(&self.auth)
            .map_err(|e| ConfigError::for_key(e.setting, e.problem))?;
        match &self.auth.jwt_secret {
            None if self.environment.is_local()
                || self.auth.jwt_public_key_file.is_some()
                || self.auth.jwks_file.is_some() =>
            {
                Ok(())
            }
            None => Err(ConfigError::for_key(
                "auth.jwt_secret",
                format!("is required when SELLERSYNC_ENV={}", self.environment.name()),
            )),
            Some(secret) if secret.expose().len() < MIN_JWT_SECRET_LEN => Err(ConfigError::for_key(
                "auth.jwt_secret",
                format!("must be at least {MIN_JWT_SECRET_LEN} bytes long"),
            )),
            Some(secret) if !self.environment.is_local() => match crate::auth::weak_secret(secret.expose()) {
                Some(why) => Err(ConfigError::for_key(
                    "auth.jwt_secret",
                    format!("{why}; generate one with `openssl rand -base64 48`"),
                )),
                None => Ok(()),
            },
            Some(_) => Ok(()),
        }?;
        let rs256 = self.auth.jwt_public_key_file.is_some() || self.auth.jwks_file.is_some();
        let rs256_unscoped = rs256 && (self.auth.issuer.is_none() || self.auth.audience.is_none());
        if rs256_unscoped && !self.environment.is_local() {
            let missing = if self.auth.issuer.is_none() {
                "auth.issuer"
            } else {
                "auth.audience"
            };
            return Err(ConfigError::for_key(
                missing,
                "is required with auth.jwt_public_key_file: without issuer and audience checks, any app of the same identity provider could sign in",
            ));
        }
        if self.auth.max_token_lifetime_secs == 0 {
            return Err(ConfigError::for_key(
                "auth.max_token_lifetime_secs",
                "must be at least 1",
            ));
        }
        Ok(())
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
fn address_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
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
    fn validate_mode(&self) -> Result<(), ConfigError> {
        for (key, list) in [
            ("redis.cluster_nodes", &self.cluster_nodes),
            ("redis.sentinels", &self.sentinels),
        ] {
            for address in list {
                parse_address(address).map_err(|problem| ConfigError::for_key(key, problem))?;
            }
        }
        match self.mode {
            RedisMode::Standalone => Ok(()),
            RedisMode::Cluster => {
                if self.db != 0 {
                    return Err(ConfigError::for_key(
                        "redis.db",
                        "must be 0 in cluster mode (a Redis Cluster has only database 0)",
                    ));
                }
                if self.key_prefix.contains(['{', '}']) {
                    // Every key of a queue shares the hash tag `{<queue>}`; a brace in the prefix
                    // would become the tag instead, or break it.
                    return Err(ConfigError::for_key(
                        "redis.key_prefix",
                        "must not contain { or } in cluster mode (the queue name is each key's hash tag)",
                    ));
                }
                Ok(())
            }
            RedisMode::Sentinel => {
                if self.sentinels.is_empty() {
                    return Err(ConfigError::for_key(
                        "redis.sentinels",
                        "must list at least one sentinel (host:port) in sentinel mode",
                    ));
                }
                if self
                    .sentinel_master
                    .as_deref()
                    .is_none_or(|m| m.trim().is_empty())
                {
                    return Err(ConfigError::for_key(
                        "redis.sentinel_master",
                        "must name the master (as in `sentinel monitor <name> ...`) in sentinel mode",
                    ));
                }
                if self.url.is_some() {
                    return Err(ConfigError::for_key(
                        "redis.url",
                        "is not used in sentinel mode (the sentinels name the master); set redis.username, redis.password, redis.db and redis.tls instead",
                    ));
                }
                Ok(())
            }
        }
    }

    /// True when connections use TLS (`tls`, or a `rediss://` URL).
    pub fn uses_tls(&self) -> bool {
        self.tls
            || self
                .url
                .as_ref()
                .is_some_and(|u| u.expose().starts_with("rediss://"))
    }

    fn validate_tls_and_url(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            let url = url.expose();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                // Never echo the URL: it may carry a password.
                return Err(ConfigError::for_key(
                    "redis.url",
                    "must start with redis:// or rediss://",
                ));
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError::for_key(
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
                return Err(ConfigError::for_key(
                    key,
                    "is set but TLS is off (set redis.tls or use a rediss:// URL)",
                ));
            }
            if std::fs::metadata(path).is_err() {
                return Err(ConfigError::for_key(
                    key,
                    format!("cannot read {}", path.display()),
                ));
            }
        }
        Ok(())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
}

impl MongoSettings {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn server_selection_timeout(&self) -> Duration {
        Duration::from_millis(self.server_selection_timeout_ms)
    }
    pub fn operation_timeout(&self) -> Duration {
        Duration::from_millis(self.operation_timeout_ms)
    }

    /// The URI with any `user:password@` removed, for log lines.
    pub fn redacted_uri(&self) -> String {
        redact_userinfo(self.uri.expose())
    }
}

impl ServerSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
    pub fn readiness_timeout(&self) -> Duration {
        Duration::from_millis(self.readiness_timeout_ms)
    }
}

impl SpApiSettings {
    pub fn endpoint(&self, region: crate::spapi::Region) -> &str {
        match region {
            crate::spapi::Region::Na => &self.endpoints.na,
            crate::spapi::Region::Eu => &self.endpoints.eu,
            crate::spapi::Region::Fe => &self.endpoints.fe,
        }
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
    pub fn rate_limit_max_wait(&self) -> Duration {
        Duration::from_millis(self.rate_limit_max_wait_ms)
    }
}

impl JobSettings {
    pub fn retry_delay(&self) -> Duration {
        Duration::from_millis(self.retry_delay_ms)
    }
}

fn redact_userinfo(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return crate::secret::REDACTED.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}@{}", crate::secret::REDACTED, &rest[at + 1..]),
        None => uri.to_owned(),
    }
}

fn timezone_name<S: Serializer>(tz: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(tz.name())
}

fn timezone<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse::<Tz>().map_err(|_| {
        serde::de::Error::custom(format!(
            "unknown timezone {name:?} (expected an IANA name such as UTC or Europe/Berlin)"
        ))
    })
}

/// Empty strings count as "not set", so `REDIS_PASSWORD=` behaves like an absent password. Numbers
/// are accepted too: figment reads `REDIS_PASSWORD=12345` from the environment as an integer.
fn optional_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let value = Option::<Scalar>::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("expected a string"))?;
    Ok(value
        .map(|v| match v {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        })
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

/// Turns figment's error into ours, naming the setting by its environment variable. The value a
/// secret was set to never appears: figment's message for a bad value quotes it, so for a secret
/// setting only the kind of problem is kept.
fn from_figment_error(error: figment::Error) -> ConfigError {
    let key = error.path.join(".");
    let problem = match &error.kind {
        figment::error::Kind::UnknownField(field, _) => {
            let full = if key.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            return ConfigError::new(
                full,
                "unknown setting (check its spelling; docs/configuration.md lists them all)",
            );
        }
        _ if is_secret_key(&key) => "has an invalid value".to_owned(),
        kind => kind.to_string(),
    };
    if key.is_empty() {
        ConfigError::new("configuration", problem)
    } else {
        ConfigError::for_key(&key, problem)
    }
}

fn is_secret_key(key: &str) -> bool {
    matches!(
        key,
        "redis.password"
            | "redis.sentinel_password"
            | "redis.url"
            | "auth.jwt_secret"
            | "mongo.uri"
            | "spapi.lwa_client_secret"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: Environment, overrides: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new().merge(Toml::string(DEFAULT_TOML));
        for (key, value) in overrides {
            // Parsed as figment parses environment variables, so "0" is a number.
            let value: figment::value::Value = value.parse().unwrap();
            figment = figment.merge(figment::providers::Serialized::default(key, value));
        }
        Settings::from_figment(env, figment)
    }

    fn error(env: Environment, overrides: &[(&str, &str)]) -> String {
        load(env, overrides)
            .expect_err("configuration should be rejected")
            .to_string()
    }

    #[test]
    fn cors_origins_must_be_origins() {
        let ok = load(
            Environment::Test,
            &[(
                "server.cors_allowed_origins",
                r#"["https://a.example", "http://localhost:5173"]"#,
            )],
        );
        assert_eq!(ok.unwrap().server.cors_allowed_origins.len(), 2);
        for bad in [
            r#"["*", "https://a.example"]"#,
            r#"["a.example"]"#,
            r#"["https://a.example/"]"#,
            r#"["https://a b"]"#,
        ] {
            let message = error(Environment::Test, &[("server.cors_allowed_origins", bad)]);
            assert!(message.contains("CORS_ALLOWED_ORIGINS"), "{bad}: {message}");
        }
    }

    #[test]
    fn defaults_load_and_match_the_seeds() {
        let s = load(Environment::Development, &[]).unwrap();
        assert_eq!(s.worker.concurrency, 3);
        assert_eq!(s.worker.instances, 2);
        assert_eq!(s.timezone, chrono_tz::UTC);
        assert_eq!(s.redis.port, 6379);
        assert_eq!(s.redis.response_timeout(), Duration::from_secs(30));
        assert!(s.auth.jwt_secret.is_none());
        let user_data = s.queue(USER_DATA_QUEUE).unwrap();
        assert_eq!(user_data.concurrency(), 3, "WORKER_CONCURRENCY");
        assert_eq!(user_data.max_attempts(), 3, "JOB_MAX_RETRIES");
        assert_eq!(user_data.keep_completed, 1000);
    }

    #[test]
    fn queue_settings_inherit_and_validate() {
        let s = load(
            Environment::Development,
            &[("jobs.max_retries", "7"), ("queues.user-data.max_attempts", "2")],
        )
        .unwrap();
        assert_eq!(
            s.queue(USER_DATA_QUEUE).unwrap().max_attempts(),
            2,
            "the queue's own value wins"
        );
        let s = load(Environment::Development, &[("jobs.max_retries", "7")]).unwrap();
        assert_eq!(s.queue(USER_DATA_QUEUE).unwrap().max_attempts(), 7);
        let err = error(
            Environment::Development,
            &[("queues.user-data.heartbeat_ms", "3000")],
        );
        assert!(
            err.contains("queues.user-data") && err.contains("heartbeat_ms"),
            "{err}"
        );
        let err = error(Environment::Development, &[("queues.user-data.lease_mss", "1")]);
        assert!(err.contains("lease_mss"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let dev = Environment::Development;
        assert!(error(dev, &[("server.port", "abc")]).contains("PORT"));
        assert!(error(dev, &[("redis.port", "70000")]).contains("REDIS_PORT"));
        assert!(error(dev, &[("redis.port", "0")]).contains("REDIS_PORT"));
        let tz = error(dev, &[("timezone", "Mars/Olympus")]);
        assert!(tz.contains("TIMEZONE") && tz.contains("Mars/Olympus"), "{tz}");
        let conc = error(dev, &[("worker.concurrency", "0")]);
        assert!(
            conc.contains("WORKER_CONCURRENCY") && conc.contains("at least 1"),
            "{conc}"
        );
        assert!(error(dev, &[("log.format", "xml")]).contains("LOG_FORMAT"));
        assert!(
            error(dev, &[("redis.connect_timeout_ms", "0")]).contains("SELLERSYNC_REDIS__CONNECT_TIMEOUT_MS")
        );
        assert!(
            error(dev, &[("log.otlp_endpoint", "collector:4318")]).contains("OTEL_EXPORTER_OTLP_ENDPOINT")
        );
        assert!(load(dev, &[("log.otlp_endpoint", "http://127.0.0.1:4318")]).is_ok());
    }

    const STRONG_SECRET: &str = "q7Vd2LmX9pRt4KwZ8sNc3HyB6fJu1EaG5oTi0";

    #[test]
    fn jwt_secret_is_required_outside_development_and_never_echoed() {
        let missing = error(Environment::Production, &[]);
        assert!(
            missing.contains("JWT_SECRET") && missing.contains("production"),
            "{missing}"
        );
        let short = error(Environment::Production, &[("auth.jwt_secret", "tiny-secret")]);
        assert!(
            short.contains("JWT_SECRET") && !short.contains("tiny-secret"),
            "{short}"
        );
        let placeholder = error(
            Environment::Production,
            &[("auth.jwt_secret", "change-me-to-at-least-32-random-bytes")],
        );
        assert!(
            placeholder.contains("JWT_SECRET") && placeholder.contains("placeholder"),
            "{placeholder}"
        );
        let repetitive = error(Environment::Production, &[("auth.jwt_secret", &"ab".repeat(24))]);
        assert!(repetitive.contains("guessable"), "{repetitive}");
        let ok = load(
            Environment::Production,
            &[
                ("auth.jwt_secret", STRONG_SECRET),
                ("spapi.lwa_client_id", "amzn1.application-oa2-client.x"),
                ("spapi.lwa_client_secret", "lwa-secret"),
            ],
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
        let no_lwa = error(Environment::Production, &[("auth.jwt_secret", STRONG_SECRET)]);
        assert!(no_lwa.contains("LWA_CLIENT_ID"), "{no_lwa}");
        assert!(load(Environment::Test, &[]).is_ok());
    }

    #[test]
    fn unknown_settings_are_rejected() {
        let err = error(Environment::Development, &[("redis.hots", "x")]);
        assert!(
            err.contains("redis.hots") && err.contains("unknown setting"),
            "{err}"
        );
    }

    #[test]
    fn unknown_environment_is_rejected() {
        let err = Environment::parse("qa").unwrap_err().to_string();
        assert!(err.contains("SELLERSYNC_ENV") && err.contains("qa"), "{err}");
    }

    #[test]
    fn empty_password_means_none_and_numeric_password_is_kept() {
        let s = load(Environment::Development, &[("redis.password", "")]).unwrap();
        assert!(s.redis.password.is_none());
        let figment = Figment::new()
            .merge(Toml::string(DEFAULT_TOML))
            .merge(figment::providers::Serialized::default("redis.password", 12345));
        let s = Settings::from_figment(Environment::Development, figment).unwrap();
        assert_eq!(s.redis.password.as_ref().unwrap().expose(), "12345");
    }

    #[test]
    fn settings_debug_output_hides_secrets() {
        let s = load(
            Environment::Development,
            &[
                ("redis.password", "redis-pass-123"),
                ("auth.jwt_secret", "jwt-secret-0123456789-0123456789-abc"),
                ("mongo.uri", "mongodb://admin:mongo-pass@db:27017/"),
            ],
        )
        .unwrap();
        let printed = format!("{s:?}");
        for secret in ["redis-pass-123", "jwt-secret-0123456789", "mongo-pass"] {
            assert!(!printed.contains(secret), "{secret} leaked in {printed}");
        }
        assert_eq!(s.mongo.redacted_uri(), "mongodb://[redacted]@db:27017/");
        let json = serde_json::to_string(&s).unwrap();
        for secret in ["redis-pass-123", "jwt-secret-0123456789", "mongo-pass"] {
            assert!(!json.contains(secret), "{secret} leaked in {json}");
        }
    }

    #[test]
    fn every_plain_env_var_maps_to_a_documented_setting() {
        let defaults = Figment::new().merge(Toml::string(DEFAULT_TOML));
        for (var, key) in ENV_VARS {
            let optional = matches!(
                *key,
                "redis.password"
                    | "auth.jwks_file"
                    | "redis.url"
                    | "redis.username"
                    | "redis.tls_ca_file"
                    | "redis.tls_cert_file"
                    | "redis.tls_key_file"
                    | "redis.sentinel_master"
                    | "redis.sentinel_username"
                    | "redis.sentinel_password"
                    | "auth.jwt_secret"
            );
            assert!(
                optional || defaults.find_value(key).is_ok(),
                "{var} maps to {key}, which config/default.toml does not define"
            );
        }
    }

    #[test]
    fn cluster_and_sentinel_settings_fail_fast_naming_the_setting() {
        let dev = Environment::Development;
        let s = load(dev, &[]).unwrap();
        assert_eq!(s.redis.mode, RedisMode::Standalone);
        let cluster = load(
            dev,
            &[
                ("redis.mode", "cluster"),
                ("redis.cluster_nodes", "10.0.0.1:7000, 10.0.0.2:7001"),
            ],
        )
        .unwrap();
        assert_eq!(cluster.redis.mode, RedisMode::Cluster);
        assert_eq!(cluster.redis.cluster_nodes, ["10.0.0.1:7000", "10.0.0.2:7001"]);
        let bad_node = error(
            dev,
            &[("redis.mode", "cluster"), ("redis.cluster_nodes", "10.0.0.1")],
        );
        assert!(
            bad_node.contains("REDIS_CLUSTER_NODES") && bad_node.contains("host:port"),
            "{bad_node}"
        );
        let db = error(dev, &[("redis.mode", "cluster"), ("redis.db", "2")]);
        assert!(db.contains("REDIS_DB") && db.contains("cluster"), "{db}");
        let tag = error(dev, &[("redis.mode", "cluster"), ("redis.key_prefix", "app{x}:")]);
        assert!(tag.contains("REDIS_KEY_PREFIX"), "{tag}");
        assert!(error(dev, &[("redis.mode", "galaxy")]).contains("REDIS_MODE"));

        let no_sentinels = error(dev, &[("redis.mode", "sentinel"), ("redis.sentinel_master", "m")]);
        assert!(no_sentinels.contains("REDIS_SENTINELS"), "{no_sentinels}");
        let no_master = error(
            dev,
            &[("redis.mode", "sentinel"), ("redis.sentinels", "s1:26379")],
        );
        assert!(no_master.contains("REDIS_SENTINEL_MASTER"), "{no_master}");
        let sentinel = load(
            dev,
            &[
                ("redis.mode", "sentinel"),
                ("redis.sentinels", "s1:26379,s2:26379,[::1]:26379"),
                ("redis.sentinel_master", "mymaster"),
                ("redis.sentinel_password", "sentinel-pass-123"),
            ],
        )
        .unwrap();
        assert_eq!(sentinel.redis.sentinels.len(), 3);
        assert_eq!(parse_address("[::1]:26379").unwrap(), ("::1".to_owned(), 26379));
        assert!(!format!("{sentinel:?}").contains("sentinel-pass-123"));
    }
}
