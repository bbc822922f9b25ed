//! `sellersync-bench metrics`: what scraping the API's `/metrics` costs Redis. Starts
//! `sellersync-api` (beside this binary, or in `SELLERSYNC_BIN_DIR`) on the benchmark's own
//! namespace with `--active-jobs` leased jobs, then measures Redis's latency (a `PING` every 2 ms
//! on a connection of its own: p50, p99, max) while idle and while `--rounds` rounds of
//! `--scrapes` parallel scrapes run, with the scrapes' own latency and how many `HGETALL`s and
//! computations (`sellersync_api_metrics_computations_total`) they cost. `--cache-ms 0` runs
//! the API without the scrape cache (every scrape computes its own), for comparison.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sellersync_core::Settings;
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::domain::auth::{self, Role};
use sellersync_core::infra::secret::Secret;
use sellersync_queue::{EnqueueOptions, NewJob, Queue};
use serde_json::json;

use crate::harness::{Bench, drop_bench_database, emit, free_port, sibling_binary, stop};

#[derive(clap::Args, Debug, Clone)]
pub struct MetricsBenchArgs {
    /// Jobs leased (active) while the API is scraped.
    #[arg(long, default_value_t = 5000)]
    pub active_jobs: usize,
    /// Scrapes sent at once in each round.
    #[arg(long, default_value_t = 100)]
    pub scrapes: usize,
    /// Rounds of parallel scrapes, one after the other.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// The API's `server.metrics_cache_ms` (0: every scrape computes its own).
    #[arg(long, default_value_t = 2000)]
    pub cache_ms: u64,
}

/// How long Redis's latency is sampled while nothing scrapes.
const IDLE_SAMPLE: Duration = Duration::from_secs(3);
/// Pause between two latency samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

pub async fn metrics(settings: &Settings, args: &MetricsBenchArgs) -> Result<(), String> {
    let bench = Bench::fresh(settings, "metrics").await?;
    let db = bench.database().await?;
    let result = metrics_run(args, &bench).await;
    drop_bench_database(db).await;
    bench.reset().await?;
    result
}

async fn metrics_run(args: &MetricsBenchArgs, bench: &Bench) -> Result<(), String> {
    let queue = bench.open_queue(USER_DATA_QUEUE);
    lease_jobs(&queue, args.active_jobs).await?;
    let secret = random_secret();
    let port = free_port();
    let api = spawn_api(bench, &secret, port, args.cache_ms)?;
    let result = scrape_run(args, bench, &queue, &secret, port).await;
    stop(vec![api]);
    result
}

async fn scrape_run(
    args: &MetricsBenchArgs,
    bench: &Bench,
    queue: &Queue,
    secret: &str,
    port: u16,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let client = sellersync_core::infra::tls::http_client()
        .build()
        .map_err(|e| err(&e))?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &base).await?;
    // The projector records every job first, so the idle sample is idle.
    let group = sellersync_core::jobs::job_status::projector::GROUP;
    while queue.event_backlog(group).await.map_err(|e| err(&e))?.total() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut auth = bench.settings.auth.clone();
    auth.jwt_secret = Some(Secret::new(secret));
    let token = auth::mint(&auth, "bench", Role::Viewer, Duration::from_secs(3600)).map_err(|e| err(&e))?;

    let idle = ping_latencies(&bench.settings, IDLE_SAMPLE, None).await?;
    let hgetall_before = hgetall_calls(bench).await?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let sampler = {
        let settings = bench.settings.clone();
        tokio::spawn(async move { ping_latencies(&settings, Duration::MAX, Some(done_rx)).await })
    };
    let mut scrape_ms = Vec::new();
    let mut last = String::new();
    for _ in 0..args.rounds {
        let mut round = tokio::task::JoinSet::new();
        for _ in 0..args.scrapes {
            let request = client.get(format!("{base}/metrics")).bearer_auth(&token);
            round.spawn(async move {
                let started = Instant::now();
                let text = request.send().await?.error_for_status()?.text().await?;
                Ok::<_, reqwest::Error>((started.elapsed(), text))
            });
        }
        while let Some(scrape) = round.join_next().await {
            let (took, text) = scrape.map_err(|e| err(&e))?.map_err(|e| err(&e))?;
            scrape_ms.push(took.as_secs_f64() * 1000.0);
            last = text;
        }
    }
    let _ = done_tx.send(());
    let during = sampler.await.map_err(|e| err(&e))??;
    let hgetall = hgetall_calls(bench).await? - hgetall_before;
    let active = sample(
        &last,
        "sellersync_queue_jobs{queue=\"user-data\",state=\"active\"}",
    );
    if active != Some(args.active_jobs as f64) {
        return Err(format!(
            "the scrape counted {active:?} active jobs, not {}",
            args.active_jobs
        ));
    }
    emit(json!({
        "scenario": "metrics_scrape", "active_jobs": args.active_jobs,
        "parallel_scrapes": args.scrapes, "rounds": args.rounds, "cache_ms": args.cache_ms,
        "redis_ping_idle_ms": summary(idle), "redis_ping_during_scrapes_ms": summary(during),
        "scrape_ms": summary(scrape_ms),
        "computations": sample(&last, "sellersync_api_metrics_computations_total"),
        "hgetall_calls": hgetall,
    }));
    Ok(())
}

/// Enqueues `n` jobs (payloads naming a user) and leases them all: `n` active jobs.
async fn lease_jobs(queue: &Queue, n: usize) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| {
            NewJob::new(
                &json!({ "userId": format!("bench-user-{i}") }),
                EnqueueOptions::default(),
            )
        })
        .collect::<Result<_, _>>()
        .map_err(|e| err(&e))?;
    for chunk in jobs.chunks(1000) {
        queue.enqueue_bulk(chunk).await.map_err(|e| err(&e))?;
    }
    let mut leased = 0;
    while leased < n {
        let fetched = queue.fetch("bench", n - leased).await.map_err(|e| err(&e))?;
        if fetched.jobs.is_empty() {
            return Err(format!("only {leased} of {n} jobs could be leased"));
        }
        leased += fetched.jobs.len();
    }
    Ok(())
}

/// The API on the benchmark's namespace, loopback only, with its own JWT secret.
fn spawn_api(bench: &Bench, secret: &str, port: u16, cache_ms: u64) -> Result<Child, String> {
    let binary = sibling_binary("sellersync-api")?;
    Command::new(&binary)
        .envs(bench.namespace_env())
        .env("PORT", port.to_string())
        .env("SELLERSYNC_SERVER__HOST", "127.0.0.1")
        .env("SELLERSYNC_SERVER__METRICS_CACHE_MS", cache_ms.to_string())
        .env("JWT_SECRET", secret)
        .env("CRON_ENABLED", "false")
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("sellersync-api did not become ready within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Round-trip times of `PING` (ms) on a connection of its own, one every [`SAMPLE_EVERY`], for
/// `length` or until `done` fires.
async fn ping_latencies(
    settings: &Settings,
    length: Duration,
    mut done: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Result<Vec<f64>, String> {
    let mut redis = sellersync_core::infra::connections::connect_redis(&settings.redis)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < length {
        if let Some(done) = done.as_mut()
            && done.try_recv().is_ok()
        {
            break;
        }
        let sent = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut redis)
            .await
            .map_err(|e| e.to_string())?;
        samples.push(sent.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    Ok(samples)
}

/// `HGETALL` calls Redis has run since it started (`INFO commandstats`).
async fn hgetall_calls(bench: &Bench) -> Result<u64, String> {
    Ok(bench.command_calls().await?.get("hgetall").copied().unwrap_or(0))
}

/// The value of the sample `series` (name and labels, as written) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// p50, p99 and max of `values` (ms), rounded to µs.
fn summary(mut values: Vec<f64>) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let i = ((values.len() as f64 * p) as usize).min(values.len().saturating_sub(1));
        values.get(i).map_or(0.0, |v| (v * 1000.0).round() / 1000.0)
    };
    json!({ "samples": values.len(), "p50": at(0.5), "p99": at(0.99), "max": at(1.0) })
}

/// A secret for the benchmark's own API process: 256 random bits from the standard library's
/// randomly keyed hasher, in hex.
fn random_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..4)
        .map(|i| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(i);
            format!("{:016x}", hasher.finish())
        })
        .collect()
}
