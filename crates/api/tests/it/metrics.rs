//! `/metrics` parses as Prometheus text and reflects the queue, needs an admin or viewer token, and
//! computes its Redis and MongoDB part once per `server.metrics_cache_ms` however many scrape;
//! `/api/metrics/queues` has the seed's shape.

use std::collections::HashMap;

use figment::value::Value;
use sellersync_core::domain::auth::Role;

use crate::helpers::{TestApp, finish_jobs, spawn_app, spawn_app_with};

fn sample_value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_the_queue() {
    let app = spawn_app().await;
    app.add_users(&["a", "b", "c", "d"]).await;
    app.enqueue(&["a", "b", "c", "d"]).await;
    let queue = app.queue().await;
    finish_jobs(&queue, 2, Ok(())).await;
    finish_jobs(&queue, 1, Err("boom")).await;

    let response = app.scrape().await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");

    let q = ("queue", "user-data");
    let expect: HashMap<(&str, &str), f64> = HashMap::from([
        (("waiting", ""), 1.0),
        (("completed", ""), 2.0),
        (("failed", ""), 1.0),
        (("active", ""), 0.0),
    ]);
    for ((state, _), value) in &expect {
        assert_eq!(
            sample_value(&scrape, "sellersync_queue_jobs", &[q, ("state", state)]),
            Some(*value),
            "{state}"
        );
    }
    assert_eq!(
        sample_value(&scrape, "sellersync_queue_jobs_completed_total", &[q]),
        Some(2.0)
    );
    assert_eq!(
        sample_value(&scrape, "sellersync_queue_jobs_failed_total", &[q]),
        Some(1.0)
    );
    assert_eq!(sample_value(&scrape, "sellersync_queue_paused", &[q]), Some(0.0));
    assert_eq!(
        sample_value(&scrape, "sellersync_queue_job_duration_seconds", &[q]),
        Some(2.0),
        "two completed jobs in the histogram"
    );
    assert_eq!(
        scrape.docs.get("sellersync_queue_jobs").map(String::is_empty),
        Some(false)
    );
    assert_eq!(sample_value(&scrape, "sellersync_queue_workers", &[q]), Some(0.0));
    assert_eq!(
        sample_value(&scrape, "sellersync_queue_oldest_active_job_age_seconds", &[q]),
        Some(0.0),
        "nothing runs"
    );
    assert_eq!(sample_value(&scrape, "sellersync_users_active", &[]), Some(4.0));
    assert_eq!(
        sample_value(&scrape, "sellersync_users_refreshed_last_hour", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample_value(&scrape, "sellersync_build_info", &[("binary", "sellersync-api")]),
        Some(1.0)
    );
    assert!(sample_value(&scrape, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0));

    // The previous scrape was an HTTP request: it is in the next one, labelled by route.
    let text = app.scrape().await.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let seen = sample_value(
        &scrape,
        "sellersync_http_requests_total",
        &[("route", "/metrics"), ("method", "GET"), ("status", "200")],
    );
    assert!(seen.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "sellersync_http_request_duration_seconds"
                && matches!(s.value, prometheus_parse::Value::Histogram(_))),
        "an HTTP latency histogram"
    );
}

#[tokio::test]
async fn queue_metrics_have_counts_per_queue_and_health() {
    let app = spawn_app().await;
    app.add_users(&["a"]).await;
    app.enqueue(&["a"]).await;
    let (status, body) = app.admin_get("/api/metrics/queues").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Queue metrics retrieved");
    let queue = &body["data"]["user-data"];
    for key in [
        "waiting",
        "active",
        "completed",
        "failed",
        "delayed",
        "paused",
        "total",
    ] {
        assert!(queue[key].is_u64(), "{key} in {queue}");
    }
    assert_eq!(queue["waiting"], 1);
    assert_eq!(body["data"]["health"]["status"], "healthy");
    assert_eq!(body["data"]["health"]["message"], "All queues operating normally");
}

#[tokio::test]
async fn the_oldest_active_job_and_live_workers_are_gauges() {
    let app = spawn_app().await;
    app.add_users(&["slow"]).await;
    app.enqueue(&["slow"]).await;
    let queue = app.queue().await;
    let leased = queue.fetch("metrics-worker", 1).await.unwrap().jobs.remove(0);
    queue
        .heartbeat(
            "metrics-worker",
            &serde_json::json!({}),
            &[(leased.id.clone(), leased.token)],
        )
        .await
        .unwrap();
    // The attempt started two minutes ago (as Redis records it).
    let mut redis = sellersync_core::infra::connections::connect_redis(&app.settings().redis)
        .await
        .unwrap();
    let started = queue.redis_now_ms().await.unwrap() - 120_000;
    let key = format!("{}job:{}", queue.key_base(), leased.id);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("sa")
        .arg(started)
        .query_async(&mut redis)
        .await
        .unwrap();

    let text = app.scrape().await.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let q = ("queue", "user-data");
    let age = sample_value(&scrape, "sellersync_queue_oldest_active_job_age_seconds", &[q]).unwrap();
    assert!((120.0..130.0).contains(&age), "{age}");
    assert_eq!(sample_value(&scrape, "sellersync_queue_workers", &[q]), Some(1.0));
}

#[tokio::test]
async fn metrics_need_an_admin_or_viewer_token() {
    let app = spawn_app().await;
    assert_eq!(app.get("/metrics").await.status(), 401);
    let user = app.token("u1", Role::User);
    let (status, body) = app
        .call(reqwest::Method::GET, "/metrics", Some(&user), None)
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &serde_json::json!("forbidden"))
    );
    assert_eq!(app.scrape().await.status(), 200, "a viewer token");
    let (status, _) = app.admin_get("/metrics").await;
    assert_eq!(status, 200, "an admin token");
}

/// The families of one scrape, parsed.
async fn scraped(app: &TestApp) -> prometheus_parse::Scrape {
    let text = app.scrape().await.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn computations(scrape: &prometheus_parse::Scrape) -> f64 {
    sample_value(scrape, "sellersync_api_metrics_computations_total", &[]).expect("the counter")
}

fn waiting(scrape: &prometheus_parse::Scrape) -> f64 {
    let labels = [("queue", "user-data"), ("state", "waiting")];
    sample_value(scrape, "sellersync_queue_jobs", &labels).expect("waiting")
}

#[tokio::test]
async fn a_hundred_parallel_scrapes_cost_one_computation_reused_for_its_ttl() {
    let app = spawn_app_with(&[("server.metrics_cache_ms", Value::from(60_000))]).await;
    let scrapes = futures::future::join_all((0..100).map(|_| scraped(&app))).await;
    let counted: Vec<f64> = scrapes.iter().map(computations).collect();
    assert!(counted.iter().all(|n| *n == 1.0), "{counted:?}");

    app.add_users(&["a"]).await;
    app.enqueue(&["a"]).await;
    let again = scraped(&app).await;
    assert_eq!(
        (computations(&again), waiting(&again)),
        (1.0, 0.0),
        "reused within its TTL"
    );
}

#[tokio::test]
async fn with_no_cache_every_scrape_computes_its_own() {
    let app = spawn_app_with(&[("server.metrics_cache_ms", Value::from(0))]).await;
    assert_eq!(computations(&scraped(&app).await), 1.0);
    app.add_users(&["a"]).await;
    app.enqueue(&["a"]).await;
    let again = scraped(&app).await;
    assert_eq!((computations(&again), waiting(&again)), (2.0, 1.0));
}
