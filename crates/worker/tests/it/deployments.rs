//! Production Redis deployments, started here: a worker refreshing users against a 3-master
//! Redis Cluster, and a run of jobs across a Sentinel fail-over with no job lost or run twice.

use std::collections::HashMap;
use std::time::Duration;

use sellersync_core::testing::{PrivateCluster, PrivateSentinel, redis_cli};
use sellersync_queue::events::{EventKind, StreamId};
use sellersync_spapi_sim::SimConfig;

use crate::helpers::{Env, env, eventually, sixteen_jobs_under_way};

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

#[tokio::test]
async fn killing_the_sentinel_master_during_a_run_loses_no_job() {
    let mut sentinel = PrivateSentinel::start();
    let (e, workers) = sixteen_jobs_under_way(&sentinel.overrides()).await;
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
