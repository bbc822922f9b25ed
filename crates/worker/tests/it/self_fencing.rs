//! A worker cut off from Redis but not from MongoDB (its Redis traffic frozen by a proxy, as a
//! partition or a paused client would): it stops the attempt itself once its lease could not be
//! renewed for a lease period and a heartbeat, writes none of the user's data, and the job runs
//! to completion on another worker.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use figment::value::Value;
use sellersync_core::testing::{eventually, sigterm, wait_exit};
use sellersync_spapi_sim::SimConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::helpers::env;

/// A TCP proxy to `upstream` whose traffic stops while frozen (connections stay open).
struct FreezableProxy {
    port: u16,
    frozen: Arc<watch::Sender<bool>>,
}

impl FreezableProxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(watch::Sender::new(false));
        let gate = Arc::clone(&frozen);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, gate.subscribe()));
                tokio::spawn(pump(server_read, client_write, gate.subscribe()));
            }
        });
        Self { port, frozen }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }
}

/// Copies `from` to `to`, holding every chunk while the gate says frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let Ok(n @ 1..) = from.read(&mut buffer).await else {
            return;
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_cut_off_from_redis_stops_its_attempt_and_another_finishes_the_job() {
    let fast = [
        ("queues.user-data.lease_ms", 1000u64),
        ("queues.user-data.heartbeat_ms", 250),
        ("queues.user-data.reap_interval_ms", 250),
    ];
    let overrides: Vec<(&str, Value)> = fast.iter().map(|(k, v)| (*k, Value::from(*v))).collect();
    // Two calls of 3 s each: the attempt runs ~6 s, long enough to be cut off in the middle.
    let e = env(
        SimConfig {
            latency_ms: 3000,
            ..SimConfig::default()
        },
        &overrides,
    )
    .await;
    e.user("cut", &["cut-S0".to_owned()]).await;
    let redis = &e.ns.settings.redis;
    let proxy = FreezableProxy::start(format!("{}:{}", redis.host, redis.port)).await;

    let mut cut_off = e.worker_command();
    for (name, value) in &fast {
        let var = format!("SELLERSYNC_{}", name.to_ascii_uppercase().replace('.', "__"));
        cut_off.env(var, value.to_string());
    }
    let mut worker = cut_off
        .env("REDIS_PORT", proxy.port.to_string())
        .env("LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stderr = worker.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let job = e.enqueue(&["cut".to_owned()]).await.enqueued.remove(0).job_id;
    eventually(
        Duration::from_secs(20),
        "the job started on the cut-off worker",
        || async { e.status(&job).await.get_str("status") == Ok("active") },
    )
    .await;

    proxy.freeze(true);
    let frozen_at = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.recv().await {
            if line.contains("stopping the attempt") {
                return line;
            }
        }
        String::new()
    })
    .await
    .expect("the worker stopped its attempt itself");
    assert!(stopped.contains(&job), "{stopped}");
    let after = frozen_at.elapsed();
    assert!(
        after < Duration::from_millis(4000),
        "within a lease and a heartbeat or so: {after:?}"
    );

    // Another worker takes the job over once its lease expires, and finishes it.
    let others = e.start_workers(1);
    e.wait_completed(1, Duration::from_secs(30)).await;
    // The cut-off attempt's lease expired (a stall, no attempt spent); the other worker's
    // attempt finished it and wrote the user's record.
    let info = e.queue.get(&job).await.unwrap().unwrap();
    assert_eq!((info.attempts, info.stalls), (1, 1), "{info:?}");
    let user =
        e.db.collection::<mongodb::bson::Document>("users")
            .find_one(mongodb::bson::doc! { "_id": "cut" })
            .await
            .unwrap()
            .unwrap();
    assert!(user.get_i64("refreshFence").is_ok(), "{user}");
    proxy.freeze(false);
    others.stop().await;
    sigterm(&worker);
    wait_exit(&mut worker, Duration::from_secs(20));
}
