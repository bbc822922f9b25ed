//! The `sellersync-api` binary as operators run it: configuration errors stop it with one line
//! naming the setting; SIGTERM stops it cleanly; logs are JSON lines with a request id.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use sellersync_core::testing::{NotifySocket, TestNamespace, config_dir, sigterm, wait_exit};

use crate::helpers::closed_port;

fn api_command(namespace: &TestNamespace) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sellersync-api"));
    command
        .env("SELLERSYNC_ENV", "test")
        .env("SELLERSYNC_CONFIG_DIR", config_dir())
        .env("REDIS_KEY_PREFIX", namespace.key_prefix())
        .env("MONGODB_DATABASE", namespace.database())
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// The next log line that contains `text` (the lines before it are skipped).
fn next_line_with(lines: &mut impl Iterator<Item = std::io::Result<String>>, text: &str) -> String {
    lines
        .map(Result::unwrap)
        .find(|line| line.contains(text))
        .unwrap_or_else(|| panic!("no log line with {text:?}"))
}

#[test]
fn an_invalid_setting_stops_start_up_with_one_line_naming_it() {
    let namespace = TestNamespace::new();
    for (var, value, expected) in [
        ("PORT", "abc", "PORT"),
        ("TIMEZONE", "Mars/Olympus", "TIMEZONE"),
        ("WORKER_CONCURRENCY", "0", "WORKER_CONCURRENCY"),
        ("REDIS_PORT", "99999", "REDIS_PORT"),
    ] {
        let output = api_command(&namespace).env(var, value).output().unwrap();
        assert_eq!(output.status.code(), Some(78), "{var}={value}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{var}={value}: {stderr}");
    }
}

#[test]
fn a_missing_jwt_secret_stops_production_start_up() {
    let namespace = TestNamespace::new();
    let output = api_command(&namespace)
        .env("SELLERSYNC_ENV", "production")
        .env_remove("JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("JWT_SECRET"));
}

#[test]
fn sigterm_stops_the_api_cleanly_and_logs_are_json_with_request_ids() {
    let namespace = TestNamespace::new();
    let port = closed_port();
    let mut child = api_command(&namespace)
        .env("PORT", port.to_string())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();

    let listening = next_line_with(&mut lines, "listening");
    let parsed: serde_json::Value = serde_json::from_str(&listening).expect("log lines are JSON");
    assert_eq!(parsed["level"], "INFO");

    let response = raw_http::get_status(port);
    assert_eq!(response, 200);

    let request_log = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.contains("/healthz"))
        .expect("a request log");
    let parsed: serde_json::Value = serde_json::from_str(&request_log).unwrap();
    assert!(
        parsed["span"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "{request_log}"
    );

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    assert!(
        lines
            .map(Result::unwrap)
            .any(|line| line.contains("sellersync-api stopped"))
    );
}

mod raw_http {
    /// A plain HTTP/1.0 GET of /healthz without an async runtime; returns the status code.
    pub fn get_status(port: u16) -> u16 {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

#[test]
fn help_version_and_check_config_answer_without_starting() {
    let namespace = TestNamespace::new();
    let help = api_command(&namespace)
        .arg("--help")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--check-config"));
    let version = api_command(&namespace)
        .arg("--version")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    let check = api_command(&namespace)
        .arg("--check-config")
        .env("PORT", "3999")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(config["server"]["port"], 3999);
}

#[test]
fn sigterm_stops_the_api_while_its_services_are_unreachable() {
    let namespace = TestNamespace::new();
    let mut child = api_command(&namespace)
        .env("PORT", closed_port().to_string())
        .env("REDIS_PORT", "1")
        .env("MONGODB_URI", format!("mongodb://127.0.0.1:{}/", closed_port()))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    lines.next().expect("a first log line").unwrap();
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
}

/// A serving API whose migrations still wait for MongoDB stops without waiting for it: the
/// migration task is told to stop like every background task (the stop would otherwise wait
/// out the 5 s bound on background tasks, and warn).
#[test]
fn sigterm_stops_a_serving_api_whose_migrations_wait_for_mongodb() {
    let namespace = TestNamespace::new();
    let port = closed_port();
    let mut child = api_command(&namespace)
        .env("PORT", port.to_string())
        .env("MIGRATE_ON_START", "true")
        .env("MONGODB_URI", format!("mongodb://127.0.0.1:{}/", closed_port()))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    next_line_with(&mut lines, "listening");
    let started = std::time::Instant::now();
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(
        !rest
            .iter()
            .any(|line| line.contains("background tasks still running")),
        "{rest:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stopped after {:?}",
        started.elapsed()
    );
}

/// With OpenTelemetry export on, a job enqueued by a request carries that request's trace
/// context, and the request's spans reach the collector under the same trace id.
#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread")]
async fn a_job_enqueued_by_a_request_carries_the_request_trace() {
    use sellersync_core::domain::auth::{self, Role};
    use sellersync_core::testing::{OtlpCollector, trace_id_bytes};

    let namespace = TestNamespace::with_overrides(&[(
        "auth.jwt_secret",
        figment::value::Value::from(crate::helpers::SECRET),
    )]);
    let db = sellersync_core::infra::connections::mongo_database(&namespace.settings.mongo, "it")
        .await
        .unwrap();
    sellersync_core::domain::accounts::upsert_user(&db, "traced", true)
        .await
        .unwrap();
    let collector = OtlpCollector::spawn().await;
    let port = closed_port();
    let mut child = api_command(&namespace)
        .env("PORT", port.to_string())
        .env("JWT_SECRET", crate::helpers::SECRET)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    next_line_with(&mut lines, "listening");

    let token = auth::mint(
        &namespace.settings.auth,
        "ops",
        Role::Admin,
        Duration::from_secs(60),
    )
    .unwrap();
    let reply: serde_json::Value = sellersync_core::infra::tls::http_client()
        .build()
        .unwrap()
        .post(format!("http://127.0.0.1:{port}/app/job-status/enqueue"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "userId": "traced" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = reply["data"]["enqueued"][0]["jobId"]
        .as_str()
        .expect("a job id")
        .to_owned();
    let redis = sellersync_core::infra::connections::connect_redis(&namespace.settings.redis)
        .await
        .unwrap();
    let queue = namespace.settings.open_queue(redis, "user-data").unwrap();
    let job = queue.get(&job_id).await.unwrap().unwrap();
    let traceparent = job.data["traceparent"]
        .as_str()
        .expect("the payload carries a traceparent");
    assert_eq!(traceparent.len(), 55, "{traceparent}");
    assert!(traceparent.starts_with("00-"), "{traceparent}");

    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    assert!(
        collector.received(&trace_id_bytes(traceparent)),
        "the request's spans were exported under the job's trace"
    );
}

#[test]
fn under_systemd_the_api_notifies_ready_once_listening_and_stopping_on_sigterm() {
    let namespace = TestNamespace::new();
    let notify = NotifySocket::bind(namespace.key_prefix());
    let port = closed_port();
    let mut child = api_command(&namespace)
        .env("PORT", port.to_string())
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    notify.until("READY=1");
    assert_eq!(raw_http::get_status(port), 200, "ready means listening");
    // WatchdogSec=0.4 s: fed every 0.2 s by the timer task.
    notify.until("WATCHDOG=1");
    sigterm(&child);
    notify.until("STOPPING=1");
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}
