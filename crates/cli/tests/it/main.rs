//! The `sellersync` binary as operators run it, against the real local Redis: the services'
//! environment file, queue and job commands, bad input refused before connecting, and
//! `doctor` (in its own module).

mod doctor;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::infra::connections::connect_redis;
use sellersync_core::jobs::payload::Trigger;
use sellersync_core::jobs::producer::enqueue_refresh;
use sellersync_core::testing::{TestNamespace, config_dir};
use sellersync_queue::Queue;

fn cli(namespace: &TestNamespace) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sellersync"));
    command
        .env("SELLERSYNC_ENV", "test")
        .env("SELLERSYNC_CONFIG_DIR", config_dir())
        .env("REDIS_KEY_PREFIX", namespace.key_prefix())
        .env("MONGODB_DATABASE", namespace.database())
        .env_remove("SELLERSYNC_ENV_FILE");
    command
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

async fn queue(namespace: &TestNamespace) -> Queue {
    let redis = connect_redis(&namespace.settings.redis).await.unwrap();
    namespace.settings.open_queue(redis, USER_DATA_QUEUE).unwrap()
}

#[test]
fn bad_values_are_refused_before_connecting() {
    let namespace = TestNamespace::new();
    for args in [
        &["jobs", "list", "--state", "bogus"][..],
        &["queues", "clean", "user-data", "--older-than", "soon"],
        &["token", "mint", "--sub", "x", "--role", "root"],
    ] {
        let started = Instant::now();
        // Port 1 refuses connections: a command that connected first would fail differently.
        let output = cli(&namespace)
            .env("REDIS_PORT", "1")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid value"), "{args:?}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{args:?} answered at once"
        );
    }
}

#[test]
fn completions_are_printed_for_a_shell() {
    let namespace = TestNamespace::new();
    let output = cli(&namespace).args(["completions", "bash"]).output().unwrap();
    assert!(output.status.success());
    let script = String::from_utf8_lossy(&output.stdout);
    assert!(
        script.contains("retry-failed") && script.contains("complete"),
        "{script}"
    );
}

#[test]
fn production_commands_read_the_services_environment_file() {
    let namespace = TestNamespace::new();
    let file = std::env::temp_dir().join(format!("{}.env", namespace.key_prefix().replace(':', "-")));
    std::fs::write(
        &file,
        "# as deploy/sellersync.env.example\nJWT_SECRET=\"0123456789abcdef0123456789abcdef\"\n\
         LWA_CLIENT_ID=amzn1.application-oa2-client.x\nLWA_CLIENT_SECRET=secret\n",
    )
    .unwrap();
    let without = cli(&namespace)
        .env("SELLERSYNC_ENV", "production")
        .args(["--json", "stats"])
        .output()
        .unwrap();
    assert_eq!(without.status.code(), Some(78), "production needs its secrets");
    let with = cli(&namespace)
        .env("SELLERSYNC_ENV", "production")
        .args(["--json", "--env-file"])
        .arg(&file)
        .arg("stats")
        .output()
        .unwrap();
    let stats = json(&with);
    assert_eq!(stats["user-data"]["waiting"], 0, "{stats}");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_listed_by_user_promoted_and_failed_ones_retried() {
    let namespace = TestNamespace::new();
    let queue = queue(&namespace).await;
    let users: Vec<String> = ["ann", "bob", "cy"].map(String::from).into();
    enqueue_refresh(&queue, &users, Trigger::Manual, 50)
        .await
        .unwrap();

    let listed = json(
        &cli(&namespace)
            .args(["--json", "jobs", "list", "--state", "waiting", "--user", "bob"])
            .output()
            .unwrap(),
    );
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["data"]["userId"], "bob");
    let page = json(
        &cli(&namespace)
            .args([
                "--json", "jobs", "list", "--state", "waiting", "--offset", "1", "--limit", "5",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(
        page.as_array().unwrap().len(),
        2,
        "three waiting, the first skipped"
    );

    // Two attempts fail for good; retry-failed puts them back.
    let leased = queue.fetch("cli-test", 2).await.unwrap().jobs;
    for job in &leased {
        queue.fail(&job.id, job.token, "boom", false).await.unwrap();
    }
    let retried = json(
        &cli(&namespace)
            .args(["--json", "queues", "retry-failed", "user-data"])
            .output()
            .unwrap(),
    );
    assert_eq!(retried["retried"], 2);
    assert_eq!(queue.counts().await.unwrap().failed, 0);

    // A failed attempt waits for its retry; promote makes it due now.
    let job = queue.fetch("cli-test", 1).await.unwrap().jobs.remove(0);
    queue.fail(&job.id, job.token, "later", true).await.unwrap();
    assert_eq!(queue.counts().await.unwrap().delayed, 1);
    let promoted = json(
        &cli(&namespace)
            .args(["--json", "jobs", "promote", &job.id])
            .output()
            .unwrap(),
    );
    assert_eq!(promoted["promoted"], job.id.as_str());
    assert_eq!(queue.counts().await.unwrap().delayed, 0);
}
