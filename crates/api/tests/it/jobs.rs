//! `/api/jobs` (seed 004): listing, one job, stats, removal and retry.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{finish_jobs, spawn_app};

#[tokio::test]
async fn jobs_are_listed_with_queue_state_and_limit_filters() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    app.add_users(&refs).await;
    app.enqueue(&refs).await;
    finish_jobs(&app.queue().await, 5, Ok(())).await;

    let (status, body) = app.admin_get("/api/jobs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Jobs retrieved successfully");
    let data = &body["data"];
    assert_eq!(
        (data["count"].as_u64(), data["total"].as_u64()),
        (Some(50), Some(60)),
        "default limit 50"
    );
    assert_eq!(data["jobs"].as_array().unwrap().len(), 50);

    let (_, body) = app
        .admin_get("/api/jobs?queue=user-data&state=completed&limit=3")
        .await;
    let data = &body["data"];
    assert_eq!(
        (data["count"].as_u64(), data["total"].as_u64()),
        (Some(3), Some(5))
    );
    assert!(
        data["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "completed")
    );

    let (_, body) = app.admin_get("/api/jobs?limit=200").await;
    assert_eq!(body["data"]["count"], 60);
    for bad in [
        "?limit=0",
        "?limit=201",
        "?limit=500",
        "?limit=abc",
        "?state=lost",
        "?queue=email",
    ] {
        let (status, body) = app.admin_get(&format!("/api/jobs{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
}

#[tokio::test]
async fn one_job_is_read_removed_and_retried_with_409s_where_the_state_forbids_it() {
    let app = spawn_app().await;
    app.add_users(&["a", "b", "c"]).await;
    let jobs = app.enqueue(&["a", "b", "c"]).await;
    let queue = app.queue().await;
    let completed = finish_jobs(&queue, 1, Ok(())).await.remove(0);
    let failed = finish_jobs(&queue, 1, Err("invalid_grant")).await.remove(0);
    let active = queue.fetch("test", 1).await.unwrap().jobs.remove(0).id;
    assert!(jobs.contains(&active));

    let (status, body) = app.admin_get(&format!("/api/jobs/{completed}")).await;
    assert_eq!(status, 200, "{body}");
    let job = &body["data"];
    assert_eq!(
        (job["id"].as_str(), job["state"].as_str()),
        (Some(completed.as_str()), Some("completed"))
    );
    for key in [
        "data",
        "progress",
        "attempts",
        "maxAttempts",
        "timestamp",
        "processedOn",
        "finishedOn",
    ] {
        assert!(!job[key].is_null(), "{key} in {job}");
    }

    let (status, body) = app
        .admin_call(Method::POST, &format!("/api/jobs/{completed}/retry"))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")));
    let (status, body) = app
        .admin_call(Method::POST, &format!("/api/jobs/{failed}/retry"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "success": true, "message": "Job retry initiated successfully", "data": { "jobId": failed } })
    );

    let (status, _) = app
        .admin_call(Method::DELETE, &format!("/api/jobs/{active}"))
        .await;
    assert_eq!(status, 409);
    let (status, body) = app
        .admin_call(Method::DELETE, &format!("/api/jobs/{completed}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "success": true, "message": "Job removed successfully", "data": null })
    );
    let (status, _) = app.admin_get(&format!("/api/jobs/{completed}")).await;
    assert_eq!(status, 404);
    let (status, _) = app.admin_call(Method::POST, "/api/jobs/nope/retry").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn stats_all_counts_every_configured_queue() {
    let app = spawn_app().await;
    app.add_users(&["a", "b"]).await;
    app.enqueue(&["a", "b"]).await;
    let (status, body) = app.admin_get("/api/jobs/stats/all").await;
    assert_eq!(status, 200);
    let names: Vec<&String> = body["data"].as_object().unwrap().keys().collect();
    let configured: Vec<&String> = app.settings().queues.keys().collect();
    assert_eq!(names, configured);
    let stats = &body["data"]["user-data"];
    assert_eq!(
        (stats["waiting"].as_u64(), stats["total"].as_u64()),
        (Some(2), Some(2))
    );
}
