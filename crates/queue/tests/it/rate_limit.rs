//! A queue's start limit: however many workers fetch, no more jobs start than it allows in any
//! window, and the jobs over it wait instead of failing.

use std::time::Duration;

use sellersync_queue::rate_limit::max_in_window;
use sellersync_queue::{Ack, EnqueueOptions, JobState, RateLimit};

use crate::helpers::{TestQueue, fast_config};

#[tokio::test]
async fn six_workers_never_start_more_than_the_limit_in_any_window() {
    let limit = RateLimit {
        max: 50,
        interval_ms: 1000,
        burst: None,
    };
    let mut config = fast_config();
    config.rate_limit = Some(limit);
    let q = TestQueue::new(config).await;
    let jobs = 110;
    for i in 0..jobs {
        q.enqueue(&i, EnqueueOptions::default()).await.unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..6 {
        let queue = q.other_handle().await;
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while tokio::time::Instant::now() < deadline {
                let fetched = queue.fetch(&format!("w{w}"), 10).await.unwrap();
                if fetched.jobs.is_empty() {
                    if queue.counts().await.unwrap().waiting == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let acks: Vec<Ack> = fetched
                    .jobs
                    .iter()
                    .map(|j| Ack {
                        id: j.id.clone(),
                        token: j.token,
                        result: "null".into(),
                    })
                    .collect();
                done.extend(queue.complete(&acks).await.unwrap());
            }
            done
        }));
    }
    let mut completed = Vec::new();
    for worker in workers {
        completed.extend(worker.await.unwrap());
    }
    assert_eq!(completed.len(), jobs, "every job ran, none failed");
    let mut starts = Vec::new();
    for id in &completed {
        let job = q.get(id).await.unwrap().unwrap();
        assert_eq!((job.state.as_str(), job.attempts), ("completed", 1));
        starts.push(job.started_at_ms.unwrap());
    }
    let most = max_in_window(&starts, limit.interval_ms);
    assert!(most <= 50, "{most} starts within one second");
    let span = starts.iter().max().unwrap() - starts.iter().min().unwrap();
    assert!(span >= 2000, "110 starts at 50/s take over 2 s, took {span} ms");
    assert_eq!(q.counts().await.unwrap().failed, 0);
    assert!(q.list(JobState::Failed, 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_bucket_says_when_the_next_start_may_go() {
    let mut config = fast_config();
    config.rate_limit = Some(RateLimit {
        max: 1,
        interval_ms: 60_000,
        burst: None,
    });
    let q = TestQueue::new(config).await;
    for i in 0..2 {
        q.enqueue(&i, EnqueueOptions::default()).await.unwrap();
    }
    assert_eq!(q.fetch("w", 10).await.unwrap().jobs.len(), 1, "the one token");
    let now = q.redis_now_ms().await.unwrap();
    let second = q.fetch("w", 10).await.unwrap();
    assert!(second.jobs.is_empty());
    let due = second.next_due_ms.expect("when the next token comes");
    assert!(due > now + 50_000 && due <= now + 61_000, "{due} vs now {now}");
    assert_eq!(q.counts().await.unwrap().waiting, 1, "the second job waits");
}
