//! `sellersync-bench queue`: the queue engine's benchmark. Prints one JSON line per scenario.
//!
//! Scenarios (all on the configured Redis, under a fresh `bench:<random>:` key prefix that is
//! deleted afterwards): enqueue one at a time, enqueue in bulk, end-to-end no-op processing at
//! several concurrencies with 1 and 2 worker processes (started after the backlog is in), pickup
//! latency of a trickle, Redis commands per processed job, what the lease and completion scripts
//! cost Redis per call and per job (`script_cost`), Redis memory per retained finished job,
//! a crash (SIGKILL a worker mid-run, start another: time to finish, jobs lost, jobs run twice),
//! and a start limit of 50/s over six workers (`rate_limit`: the most starts in any 1 s window).
//! Worker processes are this binary's hidden `worker` subcommand.

use std::process::Child;
use std::time::{Duration, Instant};

use apalis::layers::WorkerBuilderExt;
use apalis::prelude::{BoxDynError, Data, TaskId, WorkerBuilder};
use redis::AsyncCommands;
use sellersync_core::Settings;
use sellersync_core::infra::connections::connect_redis;
use sellersync_queue::RedisConnection;
use sellersync_queue::apalis::RedisBackend;
use sellersync_queue::rate_limit::max_in_window;
use sellersync_queue::{Ack, EnqueueOptions, Queue, QueueConfig, RateLimit};
use serde_json::json;

use crate::harness::{Bench, QUEUE, cpu_seconds, emit, peak_rss_mib, queue_config, stop};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Jobs in the end-to-end processing scenarios; the other scenarios scale with it (enqueue
    /// one at a time: up to 20,000; in bulk: twice it; pickup: up to 1,000; memory: up to 50,000;
    /// crash: up to 2,000; rate limit: up to 500), so a small value runs everything quickly.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Run only scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Run the `process` scenario only with this many worker processes (with `--concurrency`).
    #[arg(long, requires = "concurrency")]
    pub workers: Option<usize>,
    /// Run the `process` scenario only at this concurrency per worker (with `--workers`).
    #[arg(long, requires = "workers")]
    pub concurrency: Option<usize>,
    /// The `rate_limit` scenario's burst (1..=50): starts that may go back to back.
    #[arg(long, default_value_t = 2)]
    pub rate_limit_burst: u32,
}

#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    #[arg(long)]
    pub prefix: String,
    #[arg(long)]
    pub concurrency: usize,
    /// Each job sleeps this long (0 = no-op).
    #[arg(long, default_value_t = 0)]
    pub sleep_ms: u64,
    /// Count executions per job in a Redis hash (crash scenario).
    #[arg(long)]
    pub count_runs: bool,
    /// Start at most this many jobs per second across all workers (0 = no limit), and record
    /// when each handler started (rate-limit scenario).
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
    /// The rate limit's burst.
    #[arg(long, default_value_t = 2)]
    pub rate_limit_burst: u32,
}

/// The bench queue with a start limit of `per_sec` and `burst`.
fn limited_config(per_sec: u32, burst: u32) -> QueueConfig {
    QueueConfig {
        rate_limit: (per_sec > 0).then_some(RateLimit {
            max: per_sec,
            interval_ms: 1000,
            burst: Some(burst.clamp(1, per_sec.max(1))),
        }),
        ..queue_config()
    }
}

pub async fn run(settings: &Settings, args: &BenchArgs) -> Result<(), String> {
    let bench = Bench::fresh(settings, "queue").await?;
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    let wanted = |name: &str| {
        let wanted = args.only.as_deref().is_none_or(|only| name.contains(only));
        if wanted {
            spinner.set_message(format!("scenario {name}"));
        }
        wanted
    };
    let result = run_scenarios(&bench, args, wanted).await;
    spinner.finish_and_clear();
    bench.reset().await?;
    result
}

async fn run_scenarios(bench: &Bench, args: &BenchArgs, wanted: impl Fn(&str) -> bool) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if wanted("enqueue_one") {
        bench.reset().await?;
        let queue = bench.queue();
        let n = args.jobs.min(20_000);
        let started = Instant::now();
        for i in 0..n {
            queue
                .enqueue(&i, EnqueueOptions::default())
                .await
                .map_err(|e| e.to_string())?;
        }
        let secs = started.elapsed().as_secs_f64();
        emit(
            json!({"scenario": "enqueue_one", "n": n, "cores": cores, "jobs_per_sec": (n as f64 / secs).round()}),
        );
    }
    if wanted("enqueue_bulk") {
        bench.reset().await?;
        let n = args.jobs * 2;
        let started = Instant::now();
        bench.backlog(n).await?;
        let secs = started.elapsed().as_secs_f64();
        emit(
            json!({"scenario": "enqueue_bulk", "n": n, "batch": 1000, "cores": cores, "jobs_per_sec": (n as f64 / secs).round()}),
        );
    }
    let configs = match (args.workers, args.concurrency) {
        (Some(workers), Some(concurrency)) => vec![(workers, concurrency)],
        _ => vec![(1, 1), (1, 10), (1, 50), (2, 10), (2, 50)],
    };
    for (workers, concurrency) in configs {
        if !wanted("process") {
            break;
        }
        let n = if concurrency == 1 {
            args.jobs.min(20_000)
        } else {
            args.jobs
        };
        bench.reset().await?;
        bench.backlog(n).await?;
        let calls_before = bench.command_calls().await?;
        let cpu_before = bench.redis_cpu_seconds().await?;
        let children: Vec<Child> = (0..workers)
            .map(|_| bench.spawn_worker(concurrency, 0, false))
            .collect();
        let elapsed = bench.wait_completed(n as u64, Duration::from_secs(600)).await;
        let mut calls_after = bench.command_calls().await?;
        let redis_cpu = bench.redis_cpu_seconds().await? - cpu_before;
        // The harness's progress polls are not the queue's commands.
        if let (Ok(waited), Some(zcard)) = (&elapsed, calls_after.get_mut("zcard")) {
            *zcard -= waited.polls;
        }
        let worker_rss_mib = children.iter().filter_map(peak_rss_mib).fold(0.0, f64::max);
        let worker_cpu = children.iter().filter_map(cpu_seconds).sum::<f64>();
        stop(children);
        let waited = elapsed?;
        let secs = waited.elapsed.as_secs_f64();
        let per_job = |calls: u64| ((calls as f64 / n as f64) * 100.0).round() / 100.0;
        let by_command: std::collections::BTreeMap<&str, f64> = calls_after
            .iter()
            .map(|(name, after)| {
                (
                    name.as_str(),
                    per_job(after - calls_before.get(name).copied().unwrap_or(0)),
                )
            })
            .filter(|(_, per)| *per > 0.0)
            .collect();
        let calls = calls_after.values().sum::<u64>() - calls_before.values().sum::<u64>();
        emit(json!({
            "scenario": "process", "runtime": "apalis", "workers": workers, "concurrency": concurrency, "n": n, "cores": cores,
            "jobs_per_sec": (n as f64 / secs).round(),
            // The queue's commands: the harness's progress polls (one ZCARD each) are left out.
            "redis_commands_per_job": per_job(calls),
            "redis_commands_per_job_by_command": by_command,
            "harness_polls_per_job": per_job(waited.polls),
            // Redis is single-threaded: 1e6 / this is what one Redis core sustains.
            "redis_cpu_us_per_job": (redis_cpu * 1e6 / n as f64 * 100.0).round() / 100.0,
            "worker_peak_rss_mib": worker_rss_mib,
            // All worker processes' CPU (start-up included) per job.
            "worker_cpu_us_per_job": (worker_cpu * 1e6 / n as f64 * 10.0).round() / 10.0,
        }));
    }
    if wanted("script_cost") {
        script_cost(bench, args.jobs.min(20_000)).await?;
    }
    if wanted("pickup") {
        pickup_latency(bench, args.jobs.min(1000)).await?;
    }
    if wanted("memory") {
        memory_per_job(bench, args.jobs.min(50_000)).await?;
    }
    if wanted("crash") {
        crash(bench, args.jobs.min(2000)).await?;
    }
    if wanted("rate_limit") {
        rate_limit(bench, args.jobs.min(500), args.rate_limit_burst).await?;
    }
    Ok(())
}

/// Six worker processes (concurrency 10 each) drain a backlog through a start limit of 50/s:
/// the most starts in any 1 s window, by the queue's clock (`processedOn`, when each job became
/// active) and by each handler's own start (µs on this host), and the rate achieved.
async fn rate_limit(bench: &Bench, n: usize, burst: u32) -> Result<(), String> {
    const LIMIT: u32 = 50;
    const WORKERS: usize = 6;
    bench.reset().await?;
    bench.backlog(n).await?;
    let children: Vec<Child> = (0..WORKERS)
        .map(|_| bench.spawn_limited_worker(10, 0, false, (LIMIT, burst)))
        .collect();
    let elapsed = bench.wait_completed(n as u64, Duration::from_secs(600)).await;
    stop(children);
    let secs = elapsed?.elapsed.as_secs_f64();
    let queue = bench.queue();
    let ids: Vec<String> = bench
        .redis
        .clone()
        .zrange(format!("{}completed", queue.key_base()), 0, -1)
        .await
        .map_err(|e| e.to_string())?;
    let mut queue_starts = Vec::with_capacity(ids.len());
    for id in &ids {
        let job = queue.get(id).await.map_err(|e| e.to_string())?;
        queue_starts.extend(job.and_then(|j| j.started_at_ms));
    }
    let handler_starts: Vec<(String, f64)> = bench
        .redis
        .clone()
        .zrange_withscores(format!("{}starts", bench.prefix), 0, -1)
        .await
        .map_err(|e| e.to_string())?;
    let handler_starts_us: Vec<u64> = handler_starts.iter().map(|(_, us)| *us as u64).collect();
    emit(json!({
        "scenario": "rate_limit", "limit_per_sec": LIMIT, "burst": burst, "workers": WORKERS, "concurrency": 10, "n": n,
        "max_starts_in_any_1s_queue_clock": max_in_window(&queue_starts, 1000),
        "max_starts_in_any_1s_handler_clock": max_in_window(&handler_starts_us, 1_000_000),
        "jobs_started": queue_starts.len(),
        "starts_per_sec": (n as f64 / secs * 10.0).round() / 10.0,
    }));
    Ok(())
}

/// A trickle of jobs to one idle in-process consumer: time from enqueue to the handler starting.
async fn pickup_latency(bench: &Bench, n: usize) -> Result<(), String> {
    bench.reset().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let wake = connect_redis(&bench.settings.redis)
        .await
        .map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new("pickup")
        .backend(RedisBackend::<u64>::new(bench.queue(), wake, 1))
        .data(tx)
        .concurrency(1)
        .build(record_pickup);
    let consumer = tokio::spawn(worker.run_until(async move {
        let _ = stop_rx.await;
        Ok::<(), std::io::Error>(())
    }));
    tokio::time::sleep(Duration::from_millis(200)).await; // let it go idle
    let queue = bench.queue();
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        queue
            .enqueue(&now_micros(), EnqueueOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let latency = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .map_err(|_| "pickup timed out")?;
        latencies.push(latency.ok_or("consumer stopped")?);
        tokio::time::sleep(Duration::from_millis(3)).await; // idle again between jobs
    }
    let _ = stop_tx.send(());
    let _ = consumer.await;
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0
    };
    emit(
        json!({"scenario": "pickup_latency", "runtime": "apalis", "n": n, "p50_ms": (pct(0.50) * 1000.0).round() / 1000.0, "p99_ms": (pct(0.99) * 1000.0).round() / 1000.0}),
    );
    Ok(())
}

/// Redis memory per finished job kept for listing (payload `0`, 1 byte).
async fn memory_per_job(bench: &Bench, n: usize) -> Result<(), String> {
    bench.reset().await?;
    let before = bench.used_memory().await?;
    bench.backlog(n).await?;
    let child = bench.spawn_worker(50, 0, false);
    let result = bench.wait_completed(n as u64, Duration::from_secs(300)).await;
    stop(vec![child]);
    result?;
    let after = bench.used_memory().await?;
    let (hash, index) = bench.memory_breakdown(n).await?;
    emit(json!({
        "scenario": "memory_per_retained_job", "n": n, "payload_bytes": 1,
        "bytes_per_job": ((after - before) as f64 / n as f64).round(),
        "job_hash_bytes": hash, "completed_index_bytes_per_job": index,
    }));
    Ok(())
}

/// `n` (2000) jobs of 20 ms at concurrency 10; SIGKILL the worker after 1 s and start another.
async fn crash(bench: &Bench, n: usize) -> Result<(), String> {
    bench.reset().await?;
    bench.backlog(n).await?;
    let started = Instant::now();
    let mut first = bench.spawn_worker(10, 20, true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = first.kill(); // SIGKILL
    let _ = first.wait();
    killed.map_err(|e| e.to_string())?;
    let second = bench.spawn_worker(10, 20, true);
    let done = bench.wait_completed(n as u64, Duration::from_secs(120)).await;
    let total = started.elapsed();
    stop(vec![second]);
    done?;
    let runs: Vec<u64> = bench
        .redis
        .clone()
        .hvals(format!("{}runs", bench.prefix))
        .await
        .map_err(|e| e.to_string())?;
    let counts = bench.queue().counts().await.map_err(|e| e.to_string())?;
    emit(json!({
        "scenario": "crash", "n": n, "job_ms": 20, "concurrency": 10,
        "seconds_until_all_done": (total.as_secs_f64() * 100.0).round() / 100.0,
        "jobs_lost": n as u64 - counts.completed,
        "jobs_failed": counts.failed,
        "jobs_run_twice": runs.iter().filter(|r| **r > 1).count(),
        "jobs_run": runs.len(),
    }));
    Ok(())
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Pickup handler: the payload is the enqueue time in µs.
async fn record_pickup(
    sent_us: u64,
    tx: Data<tokio::sync::mpsc::UnboundedSender<Duration>>,
) -> Result<(), BoxDynError> {
    let _ = tx.send(Duration::from_micros(now_micros().saturating_sub(sent_us)));
    Ok(())
}

/// What a bench job does.
#[derive(Clone)]
struct BenchJob {
    redis: RedisConnection,
    runs_key: String,
    /// Where each job's handler start (µs since the epoch) is recorded, if anywhere.
    starts_key: Option<String>,
    sleep_ms: u64,
    count_runs: bool,
}

impl BenchJob {
    async fn run(&self, job_id: &str) {
        if let Some(key) = &self.starts_key {
            let _: i64 = self
                .redis
                .clone()
                .zadd(key, job_id, now_micros())
                .await
                .unwrap_or(0);
        }
        if self.count_runs {
            let _: i64 = self
                .redis
                .clone()
                .hincr(&self.runs_key, job_id, 1)
                .await
                .unwrap_or(0);
        }
        if self.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
    }
}

async fn apalis_handler(_n: u64, id: TaskId, job: Data<BenchJob>) -> Result<(), BoxDynError> {
    job.run(&id.to_string()).await;
    Ok(())
}

/// The hidden `worker` subcommand: a worker over the bench queue until SIGTERM.
pub async fn worker(settings: &Settings, args: &WorkerArgs) -> Result<(), String> {
    let redis = connect_redis(&settings.redis).await.map_err(|e| e.to_string())?;
    let wake = connect_redis(&settings.redis).await.map_err(|e| e.to_string())?;
    let queue = Queue::new(
        redis.clone(),
        &args.prefix,
        QUEUE,
        limited_config(args.rate_limit, args.rate_limit_burst),
    );
    let job = BenchJob {
        redis,
        runs_key: format!("{}runs", args.prefix),
        starts_key: (args.rate_limit > 0).then(|| format!("{}starts", args.prefix)),
        sleep_ms: args.sleep_ms,
        count_runs: args.count_runs,
    };
    let id = sellersync_core::infra::instance::instance_id();
    let shutdown = sellersync_core::infra::shutdown::signal();
    let backend = RedisBackend::<u64>::new(queue, wake, args.concurrency);
    let worker = WorkerBuilder::new(id)
        .backend(backend)
        .data(job)
        .concurrency(args.concurrency)
        .build(apalis_handler);
    worker
        .run_until(async move {
            shutdown.await;
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(|e| e.to_string())
}

/// What the lease and completion scripts cost Redis, apart from any worker process: `n` jobs
/// leased and completed through the queue's API in batches of 1 and of 50, costed by Redis's own
/// accounting (the µs of `EVALSHA`, commands run by the scripts included). Each job takes one
/// lease call and one completion call, so at batch size `b` a job costs `2·call/b + job`: the two
/// batch sizes give the cost of a script call (`call_us`) and of a job within one (`job_us`). The
/// backlog's enqueue is costed too (`enqueue_us_per_job`).
async fn script_cost(bench: &Bench, n: usize) -> Result<(), String> {
    const BATCHES: [usize; 2] = [1, 50];
    let (mut us_per_job, mut enqueue_us) = (Vec::new(), Vec::new());
    for batch in BATCHES {
        bench.reset().await?;
        let before_enqueue = script_usec(bench).await?;
        bench.backlog(n).await?;
        let queue = bench.queue();
        let before = script_usec(bench).await?;
        enqueue_us.push((before - before_enqueue) as f64 / n as f64);
        let mut done = 0;
        while done < n {
            let leased = queue
                .fetch("bench-script-cost", batch)
                .await
                .map_err(|e| e.to_string())?
                .jobs;
            if leased.is_empty() {
                return Err(format!("the backlog ran dry after {done} of {n} jobs"));
            }
            let acks: Vec<Ack> = leased
                .into_iter()
                .map(|job| Ack {
                    id: job.id,
                    token: job.token,
                    result: "null".into(),
                })
                .collect();
            done += queue.complete(&acks).await.map_err(|e| e.to_string())?.len();
        }
        us_per_job.push((script_usec(bench).await? - before) as f64 / n as f64);
    }
    let (b_small, b_large) = (BATCHES[0] as f64, BATCHES[1] as f64);
    let call_us = (us_per_job[0] - us_per_job[1]) / (2.0 / b_small - 2.0 / b_large);
    let job_us = us_per_job[1] - 2.0 * call_us / b_large;
    let round = |x: f64| (x * 10.0).round() / 10.0;
    emit(json!({
        "scenario": "script_cost", "n": n,
        // Bulk enqueue (batches of 1,000), for a job's whole life.
        "enqueue_us_per_job": round(enqueue_us.iter().sum::<f64>() / enqueue_us.len() as f64),
        "us_per_job_batch_1": round(us_per_job[0]), "us_per_job_batch_50": round(us_per_job[1]),
        "call_us": round(call_us), "job_us": round(job_us),
    }));
    Ok(())
}

/// Microseconds Redis has spent in `EVALSHA` (scripts) since it started.
async fn script_usec(bench: &Bench) -> Result<u64, String> {
    Ok(bench
        .command_stats()
        .await?
        .get("evalsha")
        .map_or(0, |(_, usec)| *usec))
}
