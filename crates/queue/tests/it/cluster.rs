//! The queue on a Redis Cluster (three masters, started here): every operation of a queue runs
//! in its one slot whichever master serves it — enqueue with dedup, leases, failures and
//! retries, completion, control, inspection pipelines, the event stream, wake-ups (BLPOP), the
//! start limit and token buckets, the reaper, and apalis workers.

use std::time::Duration;

use sellersync_core::testing::{PrivateCluster, TestNamespace, redis_cli};
use sellersync_queue::events::{EventKind, ReadFrom};
use sellersync_queue::rate_limit::{Limit, Take, TokenBuckets};
use sellersync_queue::{Ack, EnqueueOptions, FailOutcome, JobState, QueueConfig, RateLimit};
use serde_json::json;

use crate::helpers::{TestQueue, eventually, fast_config};
use crate::runtime::{Work, wait_state, with_worker};

/// Queue names whose keys lie on different masters of `cluster` (at least two of them).
fn spread_names(cluster: &PrivateCluster) -> Vec<String> {
    let names: Vec<String> = (0..6).map(|i| format!("cq{i}")).collect();
    let mut nodes: Vec<u16> = names
        .iter()
        .map(|n| cluster.node_of(&format!("{{{n}}}")))
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert!(nodes.len() >= 2, "the queues should spread over the masters");
    names
}

async fn on_cluster(cluster: &PrivateCluster, name: &str, config: QueueConfig) -> TestQueue {
    let namespace = TestNamespace::with_overrides(&cluster.overrides());
    TestQueue::in_namespace(namespace, name, config).await
}

#[tokio::test]
async fn queues_on_every_master_of_a_cluster_run_their_jobs_through_every_state() {
    let cluster = PrivateCluster::start();
    for name in spread_names(&cluster) {
        let q = on_cluster(&cluster, &name, fast_config()).await;
        // Producing: one script call for a batch, dedup across calls.
        let options = |key: &str| EnqueueOptions {
            dedup_key: Some(key.to_owned()),
            ..EnqueueOptions::default()
        };
        let first = q.enqueue(&json!({ "n": 1 }), options("a")).await.unwrap();
        let again = q.enqueue(&json!({ "n": 1 }), options("a")).await.unwrap();
        assert!(!first.duplicate && again.duplicate && again.id == first.id);
        let second = q
            .enqueue(&json!({ "n": 2 }), EnqueueOptions::default())
            .await
            .unwrap();
        let delayed = q
            .enqueue(
                &json!({ "n": 3 }),
                EnqueueOptions {
                    delay: Some(Duration::from_secs(3600)),
                    ..EnqueueOptions::default()
                },
            )
            .await
            .unwrap();
        let counts = q.counts().await.unwrap();
        assert_eq!((counts.waiting, counts.delayed), (2, 1), "{name}");

        // Consuming: lease both, fail one (retried after the backoff), complete the other.
        let leased = q.fetch("w1", 10).await.unwrap().jobs;
        assert_eq!(leased.len(), 2);
        let by_id = |id: &str| leased.iter().find(|j| j.id == id).unwrap().clone();
        let (a, b) = (by_id(&first.id), by_id(&second.id));
        let outcome = q.fail(&a.id, a.token, "boom", true).await.unwrap();
        assert!(matches!(outcome, FailOutcome::Retrying { .. }), "{outcome:?}");
        let done = q
            .complete(&[Ack {
                id: b.id.clone(),
                token: b.token,
                result: "\"ok\"".into(),
            }])
            .await
            .unwrap();
        assert_eq!(done, std::slice::from_ref(&b.id));
        let retried = loop {
            if let Some(job) = q.fetch("w1", 1).await.unwrap().jobs.pop() {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!((retried.id.as_str(), retried.attempt), (first.id.as_str(), 2));
        q.fail(&retried.id, retried.token, "again", false).await.unwrap();
        assert_eq!(q.get(&first.id).await.unwrap().unwrap().state, "failed");

        // Control and inspection (pipelines and multi-key commands stay in the queue's slot).
        q.promote(&delayed.id).await.unwrap();
        q.set_priority(&delayed.id, 3).await.unwrap();
        q.pause().await.unwrap();
        assert!(q.fetch("w1", 1).await.unwrap().paused);
        q.resume().await.unwrap();
        assert_eq!(q.retry_failed(10).await.unwrap(), 1);
        let listed = q.list(JobState::Waiting, 0, 10).await.unwrap();
        assert_eq!(listed.len(), 2, "{name}");
        assert_eq!(
            q.payloads(std::slice::from_ref(&second.id)).await.unwrap(),
            [Some("{\"n\":2}".to_owned())]
        );
        let rest = q.fetch("w2", 10).await.unwrap().jobs;
        let acks: Vec<Ack> = rest
            .iter()
            .map(|j| Ack {
                id: j.id.clone(),
                token: j.token,
                result: "null".into(),
            })
            .collect();
        assert_eq!(q.complete(&acks).await.unwrap().len(), 2);
        let counts = q.counts().await.unwrap();
        assert_eq!(
            (counts.completed, counts.failed, counts.waiting, counts.active),
            (3, 0, 0, 0)
        );
        assert_eq!(q.metrics().await.unwrap().completed_total, 3);
        // Retention: completed jobs older than 1 ms (after at most a few polls) are deleted.
        let mut cleaned = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cleaned < 3 && std::time::Instant::now() < deadline {
            cleaned += q
                .clean(JobState::Completed, Duration::from_millis(1), 10)
                .await
                .unwrap();
        }
        assert_eq!(cleaned, 3);

        // The event stream, read by a consumer group on a connection of its own.
        q.ensure_event_group("g").await.unwrap();
        let mut reader = q.connection().await;
        let batch = q
            .read_events(
                &mut reader,
                "g",
                "c1",
                ReadFrom::New,
                1000,
                Duration::from_millis(10),
            )
            .await
            .unwrap();
        let kinds: Vec<EventKind> = batch
            .events
            .iter()
            .filter(|e| e.job_id == first.id && e.kind != EventKind::Cleaned)
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::Enqueued,
                EventKind::Deduplicated,
                EventKind::Active,
                EventKind::Retrying,
                EventKind::Promoted,
                EventKind::Active,
                EventKind::Failed,
                EventKind::Retried,
                EventKind::Active,
                EventKind::Completed,
            ],
            "{name}"
        );
        q.ack_events("g", &batch.stream_ids()).await.unwrap();
        assert_eq!(q.event_backlog("g").await.unwrap().total(), 0);
    }
}

#[tokio::test]
async fn wake_ups_start_limits_token_buckets_and_the_reaper_work_on_a_cluster() {
    let cluster = PrivateCluster::start();
    let mut config = fast_config();
    config.rate_limit = Some(RateLimit {
        max: 3,
        interval_ms: 60_000,
        burst: Some(3),
    });
    let q = on_cluster(&cluster, "limited", config).await;

    // An idle worker blocked on the wake list (BLPOP, its own connection) wakes on an enqueue.
    let mut wake = q.connection().await;
    let waiter = {
        let q = q.other_handle().await;
        tokio::spawn(async move { q.wait_for_work(&mut wake, Duration::from_secs(20)).await })
    };
    eventually(Duration::from_secs(10), "the waiter blocked", || async {
        let clients = redis_cli(cluster.node_of("{limited}"), &["CLIENT", "LIST"]);
        clients.contains("cmd=blpop")
    })
    .await;
    for i in 0..5 {
        q.enqueue(&i, EnqueueOptions::default()).await.unwrap();
    }
    assert!(
        waiter.await.unwrap().unwrap(),
        "woken by new work, not the timeout"
    );

    // The start limit: 3 per minute, whoever fetches.
    let fetched = q.fetch("w1", 5).await.unwrap();
    assert_eq!(fetched.jobs.len(), 3);
    let other = q.other_handle().await;
    let none = other.fetch("w2", 5).await.unwrap();
    assert!(none.jobs.is_empty() && none.next_due_ms.is_some());

    // Leases not renewed expire; the reaper puts the jobs back.
    eventually(Duration::from_secs(10), "expired leases requeued", || async {
        q.reap().await.unwrap();
        q.counts().await.unwrap().active == 0
    })
    .await;
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.active), (5, 0));

    // Token buckets (SP-API and per-user limits) on keys of any slot.
    let buckets = TokenBuckets::new(
        q.connection().await,
        format!("{}ratelimit:", q.namespace.key_prefix()),
    );
    let limit = Limit {
        rate_per_sec: 0.001,
        burst: 2,
    };
    let take = Take {
        max_wait: Duration::ZERO,
        ..Take::default()
    };
    for bucket in ["spapi:a", "spapi:b", "user:c"] {
        assert!(buckets.reserve(bucket, limit, take).await.unwrap().is_zero());
        assert!(buckets.reserve(bucket, limit, take).await.unwrap().is_zero());
        assert!(
            buckets.reserve(bucket, limit, take).await.is_err(),
            "{bucket} is empty"
        );
    }
}

#[tokio::test]
async fn apalis_workers_on_a_cluster_run_every_job_once() {
    let cluster = PrivateCluster::start();
    for name in spread_names(&cluster).into_iter().take(2) {
        let q = on_cluster(&cluster, &name, fast_config()).await;
        let mut ids = Vec::new();
        for _ in 0..20 {
            ids.push(
                q.enqueue(&Work::Succeed, EnqueueOptions::default())
                    .await
                    .unwrap()
                    .id,
            );
        }
        let failing = q
            .enqueue(&Work::FailUntil { attempt: 2 }, EnqueueOptions::default())
            .await
            .unwrap()
            .id;
        let (queue, failing_id) = (&q, &failing);
        let runs = with_worker(&q, "w1", 4, None, |ctx| async move {
            for id in ids.iter().chain([failing_id]) {
                wait_state(queue, id, "completed").await;
            }
            ctx.runs.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
        assert_eq!(runs, 22, "20 jobs once, one job twice");
        assert_eq!(q.get(&failing).await.unwrap().unwrap().attempts, 2);
        assert_eq!(q.counts().await.unwrap().completed, 21);
        // The namespace's clean-up finds its keys on every master (SCAN per node).
        drop(q);
        for port in &cluster.ports {
            assert_eq!(redis_cli(*port, &["DBSIZE"]), "0", "keys left on {port}");
        }
    }
}
