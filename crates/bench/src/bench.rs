//! `sellersync-bench queue`: the queue engine's benchmark. Prints one JSON line per scenario.
//!
//! Scenarios (all on the configured Redis, under a fresh `bench:<random>:` key prefix that is
//! deleted afterwards): enqueue one at a time, enqueue in bulk, end-to-end no-op processing at
//! several concurrencies with 1 and 2 worker processes (started after the backlog is in), pickup
//! latency of a trickle, Redis commands per processed job, Redis memory per retained finished job,
//! a crash (SIGKILL a worker mid-run, start another: time to finish, jobs lost, jobs run twice),
//! and a start limit of 50/s over six workers (`rate_limit`: the most starts in any 1 s window).
//! Worker processes are this binary's hidden `worker` subcommand.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apalis::layers::WorkerBuilderExt;
use apalis::prelude::{BoxDynError, Data, TaskId, WorkerBuilder};
use redis::AsyncCommands;
use sellersync_core::Settings;
use sellersync_core::connections::{connect_redis, delete_keys};
use sellersync_queue::RedisConnection;
use sellersync_queue::apalis::RedisBackend;
use sellersync_queue::rate_limit::max_in_window;
use sellersync_queue::{EnqueueOptions, NewJob, Queue, QueueConfig, RateLimit};
use serde_json::json;

const QUEUE: &str = "bench";

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Jobs in the end-to-end processing scenarios.
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

fn queue_config() -> QueueConfig {
    QueueConfig {
        keep_completed: 1_000_000,
        ..QueueConfig::default()
    }
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

struct Bench {
    settings: Settings,
    redis: RedisConnection,
    prefix: String,
}

impl Bench {
    async fn fresh(settings: &Settings) -> Result<Self, String> {
        let redis = connect_redis(&settings.redis).await.map_err(|e| e.to_string())?;
        let prefix = format!("bench:{}:", std::process::id());
        let bench = Self {
            settings: settings.clone(),
            redis,
            prefix,
        };
        bench.reset().await?;
        Ok(bench)
    }

    async fn reset(&self) -> Result<(), String> {
        delete_keys(&mut self.redis.clone(), &self.prefix)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn queue(&self) -> Queue {
        Queue::new(self.redis.clone(), &self.prefix, QUEUE, queue_config())
    }

    fn spawn_worker(&self, concurrency: usize, sleep_ms: u64, count_runs: bool) -> Child {
        self.spawn_limited_worker(concurrency, sleep_ms, count_runs, (0, 1))
    }

    fn spawn_limited_worker(
        &self,
        concurrency: usize,
        sleep_ms: u64,
        count_runs: bool,
        // Starts per second (0: none) and burst.
        limit: (u32, u32),
    ) -> Child {
        let mut command = Command::new(std::env::current_exe().expect("own path"));
        command
            .args([
                "worker",
                "--prefix",
                &self.prefix,
                "--concurrency",
                &concurrency.to_string(),
            ])
            .args(["--sleep-ms", &sleep_ms.to_string()])
            .args(["--rate-limit", &limit.0.to_string()])
            .args(["--rate-limit-burst", &limit.1.to_string()])
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if count_runs {
            command.arg("--count-runs");
        }
        command.spawn().expect("spawn a bench worker")
    }

    async fn backlog(&self, n: usize) -> Result<(), String> {
        let queue = self.queue();
        let jobs: Vec<NewJob> = (0..n)
            .map(|i| NewJob::new(&i, EnqueueOptions::default()).unwrap())
            .collect();
        for chunk in jobs.chunks(1000) {
            queue.enqueue_bulk(chunk).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn wait_completed(&self, n: u64, limit: Duration) -> Result<Duration, String> {
        let queue = self.queue();
        let started = Instant::now();
        loop {
            let counts = queue.counts().await.map_err(|e| e.to_string())?;
            if counts.completed >= n {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "only {} of {n} jobs completed after {limit:?}",
                    counts.completed
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Commands Redis has run so far, by name (those scripts run included), from `INFO commandstats`.
    async fn command_calls(&self) -> Result<std::collections::BTreeMap<String, u64>, String> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|e| e.to_string())?;
        Ok(info
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split("calls=").nth(1)?.split(',').next()?.parse().ok()?;
                Some((name.to_owned(), calls))
            })
            .collect())
    }

    /// MEMORY USAGE of job hashes (average of a sample) and of the completed index per job.
    async fn memory_breakdown(&self, n: usize) -> Result<(f64, f64), String> {
        let mut redis = self.redis.clone();
        let base = self.queue().key_base().to_owned();
        let ids: Vec<String> = redis
            .zrange(format!("{base}completed"), 0, 99)
            .await
            .map_err(|e| e.to_string())?;
        let mut total = 0u64;
        for id in &ids {
            let bytes: u64 = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(format!("{base}job:{id}"))
                .query_async(&mut redis)
                .await
                .map_err(|e| e.to_string())?;
            total += bytes;
        }
        let index: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(format!("{base}completed"))
            .query_async(&mut redis)
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            (total as f64 / ids.len().max(1) as f64).round(),
            (index as f64 / n as f64).round(),
        ))
    }

    /// CPU seconds the Redis server has used so far (user + system), from `INFO cpu`.
    async fn redis_cpu_seconds(&self) -> Result<f64, String> {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|e| e.to_string())?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        match (field("used_cpu_user"), field("used_cpu_sys")) {
            (Some(user), Some(sys)) => Ok(user + sys),
            _ => Err("no used_cpu_user/used_cpu_sys in INFO cpu".to_owned()),
        }
    }

    async fn used_memory(&self) -> Result<i64, String> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|e| e.to_string())?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "no used_memory in INFO".to_owned())
    }
}

fn emit(line: serde_json::Value) {
    println!("{line}");
}

/// A child's peak resident memory (`VmHWM`), in MiB; Linux only.
fn peak_rss_mib(child: &Child) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}

fn stop(children: Vec<Child>) {
    for mut child in children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

pub async fn run(settings: &Settings, args: &BenchArgs) -> Result<(), String> {
    let bench = Bench::fresh(settings).await?;
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

/// A progress bar on stderr (hidden when stderr is not a terminal); results stay on stdout.
fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

async fn run_scenarios(bench: &Bench, args: &BenchArgs, wanted: impl Fn(&str) -> bool) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if wanted("enqueue_one") {
        bench.reset().await?;
        let queue = bench.queue();
        let n = 20_000;
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
        let n = 200_000;
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
        let calls_after = bench.command_calls().await?;
        let redis_cpu = bench.redis_cpu_seconds().await? - cpu_before;
        let worker_rss_mib = children.iter().filter_map(peak_rss_mib).fold(0.0, f64::max);
        stop(children);
        let secs = elapsed?.as_secs_f64();
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
            "redis_commands_per_job": per_job(calls),
            "redis_commands_per_job_by_command": by_command,
            // Redis is single-threaded: 1e6 / this is what one Redis core sustains.
            "redis_cpu_us_per_job": (redis_cpu * 1e6 / n as f64 * 100.0).round() / 100.0,
            "worker_peak_rss_mib": worker_rss_mib,
        }));
    }
    if wanted("pickup") {
        pickup_latency(bench).await?;
    }
    if wanted("memory") {
        memory_per_job(bench).await?;
    }
    if wanted("crash") {
        crash(bench).await?;
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
    let secs = elapsed?.as_secs_f64();
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
async fn pickup_latency(bench: &Bench) -> Result<(), String> {
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
    let n = 1000;
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
async fn memory_per_job(bench: &Bench) -> Result<(), String> {
    bench.reset().await?;
    let n = 50_000;
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

/// 2000 jobs of 20 ms at concurrency 10; SIGKILL the worker after 1 s and start another.
async fn crash(bench: &Bench) -> Result<(), String> {
    bench.reset().await?;
    let n = 2000;
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
    let id = sellersync_core::instance::instance_id();
    let shutdown = sellersync_core::shutdown::signal();
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

#[derive(clap::Args, Debug, Clone)]
pub struct RefreshBenchArgs {
    /// Latency the SP-API stand-in adds to every call.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Seller accounts of the benchmark user (each its own seller, so its own rate limits).
    #[arg(long, default_value_t = 20)]
    pub accounts: usize,
    /// Seller sizes to measure, in orders a day (comma-separated); one stand-in each.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub orders_per_day: Vec<u64>,
    /// Accounts refreshed at once.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
}

/// A temporary database `<name><pid>` for one benchmark; the caller drops it afterwards.
async fn bench_database(settings: &Settings, name: &str) -> Result<mongodb::Database, String> {
    let mut mongo = settings.mongo.clone();
    mongo.database = format!("{name}{}", std::process::id());
    sellersync_core::connections::mongo_database(&mongo, "sellersync-bench")
        .await
        .map_err(|e| e.to_string())
}

/// `sellersync-bench refresh`: per seller size, one user's accounts refreshed twice by
/// `process_user_data` against the stand-in (Amazon's default usage plans on, the given latency
/// per call): the first run lists each account's window whole, the second (as the next hourly
/// run would) only what changed since. Prints SP-API calls per account, 429s received,
/// rate-bound accounts and accounts/s for each run. Temporary database and key prefix, dropped
/// afterwards.
pub async fn refresh(settings: &Settings, args: &RefreshBenchArgs) -> Result<(), String> {
    let db = bench_database(settings, "bench_").await?;
    let result = refresh_scenarios(settings, args, &db).await;
    let _ = db.drop().await;
    result
}

async fn refresh_scenarios(
    settings: &Settings,
    args: &RefreshBenchArgs,
    db: &mongodb::Database,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    sellersync_core::demo::seed(db, 1, args.accounts, &|_| {})
        .await
        .map_err(|e| err(&e))?;
    let user = sellersync_core::demo::user_id(0);
    let redis = connect_redis(&settings.redis).await.map_err(|e| err(&e))?;
    for &orders_per_day in &args.orders_per_day {
        let base = sellersync_spapi_sim::spawn(sellersync_spapi_sim::SimConfig {
            latency_ms: args.latency_ms,
            orders_per_day,
            ..sellersync_spapi_sim::SimConfig::default()
        })
        .await
        .map_err(|e| err(&e))?;
        let key_prefix = format!("bench:{}:o{orders_per_day}:", std::process::id());
        let refresher = bench_refresher(settings, args, db, &redis, &base, &key_prefix)?;
        for run in ["first", "next_hour"] {
            if run == "next_hour" {
                age_order_books(&redis, &key_prefix).await.map_err(|e| err(&e))?;
            }
            let before = refresher.spapi.stats();
            let started = Instant::now();
            let report = refresher
                .process_user_data(&user, &|_| {})
                .await
                .map_err(|e| err(&e))?;
            let secs = started.elapsed().as_secs_f64();
            let calls = refresher.spapi.stats();
            let per_account = |n: u64| (n as f64 / report.accounts_total.max(1) as f64 * 10.0).round() / 10.0;
            emit(json!({
                "scenario": "refresh", "run": run, "orders_per_day": orders_per_day,
                "window_days": settings.refresh.window_days, "account_concurrency": args.concurrency,
                "latency_ms": args.latency_ms, "accounts": report.accounts_total,
                "refreshed": report.accounts_processed, "failed": report.accounts_failed,
                "rate_bound": report.errors.iter().filter(|e| e.retry_after_ms.is_some()).count(),
                "accounts_per_sec": (report.accounts_processed as f64 / secs * 10.0).round() / 10.0,
                "spapi_calls_per_account": per_account(calls.requests - before.requests),
                "token_exchanges_per_account": per_account(calls.token_exchanges - before.token_exchanges),
                "throttled_429": calls.throttled - before.throttled,
            }));
        }
        delete_keys(&mut redis.clone(), &key_prefix)
            .await
            .map_err(|e| err(&e))?;
    }
    Ok(())
}

/// Makes every order book under `prefix` look synced an hour earlier, as if the last run had been
/// the previous hour's: the next run then lists an hour of updates, as an hourly run does.
async fn age_order_books(redis: &RedisConnection, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = redis.clone();
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> = conn.scan_match(format!("{prefix}cache:orders:*")).await?;
        let mut keys = Vec::new();
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
        keys
    };
    for key in keys {
        let stored: String = conn.get(&key).await?;
        let Ok(mut book) = serde_json::from_str::<sellersync_core::refresh::OrderBook>(&stored) else {
            continue;
        };
        if book.pending.is_none() {
            book.synced_through -= chrono::TimeDelta::hours(1);
        }
        let json = serde_json::to_string(&book).unwrap_or(stored);
        let _: () = conn.set_ex(&key, json, 3600).await?;
    }
    Ok(())
}

/// A refresher against the stand-in at `base`, its rate-limit buckets and caches under `key_prefix`.
fn bench_refresher(
    settings: &Settings,
    args: &RefreshBenchArgs,
    db: &mongodb::Database,
    redis: &sellersync_queue::RedisConnection,
    base: &str,
    key_prefix: &str,
) -> Result<sellersync_core::refresh::Refresher, String> {
    let mut spapi = settings.spapi.clone();
    spapi.token_url = format!("{base}/auth/o2/token");
    spapi.endpoints = sellersync_core::config::SpApiEndpoints {
        na: base.into(),
        eu: base.into(),
        fe: base.into(),
    };
    let client = sellersync_core::spapi::SpApiClient::new(spapi)
        .map_err(|e| e.to_string())?
        .with_shared_rate_limits(redis.clone(), key_prefix);
    let mut refresh = settings.refresh.clone();
    refresh.account_concurrency = args.concurrency;
    Ok(sellersync_core::refresh::Refresher {
        store: sellersync_core::refresh::RefreshStore::new(db.clone()),
        redis: redis.clone(),
        spapi: std::sync::Arc::new(client),
        settings: refresh,
        key_prefix: key_prefix.to_owned(),
    })
}

#[derive(clap::Args, Debug, Clone)]
pub struct E2eBenchArgs {
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    #[arg(long, default_value_t = 2)]
    pub accounts: usize,
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Worker processes (`sellersync-worker`, next to this binary).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
}

/// `sellersync-bench e2e`: users refreshed per second end to end — enqueue every demo user, then
/// worker processes run `process_user_data` against the stand-in (latency per call) until every
/// JobStatus is completed. Temporary database and key prefix, dropped afterwards.
pub async fn e2e(settings: &Settings, args: &E2eBenchArgs) -> Result<(), String> {
    let base = sellersync_spapi_sim::spawn_with_latency(args.latency_ms)
        .await
        .map_err(|e| e.to_string())?;
    let bench = Bench::fresh(settings).await?;
    let db = bench_database(settings, "bench_e2e_").await?;
    let result = e2e_run(settings, args, &bench, &db, &base).await;
    let _ = db.drop().await;
    bench.reset().await?;
    result
}

async fn e2e_run(
    settings: &Settings,
    args: &E2eBenchArgs,
    bench: &Bench,
    db: &mongodb::Database,
    base: &str,
) -> Result<(), String> {
    use sellersync_core::config::USER_DATA_QUEUE;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    sellersync_core::migrations::apply(db)
        .await
        .map_err(|e| err(&e))?;
    sellersync_core::demo::seed(db, args.users, args.accounts, &|_| {})
        .await
        .map_err(|e| err(&e))?;
    let users: Vec<String> = (0..args.users).map(sellersync_core::demo::user_id).collect();
    let queue = Queue::new(
        bench.redis.clone(),
        &bench.prefix,
        USER_DATA_QUEUE,
        settings.queue(USER_DATA_QUEUE).expect("validated"),
    );
    sellersync_core::producer::enqueue_refresh(&queue, &users, sellersync_core::jobs::Trigger::Manual, 50)
        .await
        .map_err(|e| err(&e))?;
    let worker_bin = std::env::current_exe()
        .map_err(|e| err(&e))?
        .with_file_name("sellersync-worker");
    let started = Instant::now();
    let metrics_ports: Vec<u16> = (0..args.workers).map(|_| free_port()).collect();
    let children: Vec<Child> = metrics_ports
        .iter()
        .map(|port| {
            Command::new(&worker_bin)
                .env("METRICS_PORT", port.to_string())
                .env("REDIS_KEY_PREFIX", &bench.prefix)
                .env("MONGODB_DATABASE", db.name())
                .env("WORKER_CONCURRENCY", args.concurrency.to_string())
                .env("SELLERSYNC_SPAPI__TOKEN_URL", format!("{base}/auth/o2/token"))
                .env("SELLERSYNC_SPAPI__ENDPOINTS__NA", base)
                .env("SELLERSYNC_SPAPI__ENDPOINTS__EU", base)
                .env("SELLERSYNC_SPAPI__ENDPOINTS__FE", base)
                .env("LOG_LEVEL", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", worker_bin.display()))
        })
        .collect::<Result<_, _>>()?;
    // Watched in Redis (the queue's counts and the projection's backlog), so the benchmark adds
    // no load to MongoDB; the JobStatus records are counted once at the end.
    let group = sellersync_core::job_status::projector::GROUP;
    let bar = progress_bar(args.users as u64, "users refreshed");
    let done = loop {
        let completed = queue.metrics().await.map_err(|e| err(&e))?.completed_total;
        bar.set_position(completed);
        let projected = queue.event_backlog(group).await.map_err(|e| err(&e))?.total() == 0;
        if completed as usize >= args.users && projected {
            bar.finish_and_clear();
            break Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(600) {
            break Err(format!(
                "only {completed} of {} users refreshed after 600 s",
                args.users
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let recorded = db
        .collection::<mongodb::bson::Document>(sellersync_core::job_status::JOB_STATUS)
        .count_documents(mongodb::bson::doc! { "status": "completed" })
        .await
        .map_err(|e| err(&e))?;
    if recorded as usize != args.users {
        return Err(format!(
            "{recorded} completed JobStatus records for {} users",
            args.users
        ));
    }
    let commands = mongo_commands(&metrics_ports).await;
    let worker_rss_mib = children.iter().filter_map(peak_rss_mib).fold(0.0, f64::max);
    stop(children);
    let secs = done?.as_secs_f64();
    let total: u64 = commands.values().sum();
    let per_job = |n: u64| (n as f64 / args.users as f64 * 100.0).round() / 100.0;
    let by_command: serde_json::Map<String, serde_json::Value> = commands
        .iter()
        .map(|(name, n)| (name.clone(), json!(per_job(*n))))
        .collect();
    emit(json!({
        "scenario": "e2e_refresh", "users": args.users, "accounts_per_user": args.accounts,
        "latency_ms": args.latency_ms, "workers": args.workers, "concurrency": args.concurrency,
        "users_per_sec": (args.users as f64 / secs * 10.0).round() / 10.0,
        "seconds": (secs * 100.0).round() / 100.0,
        "mongo_commands_per_job": per_job(total), "mongo_commands_per_job_by_command": by_command,
        "worker_peak_rss_mib": worker_rss_mib,
    }));
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// MongoDB commands the workers sent (their `sellersync_mongodb_commands_total`, start-up and
/// JobStatus projection included), by command name, summed over the workers.
async fn mongo_commands(ports: &[u16]) -> std::collections::BTreeMap<String, u64> {
    let mut total = std::collections::BTreeMap::new();
    for port in ports {
        let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        for line in text
            .lines()
            .filter(|l| l.starts_with("sellersync_mongodb_commands_total{"))
        {
            let name = line.split('"').nth(1).unwrap_or("?").to_owned();
            let count = line
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0);
            *total.entry(name).or_insert(0) += count as u64;
        }
    }
    total
}

#[derive(clap::Args, Debug, Clone)]
pub struct CronBenchArgs {
    /// Stale users (each with one seller account) to select and enqueue.
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Users per enqueue round trip (seed 000: 50).
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
}

/// `sellersync-bench cron`: the hourly producer's work for N stale users, timed in its parts —
/// selecting them from MongoDB (cursor + account check), enqueueing them in Redis, and the
/// JobStatus projector (running beside the enqueue) recording every `queued` job.
/// Temporary database and key prefix, dropped afterwards.
pub async fn cron(settings: &Settings, args: &CronBenchArgs) -> Result<(), String> {
    let bench = Bench::fresh(settings).await?;
    let db = bench_database(settings, "bench_cron_").await?;
    let result = cron_run(settings, args, &bench, &db).await;
    let _ = db.drop().await;
    bench.reset().await?;
    result
}

async fn cron_run(
    settings: &Settings,
    args: &CronBenchArgs,
    bench: &Bench,
    db: &mongodb::Database,
) -> Result<(), String> {
    use sellersync_core::config::USER_DATA_QUEUE;
    use sellersync_core::jobs::Trigger;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    sellersync_core::migrations::apply(db)
        .await
        .map_err(|e| err(&e))?;
    sellersync_core::demo::seed(db, args.users, 1, &|_| {})
        .await
        .map_err(|e| err(&e))?;
    let config = settings.queue(USER_DATA_QUEUE).expect("validated");
    let queue = Queue::new(bench.redis.clone(), &bench.prefix, USER_DATA_QUEUE, config);

    let clock = Instant::now();
    let mut stale =
        sellersync_core::cron::StaleUsers::open(db, chrono::Utc::now(), settings.cron.due_tolerance())
            .await
            .map_err(|e| err(&e))?;
    let mut users = Vec::with_capacity(args.users);
    while let Some(batch) = stale.next_batch(1000).await.map_err(|e| err(&e))? {
        users.extend(batch);
    }
    let select = clock.elapsed().as_secs_f64();

    // The producer's path (Redis round trips of `batch_size`) with the JobStatus projector
    // running beside it, until every job has its `queued` record.
    let clock = Instant::now();
    let projector =
        sellersync_core::job_status::projector::spawn(settings, queue.clone(), db.clone(), "bench")
            .map_err(|e| err(&e))?
            .ok_or("job_status.projector is off")?;
    let report = sellersync_core::producer::enqueue_refresh(&queue, &users, Trigger::Cron, args.batch_size)
        .await
        .map_err(|e| err(&e))?;
    let enqueue_secs = clock.elapsed().as_secs_f64();
    let group = sellersync_core::job_status::projector::GROUP;
    while queue.event_backlog(group).await.map_err(|e| err(&e))?.total() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let projected_secs = clock.elapsed().as_secs_f64();
    projector.stop().await;
    let records = db
        .collection::<mongodb::bson::Document>(sellersync_core::job_status::JOB_STATUS)
        .count_documents(mongodb::bson::doc! { "status": "queued" })
        .await
        .map_err(|e| err(&e))?;
    let round = |s: f64| (s * 1000.0).round() / 1000.0;
    emit(json!({
        "scenario": "cron_tick", "users": args.users, "selected": users.len(), "enqueued": report.enqueued.len(),
        "job_status_records": records, "batch_size": args.batch_size,
        "mongo_select_seconds": round(select), "redis_enqueue_seconds": round(enqueue_secs),
        "job_status_projected_seconds": round(projected_secs),
        "total_seconds": round(select + projected_secs),
    }));
    Ok(())
}
