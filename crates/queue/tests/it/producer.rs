use std::time::Duration;

use sellersync_queue::{EnqueueOptions, JobState, NewJob, QueueConfig};
use serde_json::json;

use crate::helpers::{TestQueue, eventually};

fn dedup(key: &str) -> EnqueueOptions {
    EnqueueOptions {
        dedup_key: Some(key.to_owned()),
        ..Default::default()
    }
}

#[tokio::test]
async fn fifty_concurrent_enqueuers_of_one_dedup_key_make_one_job() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let mut handles = Vec::new();
    for i in 0..50 {
        let queue = q.other_handle().await;
        handles.push(tokio::spawn(async move {
            queue
                .enqueue(&json!({ "from": i }), dedup("user:42"))
                .await
                .unwrap()
        }));
    }
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    let first = &results[0].id;
    assert!(
        results.iter().all(|r| &r.id == first),
        "all enqueuers get the same job id"
    );
    assert_eq!(
        results.iter().filter(|r| !r.duplicate).count(),
        1,
        "exactly one created it"
    );
    assert_eq!(q.counts().await.unwrap().waiting, 1);
}

#[tokio::test]
async fn a_finished_job_frees_its_dedup_key() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let first = q.enqueue(&json!({}), dedup("k")).await.unwrap();
    let job = q.fetch("w", 1).await.unwrap().jobs.pop().unwrap();
    let ack = sellersync_queue::Ack {
        id: job.id.clone(),
        token: job.token,
        result: "null".into(),
    };
    assert_eq!(q.complete(&[ack]).await.unwrap(), vec![job.id.clone()]);
    let second = q.enqueue(&json!({}), dedup("k")).await.unwrap();
    assert!(!second.duplicate);
    assert_ne!(first.id, second.id);
}

#[tokio::test]
async fn bulk_enqueue_keeps_order_and_reports_duplicates() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let jobs: Vec<NewJob> = (0..2500)
        .map(|i| NewJob::new(&json!({ "n": i }), dedup(&format!("u{}", i % 2000))).unwrap())
        .collect();
    let results = q.enqueue_bulk(&jobs).await.unwrap();
    assert_eq!(results.len(), 2500);
    assert_eq!(results.iter().filter(|r| r.duplicate).count(), 500);
    assert_eq!(
        results[2000].id, results[0].id,
        "the 2001st job repeats the first key"
    );
    assert_eq!(q.counts().await.unwrap().waiting, 2000);

    let fetched = q.fetch("w", 3).await.unwrap();
    let payloads: Vec<_> = fetched.jobs.iter().map(|j| j.payload.clone()).collect();
    assert_eq!(
        payloads,
        vec![r#"{"n":0}"#, r#"{"n":1}"#, r#"{"n":2}"#],
        "FIFO within a priority"
    );
}

#[tokio::test]
async fn an_explicit_job_id_is_kept_and_not_enqueued_twice() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let opts = EnqueueOptions {
        job_id: Some("refresh-1".into()),
        ..Default::default()
    };
    let a = q.enqueue(&json!({}), opts.clone()).await.unwrap();
    let b = q.enqueue(&json!({}), opts).await.unwrap();
    assert_eq!((a.id.as_str(), a.duplicate), ("refresh-1", false));
    assert_eq!((b.id.as_str(), b.duplicate), ("refresh-1", true));
}

#[tokio::test]
async fn higher_priority_runs_first_and_delayed_jobs_wait_until_due() {
    let q = TestQueue::new(QueueConfig::default()).await;
    q.enqueue(
        &json!("low"),
        EnqueueOptions {
            priority: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    q.enqueue(
        &json!("high"),
        EnqueueOptions {
            priority: 0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let delay = EnqueueOptions {
        delay: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let delayed = q.enqueue(&json!("later"), delay).await.unwrap();

    let fetched = q.fetch("w", 10).await.unwrap();
    let order: Vec<_> = fetched.jobs.iter().map(|j| j.payload.as_str()).collect();
    assert_eq!(order, vec![r#""high""#, r#""low""#]);
    let idle = q.fetch("w", 10).await.unwrap();
    assert!(idle.jobs.is_empty());
    assert!(
        idle.next_due_ms.is_some(),
        "an idle fetch says when the delayed job is due"
    );
    assert_eq!(q.get(&delayed.id).await.unwrap().unwrap().state, "delayed");

    eventually(
        Duration::from_secs(3),
        "the delayed job to be fetched",
        || async {
            q.fetch("w", 10)
                .await
                .unwrap()
                .jobs
                .iter()
                .any(|j| j.id == delayed.id)
        },
    )
    .await;
}

#[tokio::test]
async fn bad_options_are_rejected() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let error = q
        .enqueue(
            &json!({}),
            EnqueueOptions {
                priority: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("priority 10"), "{error}");
    let error = q
        .enqueue(
            &json!({}),
            EnqueueOptions {
                max_attempts: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("max_attempts"), "{error}");
    assert_eq!(q.counts().await.unwrap().total, 0);
}

#[tokio::test]
async fn twenty_thousand_due_jobs_are_fetched_without_error() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let delay = EnqueueOptions {
        delay: Some(Duration::from_millis(1)),
        ..Default::default()
    };
    let jobs: Vec<NewJob> = (0..20_000)
        .map(|i| NewJob::new(&i, delay.clone()).unwrap())
        .collect();
    q.enqueue_bulk(&jobs).await.unwrap();
    assert_eq!(q.counts().await.unwrap().delayed, 20_000);
    tokio::time::sleep(Duration::from_millis(5)).await; // all are due after 1 ms

    let mut fetched = 0;
    while fetched < 20_000 {
        let batch = q
            .fetch("w", 1000)
            .await
            .expect("fetch never fails on a large due backlog");
        assert!(!batch.jobs.is_empty(), "made progress ({fetched} so far)");
        fetched += batch.jobs.len();
    }
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.active, counts.delayed, counts.waiting), (20_000, 0, 0));
    assert_eq!(q.list(JobState::Active, 0, 5).await.unwrap().len(), 5);
}
