use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use sellersync_core::testing::{NotifySocket, TestNamespace, config_dir, sigterm, wait_exit};

#[test]
fn the_worker_announces_a_unique_id_and_exits_cleanly_on_sigterm() {
    let namespace = TestNamespace::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sellersync-worker"))
        .env("SELLERSYNC_ENV", "test")
        .env("SELLERSYNC_CONFIG_DIR", config_dir())
        .env("REDIS_KEY_PREFIX", namespace.key_prefix())
        .env("MONGODB_DATABASE", namespace.database())
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(Result::unwrap);

    let ready = lines
        .by_ref()
        .find(|line| line.contains("sellersync-worker ready"))
        .expect("a ready line");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let worker_id = ready["worker_id"]
        .as_str()
        .expect("the ready line names the worker id");
    assert!(
        worker_id.contains(&format!("-{}-", child.id())),
        "host-pid-random: {worker_id}"
    );

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status}");
    assert!(lines.any(|line| line.contains("sellersync-worker stopped") && line.contains(worker_id)));
}

#[test]
fn the_worker_refuses_an_invalid_setting() {
    let output = Command::new(env!("CARGO_BIN_EXE_sellersync-worker"))
        .env("SELLERSYNC_CONFIG_DIR", config_dir())
        .env("WORKER_CONCURRENCY", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("WORKER_CONCURRENCY"));
}

/// The worker binary with settings that point at no Redis (port 1 refuses connections).
fn unreachable_worker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sellersync-worker"));
    command
        .env("SELLERSYNC_ENV", "test")
        .env("SELLERSYNC_CONFIG_DIR", config_dir())
        .env("REDIS_PORT", "1")
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .stdin(Stdio::null());
    command
}

#[test]
fn help_and_version_answer_without_connecting() {
    for (flag, expected) in [
        ("--help", "--check-config"),
        ("--version", env!("CARGO_PKG_VERSION")),
    ] {
        let started = std::time::Instant::now();
        let output = unreachable_worker().arg(flag).output().unwrap();
        assert!(output.status.success(), "{flag}: {}", output.status);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(expected), "{flag}: {stdout}");
        assert!(stdout.contains("sellersync-worker"), "{flag}: {stdout}");
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("unavailable"),
            "{flag} must not connect"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{flag} returned at once"
        );
    }
    let unknown = unreachable_worker().arg("--bogus").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2), "an unknown flag is a usage error");
}

#[test]
fn check_config_prints_the_redacted_configuration_or_names_the_bad_setting() {
    let output = unreachable_worker()
        .arg("--check-config")
        .env("REDIS_PASSWORD", "hunter2-very-secret")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let config: serde_json::Value = serde_json::from_str(&stdout).expect("the configuration is JSON");
    assert_eq!(config["redis"]["port"], 1);
    assert_eq!(config["redis"]["password"], "[redacted]");
    assert!(!stdout.contains("hunter2"), "secrets never printed");

    let bad = unreachable_worker()
        .arg("--check-config")
        .env("WORKER_CONCURRENCY", "0")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("WORKER_CONCURRENCY"));
}

#[test]
fn sigterm_stops_a_worker_still_waiting_for_redis() {
    let mut child = unreachable_worker()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(Result::unwrap);
    lines
        .by_ref()
        .find(|line| line.contains("redis unavailable; retrying"))
        .expect("the worker waits for redis");
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert!(status.success(), "{status}");
    assert!(lines.any(|line| line.contains("stopped before it was ready")));
}

#[test]
fn under_systemd_the_worker_notifies_ready_feeds_the_watchdog_and_notifies_stopping() {
    let namespace = TestNamespace::new();
    let notify = NotifySocket::bind(namespace.key_prefix());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sellersync-worker"))
        .env("SELLERSYNC_ENV", "test")
        .env("SELLERSYNC_CONFIG_DIR", config_dir())
        .env("REDIS_KEY_PREFIX", namespace.key_prefix())
        .env("MONGODB_DATABASE", namespace.database())
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "10000000")
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let before_ready = notify.until("READY=1");
    assert!(
        !before_ready.iter().any(|m| m.contains("STOPPING=1")),
        "{before_ready:?}"
    );
    // Fed by the heartbeat loop (every heartbeat_ms).
    notify.until("WATCHDOG=1");
    sigterm(&child);
    notify.until("STOPPING=1");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status}");
}
