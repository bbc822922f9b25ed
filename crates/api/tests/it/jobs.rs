//! `/api/jobs` (seed 004): listing, one job, stats, removal and retry.

use reqwest::Method;
use serde_json::json;

use sellersync_core::domain::auth::Role;

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

#[tokio::test]
async fn a_user_token_reads_its_own_jobs_only() {
    let app = spawn_app().await;
    app.add_users(&["own", "other"]).await;
    let jobs = app.enqueue(&["own", "other"]).await;
    let own = app.token("own", Role::User);
    let (status, body) = app
        .call(Method::GET, &format!("/api/jobs/{}", jobs[0]), Some(&own), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["data"]["userId"], "own");
    let (status, body) = app
        .call(Method::GET, &format!("/api/jobs/{}", jobs[1]), Some(&own), None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _) = app.admin_get(&format!("/api/jobs/{}", jobs[1])).await;
    assert_eq!(status, 200, "admins read every job");
    let (status, _) = app.call(Method::GET, "/api/jobs/nope", Some(&own), None).await;
    assert_eq!(status, 404);
    let (status, _) = app.call(Method::GET, "/api/jobs", Some(&own), None).await;
    assert_eq!(status, 403, "listing stays for admins and viewers");
}

#[tokio::test]
async fn enqueue_takes_a_priority_and_a_delay_and_admins_override_and_promote() {
    let app = spawn_app().await;
    app.add_users(&["soon", "later", "urgent"]).await;
    let enqueue = |body: serde_json::Value| app.admin_post("/app/job-status/enqueue", Some(body));

    let (status, body) = enqueue(json!({"userId": "later", "delay": 600_000, "priority": 3})).await;
    assert_eq!(status, 202, "{body}");
    let later = body["data"]["enqueued"][0]["jobId"].as_str().unwrap().to_owned();
    let (_, job) = app.admin_get(&format!("/api/jobs/{later}")).await;
    assert_eq!(
        (job["data"]["state"].as_str(), job["data"]["priority"].as_u64()),
        (Some("delayed"), Some(3))
    );

    let (status, body) = enqueue(json!({"userId": "soon", "priority": 5})).await;
    assert_eq!(status, 202, "{body}");
    let soon = body["data"]["enqueued"][0]["jobId"].as_str().unwrap().to_owned();
    let run_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, body) = enqueue(json!({"userId": "urgent", "runAt": run_at})).await;
    assert_eq!(status, 202, "{body}");
    let urgent = body["data"]["enqueued"][0]["jobId"].as_str().unwrap().to_owned();
    let (_, job) = app.admin_get(&format!("/api/jobs/{urgent}")).await;
    let due = job["data"]["nextRunAtMs"].as_u64().unwrap();
    let in_an_hour = chrono::Utc::now().timestamp_millis() as u64 + 3_600_000;
    assert!(
        due.abs_diff(in_an_hour) < 60_000,
        "due {due}, expected about {in_an_hour}"
    );

    // Promote the delayed jobs: "later" (priority 3) is now ahead of "soon" (5); then the
    // admin override puts "soon" first.
    for id in [&later, &urgent] {
        let (status, body) = app
            .admin_post(&format!("/api/admin/queues/user-data/job/{id}/promote"), None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let path = format!("/api/admin/queues/user-data/job/{soon}/priority");
    let (status, body) = app.admin_post(&path, Some(json!({"priority": 0}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.admin_post(&path, Some(json!({"priority": 10}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let queue = app.queue().await;
    let order: Vec<String> = queue
        .fetch("t", 3)
        .await
        .unwrap()
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(
        order,
        vec![soon.clone(), urgent, later],
        "priority 0 (soon, then urgent by FIFO), then 3"
    );
    let (status, _) = app.admin_post(&path, Some(json!({"priority": 1}))).await;
    assert_eq!(status, 409, "an active job keeps its priority");

    for bad in [
        json!({"userId": "soon", "delay": 1000, "runAt": "2030-01-01T00:00:00Z"}),
        json!({"userId": "soon", "runAt": "tomorrow"}),
        json!({"userId": "soon", "priority": 10}),
        json!({"userId": "soon", "delay": 3_000_000_000_u64}),
    ] {
        let (status, body) = enqueue(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}
