//! Typed configuration, loaded once at start-up and passed down explicitly.
//!
//! Layers, later ones winning:
//! 1. `config/default.toml`, compiled into the binary (the one place defaults are written down);
//! 2. `<config dir>/<SELLERSYNC_ENV>.toml` (`SELLERSYNC_CONFIG_DIR`, default `config`): required
//!    when `SELLERSYNC_CONFIG_DIR` is set and outside development and test ([`config_file`]), so
//!    a mistyped folder or a forgotten `production.toml` stops start-up instead of leaving the
//!    defaults in force;
//! 3. `SELLERSYNC_<SECTION>__<KEY>` environment variables, for any setting, and webhooks as
//!    `SELLERSYNC_NOTIFICATIONS__WEBHOOKS__<NAME>__<FIELD>` ([`env_webhooks`]), added to the files';
//! 4. the seeds' plain names (`REDIS_HOST`, `PORT`, ...), listed in [`ENV_VARS`].
//!
//! Loading parses everything into the types the code uses — durations, the cron schedule, the
//! JWT verifier (its key files read once) — and checks what types cannot say; a bad value becomes
//! a [`ConfigError`] whose one-line message names the setting (as its environment variable) and
//! what is wrong with it. Nothing reads the environment after start-up.
//!
//! Each part owns its section's type and checks (`RedisSettings` in
//! [`crate::infra::connections`], `AuthSettings` in [`crate::domain::auth`], `CronSettings` in
//! [`crate::jobs::cron`], ...); this module composes them, owns the sections only the binaries
//! read (server, worker, jobs, monitoring, dashboard, events), and opens queues
//! ([`Settings::open_queue`]).

pub mod env_webhooks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use sellersync_queue::RedisConnection;
use sellersync_queue::{Queue, QueueConfig};

use crate::domain::audit::AuditSettings;
use crate::domain::auth::{AuthSettings, Verifier};
use crate::domain::spapi::SpApiSettings;
use crate::infra::connections::{MongoSettings, RedisSettings};
pub use crate::infra::settings::Environment;
use crate::infra::settings::{Invalid, positive};
use crate::infra::telemetry::LogSettings;
use crate::jobs::cron::CronSettings;
use crate::jobs::job_status::JobStatusSettings;
use crate::jobs::notify::{NOTIFICATIONS_QUEUE, NotificationSettings};
pub use crate::jobs::payload::USER_DATA_QUEUE;
use crate::jobs::refresh::RefreshSettings;

/// The defaults, compiled in so a binary started from any directory has them.
pub const DEFAULT_TOML: &str = include_str!("../../../../config/default.toml");

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
    "COMMIT",
];

/// A configuration problem that stops start-up.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {problem}")]
pub struct ConfigError {
    /// The setting, named as the environment variable that sets it.
    pub setting: String,
    pub problem: String,
}

impl From<Invalid> for ConfigError {
    fn from(invalid: Invalid) -> Self {
        Self::for_key(&invalid.key, invalid.problem)
    }
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
    pub audit: AuditSettings,
    pub events: EventsSettings,
    pub notifications: NotificationSettings,
    /// Built from `auth` when the settings are loaded (key files read, checked); every token
    /// check of the process uses it.
    #[serde(skip)]
    pub verifier: Verifier,
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
    /// Send the session cookie only over HTTPS. Required outside development and test unless
    /// `allow_insecure_cookie`.
    pub secure_cookie: bool,
    /// Lets a deployment outside development and test run with `secure_cookie = false` (a
    /// dashboard reached over plain HTTP on a trusted network only).
    pub allow_insecure_cookie: bool,
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
    #[serde(rename = "heartbeat_ms", with = "crate::infra::settings::millis")]
    pub heartbeat: Duration,
    /// Events queued for one client; a client that falls this far behind is disconnected (it
    /// may reconnect with `Last-Event-ID` and resume).
    pub client_buffer: usize,
    /// Most clients connected to one API process at once; more are refused with 503.
    pub max_subscribers: usize,
    /// Of `max_subscribers`, slots only admins and viewers may take (the dashboard's live feed
    /// stays open to them however many user tokens follow their jobs).
    pub staff_reserved_subscribers: usize,
    /// Most live feeds one caller (one token subject and role) holds at once; more get 429.
    pub max_subscribers_per_caller: usize,
    /// The kernel's send buffer of an event stream's connection (Linux doubles it): what a
    /// stalled client can leave queued in the kernel beside its `client_buffer` events.
    pub send_buffer_bytes: usize,
}

/// Largest `dashboard.page_size`.
const MAX_PAGE_SIZE: usize = 1000;

/// Bounds of `events.send_buffer_bytes`: below 4 KiB the kernel rounds up anyway; above 1 MiB a
/// stalled client would again be held thousands of events behind.
const MIN_SEND_BUFFER: usize = 4096;
const MAX_SEND_BUFFER: usize = 1 << 20;

/// When the queue health endpoints call a queue unhealthy (seed 003: failed > 10, waiting > 100).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSettings {
    pub failed_threshold: u64,
    pub waiting_threshold: u64,
    /// A queue failing more than this share (0–1) of the jobs finished in the window is unhealthy.
    pub failure_rate_threshold: f64,
    #[serde(rename = "failure_rate_window_ms", with = "crate::infra::settings::millis")]
    pub failure_rate_window: Duration,
    /// Fewer jobs finished in the window than this are too few to judge the failure rate.
    pub failure_rate_min_finished: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: std::net::IpAddr,
    /// 0 asks the OS for any free port (tests do).
    pub port: u16,
    #[serde(rename = "request_timeout_ms", with = "crate::infra::settings::millis")]
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    #[serde(rename = "shutdown_timeout_ms", with = "crate::infra::settings::millis")]
    pub shutdown_timeout: Duration,
    #[serde(rename = "readiness_timeout_ms", with = "crate::infra::settings::millis")]
    pub readiness_timeout: Duration,
    /// Origins allowed to call the API from a browser (CORS). Empty: no CORS headers; `["*"]`: any.
    pub cors_allowed_origins: Vec<String>,
    /// How long the Redis and MongoDB part of a `/metrics` scrape is reused (0: every scrape
    /// computes its own).
    #[serde(rename = "metrics_cache_ms", with = "crate::infra::settings::millis")]
    pub metrics_cache: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub concurrency: u32,
    pub instances: u32,
    #[serde(rename = "job_timeout_ms", with = "crate::infra::settings::millis")]
    pub job_timeout: Duration,
    #[serde(rename = "drain_timeout_ms", with = "crate::infra::settings::millis")]
    pub drain_timeout: Duration,
    pub max_failed_account_share: f64,
    #[serde(rename = "user_busy_delay_ms", with = "crate::infra::settings::millis")]
    pub user_busy_delay: Duration,
    #[serde(
        rename = "store_unavailable_delay_ms",
        with = "crate::infra::settings::millis"
    )]
    pub store_unavailable_delay: Duration,
    pub metrics_port: u16,
    /// The address the metrics endpoint listens on: loopback by default (it has no auth); a
    /// private network's address, or `0.0.0.0`, for a Prometheus on another host.
    pub metrics_bind: std::net::IpAddr,
    /// At most `max` refreshes of one user per `interval_ms` (unset: no limit); a refresh over
    /// it waits (deferred, no attempt spent) until the user's bucket refills.
    #[serde(default)]
    pub user_rate_limit: Option<sellersync_queue::rate_limit::RateLimit>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub max_retries: u32,
    #[serde(rename = "retry_delay_ms", with = "crate::infra::settings::millis")]
    pub retry_delay: Duration,
}

impl Settings {
    /// Loads the configuration of this process: `SELLERSYNC_ENV` (default `development`),
    /// `SELLERSYNC_CONFIG_DIR` (default `config`), then every layer described in the module doc.
    pub fn load() -> Result<Self, ConfigError> {
        let environment = match std::env::var("SELLERSYNC_ENV") {
            Ok(name) => Environment::parse(&name).map_err(|e| ConfigError::new(e.key, e.problem))?,
            Err(_) => Environment::Development,
        };
        let (dir, named) = config_dir();
        config_file(environment, &dir, named)?;
        Self::from_figment(environment, Self::figment(environment, &dir))
    }

    /// The layered sources for `environment`, reading overrides from `config_dir` and the process
    /// environment. Tests merge their own values on top before calling [`Settings::from_figment`].
    pub fn figment(environment: Environment, config_dir: &Path) -> Figment {
        let env_file = config_dir.join(format!("{}.toml", environment.name()));
        Figment::new()
            .merge(Toml::string(DEFAULT_TOML))
            .merge(Toml::file(env_file))
            .merge(
                Env::prefixed("SELLERSYNC_")
                    .ignore(PROCESS_VARS)
                    .filter(|key| !env_webhooks::is_webhook_var(&format!("SELLERSYNC_{key}")))
                    .split("__"),
            )
            .admerge(env_webhooks::EnvWebhooks::from_process())
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
        settings.verifier = settings.parse()?;
        Ok(settings)
    }

    /// Checks what serde could not, part by part, and builds the one value that needs files: the
    /// JWT verifier (key files, JWKS).
    fn parse(&self) -> Result<Verifier, ConfigError> {
        let environment = self.environment;
        self.redis.validate()?;
        self.mongo.validate()?;
        self.validate_process()?;
        let verifier = self.auth.verifier(environment)?;
        self.validate_cors()?;
        self.validate_dashboard()?;
        self.validate_queues()?;
        self.spapi.validate(environment)?;
        self.cron.validate()?;
        self.refresh.validate()?;
        self.job_status.validate()?;
        self.audit.validate()?;
        self.log.validate()?;
        Ok(verifier)
    }

    /// The sections this module owns: server, worker, jobs and monitoring.
    fn validate_process(&self) -> Result<(), Invalid> {
        let s = self;
        for (key, value) in [
            ("worker.concurrency", u64::from(s.worker.concurrency)),
            ("worker.instances", u64::from(s.worker.instances)),
        ] {
            if value == 0 {
                return Err(Invalid::new(key, "must be at least 1, got 0"));
            }
        }
        for (key, value) in [
            (
                "monitoring.failure_rate_threshold",
                s.monitoring.failure_rate_threshold,
            ),
            (
                "worker.max_failed_account_share",
                s.worker.max_failed_account_share,
            ),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(Invalid::new(key, "must be between 0 and 1"));
            }
        }
        if s.monitoring.failure_rate_window.is_zero() {
            return Err(Invalid::new(
                "monitoring.failure_rate_window_ms",
                "must be at least 1",
            ));
        }
        if let Some(limit) = &s.worker.user_rate_limit {
            limit
                .validate()
                .map_err(|problem| Invalid::new("worker.user_rate_limit", problem))?;
        }
        if s.jobs.max_retries == 0 {
            return Err(Invalid::new(
                "jobs.max_retries",
                "must be at least 1 (the first attempt counts), got 0",
            ));
        }
        positive("server.request_timeout_ms", s.server.request_timeout)?;
        positive("server.readiness_timeout_ms", s.server.readiness_timeout)?;
        positive("worker.job_timeout_ms", s.worker.job_timeout)?;
        if s.server.body_limit_bytes == 0 {
            return Err(Invalid::new("server.body_limit_bytes", "must be greater than 0"));
        }
        Ok(())
    }

    fn validate_queues(&self) -> Result<(), ConfigError> {
        for required in [USER_DATA_QUEUE, NOTIFICATIONS_QUEUE] {
            if !self.queues.contains_key(required) {
                return Err(ConfigError::new(
                    format!("queues.{required}"),
                    format!("is missing; the {required} queue must be configured"),
                ));
            }
        }
        self.notifications
            .validate()
            .map_err(|invalid| ConfigError::new(invalid.key, invalid.problem))?;
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
            u64::try_from(self.jobs.retry_delay.as_millis()).unwrap_or(u64::MAX),
        ))
    }

    /// Queue `name` on `redis`, under this deployment's key prefix and with its configuration;
    /// `None` when no such queue is configured. The one way a binary opens a queue.
    pub fn open_queue(&self, redis: RedisConnection, name: &str) -> Option<Queue> {
        let config = self.queue(name)?;
        Some(Queue::new(redis, &self.redis.key_prefix, name, config))
    }

    fn validate_dashboard(&self) -> Result<(), Invalid> {
        let d = &self.dashboard;
        let bad_path =
            |p: &str| !p.starts_with('/') || p.ends_with('/') || p.contains(['?', '#', ' ', '"', '<', '>']);
        if bad_path(&d.path) {
            return Err(Invalid::new(
                "dashboard.path",
                format!("{:?} must start with / and not end with / (e.g. /admin)", d.path),
            ));
        }
        if !d.public_prefix.is_empty() && bad_path(&d.public_prefix) {
            return Err(Invalid::new(
                "dashboard.public_prefix",
                format!(
                    "{:?} must be empty or start with / and not end with / (e.g. /sellersync)",
                    d.public_prefix
                ),
            ));
        }
        if d.enabled && !d.secure_cookie && !d.allow_insecure_cookie && !self.environment.is_local() {
            return Err(Invalid::new(
                "dashboard.secure_cookie",
                format!(
                    "must be true when SELLERSYNC_ENV={} (the session cookie would travel over plain HTTP); \
                     set dashboard.allow_insecure_cookie = true to run without it anyway",
                    self.environment.name()
                ),
            ));
        }
        if d.page_size > MAX_PAGE_SIZE {
            return Err(Invalid::new(
                "dashboard.page_size",
                format!("must be at most {MAX_PAGE_SIZE}"),
            ));
        }
        for (key, value) in [
            ("dashboard.session_ttl_minutes", d.session_ttl_minutes),
            ("dashboard.page_size", d.page_size as u64),
            ("events.client_buffer", self.events.client_buffer as u64),
            ("events.max_subscribers", self.events.max_subscribers as u64),
            (
                "events.max_subscribers_per_caller",
                self.events.max_subscribers_per_caller as u64,
            ),
        ] {
            if value == 0 {
                return Err(Invalid::new(key, "must be greater than 0"));
            }
        }
        self.validate_events()
    }

    fn validate_events(&self) -> Result<(), Invalid> {
        let e = &self.events;
        if e.staff_reserved_subscribers >= e.max_subscribers {
            return Err(Invalid::new(
                "events.staff_reserved_subscribers",
                format!(
                    "must be less than events.max_subscribers ({}), or user tokens get no live feed",
                    e.max_subscribers
                ),
            ));
        }
        if !(MIN_SEND_BUFFER..=MAX_SEND_BUFFER).contains(&e.send_buffer_bytes) {
            return Err(Invalid::new(
                "events.send_buffer_bytes",
                format!("must be between {MIN_SEND_BUFFER} and {MAX_SEND_BUFFER}"),
            ));
        }
        positive("events.heartbeat_ms", e.heartbeat)
    }

    fn validate_cors(&self) -> Result<(), Invalid> {
        let origins = &self.server.cors_allowed_origins;
        let key = "server.cors_allowed_origins";
        if origins.len() > 1 && origins.iter().any(|o| o == "*") {
            return Err(Invalid::new(key, "\"*\" cannot be combined with other origins"));
        }
        for origin in origins.iter().filter(|o| *o != "*") {
            let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && origin.chars().all(|c| c.is_ascii_graphic());
            if !valid {
                return Err(Invalid::new(
                    key,
                    format!(
                        "{origin:?} is not an origin like https://admin.example.com (scheme and host, no path)"
                    ),
                ));
            }
        }
        Ok(())
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

/// The variable naming the folder of `<SELLERSYNC_ENV>.toml`.
const CONFIG_DIR_VAR: &str = "SELLERSYNC_CONFIG_DIR";

/// The folder of `<SELLERSYNC_ENV>.toml`: `SELLERSYNC_CONFIG_DIR`, else `config` (relative to the
/// working directory), and whether the variable named it.
pub fn config_dir() -> (PathBuf, bool) {
    match std::env::var_os(CONFIG_DIR_VAR) {
        Some(dir) => (PathBuf::from(dir), true),
        None => (PathBuf::from("config"), false),
    }
}

/// Checks that `<dir>/<environment>.toml` can be read where it must be: always when the folder
/// was named (`SELLERSYNC_CONFIG_DIR`: the operator means that folder and its file), and outside
/// development and test (a deployment must not run on the defaults by accident: they bind
/// loopback and send the session cookie over plain http). Elsewhere the file is optional.
/// Returns the file's path.
pub fn config_file(environment: Environment, dir: &Path, named: bool) -> Result<PathBuf, ConfigError> {
    let file = dir.join(format!("{}.toml", environment.name()));
    if named && !dir.is_dir() {
        return Err(ConfigError::new(
            CONFIG_DIR_VAR,
            format!("{} is not a directory (missing or mistyped?)", dir.display()),
        ));
    }
    if (named || !environment.is_local()) && !file.is_file() {
        let whence = if named {
            String::new()
        } else {
            format!(
                " (SELLERSYNC_CONFIG_DIR is not set: the default `config` is relative to {}; the package's folder is /etc/sellersync)",
                std::env::current_dir().map_or_else(
                    |_| "the working directory".to_owned(),
                    |d| d.display().to_string()
                )
            )
        };
        return Err(ConfigError::new(
            CONFIG_DIR_VAR,
            format!(
                "{} not found{whence}: SELLERSYNC_ENV={} reads it (an empty file keeps the defaults)",
                file.display(),
                environment.name()
            ),
        ));
    }
    Ok(file)
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
    } else if env_webhooks::is_webhook_var(&key) {
        // The webhook variables' errors carry the variable itself.
        ConfigError::new(key, problem)
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
    use crate::infra::connections::{RedisMode, parse_address};

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
        assert_eq!(s.redis.response_timeout, Duration::from_secs(30));
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
                ("dashboard.secure_cookie", "true"),
            ],
        );
        assert!(ok.is_ok(), "{:?}", ok.err());
        let no_lwa = error(
            Environment::Production,
            &[
                ("auth.jwt_secret", STRONG_SECRET),
                ("dashboard.secure_cookie", "true"),
            ],
        );
        assert!(no_lwa.contains("LWA_CLIENT_ID"), "{no_lwa}");
        assert!(load(Environment::Test, &[]).is_ok());
    }

    #[test]
    fn production_needs_a_secure_session_cookie_unless_explicitly_allowed() {
        let production = [
            ("auth.jwt_secret", STRONG_SECRET),
            ("spapi.lwa_client_id", "amzn1.application-oa2-client.x"),
            ("spapi.lwa_client_secret", "lwa-secret"),
        ];
        let insecure = error(Environment::Production, &production);
        assert!(
            insecure.contains("SELLERSYNC_DASHBOARD__SECURE_COOKIE") && insecure.contains("production"),
            "{insecure}"
        );
        let staging = error(Environment::Staging, &production);
        assert!(staging.contains("SECURE_COOKIE"), "{staging}");
        let mut allowed = production.to_vec();
        allowed.push(("dashboard.allow_insecure_cookie", "true"));
        assert!(load(Environment::Production, &allowed).is_ok());
        let mut off = production.to_vec();
        off.push(("dashboard.enabled", "false"));
        assert!(
            load(Environment::Production, &off).is_ok(),
            "no dashboard, no cookie"
        );
        assert!(
            load(Environment::Development, &[]).is_ok(),
            "local runs use plain HTTP"
        );
    }

    #[test]
    fn event_and_dashboard_bounds_are_checked() {
        let dev = Environment::Development;
        let reserve = error(dev, &[("events.staff_reserved_subscribers", "1000")]);
        assert!(reserve.contains("STAFF_RESERVED_SUBSCRIBERS"), "{reserve}");
        let buffer = error(dev, &[("events.send_buffer_bytes", "100")]);
        assert!(buffer.contains("SEND_BUFFER_BYTES"), "{buffer}");
        assert!(error(dev, &[("events.max_subscribers_per_caller", "0")]).contains("PER_CALLER"));
        assert!(error(dev, &[("dashboard.page_size", "100000")]).contains("PAGE_SIZE"));
    }

    #[test]
    fn a_named_or_required_config_file_must_exist() {
        let dir = std::env::temp_dir().join(format!("sellersync-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing_dir = dir.join("nope");
        let err = config_file(Environment::Test, &missing_dir, true).unwrap_err();
        assert_eq!(err.setting, "SELLERSYNC_CONFIG_DIR");
        assert!(
            err.problem.contains("nope") && err.problem.contains("not a directory"),
            "{err}"
        );
        let err = config_file(Environment::Production, &dir, true).unwrap_err();
        assert!(err.problem.contains("production.toml not found"), "{err}");
        let err = config_file(Environment::Staging, &missing_dir, false).unwrap_err();
        assert!(
            err.problem.contains("staging.toml") && err.problem.contains("is not set"),
            "{err}"
        );
        assert!(config_file(Environment::Development, &missing_dir, false).is_ok());
        std::fs::write(dir.join("production.toml"), "").unwrap();
        assert_eq!(
            config_file(Environment::Production, &dir, true).unwrap(),
            dir.join("production.toml")
        );
        let _ = std::fs::remove_dir_all(&dir);
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
