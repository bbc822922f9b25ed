//! `/api/admin/queues`: health, stats, jobs, a job, retry, remove, pause/resume, clean,
//! retry-failed.

use std::time::Duration;

use figment::value::Value;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{finish_jobs, spawn_app, spawn_app_with};

#[tokio::test]
async fn pause_then_stats_shows_paused_and_resume_clears_it() {
    let app = spawn_app().await;
    app.add_users(&["a", "b"]).await;
    app.enqueue(&["a", "b"]).await;

    let (status, body) = app.admin_post("/api/admin/queues/user-data/pause", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["paused"], true);
    let (status, body) = app.admin_get("/api/admin/queues/user-data/stats").await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Queue statistics retrieved successfully");
    let stats = &body["data"];
    assert_eq!(stats["name"], "user-data");
    assert_eq!(stats["paused"], true);
    assert_eq!(
        (stats["waiting"].as_u64(), stats["total"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(
        app.queue().await.fetch("w", 5).await.unwrap().jobs.is_empty(),
        "paused: nothing to fetch"
    );

    let (status, body) = app.admin_post("/api/admin/queues/user-data/resume", None).await;
    assert_eq!((status, &body["data"]["paused"]), (200, &json!(false)));
    let (_, body) = app.admin_get("/api/admin/queues/stats").await;
    assert_eq!(body["data"]["user-data"]["paused"], false);
    assert_eq!(body["data"]["user-data"]["waiting"], 2);
}

#[tokio::test]
async fn health_reports_each_queue_over_the_configured_thresholds() {
    let app = spawn_app_with(&[
        ("monitoring.failed_threshold", Value::from(1)),
        ("monitoring.waiting_threshold", Value::from(2)),
    ])
    .await;
    let (status, body) = app.admin_get("/api/admin/queues/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["healthy"].as_bool(), body["issues"].as_array().map(Vec::len)),
        (Some(true), Some(0))
    );

    app.add_users(&["a", "b", "c", "d", "e", "f"]).await;
    app.enqueue(&["a", "b", "c", "d", "e", "f"]).await;
    finish_jobs(&app.queue().await, 2, Err("boom")).await;
    let (status, body) = app.admin_get("/api/admin/queues/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["healthy"], false);
    assert_eq!(
        body["issues"],
        json!(["user-data: 2 failed jobs", "user-data: 4 waiting jobs"])
    );
    assert_eq!(body["stats"]["user-data"]["failed"], 2);

    let (_, body) = app.admin_get("/api/metrics/queues").await;
    assert_eq!(body["data"]["health"]["status"], "unhealthy");
    assert_eq!(
        body["data"]["health"]["message"],
        "user-data: 2 failed jobs; user-data: 4 waiting jobs"
    );
}

#[tokio::test]
async fn jobs_are_listed_by_status_and_one_job_is_read_retried_and_removed() {
    let app = spawn_app().await;
    app.add_users(&["a", "b", "c"]).await;
    app.enqueue(&["a", "b", "c"]).await;
    let queue = app.queue().await;
    let completed = finish_jobs(&queue, 1, Ok(())).await.remove(0);
    let failed = finish_jobs(&queue, 1, Err("boom")).await.remove(0);

    let (status, body) = app
        .admin_get("/api/admin/queues/user-data/jobs?status=failed")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["data"]["count"].as_u64(), body["data"]["total"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(body["data"]["jobs"][0]["id"], failed.as_str());
    assert_eq!(body["data"]["jobs"][0]["failedReason"], "boom");
    let (_, body) = app.admin_get("/api/admin/queues/user-data/jobs").await;
    assert_eq!(
        (body["data"]["count"].as_u64(), body["data"]["total"].as_u64()),
        (Some(3), Some(3))
    );

    let base = "/api/admin/queues/user-data/job";
    let (status, body) = app.admin_get(&format!("{base}/{completed}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["state"], "completed");
    assert_eq!(body["data"]["progress"], 100);
    assert!(body["data"]["finishedOn"].as_u64().is_some());

    let (status, body) = app.admin_post(&format!("{base}/{completed}/retry"), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let (status, body) = app.admin_post(&format!("{base}/{failed}/retry"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["jobId"], failed.as_str());
    assert_eq!(queue.get(&failed).await.unwrap().unwrap().state, "waiting");

    let active = queue.fetch("test", 1).await.unwrap().jobs.remove(0).id;
    let (status, _) = app.admin_call(Method::DELETE, &format!("{base}/{active}")).await;
    assert_eq!(status, 409, "a running job is not removed");
    let (status, body) = app
        .admin_call(Method::DELETE, &format!("{base}/{completed}"))
        .await;
    assert_eq!((status, &body["data"]), (200, &json!(null)));
    let (status, _) = app.admin_get(&format!("{base}/{completed}")).await;
    assert_eq!(status, 404);

    for bad in ["?status=exploded", "?limit=0", "?limit=abc"] {
        let (status, _) = app
            .admin_get(&format!("/api/admin/queues/user-data/jobs{bad}"))
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, body) = app.admin_get("/api/admin/queues/email/stats").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn retry_failed_honours_the_limit_and_clean_removes_old_finished_jobs() {
    let app = spawn_app().await;
    let users = ["a", "b", "c", "d", "e"];
    app.add_users(&users).await;
    app.enqueue(&users).await;
    let queue = app.queue().await;
    finish_jobs(&queue, 3, Err("boom")).await;
    finish_jobs(&queue, 2, Ok(())).await;

    let path = "/api/admin/queues/user-data/jobs/retry-failed";
    let (status, body) = app.admin_post(path, Some(json!({ "limit": 2 }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["retried"], 2);
    assert_eq!(queue.counts().await.unwrap().failed, 1);
    let (status, _) = app.admin_post(path, Some(json!({ "limit": 0 }))).await;
    assert_eq!(status, 400);
    let (_, body) = app.admin_post(path, None).await;
    assert_eq!(body["data"]["retried"], 1, "default limit");

    let clean = "/api/admin/queues/user-data/clean";
    let (_, body) = app.admin_post(clean, None).await;
    assert_eq!(
        body["data"]["removed"], 0,
        "the default age keeps jobs finished just now"
    );
    let (status, body) = app
        .admin_post(
            clean,
            Some(json!({ "grace": 0, "status": "completed", "limit": 10 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["removed"], 2);
    assert_eq!(queue.counts().await.unwrap().completed, 0);
    for bad in [
        json!({ "status": "active" }),
        json!({ "olderThanMs": -1 }),
        json!({ "age": 1 }),
    ] {
        let (status, body) = app.admin_post(clean, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
}

#[tokio::test]
async fn health_reports_stuck_active_jobs_and_a_failure_rate_above_the_threshold() {
    let app = spawn_app_with(&[
        ("monitoring.failure_rate_min_finished", Value::from(4)),
        ("worker.job_timeout_ms", Value::from(100)),
    ])
    .await;
    app.add_users(&["a", "b", "c", "d", "e"]).await;
    app.enqueue(&["a", "b", "c", "d", "e"]).await;
    let queue = app.queue().await;
    finish_jobs(&queue, 3, Ok(())).await;
    finish_jobs(&queue, 1, Err("boom")).await;
    queue.fetch("slow-worker", 1).await.unwrap();
    let (_, body) = app.admin_get("/api/admin/queues/health").await;
    assert_eq!(
        body["issues"],
        json!(["user-data: 25% of the 4 jobs finished in the last 15 min failed"]),
        "the active job is not stuck yet: {body}"
    );
    assert_eq!(body["activity"]["user-data"]["failureRate"], 0.25);
    // Running longer than the job timeout: stuck.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let (_, body) = app.admin_get("/api/admin/queues/health").await;
    assert_eq!(body["healthy"], false);
    assert_eq!(
        body["issues"][0],
        "user-data: 1 active jobs running longer than the job timeout"
    );
    let (_, body) = app.admin_get("/api/metrics/queues").await;
    let message = body["data"]["health"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 active jobs running longer") && message.contains("25%"),
        "{message}"
    );
    let text = app.scrape().await.text().await.unwrap();
    assert!(
        text.contains("sellersync_queue_stuck_active_jobs{queue=\"user-data\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sellersync_queue_failure_rate{queue=\"user-data\"} 0.25"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unhealthy_queue_is_notified_once_until_it_recovers() {
    let webhooks = json!([{ "name": "ops", "url": "http://127.0.0.1:9/hook",
        "secret": "ops-secret-0123456789-0123456789-0123", "events": ["queue.unhealthy"] }]);
    let app = spawn_app_with(&[
        ("notifications.webhooks", Value::serialize(webhooks).unwrap()),
        ("notifications.allow_private_targets", Value::from(true)),
        ("notifications.health_check_interval_ms", Value::from(50)),
        ("monitoring.failed_threshold", Value::from(0)),
    ])
    .await;
    let settings = app.settings();
    let redis = sellersync_core::infra::connections::connect_redis(&settings.redis)
        .await
        .unwrap();
    let name = sellersync_core::jobs::notify::NOTIFICATIONS_QUEUE;
    let deliveries = settings.open_queue(redis, name).unwrap();
    let pending = || async { deliveries.counts().await.unwrap().total };
    let wait_for = |n: u64| async move {
        sellersync_core::testing::eventually(Duration::from_secs(10), "notifications", || async {
            pending().await == n
        })
        .await;
    };
    app.add_users(&["a", "b"]).await;
    app.enqueue(&["a", "b"]).await;
    let queue = app.queue().await;
    let failed = finish_jobs(&queue, 1, Err("boom")).await.remove(0);
    wait_for(1).await;
    let listed = deliveries
        .list(sellersync_queue::JobState::Waiting, 0, 10)
        .await
        .unwrap();
    let notification = &listed[0].data["notification"];
    assert_eq!(notification["type"], "queue.unhealthy");
    assert_eq!(
        notification["data"]["issues"],
        json!(["user-data: 1 failed jobs"])
    );
    assert!(
        !listed[0].data.to_string().contains("127.0.0.1:9"),
        "neither URL nor secret goes to Redis"
    );
    // Still unhealthy a few checks later (every 50 ms): not told again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pending().await, 1);
    // Healthy, then unhealthy again: told again.
    let (status, _) = app
        .admin_call(Method::DELETE, &format!("/api/jobs/{failed}"))
        .await;
    assert_eq!(status, 200);
    let key = format!("{}notify:unhealthy", settings.redis.key_prefix);
    sellersync_core::testing::eventually(Duration::from_secs(10), "seen healthy", || async {
        let mut redis = deliveries.connection();
        !redis::AsyncCommands::exists::<_, bool>(&mut redis, &key)
            .await
            .unwrap()
    })
    .await;
    finish_jobs(&queue, 1, Err("boom")).await;
    wait_for(2).await;
}

#[tokio::test]
async fn the_failure_rate_counts_only_the_span_retention_still_keeps() {
    let app = spawn_app_with(&[
        ("monitoring.failure_rate_min_finished", Value::from(2)),
        ("queues.user-data.keep_completed", Value::from(3)),
    ])
    .await;
    let users: Vec<String> = (0..11).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    app.add_users(&refs).await;
    app.enqueue(&refs).await;
    let queue = app.queue().await;
    finish_jobs(&queue, 1, Err("boom")).await;
    // Ten completions after the failure; Redis keeps the newest three.
    for _ in 0..10 {
        finish_jobs(&queue, 1, Ok(())).await;
    }
    let (_, body) = app.admin_get("/api/admin/queues/health").await;
    let activity = &body["activity"]["user-data"];
    assert_eq!(
        (
            activity["finishedInWindow"].as_u64(),
            activity["failedInWindow"].as_u64()
        ),
        (Some(3), Some(0)),
        "1 failed of 4 kept would read 25%; of the span kept, none failed: {body}"
    );
    assert!(
        body["issues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| !i.as_str().unwrap().contains("failed")),
        "{body}"
    );
}
