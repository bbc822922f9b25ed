//! The event stream: every transition appends one event in the same script, with the job's new
//! version and state; consumer groups read, acknowledge and claim; trimming never drops an event a
//! group has not acknowledged.

use std::time::Duration;

use sellersync_queue::events::{EventKind, JobEvent, JobSnapshot, ReadFrom, StreamId};
use sellersync_queue::{Ack, EnqueueOptions, QueueConfig};
use serde_json::json;

use crate::helpers::{TestQueue, fast_config};

const GROUP: &str = "test-group";

/// Every event not yet read by the test group.
async fn drain(q: &TestQueue) -> Vec<JobEvent> {
    let mut conn = q.connection().await;
    q.ensure_event_group(GROUP).await.unwrap();
    let mut all = Vec::new();
    loop {
        let batch = q
            .read_events(
                &mut conn,
                GROUP,
                "reader",
                ReadFrom::New,
                100,
                Duration::from_millis(10),
            )
            .await
            .unwrap();
        if batch.is_empty() {
            return all;
        }
        assert!(batch.unreadable.is_empty(), "{:?}", batch.unreadable);
        q.ack_events(GROUP, &batch.stream_ids()).await.unwrap();
        all.extend(batch.events);
    }
}

fn kinds(events: &[JobEvent], id: &str) -> Vec<EventKind> {
    events.iter().filter(|e| e.job_id == id).map(|e| e.kind).collect()
}

#[tokio::test]
async fn a_jobs_life_is_one_event_per_transition_with_growing_versions() {
    let q = TestQueue::new(fast_config()).await;
    let job = q
        .enqueue(
            &json!({ "userId": "u1" }),
            EnqueueOptions {
                max_attempts: Some(5),
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap();
    let leased = q.fetch("w1", 1).await.unwrap().jobs.remove(0);
    assert!(q.set_progress(&job.id, leased.token, 50).await.unwrap());
    q.fail(&job.id, leased.token, "boom", true).await.unwrap();
    // Wait out the short backoff, then run it again and complete it.
    let again = loop {
        let mut fetched = q.fetch("w1", 1).await.unwrap().jobs;
        if let Some(job) = fetched.pop() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let ack = Ack {
        id: job.id.clone(),
        token: again.token,
        result: "{\"ok\":true}".into(),
    };
    assert_eq!(q.complete(&[ack]).await.unwrap(), vec![job.id.clone()]);

    let events = drain(&q).await;
    use EventKind::*;
    assert_eq!(
        kinds(&events, &job.id),
        vec![Enqueued, Active, Progress, Retrying, Promoted, Active, Completed]
    );
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    let enqueued = &events[0];
    assert_eq!(enqueued.data.as_deref(), Some("{\"userId\":\"u1\"}"));
    let retrying = &events[3];
    assert_eq!(retrying.snapshot.state, "delayed");
    assert_eq!(retrying.snapshot.last_error.as_deref(), Some("boom"));
    assert!(retrying.snapshot.due_ms.is_some());
    // A lease and a completion record the whole state too, including what earlier
    // transitions left (the last error, the job's own attempt limit); progress starts over.
    let second = &events[5];
    let expected_active = JobSnapshot {
        state: "active".into(),
        attempt: 2,
        progress: 0,
        worker_id: Some("w1".into()),
        started_at_ms: second.snapshot.started_at_ms.filter(|at| *at >= retrying.at_ms),
        last_error: Some("boom".into()),
        max_attempts: Some(5),
        ..JobSnapshot::default()
    };
    assert_eq!(second.snapshot, expected_active);
    let completed = events.last().unwrap();
    let expected_completed = JobSnapshot {
        state: "completed".into(),
        progress: 100,
        finished_at_ms: Some(completed.at_ms),
        ..expected_active
    };
    assert_eq!(completed.snapshot, expected_completed);
    assert_eq!(completed.result.as_deref(), Some("{\"ok\":true}"));
    assert!(completed.duration_ms.is_some());
}

#[tokio::test]
async fn admin_and_reaper_transitions_are_events_too() {
    let q = TestQueue::new(QueueConfig {
        max_stalls: 0,
        ..fast_config()
    })
    .await;
    let removed = q.enqueue(&json!(1), EnqueueOptions::default()).await.unwrap();
    let duplicate = q
        .enqueue(
            &json!(2),
            EnqueueOptions {
                job_id: Some(removed.id.clone()),
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(duplicate.duplicate);
    q.remove(&removed.id).await.unwrap();

    let stalled = q.enqueue(&json!(3), EnqueueOptions::default()).await.unwrap();
    q.fetch("dead", 1).await.unwrap();
    crate::helpers::eventually(Duration::from_secs(5), "reaped", || async {
        q.reap().await.unwrap().failed == 1
    })
    .await;
    q.retry(&stalled.id).await.unwrap();

    let events = drain(&q).await;
    use EventKind::*;
    assert_eq!(kinds(&events, &removed.id), vec![Enqueued, Deduplicated, Removed]);
    assert_eq!(
        kinds(&events, &stalled.id),
        vec![Enqueued, Active, Failed, Retried]
    );
    let reaped = events.iter().find(|e| e.kind == Failed).unwrap();
    assert_eq!(reaped.failed_by.as_deref(), Some("reaper"));
    assert!(reaped.snapshot.last_error.as_deref().unwrap().contains("stalled"));
    let retried = events.iter().find(|e| e.kind == Retried).unwrap();
    assert_eq!(retried.snapshot.state, "waiting");
    assert!(
        retried.snapshot.last_error.is_none(),
        "a retry clears the failure"
    );
    assert_eq!(retried.snapshot.retries, 1);
    let gone = events.iter().find(|e| e.kind == Removed).unwrap();
    assert_eq!(gone.snapshot.state, "removed");
    assert_eq!(
        q.metrics().await.unwrap().failed_total,
        1,
        "the reaper's failure is counted"
    );
}

#[tokio::test]
async fn trimming_keeps_what_a_group_has_not_acknowledged_and_backlog_measures_it() {
    let q = TestQueue::new(fast_config()).await;
    q.ensure_event_group(GROUP).await.unwrap();
    for n in 0..5 {
        q.enqueue(&json!(n), EnqueueOptions::default()).await.unwrap();
    }
    let backlog = q.event_backlog(GROUP).await.unwrap();
    assert_eq!((backlog.pending, backlog.undelivered), (0, 5));

    let mut conn = q.connection().await;
    let first = q
        .read_events(&mut conn, GROUP, "a", ReadFrom::New, 3, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(first.events.len(), 3);
    q.ack_events(GROUP, &first.stream_ids()[..2]).await.unwrap();
    let backlog = q.event_backlog(GROUP).await.unwrap();
    assert_eq!((backlog.pending, backlog.undelivered), (1, 2));

    q.trim_events().await.unwrap();
    // The unacknowledged third event is still there for a consumer that takes it over.
    let claimed = q
        .claim_stale_events(GROUP, "b", Duration::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(claimed.stream_ids(), vec![first.stream_ids()[2].clone()]);
    let own = q
        .read_events(
            &mut conn,
            GROUP,
            "b",
            ReadFrom::OwnPending,
            10,
            Duration::from_millis(10),
        )
        .await
        .unwrap();
    assert_eq!(
        own.events.len(),
        1,
        "a claimed event is the claimer's own pending"
    );
    q.ack_events(GROUP, &own.stream_ids()).await.unwrap();
    let rest = drain(&q).await;
    assert_eq!(rest.len(), 2, "nothing was trimmed that the group still needed");
    q.trim_events().await.unwrap();
    let backlog = q.event_backlog(GROUP).await.unwrap();
    assert_eq!(backlog.total(), 0);
    assert_eq!(backlog.oldest_age_ms, 0);
}

#[tokio::test]
async fn a_reader_without_a_group_resumes_after_any_id_and_promote_is_an_event() {
    let q = TestQueue::new(QueueConfig::default()).await;
    let mut conn = q.connection().await;
    assert_eq!(q.last_event_id().await.unwrap(), StreamId::ZERO);
    let later = EnqueueOptions {
        delay: Some(Duration::from_secs(3600)),
        ..EnqueueOptions::default()
    };
    let job = q.enqueue(&json!("x"), later).await.unwrap();
    let first = q.last_event_id().await.unwrap();
    q.promote(&job.id).await.unwrap();
    let all = q
        .read_events_after(&mut conn, StreamId::ZERO, 10, None)
        .await
        .unwrap()
        .events;
    assert_eq!(kinds(&all, &job.id), [EventKind::Enqueued, EventKind::Promoted]);
    let after = q
        .read_events_after(&mut conn, first, 10, None)
        .await
        .unwrap()
        .events;
    assert_eq!(kinds(&after, &job.id), [EventKind::Promoted]);
    assert_eq!(after[0].snapshot.state, "waiting");
    let last = StreamId::parse(&after[0].stream_id).unwrap();
    let started = std::time::Instant::now();
    let none = q
        .read_events_after(&mut conn, last, 10, Some(Duration::from_millis(50)))
        .await
        .unwrap();
    assert!(none.is_empty() && started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn the_event_stream_is_capped_whatever_its_groups_have_read_and_the_drop_is_counted() {
    let q = TestQueue::new(fast_config()).await;
    q.ensure_event_group("slow").await.unwrap();
    for n in 0..500 {
        q.enqueue(&json!(n), EnqueueOptions::default()).await.unwrap();
    }
    // The group read nothing: trimming behind it alone would keep all 500 entries.
    let trimmed = q.trim_events_to(50).await.unwrap();
    let left = q.event_stream_len().await.unwrap();
    assert!(trimmed > 0 && left < 500, "{trimmed} trimmed, {left} left");
    assert!(
        left <= 50 + 100,
        "about the cap (trimmed by whole stream nodes): {left}"
    );
    assert_eq!(q.metrics().await.unwrap().events_dropped_total, trimmed);
}
