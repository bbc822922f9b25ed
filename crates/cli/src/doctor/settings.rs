//! The configuration's checks, offline: it loaded (and from which file), and the effective
//! values that are risky for a deployment: the SP-API stand-in's credentials or addresses
//! outside development and test, the session cookie over plain http, the API on every interface
//! (a TLS-terminating proxy belongs in front), any-origin CORS, the metrics endpoint off
//! loopback, Redis off loopback without password or TLS, MongoDB without a replica set, verbose
//! logs, webhooks over plain http, the hourly producer off.

use std::net::IpAddr;

use sellersync_core::Settings;
use sellersync_core::config::{config_dir, config_file};
use sellersync_core::infra::connections::RedisMode;

use super::{Check, Status};

/// A check of the effective settings: a finding, or `None` when there is nothing to say.
type Rule = fn(&Settings) -> Option<Check>;

const RULES: [Rule; 11] = [
    local_environment,
    stand_in,
    session_cookie,
    listen_address,
    cors,
    metrics_bind,
    redis_transport,
    mongo_topology,
    log_level,
    webhooks_over_http,
    producer_off,
];

/// The `config` check (where the settings came from), then every rule's finding.
pub fn checks(settings: &Settings) -> Vec<Check> {
    let (dir, named) = config_dir();
    let source = match config_file(settings.environment, &dir, named) {
        Ok(file) if file.is_file() => format!("{} over the defaults", file.display()),
        _ => format!("the defaults ({} has no file for it)", dir.display()),
    };
    let loaded = Check::new(
        "config",
        Status::Ok,
        format!(
            "valid for SELLERSYNC_ENV={}: {source}, then the environment",
            settings.environment.name()
        ),
    );
    std::iter::once(loaded)
        .chain(RULES.iter().filter_map(|rule| rule(settings)))
        .collect()
}

fn deployed(settings: &Settings) -> bool {
    !settings.environment.is_local()
}

fn local_environment(s: &Settings) -> Option<Check> {
    (!deployed(s)).then(|| {
        Check::new(
            "config.environment",
            Status::Note,
            format!(
                "SELLERSYNC_ENV={}: secret checks are relaxed (no JWT secret required): not for a deployment",
                s.environment.name()
            ),
        )
    })
}

/// The stand-in's credentials (config/development.toml, config/test.toml) or loopback SP-API
/// addresses in a deployment.
fn stand_in(s: &Settings) -> Option<Check> {
    let spapi = &s.spapi;
    let stand_in_credentials =
        spapi.lwa_client_id == "local-client" || spapi.lwa_client_secret.expose() == "local-secret";
    let urls = [
        &spapi.token_url,
        &spapi.endpoints.na,
        &spapi.endpoints.eu,
        &spapi.endpoints.fe,
    ];
    let loopback_urls = urls.iter().any(|url| url_host(url).is_some_and(is_loopback));
    let detail = match (stand_in_credentials, loopback_urls) {
        (true, _) => "LWA_CLIENT_ID or LWA_CLIENT_SECRET is the SP-API stand-in's development credential",
        (false, true) => "an SP-API or LWA URL points at this host (the stand-in?), not at Amazon",
        (false, false) => return None,
    };
    deployed(s).then(|| Check::new("config.spapi", Status::Warn, detail))
}

fn session_cookie(s: &Settings) -> Option<Check> {
    (deployed(s) && s.dashboard.enabled && !s.dashboard.secure_cookie).then(|| {
        Check::new(
            "config.dashboard.secure_cookie",
            Status::Warn,
            "off: the dashboard's session cookie also travels over plain http (SELLERSYNC_DASHBOARD__SECURE_COOKIE=true behind HTTPS)",
        )
    })
}

fn listen_address(s: &Settings) -> Option<Check> {
    let host = s.server.host;
    (!host.is_loopback()).then(|| {
        let which = if host.is_unspecified() {
            "every interface"
        } else {
            "a non-loopback address"
        };
        Check::new(
            "config.server.host",
            Status::Note,
            format!(
                "the API listens on {which} ({host}:{}): put a TLS-terminating proxy in front and firewall the port, or tokens and cookies travel in clear",
                s.server.port
            ),
        )
    })
}

fn cors(s: &Settings) -> Option<Check> {
    s.server.cors_allowed_origins.iter().any(|o| o == "*").then(|| {
        Check::new(
            "config.server.cors_allowed_origins",
            Status::Warn,
            "\"*\": any web page may call the API from a browser",
        )
    })
}

fn metrics_bind(s: &Settings) -> Option<Check> {
    let bind = s.worker.metrics_bind;
    (s.worker.metrics_port != 0 && !bind.is_loopback()).then(|| {
        Check::new(
            "config.worker.metrics_bind",
            Status::Note,
            format!("the workers' /metrics (no auth) listen on {bind}: keep the port behind a firewall"),
        )
    })
}

fn redis_transport(s: &Settings) -> Option<Check> {
    let redis = &s.redis;
    // A URL is a secret (it may hold the password): it is not looked into.
    if redis.url.is_some() || redis.mode != RedisMode::Standalone || is_loopback(&redis.host) {
        return None;
    }
    let (status, detail) = match (redis.password.is_some(), redis.tls) {
        (false, _) => (
            Status::Warn,
            format!(
                "Redis at {} without a password: anyone who reaches it can read and delete jobs (REDIS_PASSWORD, an ACL user)",
                redis.host
            ),
        ),
        (true, false) => (
            Status::Note,
            format!(
                "Redis at {} without TLS: the password and the jobs travel in clear (REDIS_TLS) unless the network is private",
                redis.host
            ),
        ),
        (true, true) => return None,
    };
    Some(Check::new("config.redis", status, detail))
}

fn mongo_topology(s: &Settings) -> Option<Check> {
    // The URI is a secret: only whether it names a replica set is looked at.
    let uri = s.mongo.uri.expose();
    let replica_set = uri.starts_with("mongodb+srv://") || uri.contains("replicaSet=");
    (deployed(s) && !replica_set).then(|| {
        Check::new(
            "config.mongo.uri",
            Status::Note,
            "MONGODB_URI names no replica set: production MongoDB should be one (retryable writes, fail-over)",
        )
    })
}

fn log_level(s: &Settings) -> Option<Check> {
    let level = s.log.level.to_ascii_lowercase();
    (deployed(s) && (level.contains("debug") || level.contains("trace"))).then(|| {
        Check::new(
            "config.log.level",
            Status::Note,
            format!("LOG_LEVEL={}: verbose logs in a deployment", s.log.level),
        )
    })
}

fn webhooks_over_http(s: &Settings) -> Option<Check> {
    let plain: Vec<&str> = s
        .notifications
        .webhooks
        .iter()
        .filter(|hook| hook.url.expose().starts_with("http://"))
        .map(|hook| hook.name.as_str())
        .collect();
    (!plain.is_empty()).then(|| {
        Check::new(
            "config.notifications.webhooks",
            Status::Warn,
            format!(
                "sent over plain http: {} (notifications and their signatures travel in clear)",
                plain.join(", ")
            ),
        )
    })
}

fn producer_off(s: &Settings) -> Option<Check> {
    (!s.cron.enabled).then(|| {
        Check::new(
            "config.cron.enabled",
            Status::Note,
            "CRON_ENABLED=false: the hourly producer enqueues nothing (users are refreshed only when enqueued by hand)",
        )
    })
}

/// The host of an `http(s)://host[:port]/...` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed.split(']').next();
    }
    Some(host.split(':').next().unwrap_or(host))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_are_found() {
        assert_eq!(url_host("http://127.0.0.1:4010/auth/o2/token"), Some("127.0.0.1"));
        assert_eq!(
            url_host("https://api.amazon.com/auth/o2/token"),
            Some("api.amazon.com")
        );
        assert_eq!(url_host("http://[::1]:4010"), Some("::1"));
        assert_eq!(url_host("https://user:pw@hooks.example/x"), Some("hooks.example"));
        assert!(is_loopback("::1") && is_loopback("localhost") && !is_loopback("10.0.0.1"));
    }
}
