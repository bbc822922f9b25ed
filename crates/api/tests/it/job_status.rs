//! `/app/job-status`: manual enqueue, a user's status, a job's status, recent, failed, stats.

use reqwest::Method;
use sellersync_core::domain::auth::Role;
use serde_json::json;

use crate::helpers::{finish_jobs, spawn_app};

#[tokio::test]
async fn manual_enqueue_returns_job_ids_duplicates_and_unknown_users() {
    let app = spawn_app().await;
    app.add_users(&["u1", "u2"]).await;
    let path = "/app/job-status/enqueue";

    let (status, body) = app.admin_post(path, Some(json!({ "userId": "u1" }))).await;
    assert_eq!(status, 202, "{body}");
    let first = body["data"]["enqueued"][0]["jobId"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["enqueued"][0]["userId"], "u1");

    let (status, body) = app
        .admin_post(path, Some(json!({ "userIds": ["u1", "u2", "ghost", "u2"] })))
        .await;
    assert_eq!(status, 202, "{body}");
    let data = &body["data"];
    assert_eq!(data["duplicates"], json!([{ "userId": "u1", "jobId": first }]));
    assert_eq!(data["enqueued"].as_array().unwrap().len(), 1);
    assert_eq!(data["enqueued"][0]["userId"], "u2");
    assert_eq!(data["unknownUsers"], json!(["ghost"]));
    assert_eq!(body["message"], "1 enqueued, 1 already pending, 1 unknown");

    let (status, body) = app.admin_post(path, Some(json!({ "userId": "ghost" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(app.queue().await.counts().await.unwrap().waiting, 2);
}

#[tokio::test]
async fn manual_enqueue_rejects_bad_bodies_with_400_413_and_415() {
    let app = spawn_app().await;
    let path = "/app/job-status/enqueue";
    let too_many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    for body in [
        json!({}),
        json!({ "userIds": [] }),
        json!({ "userId": "a", "userIds": ["b"] }),
        json!({ "userId": "" }),
        json!({ "userId": 5 }),
        json!({ "userIds": too_many }),
        json!({ "user": "a" }),
        json!([1, 2]),
    ] {
        let (status, response) = app.admin_post(path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body} -> {response}");
        assert_eq!(response["success"], false);
        assert_eq!(response["error"]["code"], "bad_request");
    }
    let not_json = app
        .client
        .post(app.url(path))
        .bearer_auth(app.admin())
        .body("userId=u1")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    let body: serde_json::Value = not_json.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    let huge = json!({ "userId": "x".repeat(2 * 1024 * 1024) });
    let (status, body) = app.admin_post(path, Some(huge)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}

#[tokio::test]
async fn a_user_reads_its_own_status_with_history_and_not_another_users() {
    let app = spawn_app().await;
    app.add_users(&["u1", "u2"]).await;
    let job = app.enqueue(&["u1"]).await.remove(0);
    app.wait_for_status(&job, "queued").await;

    let own = app.token("u1", Role::User);
    let (status, body) = app
        .call(Method::GET, "/app/job-status/status/user/u1", Some(&own), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let data = &body["data"];
    assert_eq!(data["userId"], "u1");
    assert_eq!(data["latest"]["jobId"], job.as_str());
    assert_eq!(data["latest"]["status"], "queued");
    assert_eq!(data["latest"]["trigger"], "api");
    assert_eq!(data["history"].as_array().unwrap().len(), 1);
    assert!(data["lastDataUpdateAt"].is_null());
    assert_eq!(data["needsReauthorization"], false);
    assert_eq!(data["accounts"], json!([]));

    let (status, body) = app
        .call(Method::GET, "/app/job-status/status/user/u2", Some(&own), None)
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));

    let (status, _) = app.admin_get("/app/job-status/status/user/u2").await;
    assert_eq!(status, 200, "admins read anyone");
    let (status, body) = app.admin_get("/app/job-status/status/user/nobody").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _) = app.admin_get("/app/job-status/status/user/u1?limit=0").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_job_status_shows_the_record_and_the_live_queue_entry() {
    let app = spawn_app().await;
    app.add_users(&["u1"]).await;
    let job = app.enqueue(&["u1"]).await.remove(0);
    app.wait_for_status(&job, "queued").await;
    let (status, body) = app.admin_get(&format!("/app/job-status/status/job/{job}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["jobId"], job.as_str());
    assert_eq!(body["data"]["status"], "queued");
    assert_eq!(body["data"]["queueJob"]["state"], "waiting");
    assert_eq!(body["data"]["queueJob"]["data"]["userId"], "u1");

    let (status, body) = app.admin_get("/app/job-status/status/job/nope").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn recent_and_failed_list_jobs_newest_first_and_validate_queries() {
    let app = spawn_app().await;
    app.add_users(&["a", "b", "c"]).await;
    let jobs = app.enqueue(&["a", "b", "c"]).await;
    for job in &jobs {
        app.wait_for_status(job, "queued").await;
    }
    let failed = finish_jobs(&app.queue().await, 1, Err("invalid_grant")).await;
    assert_eq!(failed, vec![jobs[0].clone()], "the oldest job goes first");
    app.wait_for_status(&jobs[0], "failed").await;

    let (status, body) = app.admin_get("/app/job-status/recent?limit=2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["count"], 2);
    assert_eq!(
        body["data"]["jobs"][0]["jobId"],
        jobs[0].as_str(),
        "most recently updated first"
    );

    let (_, body) = app.admin_get("/app/job-status/recent?status=queued").await;
    let queued: Vec<&str> = body["data"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(queued.len(), 2);
    assert!(!queued.contains(&jobs[0].as_str()));

    let (status, body) = app.admin_get("/app/job-status/failed?limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["count"], 1);
    assert_eq!(body["data"]["jobs"][0]["lastError"], "invalid_grant");
    assert_eq!(body["data"]["jobs"][0]["errors"][0]["attempt"], 1);

    for bad in [
        "/app/job-status/recent?limit=0",
        "/app/job-status/recent?limit=500",
        "/app/job-status/recent?limit=abc",
        "/app/job-status/recent?status=exploded",
        "/app/job-status/failed?limit=-1",
        "/app/job-status/failed?limit=201",
    ] {
        let (status, body) = app.admin_get(bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn queue_stats_has_the_seed_shape() {
    let app = spawn_app().await;
    app.add_users(&["a", "b", "c", "d"]).await;
    app.enqueue(&["a", "b", "c", "d"]).await;
    let queue = app.queue().await;
    finish_jobs(&queue, 1, Ok(())).await;
    finish_jobs(&queue, 1, Err("boom")).await;
    queue.fetch("test", 1).await.unwrap();

    let (status, body) = app.admin_get("/app/job-status/queue/stats").await;
    assert_eq!(status, 200, "{body}");
    for (key, value) in [
        ("waiting", 1),
        ("active", 1),
        ("completed", 1),
        ("failed", 1),
        ("delayed", 0),
        ("total", 4),
    ] {
        assert_eq!(body[key], value, "{key} in {body}");
    }
}

#[tokio::test]
async fn a_failing_jobs_record_shows_its_user_the_public_message_only_and_admins_both() {
    let app = spawn_app().await;
    app.add_users(&["u1"]).await;
    let job = app.enqueue(&["u1"]).await.remove(0);
    let internal = "Server selection timeout: No available servers. Topology: { Servers: [ { Address: 10.0.0.5:27017 } ] }";
    finish_jobs(&app.queue().await, 1, Err(internal)).await;
    app.wait_for_status(&job, "failed").await;

    let own = app.token("u1", Role::User);
    for path in [
        "/app/job-status/status/user/u1".to_owned(),
        format!("/api/jobs/{job}"),
    ] {
        let (status, body) = app.call(Method::GET, &path, Some(&own), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = body.to_string();
        for hidden in ["10.0.0.5", "Topology", "Server selection", "lastError"] {
            assert!(
                !text.contains(hidden),
                "{hidden} shown to the user by {path}: {text}"
            );
        }
        let record = body["data"].get("latest").unwrap_or(&body["data"]);
        assert!(record["workerId"].is_null(), "{path}: {record}");
    }
    let (_, body) = app
        .call(Method::GET, "/app/job-status/status/user/u1", Some(&own), None)
        .await;
    let latest = &body["data"]["latest"];
    assert_eq!(latest["publicError"], "failed after 1 attempt", "{latest}");
    assert_eq!(latest["errors"][0]["publicMessage"], "failed after 1 attempt");
    assert!(latest["errors"][0].get("message").is_none(), "{latest}");
    let (_, body) = app
        .call(Method::GET, &format!("/api/jobs/{job}"), Some(&own), None)
        .await;
    assert_eq!(body["data"]["failedReason"], "failed after 1 attempt", "{body}");

    for path in [
        "/app/job-status/status/user/u1".to_owned(),
        format!("/app/job-status/status/job/{job}"),
    ] {
        let (_, body) = app.admin_get(&path).await;
        let record = body["data"].get("latest").unwrap_or(&body["data"]);
        assert_eq!(
            record["lastError"], internal,
            "admins see the internal detail: {path}"
        );
        assert_eq!(record["publicError"], "failed after 1 attempt", "{path}");
        assert_eq!(record["errors"][0]["message"], internal, "{path}");
        assert_eq!(record["errors"][0]["publicMessage"], "failed after 1 attempt");
        assert!(record["workerId"].is_string(), "{path}: {record}");
    }
    let (_, body) = app.admin_get(&format!("/api/jobs/{job}")).await;
    assert_eq!(body["data"]["failedReason"], internal);
}

#[tokio::test]
async fn a_users_status_says_which_accounts_are_current_and_why_the_others_are_not() {
    let app = spawn_app().await;
    app.add_users(&["u1"]).await;
    let now = mongodb::bson::DateTime::now();
    let earlier = mongodb::bson::DateTime::from_millis(now.timestamp_millis() - 3_600_000);
    let outcomes = mongodb::bson::doc! {
        "acct-ok": { "status": "ok", "at": now, "refreshedAt": now, "missingRoles": ["getInventorySummaries"] },
        "acct-denied": { "status": "missingRole", "at": now, "refreshedAt": earlier,
            "error": "the seller has not granted the role searchOrders needs", "missingRoles": ["searchOrders"],
            "requestId": "amzn-req-1" },
    };
    app.db()
        .await
        .collection::<mongodb::bson::Document>("users")
        .update_one(
            mongodb::bson::doc! { "_id": "u1" },
            mongodb::bson::doc! { "$set": { "accountOutcomes": outcomes, "lastDataUpdateAt": now } },
        )
        .await
        .unwrap();

    let own = app.token("u1", Role::User);
    let (status, body) = app
        .call(Method::GET, "/app/job-status/status/user/u1", Some(&own), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(
        (data["accountsCurrent"].as_u64(), data["accountsTotal"].as_u64()),
        (Some(1), Some(2))
    );
    let denied = &data["accounts"][0];
    assert_eq!(denied["accountId"], "acct-denied");
    assert_eq!(
        (denied["status"].as_str(), denied["current"].as_bool()),
        (Some("missingRole"), Some(false))
    );
    assert_eq!(denied["missingRoles"], json!(["searchOrders"]));
    assert_eq!(
        denied["error"],
        sellersync_core::jobs::job_status::public::ROLE_NOT_GRANTED
    );
    assert!(
        denied.get("requestId").is_none(),
        "Amazon's request id is for admins"
    );
    assert!(denied["lastRefreshedAt"].is_string(), "how old its data is");
    let refreshed = &data["accounts"][1];
    assert_eq!(
        (refreshed["current"].as_bool(), refreshed["missingRoles"].clone()),
        (Some(true), json!(["getInventorySummaries"]))
    );

    let (_, body) = app.admin_get("/app/job-status/status/user/u1").await;
    let denied = &body["data"]["accounts"][0];
    assert_eq!(denied["requestId"], "amzn-req-1");
    assert!(
        denied["error"].as_str().unwrap().contains("searchOrders"),
        "the detail for admins"
    );
}
