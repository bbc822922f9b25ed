//! `sellersync doctor` against real services: private Redis servers configured well and badly,
//! the shared MongoDB-wire server (a fresh database per test), the SP-API stand-in's LWA
//! endpoint; and `--offline` on production settings. Every run is checked for leaked secrets.

use std::process::Command;

use serde_json::Value;

use sellersync_core::infra::connections::{close_mongo, mongo_database};
use sellersync_core::testing::{PrivateRedis, TestNamespace, redis_cli};

use super::cli;

/// `sellersync --json doctor <args>`: its exit status and report; fails the test if a secret
/// shows up on stdout or stderr.
fn doctor(command: &mut Command, args: &[&str], secrets: &[&str]) -> (i32, Value) {
    let output = command.args(["--json", "doctor"]).args(args).output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in secrets {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {printed}"));
    (output.status.code().expect("an exit status"), report)
}

/// Each check's status by name (`redis.eviction` -> `fail`).
fn statuses(report: &Value) -> std::collections::BTreeMap<String, String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn detail<'a>(report: &'a Value, check: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_else(|| panic!("no {check} in {report}"))
}

/// The CLI against `redis` and the stand-in's LWA endpoint at `lwa`.
fn against(namespace: &TestNamespace, redis: &PrivateRedis, sim: &sellersync_spapi_sim::SimUrls) -> Command {
    let mut command = cli(namespace);
    command.env("REDIS_PORT", redis.port.to_string()).envs(sim.env());
    command
}

fn migrate(namespace: &TestNamespace) {
    let output = cli(namespace).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_deployment_passes_and_a_dropped_index_fails() {
    let namespace = TestNamespace::new();
    let redis = PrivateRedis::start();
    let lwa = sellersync_spapi_sim::spawn_with_latency(0).await.unwrap();
    let (code, report) = doctor(&mut against(&namespace, &redis, &lwa), &[], &["local-secret"]);
    let found = statuses(&report);
    assert_eq!(found["mongo.migrations"], "fail", "{report}");
    assert!(detail(&report, "mongo.migrations").contains("sellersync migrate"));
    assert_eq!(code, 11, "{report}");

    migrate(&namespace);
    let (code, report) = doctor(&mut against(&namespace, &redis, &lwa), &[], &["local-secret"]);
    let found = statuses(&report);
    for check in [
        "config",
        "redis",
        "redis.eviction",
        "redis.persistence",
        "redis.acl",
        "redis.clock",
        "mongo",
        "mongo.migrations",
        "lwa",
    ] {
        assert_eq!(found[check], "ok", "{check}: {report}");
    }
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("healthy")),
        "{report}"
    );
    assert!(detail(&report, "redis.persistence").contains("AOF on"));

    let db = mongo_database(&namespace.settings.mongo, "doctor-test")
        .await
        .unwrap();
    db.collection::<mongodb::bson::Document>("job_status")
        .drop_index("userId_enqueuedAt")
        .await
        .unwrap();
    close_mongo(&db).await;
    let (code, report) = doctor(&mut against(&namespace, &redis, &lwa), &[], &[]);
    assert_eq!(code, 11, "{report}");
    assert!(
        detail(&report, "mongo.migrations").contains("job_status.userId_enqueuedAt"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misconfigured_redis_and_refused_credentials_fail_naming_what_is_wrong() {
    let namespace = TestNamespace::new();
    let redis = PrivateRedis::start();
    let lwa = sellersync_spapi_sim::spawn_with_latency(0).await.unwrap();
    let prefix = namespace.key_prefix();
    for args in [
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"][..],
        &["CONFIG", "SET", "appendonly", "no"],
        &["CONFIG", "SET", "save", ""],
        &[
            "ACL",
            "SETUSER",
            "doctor",
            "on",
            ">doctor-pass-9f3",
            &format!("~{prefix}*"),
            "+@all",
            "-zadd",
            "-hset",
        ],
    ] {
        assert_eq!(redis_cli(redis.port, args), "OK", "{args:?}");
    }
    let mut command = against(&namespace, &redis, &lwa);
    command
        .env("REDIS_USERNAME", "doctor")
        .env("REDIS_PASSWORD", "doctor-pass-9f3")
        // The stand-in refuses a client without a secret, as LWA refuses a wrong one.
        .env("LWA_CLIENT_SECRET", "");
    let (code, report) = doctor(&mut command, &[], &["doctor-pass-9f3"]);
    let found = statuses(&report);
    assert_eq!(found["redis.eviction"], "fail", "{report}");
    assert!(detail(&report, "redis.eviction").contains("allkeys-lru"));
    assert_eq!(found["redis.persistence"], "fail", "{report}");
    assert_eq!(found["redis.acl"], "fail", "{report}");
    let acl = detail(&report, "redis.acl");
    assert!(
        acl.contains("ZADD") && acl.contains("HSET") && !acl.contains("ZREM,"),
        "{acl}"
    );
    assert_eq!(found["lwa"], "fail", "{report}");
    assert!(detail(&report, "lwa").contains("invalid_client"), "{report}");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (11, Some("failed")),
        "{report}"
    );

    // Nothing answers: unreachable (12), which outranks failures.
    let nowhere = "http://127.0.0.1:1".to_owned();
    let closed = sellersync_spapi_sim::SimUrls {
        na: nowhere.clone(),
        eu: nowhere.clone(),
        fe: nowhere,
    };
    let mut command = against(&namespace, &redis, &closed);
    command.env("REDIS_PORT", "1");
    let (code, report) = doctor(&mut command, &[], &[]);
    let found = statuses(&report);
    assert_eq!(
        (found["redis"].as_str(), found["lwa"].as_str()),
        ("unreachable", "unreachable")
    );
    assert_eq!(code, 12, "{report}");
}

#[test]
fn offline_checks_flag_risky_production_values_without_touching_a_service() {
    let namespace = TestNamespace::new();
    let secrets = [
        "Zq7Vd2LmX9pRt4KwZ8sNc3HyB6fJu1EaG5oTi0",
        "redis-pass-4d1",
        "hook-token-77",
        "hook-secret-31-long-enough-to-sign-with-0001",
    ];
    let production = || {
        let mut command = cli(&namespace);
        command
            .env("SELLERSYNC_ENV", "production")
            .env("JWT_SECRET", secrets[0])
            .env("LWA_CLIENT_ID", "local-client")
            .env("LWA_CLIENT_SECRET", "local-secret")
            .env("REDIS_HOST", "10.1.2.3")
            .env("REDIS_PASSWORD", secrets[1])
            .env("SELLERSYNC_DASHBOARD__SECURE_COOKIE", "false")
            // Allowed on purpose (else start-up refuses it): doctor must still flag it.
            .env("SELLERSYNC_DASHBOARD__ALLOW_INSECURE_COOKIE", "true")
            .env(
                "SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__URL",
                format!("http://hooks.example/{}", secrets[2]),
            )
            .env("SELLERSYNC_NOTIFICATIONS__WEBHOOKS__OPS__SECRET", secrets[3]);
        command
    };
    let (code, report) = doctor(&mut production(), &["--offline"], &secrets);
    let found = statuses(&report);
    for (check, status) in [
        ("config", "ok"),
        ("config.spapi", "warn"),
        ("config.dashboard.secure_cookie", "warn"),
        ("config.notifications.webhooks", "warn"),
        ("config.server.host", "note"),
        ("config.redis", "note"),
        ("redis", "skipped"),
        ("mongo", "skipped"),
        ("lwa", "skipped"),
    ] {
        assert_eq!(
            found.get(check).map(String::as_str),
            Some(status),
            "{check}: {report}"
        );
    }
    assert!(detail(&report, "config.notifications.webhooks").contains("ops"));
    assert_eq!(
        (code, report["outcome"].as_str()),
        (10, Some("warnings")),
        "{report}"
    );

    // The human form says the same.
    let output = production().args(["doctor", "--offline"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("warn  config.spapi") && text.contains("outcome: warnings (exit 10)"),
        "{text}"
    );
}

#[test]
fn a_configuration_that_does_not_load_is_named_with_exit_78() {
    let namespace = TestNamespace::new();
    let empty = std::env::temp_dir().join(format!("{}-config", namespace.database()));
    std::fs::create_dir_all(&empty).unwrap();
    for (dir, says) in [
        (empty.join("missing"), "not a directory"),
        (empty.clone(), "test.toml not found"),
    ] {
        let (code, report) = doctor(
            cli(&namespace).env("SELLERSYNC_CONFIG_DIR", &dir),
            &["--offline"],
            &[],
        );
        assert_eq!(
            (code, report["outcome"].as_str()),
            (78, Some("config-invalid")),
            "{report}"
        );
        let problem = detail(&report, "config");
        assert!(
            problem.contains("SELLERSYNC_CONFIG_DIR") && problem.contains(says),
            "{problem}"
        );
        // Every other command stops the same way.
        let stats = cli(&namespace)
            .env("SELLERSYNC_CONFIG_DIR", &dir)
            .arg("stats")
            .output()
            .unwrap();
        assert_eq!(stats.status.code(), Some(78));
        assert!(String::from_utf8_lossy(&stats.stderr).contains(says));
    }
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn the_example_environment_file_names_every_setting_production_requires() {
    let namespace = TestNamespace::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/sellersync.env.example");
    let mut text = std::fs::read_to_string(example).unwrap();
    let file = std::env::temp_dir().join(format!("{}.env", namespace.database()));
    let offline = |text: &str| {
        std::fs::write(&file, text).unwrap();
        let mut command = cli(&namespace);
        // SELLERSYNC_ENV from the file (production); the checkout's config/ for its folder.
        command.env_remove("SELLERSYNC_ENV").arg("--env-file").arg(&file);
        doctor(&mut command, &["--offline"], &[])
    };
    // Empty in the example, each is named in turn until every one is filled in.
    for (var, value) in [
        ("JWT_SECRET", "Zq7Vd2LmX9pRt4KwZ8sNc3HyB6fJu1EaG5oTi0"),
        ("LWA_CLIENT_ID", "amzn1.application-oa2-client.example"),
        ("LWA_CLIENT_SECRET", "lwa-secret-example"),
    ] {
        let (code, report) = offline(&text);
        assert_eq!(code, 78, "{report}");
        assert!(detail(&report, "config").contains(var), "{var}: {report}");
        let empty = format!("\n{var}=\n");
        assert!(text.contains(&empty), "the example names {var}, empty");
        text = text.replace(&empty, &format!("\n{var}={value}\n"));
    }
    let (code, report) = offline(&text);
    assert_eq!(report["environment"], "production", "{report}");
    assert_eq!(
        code, 0,
        "filled in, the example is a healthy production configuration: {report}"
    );
    let _ = std::fs::remove_file(&file);
}
