//! What every benchmark shares: its own namespace on the configured servers (`Bench`: a fresh
//! key prefix on Redis and a temporary database on MongoDB, both removed afterwards), worker
//! processes and their memory, free ports, progress bars, and the JSON line each scenario prints.
//!
//! A benchmark never touches the deployment's data: [`Bench::settings`] is the configuration
//! with the key prefix and database replaced, and every queue, projector and process a benchmark
//! starts is opened or configured from it (`crates/bench/tests/it` checks that nothing outside
//! them changes).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use sellersync_core::Settings;
use sellersync_core::infra::connections::{connect_redis, delete_keys};
use sellersync_queue::RedisConnection;
use sellersync_queue::{EnqueueOptions, NewJob, Queue, QueueConfig};

/// The bench queue.
pub(crate) const QUEUE: &str = "bench";

pub(crate) fn queue_config() -> QueueConfig {
    QueueConfig {
        keep_completed: 1_000_000,
        ..QueueConfig::default()
    }
}

/// How long until the jobs were done, and how many progress polls (one `ZCARD` each) it took.
pub(crate) struct Waited {
    pub elapsed: Duration,
    pub polls: u64,
}

pub(crate) struct Bench {
    /// The configured settings with the benchmark's own key prefix (`redis.key_prefix`) and
    /// database (`mongo.database`): what every queue, projector and process it starts uses.
    pub(crate) settings: Settings,
    pub(crate) redis: RedisConnection,
    pub(crate) prefix: String,
}

impl Bench {
    /// A namespace of its own for the benchmark `name` (`bench:<pid>:` on Redis, database
    /// `bench_<name>_<pid>`), emptied.
    pub(crate) async fn fresh(settings: &Settings, name: &str) -> Result<Self, String> {
        let redis = connect_redis(&settings.redis).await.map_err(|e| e.to_string())?;
        let prefix = format!("bench:{}:", std::process::id());
        let mut own = settings.clone();
        own.redis.key_prefix = prefix.clone();
        own.mongo.database = format!("bench_{name}_{}", std::process::id());
        let bench = Self {
            settings: own,
            redis,
            prefix,
        };
        bench.reset().await?;
        Ok(bench)
    }

    /// Queue `name` as configured, under the benchmark's prefix.
    pub(crate) fn open_queue(&self, name: &str) -> Queue {
        self.settings
            .open_queue(self.redis.clone(), name)
            .expect("a configured queue")
    }

    /// The benchmark's database (drop it with [`drop_bench_database`]).
    pub(crate) async fn database(&self) -> Result<mongodb::Database, String> {
        sellersync_core::infra::connections::mongo_database(&self.settings.mongo, "sellersync-bench")
            .await
            .map_err(|e| e.to_string())
    }

    /// What a process the benchmark starts needs in its environment to use the benchmark's
    /// namespace (on top of the configuration it inherits).
    pub(crate) fn namespace_env(&self) -> [(&'static str, String); 2] {
        [
            ("REDIS_KEY_PREFIX", self.prefix.clone()),
            ("MONGODB_DATABASE", self.settings.mongo.database.clone()),
        ]
    }

    pub(crate) async fn reset(&self) -> Result<(), String> {
        delete_keys(&mut self.redis.clone(), &self.prefix)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    pub(crate) fn queue(&self) -> Queue {
        Queue::new(self.redis.clone(), &self.prefix, QUEUE, queue_config())
    }

    pub(crate) fn spawn_worker(&self, concurrency: usize, sleep_ms: u64, count_runs: bool) -> Child {
        self.spawn_limited_worker(concurrency, sleep_ms, count_runs, (0, 1))
    }

    pub(crate) fn spawn_limited_worker(
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

    pub(crate) async fn backlog(&self, n: usize) -> Result<(), String> {
        let queue = self.queue();
        let jobs: Vec<NewJob> = (0..n)
            .map(|i| NewJob::new(&i, EnqueueOptions::default()).unwrap())
            .collect();
        for chunk in jobs.chunks(1000) {
            queue.enqueue_bulk(chunk).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Waits until `n` jobs completed, polling every 5 ms with one `ZCARD` of the completed set
    /// (the polls are counted: they are the harness's commands, not the queue's).
    pub(crate) async fn wait_completed(&self, n: u64, limit: Duration) -> Result<Waited, String> {
        let completed_key = format!("{}completed", self.queue().key_base());
        let started = Instant::now();
        let mut polls = 0;
        loop {
            let completed: u64 = self
                .redis
                .clone()
                .zcard(&completed_key)
                .await
                .map_err(|e| e.to_string())?;
            polls += 1;
            if completed >= n {
                return Ok(Waited {
                    elapsed: started.elapsed(),
                    polls,
                });
            }
            if started.elapsed() > limit {
                return Err(format!("only {completed} of {n} jobs completed after {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Commands Redis has run so far, by name (those scripts run included), from `INFO commandstats`.
    pub(crate) async fn command_calls(&self) -> Result<std::collections::BTreeMap<String, u64>, String> {
        Ok(self
            .command_stats()
            .await?
            .into_iter()
            .map(|(name, (calls, _))| (name, calls))
            .collect())
    }

    /// Redis's own accounting per command since its start (`INFO commandstats`): calls and
    /// microseconds spent (a script's includes the commands it ran).
    pub(crate) async fn command_stats(
        &self,
    ) -> Result<std::collections::BTreeMap<String, (u64, u64)>, String> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|e| e.to_string())?;
        let stat = |rest: &str, name: &str| -> Option<u64> {
            rest.split(&format!("{name}="))
                .nth(1)?
                .split(',')
                .next()?
                .parse()
                .ok()
        };
        Ok(info
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                Some((name.to_owned(), (stat(rest, "calls")?, stat(rest, "usec")?)))
            })
            .collect())
    }

    /// MEMORY USAGE of job hashes (average of a sample) and of the completed index per job.
    pub(crate) async fn memory_breakdown(&self, n: usize) -> Result<(f64, f64), String> {
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
    pub(crate) async fn redis_cpu_seconds(&self) -> Result<f64, String> {
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

    pub(crate) async fn used_memory(&self) -> Result<i64, String> {
        used_memory(&self.redis).await
    }
}

/// Redis's `used_memory`, in bytes.
pub(crate) async fn used_memory(redis: &RedisConnection) -> Result<i64, String> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut redis.clone())
        .await
        .map_err(|e| e.to_string())?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no used_memory in INFO".to_owned())
}

/// Redis's peak `used_memory` while it runs, sampled every 50 ms.
pub(crate) struct MemorySampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<i64>,
}

impl MemorySampler {
    pub(crate) fn start(redis: RedisConnection) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            loop {
                peak = peak.max(used_memory(&redis).await.unwrap_or(0));
                tokio::select! {
                    _ = &mut stopped => return peak,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
        Self { stop, task }
    }

    /// The peak seen.
    pub(crate) async fn stop(self) -> i64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}

pub(crate) fn emit(line: serde_json::Value) {
    println!("{line}");
}

/// A child's peak resident memory (`VmHWM`), in MiB; Linux only.
pub(crate) fn peak_rss_mib(child: &Child) -> Option<f64> {
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

/// CPU time a child has used so far (user + system), in seconds; Linux only. `/proc/<pid>/stat`
/// counts it in clock ticks of USER_HZ, which is 100 on every Linux ABI this runs on.
pub(crate) fn cpu_seconds(child: &Child) -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are
    // numbered from 3, so utime and stime (14 and 15) are the 12th and 13th of them.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

pub(crate) fn stop(children: Vec<Child>) {
    for mut child in children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal); results stay on stdout.
pub(crate) fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Where the workspace's binaries are (`sellersync-worker`, `sellersync-api`): `SELLERSYNC_BIN_DIR`
/// (what the scripts build), else beside this one.
pub(crate) fn sibling_binary(name: &str) -> Result<std::path::PathBuf, String> {
    let dir = match std::env::var_os("SELLERSYNC_BIN_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .ok_or("no directory")?
            .to_path_buf(),
    };
    let binary = dir.join(name);
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!(
            "{} not found: build the workspace's binaries first (or set SELLERSYNC_BIN_DIR)",
            binary.display()
        ))
    }
}

/// Drops a benchmark's database and closes its client (see `close_mongo`).
pub(crate) async fn drop_bench_database(db: mongodb::Database) {
    let _ = db.drop().await;
    sellersync_core::infra::connections::close_mongo(&db).await;
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}
