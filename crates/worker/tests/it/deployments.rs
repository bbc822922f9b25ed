//! Production Redis deployments, started here: a worker refreshing users against a 3-master
//! Redis Cluster, and a run of jobs across a Sentinel fail-over with no job lost or run twice.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use sellersync_core::testing::{PrivateCluster, PrivateSentinel, config_dir, exit_within, redis_cli};
use sellersync_queue::events::{EventKind, StreamId};
use sellersync_spapi_sim::SimConfig;

use crate::helpers::{Env, env, eventually, sixteen_jobs_under_way};

/// A consumer group that reads nothing, so the stream keeps every entry for [`transitions`]
/// (processes trim it behind their groups every few seconds).
const KEEP: &str = "test-keeps-the-stream";

/// Every job's transitions in the queue's event stream, by job id.
async fn transitions(e: &Env) -> HashMap<String, Vec<EventKind>> {
    let mut conn = e.queue.connection();
    let mut after = StreamId::ZERO;
    let mut by_job: HashMap<String, Vec<EventKind>> = HashMap::new();
    loop {
        let batch = e
            .queue
            .read_events_after(&mut conn, after, 1000, None)
            .await
            .expect("the stream is readable");
        if batch.is_empty() {
            return by_job;
        }
        let last = batch.stream_ids().pop().expect("a last entry");
        after = StreamId::parse(&last).expect("a stream id");
        for event in batch.events {
            by_job.entry(event.job_id).or_default().push(event.kind);
        }
    }
}

/// Stops the workers and checks that each of `n` jobs completed on its first attempt and was
/// leased exactly once (one `active` transition, none stalled, released or retried).
async fn assert_each_job_ran_once(e: &Env, n: usize) {
    let counts = match e.queue.counts().await {
        Ok(counts) => counts,
        // The test's own connection may have seen the fail-over; the next call reconnects.
        Err(_) => e.queue.counts().await.unwrap(),
    };
    assert_eq!(
        (
            counts.completed,
            counts.failed,
            counts.active,
            counts.waiting,
            counts.delayed
        ),
        (n as u64, 0, 0, 0, 0)
    );
    let by_job = transitions(e).await;
    assert_eq!(by_job.len(), n);
    for (job, kinds) in by_job {
        let leased = kinds.iter().filter(|k| **k == EventKind::Active).count();
        assert_eq!(leased, 1, "job {job} was leased {leased} times: {kinds:?}");
        assert!(
            !kinds.iter().any(|k| matches!(
                k,
                EventKind::Stalled | EventKind::Released | EventKind::Retrying | EventKind::Failed
            )),
            "job {job}: {kinds:?}"
        );
        let status = e.status(&job).await;
        assert_eq!(status.get_str("status").unwrap(), "completed");
    }
}

#[tokio::test]
async fn workers_on_a_redis_cluster_refresh_every_user() {
    let cluster = PrivateCluster::start();
    let e = env(SimConfig::default(), &cluster.overrides()).await;
    e.queue.ensure_event_group(KEEP).await.unwrap();
    let users = e.users(12, 2).await;
    let report = e.enqueue(&users).await;
    assert_eq!(report.enqueued.len(), 12);
    // A second producer run finds every job pending: dedup works in the queue's slot.
    assert_eq!(e.enqueue(&users).await.duplicates.len(), 12);

    let workers = e.start_workers(2);
    e.wait_completed(12, Duration::from_secs(60)).await;
    workers.stop().await;
    for job in &report.enqueued {
        let status = e.status(&job.job_id).await;
        assert_eq!(status.get_i64("accountsProcessed").unwrap(), 2);
    }
    assert_each_job_ran_once(&e, 12).await;
    // The queue's keys live on one master; the summaries' cache keys spread over the others.
    let queue_node = cluster.node_of(&format!("{{{}}}", e.queue.name()));
    let keys_on = |port: u16| redis_cli(port, &["DBSIZE"]).parse::<u64>().unwrap_or(0);
    assert!(keys_on(queue_node) > 0);
    assert!(
        cluster.ports.iter().filter(|p| keys_on(**p) > 0).count() >= 2,
        "keys on more than one master"
    );
}

#[tokio::test]
async fn a_sentinel_fail_over_during_a_run_loses_no_job_and_runs_none_twice() {
    let sentinel = PrivateSentinel::start();
    let first_master = sentinel.master_port().unwrap();
    let (e, workers) = sixteen_jobs_under_way(&sentinel.overrides()).await;
    // Made before the first trim (a period after the workers start).
    e.queue.ensure_event_group(KEEP).await.unwrap();

    let before = e.queue.counts().await.unwrap().completed;
    assert!(before < 16, "the fail-over comes during the run ({before} done)");
    let (sentinel, new_master) = tokio::task::spawn_blocking(move || {
        let new_master = sentinel.failover();
        (sentinel, new_master)
    })
    .await
    .unwrap();
    assert_ne!(new_master, first_master);
    e.wait_completed(16, Duration::from_secs(90)).await;
    workers.stop().await;
    assert_each_job_ran_once(&e, 16).await;
    // The jobs' records are on the new master.
    assert!(redis_cli(new_master, &["ROLE"]).starts_with("master"));
    drop(sentinel);
}

#[test]
fn a_master_name_the_sentinels_do_not_know_stops_the_worker_naming_the_setting() {
    let sentinel = PrivateSentinel::start();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_sellersync-worker"))
        .env("SELLERSYNC_ENV", "test")
        .env("SELLERSYNC_CONFIG_DIR", config_dir())
        .env("REDIS_MODE", "sentinel")
        .env("REDIS_SENTINELS", sentinel.sentinels().join(","))
        .env("REDIS_SENTINEL_MASTER", "no-such-master")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A worker that takes the name for an outage retries for ever: bounded here.
    if exit_within(&mut worker, Duration::from_secs(20)).is_none() {
        let _ = worker.kill();
    }
    let output = worker.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("redis.sentinel_master"), "{stderr}");
    assert!(stderr.contains("no-such-master"), "{stderr}");
    assert!(
        !stderr.contains("retrying"),
        "at once, not after retries: {stderr}"
    );
}

#[tokio::test]
async fn killing_the_sentinel_master_during_a_run_loses_no_job() {
    let mut sentinel = PrivateSentinel::start();
    let (e, workers) = sixteen_jobs_under_way(&sentinel.overrides()).await;
    // Made before the first trim (a period after the workers start).
    e.queue.ensure_event_group(KEEP).await.unwrap();
    let before = e.queue.counts().await.unwrap().completed;
    assert!(before < 16, "the master dies during the run ({before} done)");
    let sentinel = tokio::task::spawn_blocking(move || {
        sentinel.kill_master();
        sentinel
    })
    .await
    .unwrap();
    // Writes the old master acknowledged but had not replicated are lost with it: a job may run
    // again (at least once), but none is lost.
    eventually(Duration::from_secs(120), "every job completed", || async {
        e.queue.counts().await.is_ok_and(|c| c.completed == 16)
    })
    .await;
    workers.stop().await;
    e.wait_completed(16, Duration::from_secs(30)).await;
    let counts = e.queue.counts().await.unwrap();
    assert_eq!((counts.failed, counts.active, counts.waiting), (0, 0, 0));
    drop(sentinel);
}
