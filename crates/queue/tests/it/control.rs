use std::time::Duration;

use sellersync_queue::{Ack, EnqueueOptions, JobState, NewJob, QueueConfig, QueueError};
use serde_json::json;

use crate::helpers::TestQueue;

async fn complete_all(q: &TestQueue, n: usize) {
    let jobs = q.fetch("w", n).await.unwrap().jobs;
    let acks: Vec<Ack> = jobs
        .iter()
        .map(|j| Ack {
            id: j.id.clone(),
            token: j.token,
            result: "1".into(),
        })
        .collect();
    assert_eq!(q.complete(&acks).await.unwrap().len(), jobs.len());
}

#[tokio::test]
async fn remove_refuses_an_active_job_and_removes_others() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let a = q.enqueue(&json!("a"), EnqueueOptions::default()).await.unwrap();
    let b = q.enqueue(&json!("b"), EnqueueOptions::default()).await.unwrap();
    q.fetch("w", 1).await.unwrap();
    let error = q.remove(&a.id).await.unwrap_err();
    assert!(
        matches!(error, QueueError::InvalidState { ref state, .. } if state == "active"),
        "{error}"
    );
    q.remove(&b.id).await.unwrap();
    assert!(q.get(&b.id).await.unwrap().is_none());
    assert!(matches!(
        q.remove(&b.id).await.unwrap_err(),
        QueueError::NotFound(_)
    ));
    assert_eq!(q.counts().await.unwrap().total, 1);
}

#[tokio::test]
async fn retention_trims_completed_jobs_to_the_limit() {
    let q = TestQueue::new(QueueConfig {
        keep_completed: 10,
        ..QueueConfig::default()
    })
    .await;
    let jobs: Vec<NewJob> = (0..50)
        .map(|i| NewJob::new(&i, EnqueueOptions::default()).unwrap())
        .collect();
    let ids = q.enqueue_bulk(&jobs).await.unwrap();
    for _ in 0..5 {
        complete_all(&q, 10).await;
    }
    let completed = q.counts().await.unwrap().completed;
    assert!((10..=11).contains(&completed), "kept {completed}");
    assert!(
        q.get(&ids[0].id).await.unwrap().is_none(),
        "the oldest job's record is gone"
    );
    assert!(q.get(&ids[49].id).await.unwrap().is_some(), "the newest is kept");
}

#[tokio::test]
async fn clean_deletes_finished_jobs_older_than_the_age() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let jobs: Vec<NewJob> = (0..5)
        .map(|i| NewJob::new(&i, EnqueueOptions::default()).unwrap())
        .collect();
    q.enqueue_bulk(&jobs).await.unwrap();
    complete_all(&q, 5).await;
    assert_eq!(
        q.clean(JobState::Completed, Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        q.clean(JobState::Completed, Duration::from_millis(10), 100)
            .await
            .unwrap(),
        5
    );
    assert_eq!(q.counts().await.unwrap().total, 0);
    assert!(q.clean(JobState::Active, Duration::ZERO, 1).await.is_err());
}

#[tokio::test]
async fn failed_jobs_can_be_retried_one_or_many() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let jobs: Vec<NewJob> = (0..4)
        .map(|i| NewJob::new(&i, EnqueueOptions::default()).unwrap())
        .collect();
    let ids = q.enqueue_bulk(&jobs).await.unwrap();
    for job in q.fetch("w", 4).await.unwrap().jobs {
        q.fail(&job.id, job.token, "nope", false).await.unwrap();
    }
    assert_eq!(q.counts().await.unwrap().failed, 4);

    q.retry(&ids[0].id).await.unwrap();
    let info = q.get(&ids[0].id).await.unwrap().unwrap();
    assert_eq!(
        (info.state.as_str(), info.attempts, info.retries),
        ("waiting", 0, 1)
    );
    let error = q.retry(&ids[0].id).await.unwrap_err();
    assert!(
        matches!(error, QueueError::InvalidState { .. }),
        "only failed jobs: {error}"
    );

    assert_eq!(q.retry_failed(2).await.unwrap(), 2);
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.failed), (3, 1));
}

#[tokio::test]
async fn counts_agree_with_listings_after_a_mixed_run() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let jobs: Vec<NewJob> = (0..30)
        .map(|i| NewJob::new(&i, EnqueueOptions::default()).unwrap())
        .collect();
    q.enqueue_bulk(&jobs).await.unwrap();
    let later = EnqueueOptions {
        delay: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    q.enqueue(&json!("later"), later).await.unwrap();
    complete_all(&q, 10).await;
    for job in q.fetch("w", 5).await.unwrap().jobs {
        q.fail(&job.id, job.token, "x", false).await.unwrap();
    }
    q.fetch("w", 3).await.unwrap(); // left active

    let counts = q.counts().await.unwrap();
    assert_eq!(
        (
            counts.waiting,
            counts.active,
            counts.delayed,
            counts.completed,
            counts.failed,
            counts.total
        ),
        (12, 3, 1, 10, 5, 31)
    );
    for (state, expected) in [
        (JobState::Waiting, counts.waiting),
        (JobState::Active, counts.active),
        (JobState::Delayed, counts.delayed),
        (JobState::Completed, counts.completed),
        (JobState::Failed, counts.failed),
    ] {
        let listed = q.list(state, 0, 100).await.unwrap();
        assert_eq!(listed.len() as u64, expected, "{state:?}");
        assert!(listed.iter().all(|j| j.state == state.as_str()), "{state:?}");
    }
    let metrics = q.metrics().await.unwrap();
    assert_eq!(
        (
            metrics.completed_total,
            metrics.failed_total,
            metrics.retried_total
        ),
        (10, 5, 0)
    );
    let histogram = &metrics.duration;
    assert_eq!(histogram.count, 10);
    assert_eq!(histogram.buckets.last(), Some(&(f64::INFINITY, 10)));
    assert!(
        histogram
            .buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "bounds ascend and counts are cumulative: {histogram:?}"
    );
    let page = q.list(JobState::Completed, 0, 3).await.unwrap();
    let next = q.list(JobState::Completed, 3, 3).await.unwrap();
    assert_eq!(page.len() + next.len(), 6);
    assert!(
        page.iter().all(|a| next.iter().all(|b| a.id != b.id)),
        "pages do not overlap"
    );
}

#[tokio::test]
async fn promote_makes_a_delayed_job_due_now_and_refuses_others() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let later = EnqueueOptions {
        delay: Some(Duration::from_secs(3600)),
        ..EnqueueOptions::default()
    };
    let delayed = q.enqueue(&json!("later"), later).await.unwrap();
    let waiting = q.enqueue(&json!("now"), EnqueueOptions::default()).await.unwrap();
    let error = q.promote(&waiting.id).await.unwrap_err();
    assert!(
        matches!(error, QueueError::InvalidState { ref state, .. } if state == "waiting"),
        "{error}"
    );
    q.promote(&delayed.id).await.unwrap();
    assert_eq!(q.get(&delayed.id).await.unwrap().unwrap().state, "waiting");
    let fetched: Vec<String> = q
        .fetch("w", 2)
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(
        fetched,
        vec![waiting.id, delayed.id.clone()],
        "in line behind the waiting one"
    );
    assert!(matches!(
        q.promote("nope").await.unwrap_err(),
        QueueError::NotFound(_)
    ));
}

#[tokio::test]
async fn retry_many_reports_each_id() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let a = q.enqueue(&json!("a"), EnqueueOptions::default()).await.unwrap();
    let job = q.fetch("w", 1).await.unwrap().jobs.remove(0);
    q.fail(&job.id, job.token, "boom", false).await.unwrap();
    let b = q.enqueue(&json!("b"), EnqueueOptions::default()).await.unwrap();
    let outcomes = q
        .retry_many(&[a.id.clone(), b.id.clone(), "nope".into()])
        .await
        .unwrap();
    assert!(outcomes[0].is_ok());
    assert!(matches!(outcomes[1], Err(QueueError::InvalidState { .. })));
    assert!(matches!(outcomes[2], Err(QueueError::NotFound(_))));
    assert_eq!(q.get(&a.id).await.unwrap().unwrap().state, "waiting");
}

#[tokio::test]
async fn finished_jobs_are_counted_per_interval() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 60_000;
    for i in 0..3 {
        q.enqueue(&json!(i), EnqueueOptions::default()).await.unwrap();
    }
    complete_all(&q, 2).await;
    let job = q.fetch("w", 1).await.unwrap().jobs.remove(0);
    q.fail(&job.id, job.token, "boom", false).await.unwrap();
    let completed = q
        .finished_per_bucket(JobState::Completed, start, 60_000, 2)
        .await
        .unwrap();
    let failed = q
        .finished_per_bucket(JobState::Failed, start, 60_000, 2)
        .await
        .unwrap();
    assert_eq!((completed, failed), (vec![0, 2], vec![0, 1]));
    assert!(
        q.finished_per_bucket(JobState::Waiting, start, 1, 1)
            .await
            .is_err()
    );
}
