//! Redis over TLS with our own CA (generated here with `openssl`), as a managed Redis is used:
//! `rediss://` URL or `redis.tls`, the CA file, an ACL user with the least permissions
//! ([`REDIS_ACL_RULES`]) doing the queue's real work.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use figment::value::Value;
use sellersync_core::CoreError;
use sellersync_core::infra::connections::{REDIS_ACL_RULES, connect_redis};
use sellersync_core::testing::TestNamespace;
use sellersync_queue::{Queue, QueueConfig};

use crate::connections::one_job_through;

/// A CA, and a certificate for 127.0.0.1/localhost signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed (scripts/services test-tools)");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=sellersync-test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
}

/// A Redis that speaks only TLS, on a free port; killed on drop.
struct TlsRedis {
    port: u16,
    child: Child,
    dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl TlsRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempdir::Dir(std::env::temp_dir().join(format!("sellersync-tls-{port}")));
        std::fs::create_dir_all(&dir.0).unwrap();
        make_certificates(&dir.0);
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args([
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.crt",
            ])
            .args(["--tls-auth-clients", "no"])
            .current_dir(&dir.0)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services up)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "TLS redis did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { port, child, dir }
    }

    fn ca(&self) -> String {
        self.dir.0.join("ca.crt").display().to_string()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn plain_connections_are_refused_and_tls_with_our_ca_works() {
    let redis = TlsRedis::start();
    let plain = TestNamespace::with_overrides(&[
        ("redis.port", Value::from(redis.port)),
        ("redis.connect_timeout_ms", Value::from(500)),
    ]);
    assert!(
        connect_redis(&plain.settings.redis).await.is_err(),
        "plain TCP to a TLS port"
    );

    let no_ca = TestNamespace::with_overrides(&[
        (
            "redis.url",
            Value::from(format!("rediss://127.0.0.1:{}/0", redis.port)),
        ),
        ("redis.connect_timeout_ms", Value::from(500)),
    ]);
    assert!(
        connect_redis(&no_ca.settings.redis).await.is_err(),
        "our CA is not among the system's roots"
    );

    let tls = TestNamespace::with_overrides(&[
        ("redis.port", Value::from(redis.port)),
        ("redis.tls", Value::from(true)),
        ("redis.tls_ca_file", Value::from(redis.ca())),
    ]);
    let mut conn = connect_redis(&tls.settings.redis).await.expect("TLS with our CA");
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn an_acl_user_with_the_documented_rules_runs_the_queue_over_tls() {
    let redis = TlsRedis::start();
    let admin = TestNamespace::with_overrides(&[
        ("redis.port", Value::from(redis.port)),
        ("redis.tls", Value::from(true)),
        ("redis.tls_ca_file", Value::from(redis.ca())),
    ]);
    let prefix = admin.key_prefix().to_owned();
    let mut root = connect_redis(&admin.settings.redis).await.unwrap();
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("sellersync")
        .arg("on")
        .arg(">s3cret-pw")
        .arg(format!("~{prefix}*"))
        .arg("resetchannels");
    for rule in REDIS_ACL_RULES.split_whitespace() {
        setuser.arg(rule);
    }
    let _: () = setuser.query_async(&mut root).await.unwrap();

    let wrong = TestNamespace::with_overrides(&[
        (
            "redis.url",
            Value::from(format!("rediss://sellersync:not-it@127.0.0.1:{}/0", redis.port)),
        ),
        ("redis.tls_ca_file", Value::from(redis.ca())),
    ]);
    let refused = connect_redis(&wrong.settings.redis)
        .await
        .expect_err("a wrong password");
    assert!(
        matches!(
            refused,
            CoreError::Config {
                setting: "redis.password",
                ..
            }
        ),
        "a configuration error naming the setting: {refused}"
    );
    assert!(!refused.to_string().contains("not-it"), "{refused}");

    let url = format!("rediss://sellersync:s3cret-pw@127.0.0.1:{}/0", redis.port);
    let user = TestNamespace::with_overrides(&[
        ("redis.url", Value::from(url)),
        ("redis.tls_ca_file", Value::from(redis.ca())),
        ("redis.key_prefix", Value::from(prefix.clone())),
    ]);
    let conn = connect_redis(&user.settings.redis)
        .await
        .expect("the ACL user signs in");
    let queue = Queue::new(conn.clone(), &prefix, "user-data", QueueConfig::default());
    queue.ensure_event_group("job-status").await.unwrap();
    one_job_through(&queue).await;
    let backlog = queue.event_backlog("job-status").await.unwrap();
    assert!(backlog.total() > 0);
    queue.trim_events().await.unwrap();
    let readiness = sellersync_core::infra::readiness::eviction_warning(&mut conn.clone()).await;
    assert!(readiness.is_none(), "CONFIG GET is allowed: {readiness:?}");

    let mut outside = conn.clone();
    let denied: redis::RedisResult<()> = redis::cmd("SET")
        .arg("elsewhere")
        .arg(1)
        .query_async(&mut outside)
        .await;
    assert!(denied.is_err(), "keys outside the prefix are off limits");
    let flush: redis::RedisResult<()> = redis::cmd("FLUSHALL").query_async(&mut outside).await;
    assert!(flush.is_err(), "dangerous commands are off limits");
}
