//! Leases that ride out Redis stalls, attempts fenced by tokens that only grow, ids that never
//! repeat, dedup keys that cannot point at nothing.

use std::time::Duration;

use redis::AsyncCommands;
use sellersync_queue::{Ack, EnqueueOptions, FailOutcome, QueueConfig};
use serde_json::json;

use crate::helpers::{TestQueue, eventually, fast_config};

fn ack(id: &str, token: u64) -> Ack {
    Ack {
        id: id.to_owned(),
        token,
        result: "null".into(),
    }
}

#[tokio::test]
async fn after_a_gap_with_no_reaper_every_lease_gets_one_more_period() {
    let q = TestQueue::new(fast_config()).await; // lease 400 ms: a gap over 200 ms is a stall
    let job = q.enqueue(&json!(1), EnqueueOptions::default()).await.unwrap();
    q.fetch("w1", 1).await.unwrap();
    q.reap().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await; // Redis "stalled": no heartbeat, no reaper

    let first = q.reap().await.unwrap();
    assert!(first.graced && first.requeued == 0, "{first:?}");
    assert_eq!(
        q.get(&job.id).await.unwrap().unwrap().state,
        "active",
        "not requeued"
    );
    // A worker that really died is still recovered, one lease later.
    eventually(Duration::from_secs(5), "requeued after the grace", || async {
        q.reap().await.unwrap().requeued == 1
    })
    .await;
    let info = q.get(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (info.state.as_str(), info.stalls, info.attempts),
        ("waiting", 1, 0)
    );
}

#[tokio::test]
async fn a_stale_attempt_can_write_nothing_and_tokens_only_grow() {
    let q = TestQueue::new(fast_config()).await;
    let job = q.enqueue(&json!(1), EnqueueOptions::default()).await.unwrap();
    let stale = q.fetch("w1", 1).await.unwrap().jobs.remove(0);
    // It stalls, is reaped, and runs again elsewhere.
    q.reap().await.unwrap();
    eventually(Duration::from_secs(5), "reaped", || async {
        q.reap().await.unwrap().requeued == 1
    })
    .await;
    let current = q.fetch("w2", 1).await.unwrap().jobs.remove(0);
    assert!(current.token > stale.token);
    assert_eq!(
        current.attempt, stale.attempt,
        "the stall did not spend the attempt"
    );

    assert!(!q.set_progress(&job.id, stale.token, 90).await.unwrap());
    let lost = q
        .heartbeat("w1", &json!({}), &[(job.id.clone(), stale.token)])
        .await
        .unwrap();
    assert_eq!(
        lost,
        vec![job.id.clone()],
        "the stale holder learns it lost the lease"
    );
    assert_eq!(
        q.fail(&job.id, stale.token, "late", true).await.unwrap(),
        FailOutcome::LeaseLost
    );
    assert!(
        !q.defer(&job.id, stale.token, Duration::ZERO, "late")
            .await
            .unwrap()
    );
    assert!(q.complete(&[ack(&job.id, stale.token)]).await.unwrap().is_empty());
    assert_eq!(
        q.get(&job.id).await.unwrap().unwrap().worker_id.as_deref(),
        Some("w2")
    );

    // An admin retry does not reset the fence: the next attempt's token is larger still.
    assert_eq!(
        q.fail(&job.id, current.token, "boom", false).await.unwrap(),
        FailOutcome::Failed
    );
    q.retry(&job.id).await.unwrap();
    let retried = q.fetch("w3", 1).await.unwrap().jobs.remove(0);
    assert!(retried.token > current.token);
    assert!(
        q.complete(&[ack(&job.id, current.token)])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        q.complete(&[ack(&job.id, retried.token)]).await.unwrap(),
        vec![job.id.clone()]
    );
    // A heartbeat racing its own completion: the attempt is done, not lost.
    let done = q
        .heartbeat("w3", &json!({}), &[(job.id.clone(), retried.token)])
        .await
        .unwrap();
    assert!(done.is_empty(), "{done:?}");
}

#[tokio::test]
async fn generated_ids_are_unique_and_time_ordered() {
    let q = TestQueue::new(fast_config()).await;
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(q.enqueue(&json!(n), EnqueueOptions::default()).await.unwrap().id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 50);
    assert!(ids.iter().all(|id| id.len() == 32), "{ids:?}");
    // Even if Redis forgot every counter (a lost AOF tail), new ids are new.
    let mut conn = q.connection().await;
    let _: () = conn.del(format!("{}seq", q.key_base())).await.unwrap();
    let again = q
        .enqueue(&json!("after"), EnqueueOptions::default())
        .await
        .unwrap();
    assert!(!again.duplicate && !ids.contains(&again.id));
}

#[tokio::test]
async fn a_dedup_key_pointing_at_a_missing_or_finished_job_is_replaced() {
    let q = TestQueue::new(fast_config()).await;
    let mut conn = q.connection().await;
    let options = || EnqueueOptions {
        dedup_key: Some("user:u1".into()),
        ..EnqueueOptions::default()
    };
    // A dedup key left pointing at a job that no longer exists (evicted, lost writes).
    let _: () = conn
        .set(format!("{}dedup:user:u1", q.key_base()), "gone")
        .await
        .unwrap();
    let first = q.enqueue(&json!(1), options()).await.unwrap();
    assert!(
        !first.duplicate,
        "a key pointing at nothing does not block the user"
    );
    assert_eq!(
        q.enqueue(&json!(2), options()).await.unwrap(),
        sellersync_queue::Enqueued {
            id: first.id.clone(),
            duplicate: true
        }
    );

    // And one pointing at a finished job (its key should have been freed, and was not).
    let leased = q.fetch("w", 1).await.unwrap().jobs.remove(0);
    q.complete(&[ack(&first.id, leased.token)]).await.unwrap();
    let _: () = conn
        .set(format!("{}dedup:user:u1", q.key_base()), &first.id)
        .await
        .unwrap();
    let second = q.enqueue(&json!(3), options()).await.unwrap();
    assert!(!second.duplicate && second.id != first.id);
}

#[tokio::test]
async fn clean_deletes_only_jobs_whose_state_says_finished() {
    let q = TestQueue::new(fast_config()).await;
    let job = q.enqueue(&json!(1), EnqueueOptions::default()).await.unwrap();
    // A stray entry in the failed set for a job that is waiting.
    let mut conn = q.connection().await;
    let _: () = conn
        .zadd(format!("{}failed", q.key_base()), &job.id, 0)
        .await
        .unwrap();
    q.clean(sellersync_queue::JobState::Failed, Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(q.get(&job.id).await.unwrap().unwrap().state, "waiting");
}

#[tokio::test]
async fn priorities_keep_exact_fifo_order_at_the_highest_level() {
    let q = TestQueue::new(QueueConfig {
        priority_levels: 1000,
        ..fast_config()
    })
    .await;
    let options = |priority| EnqueueOptions {
        priority,
        ..EnqueueOptions::default()
    };
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(q.enqueue(&json!(n), options(999)).await.unwrap().id);
    }
    let urgent = q.enqueue(&json!("urgent"), options(998)).await.unwrap().id;
    let fetched: Vec<String> = q
        .fetch("w", 100)
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(fetched[0], urgent);
    assert_eq!(&fetched[1..], &ids[..]);
}

/// What a fail-over that lost the last writes looks like: the fetch that leased a job never
/// reached the replica that became master, so the job is back at the head of `wait` and the
/// fence is what it was. The next lease must not repeat the lost one's token.
#[tokio::test]
async fn a_lease_lost_in_a_fail_over_cannot_be_reissued_and_its_attempt_writes_nothing() {
    let q = TestQueue::new(fast_config()).await;
    let job = q.enqueue(&json!(1), EnqueueOptions::default()).await.unwrap();
    let base = q.key_base();
    let mut conn = q.connection().await;
    // The state before the lease, as the new master would have it.
    let job_key = format!("{base}job:{}", job.id);
    let fields: Vec<(String, String)> = conn.hgetall(&job_key).await.unwrap();
    let score: f64 = conn.zscore(format!("{base}wait"), &job.id).await.unwrap();
    let fence: Option<String> = conn.get(format!("{base}fence")).await.unwrap();

    let lost = q.fetch("w1", 1).await.unwrap().jobs.remove(0);
    let mut restore = redis::pipe();
    restore
        .atomic()
        .del(&job_key)
        .hset_multiple(&job_key, &fields)
        .zrem(format!("{base}active"), &job.id)
        .zadd(format!("{base}wait"), &job.id, score);
    match &fence {
        Some(value) => restore.set(format!("{base}fence"), value),
        None => restore.del(format!("{base}fence")),
    };
    let _: () = restore.query_async(&mut conn).await.unwrap();

    let current = q.fetch("w2", 1).await.unwrap().jobs.remove(0);
    assert_eq!(current.id, job.id);
    assert!(
        current.token > lost.token,
        "{} after {}",
        current.token,
        lost.token
    );
    let heartbeat = q
        .heartbeat("w1", &json!({}), &[(job.id.clone(), lost.token)])
        .await
        .unwrap();
    assert_eq!(
        heartbeat,
        vec![job.id.clone()],
        "the old attempt learns its lease is gone"
    );
    assert!(!q.set_progress(&job.id, lost.token, 50).await.unwrap());
    assert_eq!(
        q.fail(&job.id, lost.token, "late", true).await.unwrap(),
        FailOutcome::LeaseLost
    );
    assert!(q.complete(&[ack(&job.id, lost.token)]).await.unwrap().is_empty());
    assert_eq!(
        q.complete(&[ack(&job.id, current.token)]).await.unwrap(),
        vec![job.id.clone()]
    );
}

#[tokio::test]
async fn an_attempt_whose_job_the_reaper_failed_is_told_its_lease_is_gone() {
    let q = TestQueue::new(QueueConfig {
        max_stalls: 0,
        ..fast_config()
    })
    .await;
    let job = q.enqueue(&json!(1), EnqueueOptions::default()).await.unwrap();
    let stalled = q.fetch("w1", 1).await.unwrap().jobs.remove(0);
    q.reap().await.unwrap();
    eventually(Duration::from_secs(5), "failed by the reaper", || async {
        q.reap().await.unwrap().failed == 1
    })
    .await;
    assert_eq!(q.get(&job.id).await.unwrap().unwrap().state, "failed");
    let lost = q
        .heartbeat("w1", &json!({}), &[(job.id.clone(), stalled.token)])
        .await
        .unwrap();
    assert_eq!(lost, vec![job.id.clone()], "not 'done': the attempt must stop");
}
