//! Redis's checks: reachable, and its version (`redis`); `maxmemory-policy noeviction`
//! (`redis.eviction`); persistence, AOF or RDB (`redis.persistence`); the ACL rights the queue's
//! scripts need on the deployment's keys (`redis.acl`, through `redis.acl_check_cmd` in a
//! script: Redis 7+); this host's clock against Redis `TIME` (`redis.clock`). In a cluster or
//! behind sentinels, the node that answers is checked.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use sellersync_core::Settings;
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::infra::connections::{RedisMode, RedisSettings, connect_redis};
use sellersync_queue::{RedisConnection, SCRIPT_COMMANDS};

use super::{Check, Status, bounded, no_answer};

/// The oldest Redis the queue runs on (`XAUTOCLAIM`, `ZRANGE ... BYSCORE` came with 6.2).
const MINIMUM: (u32, u32) = (6, 2);

/// A skew above this is worth fixing (NTP keeps hosts within milliseconds).
const SKEW_WARN: Duration = Duration::from_secs(1);

/// Checks `redis.acl_check_cmd` for each command: ARGV holds, for each, its argument count and
/// its arguments. Replies `unsupported` before Redis 7, else the denied commands.
const ACL_CHECK: &str = r"
if redis.acl_check_cmd == nil then return 'unsupported' end
local denied, i = {}, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local args = {}
  for j = 1, n do args[j] = ARGV[i + j] end
  local ok, allowed = pcall(redis.acl_check_cmd, unpack(args))
  if not ok or not allowed then denied[#denied + 1] = args[1] end
  i = i + n + 1
end
return denied
";

pub async fn checks(settings: &Settings) -> Vec<Check> {
    let target = describe(&settings.redis);
    let Some(connected) = bounded(connect_redis(&settings.redis)).await else {
        return vec![no_answer("redis", &target)];
    };
    let mut redis = match connected {
        Ok(redis) => redis,
        Err(error) => {
            let status = if error.is_unavailable() {
                Status::Unreachable
            } else {
                Status::Fail
            };
            return vec![Check::new("redis", status, format!("{target}: {error}"))];
        }
    };
    let checked = bounded(async {
        vec![
            version(&mut redis, &target).await,
            eviction(&mut redis).await,
            persistence(&mut redis).await,
            acl(&mut redis, &settings.redis.key_prefix).await,
            clock(&mut redis, settings.auth.leeway).await,
        ]
    })
    .await;
    checked.unwrap_or_else(|| vec![no_answer("redis", &target)])
}

/// Where Redis is, without a secret (a URL may hold the password).
fn describe(redis: &RedisSettings) -> String {
    match redis.mode {
        RedisMode::Standalone if redis.url.is_some() => "Redis at REDIS_URL".to_owned(),
        RedisMode::Standalone => format!("Redis at {}:{}", redis.host, redis.port),
        RedisMode::Cluster => "Redis Cluster".to_owned(),
        RedisMode::Sentinel => format!(
            "Redis master {:?} of the sentinels",
            redis.sentinel_master.as_deref().unwrap_or_default()
        ),
    }
}

async fn query(redis: &mut RedisConnection, command: &redis::Cmd) -> redis::RedisResult<Value> {
    command.query_async(redis).await
}

/// The first text in a reply (a cluster may answer with one reply per node).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Array(items) | Value::Set(items) => items.iter().find_map(text),
        Value::Map(pairs) => pairs.iter().find_map(|(_, v)| text(v)),
        _ => None,
    }
}

/// `field:value` of an `INFO` section.
fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// `CONFIG GET name`: the value, or why it could not be read.
async fn config_get(redis: &mut RedisConnection, name: &str) -> Result<String, String> {
    let reply = query(redis, redis::cmd("CONFIG").arg("GET").arg(name))
        .await
        .map_err(|e| format!("CONFIG GET refused: {e}"))?;
    config_value(&reply, name).ok_or_else(|| format!("CONFIG GET {name} gave no value"))
}

/// `name`'s value in a `CONFIG GET` reply: `[name, value]` (RESP2), `{name: value}` (RESP3), or
/// either per node (a cluster's answer from several nodes).
fn config_value(reply: &Value, name: &str) -> Option<String> {
    match reply {
        Value::Array(items) if items.first().and_then(text).as_deref() == Some(name) => {
            items.get(1).and_then(text)
        }
        Value::Array(items) => items.iter().find_map(|item| config_value(item, name)),
        Value::Map(pairs) => pairs.iter().find_map(|(key, value)| {
            if text(key).as_deref() == Some(name) {
                text(value)
            } else {
                config_value(value, name)
            }
        }),
        _ => None,
    }
}

async fn version(redis: &mut RedisConnection, target: &str) -> Check {
    let info = match query(redis, redis::cmd("INFO").arg("server")).await {
        Ok(reply) => text(&reply).unwrap_or_default(),
        Err(error) => return Check::new("redis", Status::Fail, format!("{target}: INFO refused: {error}")),
    };
    let Some(version) = info_field(&info, "redis_version") else {
        return Check::new(
            "redis",
            Status::Warn,
            format!("{target} answers; its version is unknown"),
        );
    };
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    let found = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if found < MINIMUM {
        let detail = format!(
            "{target} is version {version}; sellersync needs {}.{} or newer",
            MINIMUM.0, MINIMUM.1
        );
        return Check::new("redis", Status::Fail, detail);
    }
    Check::new("redis", Status::Ok, format!("{target}, version {version}"))
}

async fn eviction(redis: &mut RedisConnection) -> Check {
    match config_get(redis, "maxmemory-policy").await {
        Ok(policy) if policy == "noeviction" => {
            Check::new("redis.eviction", Status::Ok, "maxmemory-policy is noeviction")
        }
        Ok(policy) => Check::new(
            "redis.eviction",
            Status::Fail,
            format!(
                "maxmemory-policy is {policy}: under memory pressure Redis deletes keys, jobs included; set noeviction"
            ),
        ),
        Err(why) => Check::new(
            "redis.eviction",
            Status::Warn,
            format!("{why}; make sure maxmemory-policy is noeviction (a managed Redis: its parameter group)"),
        ),
    }
}

async fn persistence(redis: &mut RedisConnection) -> Check {
    let info = match query(redis, redis::cmd("INFO").arg("persistence")).await {
        Ok(reply) => text(&reply).unwrap_or_default(),
        Err(error) => {
            return Check::new(
                "redis.persistence",
                Status::Warn,
                format!("INFO refused: {error}"),
            );
        }
    };
    if info_field(&info, "aof_enabled").as_deref() == Some("1") {
        let fsync = config_get(redis, "appendfsync")
            .await
            .map_or_else(|_| String::new(), |f| format!(", appendfsync {f}"));
        return Check::new("redis.persistence", Status::Ok, format!("AOF on{fsync}"));
    }
    match config_get(redis, "save").await {
        Ok(save) if !save.trim().is_empty() => Check::new(
            "redis.persistence",
            Status::Warn,
            format!(
                "RDB snapshots only (save {save}): jobs written since the last snapshot are lost in a crash; turn on AOF (appendonly yes)"
            ),
        ),
        Ok(_) => Check::new(
            "redis.persistence",
            Status::Fail,
            "neither AOF nor RDB snapshots: a Redis restart loses every queued job; turn on AOF (appendonly yes)",
        ),
        Err(why) => Check::new(
            "redis.persistence",
            Status::Warn,
            format!("AOF is off and the RDB schedule is unknown ({why}); turn on AOF (appendonly yes)"),
        ),
    }
}

/// The queue's commands on one of its keys under the deployment's prefix, `EVALSHA` and
/// `SCRIPT LOAD` (how scripts are run), and `TIME`, as `acl_check_cmd` takes them.
fn acl_probes(key_prefix: &str) -> Vec<Vec<String>> {
    let key = format!("{key_prefix}{{{USER_DATA_QUEUE}}}:wait");
    let mut probes: Vec<Vec<String>> = SCRIPT_COMMANDS
        .iter()
        .map(|command| match *command {
            "TIME" => vec!["TIME".to_owned()],
            command => vec![command.to_owned(), key.clone()],
        })
        .collect();
    probes.push(vec![
        "EVALSHA".to_owned(),
        "0".repeat(40),
        "1".to_owned(),
        key.clone(),
    ]);
    probes.push(vec![
        "SCRIPT".to_owned(),
        "LOAD".to_owned(),
        "return 1".to_owned(),
    ]);
    probes
}

async fn acl(redis: &mut RedisConnection, key_prefix: &str) -> Check {
    let mut script = redis::cmd("EVAL");
    script.arg(ACL_CHECK).arg(0);
    let probes = acl_probes(key_prefix);
    for probe in &probes {
        script.arg(probe.len()).arg(probe);
    }
    let reply = match query(redis, &script).await {
        Ok(reply) => reply,
        Err(error) if error.code() == Some("NOPERM") => {
            return Check::new(
                "redis.acl",
                Status::Fail,
                format!("this user may not run scripts (EVAL): the queue needs +@scripting ({error})"),
            );
        }
        Err(error) => return Check::new("redis.acl", Status::Warn, format!("cannot check: {error}")),
    };
    let denied: Vec<String> = match &reply {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        _ => {
            return Check::new(
                "redis.acl",
                Status::Warn,
                "cannot check the ACL rights before Redis 7 (redis.acl_check_cmd)",
            );
        }
    };
    if denied.is_empty() {
        let detail = format!(
            "this user may run the {} commands of the queue's scripts on {key_prefix}*",
            probes.len()
        );
        return Check::new("redis.acl", Status::Ok, detail);
    }
    Check::new(
        "redis.acl",
        Status::Fail,
        format!(
            "this user may not run {} on {key_prefix}* (docs/operations.md has the ACL rules sellersync needs)",
            denied.join(", ")
        ),
    )
}

async fn clock(redis: &mut RedisConnection, leeway: Duration) -> Check {
    let before = SystemTime::now();
    let reply: redis::RedisResult<(u64, u64)> = redis::cmd("TIME").query_async(redis).await;
    let after = SystemTime::now();
    let (seconds, micros) = match reply {
        Ok(time) => time,
        Err(error) => return Check::new("redis.clock", Status::Warn, format!("TIME refused: {error}")),
    };
    let redis_ms = (seconds * 1000 + micros / 1000) as i128;
    let millis = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i128;
    let local_ms = (millis(before) + millis(after)) / 2;
    let round_trip = after.duration_since(before).unwrap_or_default().as_millis();
    let skew = redis_ms - local_ms;
    let detail = format!(
        "this host's clock is {} ms {} Redis's (round trip {round_trip} ms)",
        skew.abs(),
        if skew > 0 { "behind" } else { "ahead of" }
    );
    let abs = Duration::from_millis(skew.unsigned_abs() as u64);
    let (status, why) = if abs > leeway {
        (
            Status::Fail,
            ": more than the token leeway (auth.leeway_secs); sync it (NTP)",
        )
    } else if abs > SKEW_WARN {
        (
            Status::Warn,
            ": leases and delays run on Redis's clock, the hourly producer and tokens on this host's; sync it (NTP)",
        )
    } else {
        (Status::Ok, "")
    };
    Check::new("redis.clock", status, format!("{detail}{why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_and_probes() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(info_field(info, "redis_version").as_deref(), Some("7.0.15"));
        assert_eq!(info_field(info, "redis_mode").as_deref(), Some("standalone"));
        let probes = acl_probes("app:");
        assert!(probes.iter().any(|p| p == &["ZADD", "app:{user-data}:wait"]));
        assert!(probes.iter().any(|p| p == &["TIME"]));
        assert_eq!(probes.len(), SCRIPT_COMMANDS.len() + 2);
    }

    #[test]
    fn config_values_are_found_in_every_reply_shape() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let name = "maxmemory-policy";
        let resp2 = Value::Array(vec![bulk(name), bulk("noeviction")]);
        let resp3 = Value::Map(vec![(bulk(name), bulk("allkeys-lru"))]);
        let per_node = Value::Map(vec![(bulk("10.0.0.1:7000"), resp2.clone())]);
        assert_eq!(config_value(&resp2, name).as_deref(), Some("noeviction"));
        assert_eq!(config_value(&resp3, name).as_deref(), Some("allkeys-lru"));
        assert_eq!(config_value(&per_node, name).as_deref(), Some("noeviction"));
        assert_eq!(config_value(&Value::Array(vec![]), name), None);
    }
}
