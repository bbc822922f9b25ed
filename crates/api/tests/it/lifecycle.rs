//! JobStatus follows every transition, whoever makes it: an admin removing, retrying and
//! cleaning through the API, the reaper failing a job that stalled too often. (The projector runs
//! in the API process.)

use std::time::Duration;

use figment::value::Value;
use reqwest::Method;
use sellersync_core::testing::eventually;

use crate::helpers::{finish_jobs, spawn_app, spawn_app_with};

#[tokio::test]
async fn removing_a_waiting_job_through_the_api_marks_it_removed() {
    let app = spawn_app().await;
    app.add_users(&["u1"]).await;
    let job = app.enqueue(&["u1"]).await.remove(0);
    app.wait_for_status(&job, "queued").await;

    let (status, body) = app.admin_call(Method::DELETE, &format!("/api/jobs/{job}")).await;
    assert_eq!(status, 200, "{body}");
    let record = app.wait_for_status(&job, "removed").await;
    assert!(record.removed_at.is_some());
    let expire = record.expire_at.expect("a removed record expires");
    assert!(
        expire > chrono::Utc::now() + chrono::TimeDelta::days(6),
        "the failed retention applies"
    );
    // The user can enqueue again at once: the removed job freed its dedup key.
    let again = app.enqueue(&["u1"]).await;
    assert_eq!(again.len(), 1);
}

#[tokio::test]
async fn an_admin_retry_puts_the_record_back_in_line_and_clears_its_failure() {
    let app = spawn_app().await;
    app.add_users(&["u1"]).await;
    let job = app.enqueue(&["u1"]).await.remove(0);
    finish_jobs(&app.queue().await, 1, Err("invalid_grant")).await;
    let failed = app.wait_for_status(&job, "failed").await;
    assert!(failed.failed_at.is_some());
    assert_eq!(failed.last_error.as_deref(), Some("invalid_grant"));

    let (status, body) = app.admin_post(&format!("/api/jobs/{job}/retry"), None).await;
    assert_eq!(status, 200, "{body}");
    let retried = app.wait_for_status(&job, "queued").await;
    assert_eq!((retried.failed_at, retried.last_error.as_deref()), (None, None));
    assert_eq!(retried.retries, 1);
    assert_eq!(retried.errors.len(), 1, "the failed attempt stays in the history");
    let expire = retried.expire_at.expect("a pending record expires too");
    assert!(
        expire > chrono::Utc::now() + chrono::TimeDelta::days(20),
        "the pending retention, not the failed one"
    );

    // Through the admin queue API too, once it failed again.
    finish_jobs(&app.queue().await, 1, Err("invalid_grant again")).await;
    app.wait_for_status(&job, "failed").await;
    let (status, _) = app
        .admin_post(&format!("/api/admin/queues/user-data/job/{job}/retry"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.wait_for_status(&job, "queued").await.retries, 2);
}

#[tokio::test]
async fn a_job_the_reaper_fails_is_failed_in_job_status_and_counted() {
    let app = spawn_app_with(&[
        ("queues.user-data.lease_ms", Value::from(200)),
        ("queues.user-data.heartbeat_ms", Value::from(100)),
        ("queues.user-data.reap_interval_ms", Value::from(100)),
        ("queues.user-data.max_stalls", Value::from(0)),
    ])
    .await;
    app.add_users(&["u1"]).await;
    let job = app.enqueue(&["u1"]).await.remove(0);
    let queue = app.queue().await;
    // A worker takes it and dies without a heartbeat.
    assert_eq!(queue.fetch("dead-worker", 1).await.unwrap().jobs.len(), 1);
    app.wait_for_status(&job, "active").await;
    eventually(Duration::from_secs(5), "the reaper fails it", || async {
        queue.reap().await.unwrap().failed == 1
    })
    .await;

    let record = app.wait_for_status(&job, "failed").await;
    assert_eq!(record.failed_by.as_deref(), Some("reaper"));
    assert!(record.last_error.unwrap().contains("stalled"));
    let (_, body) = app.admin_get("/app/job-status/failed").await;
    assert_eq!(
        body["data"]["jobs"][0]["jobId"],
        job.as_str(),
        "listed among the failed"
    );
    let text = app.scrape().await.text().await.unwrap();
    assert!(
        text.contains("sellersync_queue_jobs_failed_total{queue=\"user-data\"} 1"),
        "counted as a failure"
    );
}

#[tokio::test]
async fn cleaning_finished_jobs_keeps_their_outcome_in_job_status() {
    let app = spawn_app().await;
    app.add_users(&["u1", "u2"]).await;
    let jobs = app.enqueue(&["u1", "u2"]).await;
    let queue = app.queue().await;
    finish_jobs(&queue, 1, Ok(())).await;
    finish_jobs(&queue, 1, Err("boom")).await;
    app.wait_for_status(&jobs[0], "completed").await;
    app.wait_for_status(&jobs[1], "failed").await;

    for state in ["completed", "failed"] {
        let (status, body) = app
            .admin_post(
                "/api/admin/queues/user-data/clean",
                Some(serde_json::json!({ "status": state, "olderThanMs": 0 })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(queue.get(&jobs[0]).await.unwrap().is_none(), "gone from Redis");
    // The cleaned event is projected as nothing: the outcome stands.
    eventually(
        Duration::from_secs(5),
        "the clean events are consumed",
        || async {
            queue
                .event_backlog(sellersync_core::jobs::job_status::projector::GROUP)
                .await
                .unwrap()
                .total()
                == 0
        },
    )
    .await;
    let db = app.db().await;
    let completed = sellersync_core::jobs::job_status::find(&db, &jobs[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(completed.status.as_str(), "completed");
    let failed = sellersync_core::jobs::job_status::find(&db, &jobs[1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status.as_str(), "failed");
}

#[tokio::test]
async fn a_lagging_projection_is_a_health_issue_and_a_metric() {
    let app = spawn_app_with(&[
        ("job_status.projector", Value::from(false)),
        ("job_status.max_lag_ms", Value::from(0)),
    ])
    .await;
    app.add_users(&["u1"]).await;
    app.enqueue(&["u1"]).await;
    tokio::time::sleep(Duration::from_millis(5)).await; // the event is now older than 0 ms
    let (_, body) = app.admin_get("/api/admin/queues/health").await;
    assert_eq!(body["healthy"], false, "{body}");
    let issue = body["issues"][0].as_str().unwrap();
    assert!(
        issue.starts_with("user-data: JobStatus is") && issue.contains("1 events"),
        "{issue}"
    );
    let text = app.scrape().await.text().await.unwrap();
    assert!(
        text.contains("sellersync_job_status_projection_backlog_events{queue=\"user-data\"} 1"),
        "{text}"
    );
}
