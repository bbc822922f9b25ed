use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use sellersync_core::testing::{TestNamespace, config_dir, sigterm, wait_exit};

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
