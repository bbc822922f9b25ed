//! Webhook deliveries to a local receiver: signed bodies, retries after 500s, Slack messages,
//! no notification lost when the worker dies mid-delivery, redirects never followed, and private
//! targets (by resolved address) refused unless allowed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use figment::value::Value;
use sellersync_core::infra::connections::connect_redis;
use sellersync_core::infra::secret::Secret;
use sellersync_core::jobs::notify::{
    self, Delivery, DeliveryError, EventType, NOTIFICATIONS_QUEUE, Notification, Notifier, Webhook,
    WebhookClient, signature,
};
use sellersync_queue::{JobState, Queue};
use sellersync_spapi_sim::SimConfig;

use crate::helpers::{Env, env, eventually};

/// What the receiver saw: each request's path, headers and body, and how many it refused per
/// webhook and notification.
#[derive(Default)]
struct Received {
    requests: Vec<(String, HeaderMap, Bytes)>,
    refusals: HashMap<String, u32>,
}

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Received>>,
    /// 500s answered to each notification before a 200.
    fail_first: u32,
    delay: Duration,
}

async fn receive(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let path = uri.path().to_owned();
    let key = format!("{path} {}", headers[notify::ID_HEADER].to_str().unwrap());
    r.seen.lock().unwrap().requests.push((path, headers, body));
    // Recorded on arrival: a request counted here may still be waiting for its answer.
    tokio::time::sleep(r.delay).await;
    let mut seen = r.seen.lock().unwrap();
    let refused = seen.refusals.entry(key).or_default();
    if *refused < r.fail_first {
        *refused += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// A receiver on a random port; its base URL and what it saw.
async fn receiver(fail_first: u32, delay: Duration) -> (String, Arc<Mutex<Received>>) {
    let seen = Arc::new(Mutex::new(Received::default()));
    let state = Receiver {
        seen: Arc::clone(&seen),
        fail_first,
        delay,
    };
    let app = axum::Router::new()
        .route("/{hook}", axum::routing::post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

const OPS_SECRET: &str = "ops-secret-0123456789-0123456789-0123";
const CHAT_SECRET: &str = "chat-secret-0123456789-0123456789-012";

async fn notify_env(base: &str) -> Env {
    let webhooks = serde_json::json!([
        { "name": "ops", "url": format!("{base}/ops"), "secret": OPS_SECRET, "events": ["job.failed"] },
        { "name": "chat", "url": format!("{base}/chat"), "secret": CHAT_SECRET, "format": "slack" },
    ]);
    env(
        SimConfig::default(),
        &[
            ("notifications.webhooks", Value::serialize(webhooks).unwrap()),
            // The receiver listens on loopback.
            ("notifications.allow_private_targets", Value::from(true)),
            ("queues.notifications.backoff_ms", Value::from(50)),
            ("queues.notifications.lease_ms", Value::from(1000)),
            ("queues.notifications.heartbeat_ms", Value::from(200)),
            ("queues.notifications.reap_interval_ms", Value::from(200)),
        ],
    )
    .await
}

async fn deliveries(e: &Env) -> Queue {
    let redis = connect_redis(&e.ns.settings.redis).await.unwrap();
    e.ns.settings.open_queue(redis, NOTIFICATIONS_QUEUE).unwrap()
}

/// Runs a worker until `n` deliveries completed, then stops it.
async fn run_until_delivered(e: &Env, queue: &Queue, n: u64) {
    let (stop, worker) = e.start_worker();
    eventually(Duration::from_secs(30), "deliveries completed", || {
        let queue = queue.clone();
        async move { queue.counts().await.unwrap().completed == n }
    })
    .await;
    let _ = stop.send(());
    worker.await.unwrap();
}

fn notification(kind: EventType, cause: &str) -> Notification {
    Notification::new(
        kind,
        cause,
        format!("{cause} happened"),
        serde_json::json!({ "cause": cause }),
    )
}

#[tokio::test]
async fn deliveries_are_signed_retried_after_500s_and_formatted_per_webhook() {
    let (base, seen) = receiver(2, Duration::ZERO).await;
    let e = notify_env(&base).await;
    let queue = deliveries(&e).await;
    let notifier = Notifier::new(queue.clone(), e.ns.settings.notifications.webhooks.clone());
    let failed = notification(EventType::JobFailed, "job-1");
    let tick = notification(EventType::TickFailed, "tick-1");
    assert_eq!(
        notifier.notify(&[failed.clone(), tick.clone()]).await.unwrap(),
        3,
        "ops wants job.failed only"
    );
    assert_eq!(
        notifier.notify(std::slice::from_ref(&failed)).await.unwrap(),
        0,
        "the same cause is delivered once"
    );
    run_until_delivered(&e, &queue, 3).await;
    let done = queue.list(JobState::Completed, 0, 10).await.unwrap();
    assert!(
        done.iter().all(|j| j.attempts == 3),
        "two failed attempts, then delivered"
    );

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.requests.len(),
        9,
        "each of 3 deliveries: two 500s, then a 200"
    );
    let now = chrono::Utc::now().timestamp();
    for (path, headers, body) in &seen.requests {
        let secret = if path == "/ops" { OPS_SECRET } else { CHAT_SECRET };
        let header = headers[notify::SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(
            signature::verify(secret, header, body, now, 300),
            Ok(()),
            "{header}"
        );
        assert_eq!(
            signature::verify("wrong", header, body, now, 300),
            Err(signature::SignatureError::Mismatch)
        );
    }
    let ops: Vec<Notification> = seen
        .requests
        .iter()
        .filter(|(path, _, _)| path == "/ops")
        .map(|(_, _, body)| serde_json::from_slice(body).unwrap())
        .collect();
    assert_eq!(ops.len(), 3);
    assert!(
        ops.iter().all(|n| *n == failed),
        "the JSON body is the notification"
    );
    let slack: Vec<serde_json::Value> = seen
        .requests
        .iter()
        .filter(|(path, _, _)| path == "/chat")
        .map(|(_, _, body)| serde_json::from_slice(body).unwrap())
        .collect();
    assert_eq!(slack.len(), 6);
    assert!(
        slack
            .iter()
            .any(|m| m["text"].as_str().unwrap().contains("tick-1 happened"))
    );
    assert!(slack.iter().all(|m| m["blocks"].is_array()), "Slack messages");
}

#[tokio::test]
async fn no_notification_is_lost_when_the_worker_dies_mid_delivery() {
    let (base, seen) = receiver(0, Duration::from_millis(300)).await;
    let e = notify_env(&base).await;
    let queue = deliveries(&e).await;
    let notifier = Notifier::new(queue.clone(), e.ns.settings.notifications.webhooks.clone());
    let all: Vec<Notification> = (0..6)
        .map(|i| notification(EventType::QueueUnhealthy, &format!("n{i}")))
        .collect();
    notifier.notify(&all).await.unwrap();
    let (_stop, first) = e.start_worker();
    eventually(Duration::from_secs(20), "a delivery under way", || {
        let seen = Arc::clone(&seen);
        async move { !seen.lock().unwrap().requests.is_empty() }
    })
    .await;
    // A crash: nothing is handed back; the leases expire and another worker takes the jobs.
    first.abort();
    let _ = first.await;
    assert!(
        queue.counts().await.unwrap().completed < 6,
        "the worker died with deliveries unanswered"
    );
    run_until_delivered(&e, &queue, 6).await;
    assert_eq!(queue.counts().await.unwrap().failed, 0);
    let seen = seen.lock().unwrap();
    let mut ids: Vec<String> = seen
        .requests
        .iter()
        .map(|(_, h, _)| h[notify::ID_HEADER].to_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "at least once each: {ids:?}");
}

#[tokio::test]
async fn a_revoked_seller_notifies_reauthorization_and_the_failed_job() {
    let (base, seen) = receiver(0, Duration::ZERO).await;
    let e = notify_env(&base).await;
    e.user("gone", &["REVOKED-1".to_owned()]).await;
    let job = e.enqueue(&["gone".to_owned()]).await.enqueued.remove(0).job_id;
    let queue = deliveries(&e).await;
    // ops: job.failed; chat: both events.
    run_until_delivered(&e, &queue, 3).await;
    let seen = seen.lock().unwrap();
    let bodies = |path: &str| -> Vec<Notification> {
        seen.requests
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, _, body)| serde_json::from_slice(body).unwrap())
            .collect()
    };
    let ops = bodies("/ops");
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].kind, EventType::JobFailed);
    assert_eq!(
        (ops[0].data["jobId"].as_str(), ops[0].data["userId"].as_str()),
        (Some(job.as_str()), Some("gone"))
    );
    let chat: Vec<&str> = seen
        .requests
        .iter()
        .filter(|(p, _, _)| p == "/chat")
        .map(|(_, h, _)| h[notify::EVENT_HEADER].to_str().unwrap())
        .collect();
    assert!(
        chat.contains(&"user.reauthorization_required") && chat.contains(&"job.failed"),
        "{chat:?}"
    );
    let reauth: Vec<serde_json::Value> = seen
        .requests
        .iter()
        .filter(|(_, h, _)| h[notify::EVENT_HEADER] == "user.reauthorization_required")
        .map(|(_, _, body)| serde_json::from_slice(body).unwrap())
        .collect();
    assert!(
        reauth[0]["text"]
            .as_str()
            .unwrap()
            .contains("1 seller accounts of user gone"),
        "{reauth:?}"
    );
}

fn webhook(name: &str, url: &str) -> Webhook {
    Webhook {
        name: name.into(),
        url: Secret::new(url),
        events: Vec::new(),
        secret: Secret::new(OPS_SECRET),
        format: notify::Format::Json,
    }
}

fn delivery_to(name: &str) -> Delivery {
    Delivery {
        webhook: name.into(),
        notification: notification(EventType::JobFailed, "j1"),
    }
}

/// A 307 would re-post the signed body wherever it points (plain http included): it is not
/// followed, and no retry can help.
#[tokio::test]
async fn a_redirect_is_never_followed() {
    let (base, seen) = receiver(0, Duration::ZERO).await;
    let target = format!("{base}/ops");
    let redirector = axum::Router::new().route(
        "/moved",
        axum::routing::post(move || {
            let target = target.clone();
            async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, target)],
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let moved = format!("http://{}/moved", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirector).await.unwrap() });

    let client = WebhookClient::new(true);
    let hooks = [webhook("moved", &moved)];
    let result = notify::deliver(&client, &hooks, &delivery_to("moved"), Duration::from_secs(5)).await;
    match result {
        Err(DeliveryError::Permanent(message)) => assert!(message.contains("307"), "{message}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(
        seen.lock().unwrap().requests.is_empty(),
        "the redirect's target got nothing"
    );
}

/// Without `notifications.allow_private_targets`, a webhook reaches public addresses only; the
/// check is on what the name resolves to (`localhost` is a name, not an address), and on IP
/// literals before sending. Refusals are permanent and say why, without the address.
#[tokio::test]
async fn private_targets_are_refused_by_their_resolved_addresses_unless_allowed() {
    let (base, seen) = receiver(0, Duration::ZERO).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let by_name = format!("http://localhost:{port}/ops");
    let hooks = [
        webhook("name", &by_name),
        webhook("literal", &format!("{base}/ops")),
    ];
    let guarded = WebhookClient::new(false);
    for name in ["name", "literal"] {
        let result = notify::deliver(&guarded, &hooks, &delivery_to(name), Duration::from_secs(5)).await;
        match result {
            Err(DeliveryError::Permanent(message)) => {
                assert!(message.contains("not a public address"), "{name}: {message}");
                assert!(!message.contains("127.0.0.1"), "{name}: {message}");
            }
            other => panic!("{name}: expected a permanent refusal, got {other:?}"),
        }
    }
    assert!(
        seen.lock().unwrap().requests.is_empty(),
        "nothing reached the receiver"
    );
    let allowed = WebhookClient::new(true);
    let status = notify::deliver(&allowed, &hooks, &delivery_to("name"), Duration::from_secs(5)).await;
    assert_eq!(status.unwrap(), 200, "allowed: delivered");
}
