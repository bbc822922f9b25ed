//! `GET /api/events`: live transitions as Server-Sent Events, in order, resumable with
//! `Last-Event-ID`, a user token held to its own jobs, bounded per client.

use std::time::Duration;

use figment::value::Value;
use futures::StreamExt;
use sellersync_core::domain::auth::Role;
use serde_json::Value as Json;

use crate::helpers::{TestApp, finish_jobs, spawn_app, spawn_app_with, spawn_stoppable_app_with};

/// A client of an event stream: parses `id:` / `data:` blocks, skips heartbeats.
pub struct SseClient {
    body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
}

/// One event: the cursor to resume after it, and its JSON.
pub struct Received {
    pub id: String,
    pub data: Json,
}

impl SseClient {
    pub async fn connect(app: &TestApp, query: &str, token: &str, last_event_id: Option<&str>) -> Self {
        let mut request = app
            .client
            .get(app.url(&format!("/api/events{query}")))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("connected");
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event, waiting up to 10 s.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.next_event())
            .await
            .expect("an event within 10 s")
    }

    async fn next_event(&mut self) -> Received {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return event;
                }
            }
            let chunk = self
                .body
                .next()
                .await
                .expect("the stream stays open")
                .expect("a chunk");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// True when the stream ends (the server closed it) within 10 s, whatever comes before.
    pub async fn ends(&mut self) -> bool {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(chunk) = self.body.next().await {
                if chunk.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }

    /// Events until one of kind `event` (any job); returns them all.
    pub async fn until_event(&mut self, event: &str) -> Vec<Received> {
        let mut seen = Vec::new();
        loop {
            let next = self.next().await;
            let done = next.data["event"] == event;
            seen.push(next);
            if done {
                return seen;
            }
        }
    }

    /// Events until one for `job` with `event`; returns them all.
    pub async fn until(&mut self, job: &str, event: &str) -> Vec<Received> {
        let mut seen = Vec::new();
        loop {
            let next = self.next().await;
            let done = next.data["jobId"] == job && next.data["event"] == event;
            seen.push(next);
            if done {
                return seen;
            }
        }
    }
}

fn parse_block(block: &str) -> Option<Received> {
    let mut id = None;
    let mut data = None;
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data = Some(serde_json::from_str(v.trim()).expect("JSON data"));
        }
    }
    Some(Received { id: id?, data: data? })
}

fn kinds_of(events: &[Received], job: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.data["jobId"] == job)
        .map(|e| e.data["event"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn admins_see_every_transition_in_order_and_resume_after_a_disconnect() {
    let app = spawn_app().await;
    app.add_users(&["u1"]).await;
    let mut live = SseClient::connect(&app, "", &app.admin(), None).await;
    let job = app.enqueue(&["u1"]).await.remove(0);
    let enqueued = live.until(&job, "enqueued").await.pop().unwrap();
    assert_eq!(enqueued.data["userId"], "u1", "the user comes from the payload");
    assert_eq!(enqueued.data["queue"], "user-data");
    assert_eq!(enqueued.data["state"], "waiting");
    drop(live);

    // While nobody listens, the job runs and completes.
    finish_jobs(&app.queue().await, 1, Ok(())).await;
    let mut resumed = SseClient::connect(&app, "", &app.admin(), Some(&enqueued.id)).await;
    let missed = resumed.until(&job, "completed").await;
    assert_eq!(
        kinds_of(&missed, &job),
        ["active", "completed"],
        "nothing lost, nothing repeated"
    );
    let versions: Vec<u64> = missed
        .iter()
        .map(|e| e.data["version"].as_u64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(
        missed[1].data["userId"], "u1",
        "known for events without a payload too"
    );
}

#[tokio::test]
async fn a_client_that_stops_inside_a_batch_resumes_right_after_the_event_it_saw() {
    let app = spawn_app().await;
    app.add_users(&["a", "b", "c"]).await;
    let mut live = SseClient::connect(&app, "", &app.admin(), None).await;
    let jobs = app.enqueue(&["a", "b", "c"]).await;
    let first = live.next().await;
    let second = live.next().await;
    assert_eq!(
        first.data["streamId"], second.data["streamId"],
        "one enqueue call is one stream entry"
    );
    assert_ne!(first.id, second.id, "but each event has its own cursor");
    drop(live);

    let mut resumed = SseClient::connect(&app, "", &app.admin(), Some(&second.id)).await;
    let next = resumed.next().await;
    assert_eq!(
        (next.data["jobId"].as_str(), next.data["event"].as_str()),
        (Some(jobs[2].as_str()), Some("enqueued")),
        "the third job's event, not the first two again"
    );
}

#[tokio::test]
async fn a_user_token_sees_only_its_own_jobs_and_filters_apply() {
    let app = spawn_app().await;
    app.add_users(&["alice", "bob"]).await;
    let alice = app.token("alice", Role::User);
    let (status, _) = app
        .call(reqwest::Method::GET, "/api/events?user=bob", Some(&alice), None)
        .await;
    assert_eq!(status, 403);
    let mut own = SseClient::connect(&app, "", &alice, None).await;
    let mut failed_only = SseClient::connect(&app, "?state=failed&queue=user-data", &app.admin(), None).await;
    let bob_job = app.enqueue(&["bob"]).await.remove(0);
    let alice_job = app.enqueue(&["alice"]).await.remove(0);
    let first = own.next().await;
    assert_eq!(
        first.data["jobId"],
        alice_job.as_str(),
        "bob's job was never sent"
    );
    assert_eq!(first.data["userId"], "alice");

    finish_jobs(&app.queue().await, 2, Err("boom")).await;
    let failed = failed_only.next().await;
    assert_eq!(failed.data["state"], "failed");
    assert_eq!(
        failed.data["jobId"],
        bob_job.as_str(),
        "enqueued and active events were filtered out"
    );
    assert_eq!(failed.data["error"], "boom");
}

/// Retention and `clean` write one `cleaned` event for a whole batch of deleted jobs (about 100 of
/// them, of many users). A user token gets it cut down to its own jobs, and never another user's
/// job id or user id; an admin gets it whole.
#[tokio::test]
async fn a_cleaned_batch_of_three_users_jobs_is_cut_down_to_each_users_own_and_admins_see_it_whole() {
    let app = spawn_app().await;
    let users = ["alice", "bob", "carol"];
    app.add_users(&users).await;
    let mut admin = SseClient::connect(&app, "", &app.admin(), None).await;
    let mut own = Vec::new();
    for user in users {
        own.push(SseClient::connect(&app, "", &app.token(user, Role::User), None).await);
    }
    let jobs = app.enqueue(&users).await;
    finish_jobs(&app.queue().await, 3, Ok(())).await;
    let (status, body) = app
        .admin_post(
            "/api/admin/queues/user-data/clean",
            Some(serde_json::json!({ "olderThanMs": 0, "status": "completed" })),
        )
        .await;
    assert_eq!(
        (status, &body["data"]["removed"]),
        (200, &Json::from(3)),
        "{body}"
    );

    let whole = admin.until_event("cleaned").await.pop().unwrap();
    let mut all: Vec<&str> = whole.data["jobIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    all.sort_unstable();
    let mut expected: Vec<&str> = jobs.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(all, expected, "one event for the whole batch: {}", whole.data);
    assert_eq!(whole.data["userId"], Json::Null, "three users, not one");

    for ((user, job), client) in users.iter().zip(&jobs).zip(&mut own) {
        let seen = client.until_event("cleaned").await;
        let cleaned = &seen.last().unwrap().data;
        assert_eq!(cleaned["jobIds"], serde_json::json!([job]), "{user}: {cleaned}");
        assert_eq!(
            (&cleaned["jobId"], &cleaned["userId"]),
            (&Json::from(job.as_str()), &Json::from(*user))
        );
        for event in &seen {
            let text = event.data.to_string();
            for (other, other_job) in users.iter().zip(&jobs).filter(|(u, _)| *u != user) {
                assert!(
                    !text.contains(other) && !text.contains(other_job.as_str()),
                    "{user} was sent {other}'s job: {text}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_user_token_gets_the_public_message_of_a_failure_admins_the_internal_detail() {
    let app = spawn_app().await;
    app.add_users(&["alice"]).await;
    let alice = app.token("alice", Role::User);
    let mut own = SseClient::connect(&app, "?state=failed", &alice, None).await;
    let mut admin = SseClient::connect(&app, "?state=failed", &app.admin(), None).await;
    let job = app.enqueue(&["alice"]).await.remove(0);
    let internal = "Kind: I/O error: Connection refused (os error 111), mongo-1.internal:27017";
    finish_jobs(&app.queue().await, 1, Err(internal)).await;
    let seen = own.until(&job, "failed").await.pop().unwrap();
    assert_eq!(seen.data["error"], "failed after 1 attempt", "{}", seen.data);
    assert!(!seen.data.to_string().contains("mongo-1"), "{}", seen.data);
    let seen = admin.until(&job, "failed").await.pop().unwrap();
    assert_eq!(seen.data["error"], internal);
}

#[tokio::test]
async fn subscribers_are_bounded() {
    let app = spawn_app_with(&[
        ("events.max_subscribers", Value::from(1)),
        ("events.staff_reserved_subscribers", Value::from(0)),
    ])
    .await;
    let _first = SseClient::connect(&app, "", &app.admin(), None).await;
    let (status, body) = refused(&app, &app.token("ops2", Role::Admin)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "service_unavailable");
    let (status, _) = app.call(reqwest::Method::GET, "/api/events", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = refused(&app, &app.token("ops2", Role::Admin)).await;
    assert_eq!(status, 503, "the refused ones did not take a slot");
}

/// One user token cannot take every slot: it holds at most `events.max_subscribers_per_caller`
/// (429 beyond), user tokens together leave `events.staff_reserved_subscribers` free (503 beyond),
/// and those stay open to admins and viewers.
#[tokio::test]
async fn slots_are_bounded_per_caller_and_some_are_kept_for_admins_and_viewers() {
    let app = spawn_app_with(&[
        ("events.max_subscribers", Value::from(4)),
        ("events.staff_reserved_subscribers", Value::from(2)),
        ("events.max_subscribers_per_caller", Value::from(1)),
    ])
    .await;
    let alice = app.token("alice", Role::User);
    let _alice = SseClient::connect(&app, "", &alice, None).await;
    let (status, body) = refused(&app, &alice).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (429, &Json::from("too_many_requests")),
        "{body}"
    );
    let _bob = SseClient::connect(&app, "", &app.token("bob", Role::User), None).await;
    let (status, body) = refused(&app, &app.token("carol", Role::User)).await;
    assert_eq!(
        status, 503,
        "users have taken every slot not kept for staff: {body}"
    );
    let _admin = SseClient::connect(&app, "", &app.admin(), None).await;
    let _viewer = SseClient::connect(&app, "", &app.token("support", Role::Viewer), None).await;
    let (status, _) = refused(&app, &app.token("ops2", Role::Admin)).await;
    assert_eq!(status, 503, "now every slot is taken");
}

/// A client that stops reading, on all queues (what the dashboard opens) or on one: once
/// `events.client_buffer` events wait for it (the kernel holding only its bounded send buffer
/// more) it is disconnected, its slot freed, and it resumes from the last event it got.
#[tokio::test]
async fn a_stalled_reader_of_every_queue_is_disconnected_and_resumes() {
    stalled_reader_is_disconnected_and_resumes("").await;
}

#[tokio::test]
async fn a_stalled_reader_of_one_queue_is_disconnected_and_resumes() {
    stalled_reader_is_disconnected_and_resumes("?queue=user-data").await;
}

/// Events queued for the stalled client in these tests.
const STALLED_BUFFER: usize = 50;

async fn stalled_reader_is_disconnected_and_resumes(query: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(&[
        ("events.client_buffer", Value::from(STALLED_BUFFER)),
        // One slot: a probe connects once the stalled client's slot is free.
        ("events.max_subscribers", Value::from(1)),
        ("events.staff_reserved_subscribers", Value::from(0)),
    ])
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(app.addr).await.unwrap();
    let request = format!(
        "GET /api/events{query} HTTP/1.0\r\nAuthorization: Bearer {}\r\n\r\n",
        app.admin()
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.0 200", "{}", String::from_utf8_lossy(&head));

    // It reads nothing more while jobs are enqueued, until its slot is freed.
    let queue = app.queue().await;
    let mut ids = Vec::new();
    while !probe_connects(&app).await {
        assert!(ids.len() < 20_000, "still connected after {} events", ids.len());
        let batch: Vec<_> = (ids.len()..ids.len() + 50)
            .map(|i| {
                let payload = serde_json::json!({ "userId": format!("user-{i}") });
                sellersync_queue::NewJob::new(&payload, Default::default()).unwrap()
            })
            .collect();
        ids.extend(
            queue
                .enqueue_bulk(&batch)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id),
        );
    }
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut received))
        .await
        .expect("the server ended the connection")
        .ok();
    let text = String::from_utf8_lossy(&received);
    let body = &text[text.find("\r\n\r\n").expect("headers") + 4..];
    let events: Vec<Received> = body
        .split_inclusive("\n\n")
        .filter(|block| block.ends_with("\n\n"))
        .filter_map(parse_block)
        .collect();
    println!(
        "{query:?}: disconnected after {} events were enqueued; it had received {} ({} bytes)",
        ids.len(),
        events.len(),
        body.len()
    );
    let bound = STALLED_BUFFER + 400;
    assert!(
        !events.is_empty() && events.len() <= bound && ids.len() <= bound + 50,
        "{} received, {} enqueued: more than about client_buffer + the bounded kernel buffers",
        events.len(),
        ids.len()
    );
    let last = events.last().unwrap();
    let at = ids
        .iter()
        .position(|id| *id == last.data["jobId"])
        .expect("one of ours");
    let mut resumed = SseClient::connect(&app, query, &app.admin(), Some(&last.id)).await;
    let next = resumed.next().await;
    assert_eq!(
        next.data["jobId"],
        ids[at + 1].as_str(),
        "resumed right after the last event it got"
    );
}

/// Opens `/api/events` with `token` and returns the refusal: status and body (`Null` for a
/// stream, which is dropped at once).
async fn refused(app: &TestApp, token: &str) -> (u16, Json) {
    app.call(reqwest::Method::GET, "/api/events", Some(token), None)
        .await
}

/// True when a new event stream is accepted (the one slot is free); closes it again.
async fn probe_connects(app: &TestApp) -> bool {
    let response = app
        .client
        .get(app.url("/api/events"))
        .bearer_auth(app.token("probe", Role::Admin))
        .send()
        .await
        .expect("sent");
    response.status() == 200
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_is_dropped_not_buffered() {
    let app = spawn_app().await;
    let settings = app.settings().clone();
    let queue = app.queue().await;
    let events = sellersync_core::config::EventsSettings {
        client_buffer: 3,
        ..settings.events.clone()
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let hub = sellersync_api::live::Hub::start(
        vec![queue.clone()],
        || sellersync_core::infra::connections::lazy_redis(&settings.redis).ok(),
        app.db().await,
        &events,
        stopped,
        Default::default(),
    )
    .await;
    let admin = sellersync_core::domain::auth::Claims {
        sub: "ops".into(),
        role: Role::Admin,
        iat: 0,
        exp: 0,
    };
    let mut slow = hub
        .subscribe(
            &admin,
            &["user-data".to_owned()],
            &Default::default(),
            Default::default(),
        )
        .unwrap();
    assert_eq!(hub.subscriber_count(), 1);
    app.add_users(&["a", "b", "c", "d", "e"]).await;
    app.enqueue(&["a", "b", "c", "d", "e"]).await;
    sellersync_core::testing::eventually(
        Duration::from_secs(10),
        "the slow subscriber is dropped",
        || async { hub.subscriber_count() == 0 },
    )
    .await;
    let mut kept = 0;
    while slow.recv().await.is_some() {
        kept += 1;
    }
    assert_eq!(kept, 3, "it got what its buffer held, then the end");
}

/// An open event stream does not hold up a stopping API: the stop ends it, and the drain is done
/// long before `server.shutdown_timeout_ms` (here 30 s; before, the drain waited all of it,
/// because a subscription ended only once the router, and its hub, were dropped).
#[tokio::test]
async fn a_stopping_api_ends_open_event_streams_instead_of_waiting_out_its_drain_timeout() {
    let (app, stopper) =
        spawn_stoppable_app_with(&[("server.shutdown_timeout_ms", Value::from(30_000))]).await;
    app.add_users(&["u1"]).await;
    let mut live = SseClient::connect(&app, "", &app.admin(), None).await;
    let job = app.enqueue(&["u1"]).await.remove(0);
    live.until(&job, "enqueued").await;

    let took = tokio::time::timeout(Duration::from_secs(15), stopper.stop())
        .await
        .expect("the API stops within 15 s with a stream open");
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert!(live.ends().await, "the server ends the stream");
}
