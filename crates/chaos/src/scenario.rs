//! The lifecycle scenario's timeline and its report.

use std::time::{Duration, Instant};

use figment::value::Value;
use mongodb::Database;
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::domain::accounts::{self, NewAccount};
use sellersync_core::domain::spapi::Region;
use sellersync_core::infra::connections::{close_mongo, connect_redis, mongo_database};
use sellersync_core::jobs::job_status::projector::GROUP;
use sellersync_core::jobs::payload::Trigger;
use sellersync_core::testing::{PrivateMongo, PrivateRedis, TestNamespace};
use sellersync_core::{demo, infra::migrations, jobs::producer};
use sellersync_queue::{JobState, Queue};
use sellersync_spapi_sim::SimUrls;
use serde::Serialize;

use crate::audit::{self, Audit};
use crate::check::{self, Mismatch};
use crate::fleet::{Fleet, logged_panics};
use crate::lost_write::lose_lease_writes;

/// Users whose seller revoked our access: their jobs fail for good, by design.
const REVOKED_USERS: [&str; 2] = ["chaos-revoked-0", "chaos-revoked-1"];
/// Waiting jobs an admin removes.
const REMOVED_BY_ADMIN: usize = 2;
/// Leases a simulated fail-over loses.
const LOST_LEASES: usize = 2;

/// What to run. The defaults are the full form; [`Scenario::short`] is the test command's.
#[derive(Debug, Clone, clap::Args)]
pub struct Scenario {
    /// Users refreshed, enqueued in three waves (before the kill, the freeze and the outage).
    #[arg(long, default_value_t = 60)]
    pub users: usize,
    /// Seller accounts per user.
    #[arg(long, default_value_t = 2)]
    pub accounts: usize,
    /// Worker processes (one of them is SIGKILLed and replaced).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Jobs per worker process at once.
    #[arg(long, default_value_t = 5)]
    pub concurrency: u32,
    /// Latency the SP-API stand-in adds to every call.
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
    /// How long Redis is paused (`CLIENT PAUSE ... ALL`) while jobs run.
    #[arg(long, default_value_t = 12)]
    pub redis_pause_secs: u64,
    /// How far ahead the replacement worker's wall clock runs (libfaketime).
    #[arg(long, default_value_t = 10)]
    pub skew_secs: i64,
    /// How long MongoDB is frozen (SIGSTOP) while jobs run.
    #[arg(long, default_value_t = 20)]
    pub freeze_secs: u64,
    /// How long MongoDB is stopped while jobs run.
    #[arg(long, default_value_t = 10)]
    pub outage_secs: u64,
    /// Give up waiting for the jobs (and report them unfinished) after this long.
    #[arg(long, default_value_t = 300)]
    pub deadline_secs: u64,
}

impl Scenario {
    /// The short form the test command runs (about half a minute).
    pub fn short() -> Self {
        Self {
            users: 24,
            accounts: 2,
            workers: 2,
            concurrency: 4,
            latency_ms: 100,
            redis_pause_secs: 3,
            skew_secs: 10,
            freeze_secs: 4,
            outage_secs: 3,
            deadline_secs: 120,
        }
    }
}

/// What a run saw. [`Report::passed`] is the suite's verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct Report {
    pub scenario: &'static str,
    pub users: usize,
    pub enqueued: usize,
    pub completed: u64,
    pub failed: u64,
    /// Failed jobs of users whose data was fine: failed because of a fault.
    pub failed_unexpectedly: usize,
    pub removed_by_admin: usize,
    pub retried_by_admin: usize,
    pub workers_killed: usize,
    pub redis_paused_secs: u64,
    pub redis_restarts: usize,
    /// Leases a simulated fail-over lost (their attempts ran on; everything they wrote later must
    /// have been refused).
    pub lost_lease_writes: usize,
    /// The replacement worker ran with its clock this far ahead (0: libfaketime missing).
    pub skewed_worker_secs: i64,
    pub workers_drained: usize,
    pub mongo_frozen_secs: u64,
    pub mongo_stopped_secs: u64,
    /// Leases the reaper took from live workers (double runs, unless fencing stopped them).
    pub double_runs: usize,
    pub audit: Audit,
    /// Jobs neither completed, failed nor removed when the run ended (lost, or stuck).
    pub unfinished: usize,
    /// Jobs whose JobStatus record disagrees with the queue.
    pub mismatches: usize,
    pub mismatch_examples: Vec<Mismatch>,
    /// Panics the workers logged (caught ones included: a handler's panic fails its attempt).
    pub worker_panics: usize,
    pub panic_examples: Vec<String>,
    pub seconds: f64,
    /// The worker logs of the run.
    pub logs: String,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failed_unexpectedly == 0
            && self.unfinished == 0
            && self.mismatches == 0
            && self.double_runs == 0
            && self.worker_panics == 0
    }
}

/// Runs the scenario and reports what it saw (an `Err` means the harness itself failed).
pub async fn run(s: &Scenario) -> Result<Report, String> {
    let clock = Instant::now();
    let (mut redis_server, mut mongo) =
        tokio::task::spawn_blocking(|| (PrivateRedis::start(), PrivateMongo::start()))
            .await
            .map_err(|e| e.to_string())?;
    let sim = sellersync_spapi_sim::spawn_with_latency(s.latency_ms)
        .await
        .map_err(|e| e.to_string())?;
    let ns = TestNamespace::with_overrides(&[
        ("redis.port", Value::from(redis_server.port)),
        ("mongo.uri", Value::from(mongo.uri())),
        ("queues.user-data.keep_completed", Value::from(1_000_000)),
    ]);
    let db = mongo_database(&ns.settings.mongo, "sellersync-chaos")
        .await
        .map_err(|e| e.to_string())?;
    migrations::apply(&db).await.map_err(|e| e.to_string())?;
    let redis = connect_redis(&ns.settings.redis)
        .await
        .map_err(|e| e.to_string())?;
    let queue = ns
        .settings
        .open_queue(redis, USER_DATA_QUEUE)
        .expect("configured");
    queue
        .ensure_event_group(audit::GROUP)
        .await
        .map_err(|e| e.to_string())?;
    let users = seed(&db, s).await?;
    let logs = std::env::temp_dir().join(format!("sellersync-chaos-{}", ns.database()));
    let mut fleet = Fleet::new(worker_env(&ns, &mongo.uri(), &sim, s), logs.clone());
    for _ in 0..s.workers {
        fleet.start();
    }

    let mut waves = users.chunks(users.len().div_ceil(6).max(1));
    let mut next_wave = || waves.next().unwrap_or_default();
    let mut jobs = enqueue(&queue, next_wave()).await?;
    let removed = remove_waiting(&queue, REMOVED_BY_ADMIN).await?;
    jobs.extend(enqueue(&queue, &REVOKED_USERS.map(str::to_owned)).await?);
    let retried = retry_revoked(&queue, &jobs, s).await?;

    jobs.extend(enqueue(&queue, next_wave()).await?);
    running(&queue).await;
    fleet.kill_one();
    let skewed = fleet.start_skewed(s.skew_secs);

    jobs.extend(enqueue(&queue, next_wave()).await?);
    running(&queue).await;
    pause_redis(&ns, s.redis_pause_secs).await?;

    jobs.extend(enqueue(&queue, next_wave()).await?);
    running(&queue).await;
    mongo.freeze();
    tokio::time::sleep(Duration::from_secs(s.freeze_secs)).await;
    mongo.thaw();

    jobs.extend(enqueue(&queue, next_wave()).await?);
    running(&queue).await;
    tokio::task::block_in_place(|| mongo.stop());
    tokio::time::sleep(Duration::from_secs(s.outage_secs)).await;
    tokio::task::block_in_place(|| mongo.restart());

    jobs.extend(enqueue(&queue, next_wave()).await?);
    running(&queue).await;
    tokio::task::block_in_place(|| redis_server.restart());
    running(&queue).await;
    let lost_writes = lose_lease_writes(&queue, LOST_LEASES).await?;
    tokio::task::block_in_place(|| fleet.drain_one());
    fleet.start();

    let deadline = Duration::from_secs(s.deadline_secs);
    wait_until(deadline, || async { settled(&queue).await }).await;
    tokio::task::block_in_place(|| fleet.stop_all());

    let mismatches = check::mismatches(&queue, &db, &jobs).await;
    close_mongo(&db).await;
    let mismatches = mismatches?;
    let counts = queue.counts().await.map_err(|e| e.to_string())?;
    let failed_unexpectedly = failed_users(&queue)
        .await?
        .iter()
        .filter(|user| !REVOKED_USERS.contains(&user.as_str()))
        .count();
    let mut conn = connect_redis(&ns.settings.redis)
        .await
        .map_err(|e| e.to_string())?;
    let audit = audit::audit(&queue, &mut conn, &fleet.killed).await?;
    let panics = logged_panics(&logs);
    Ok(Report {
        scenario: "lifecycle",
        users: users.len() + REVOKED_USERS.len(),
        enqueued: jobs.len(),
        completed: counts.completed,
        failed: counts.failed,
        failed_unexpectedly,
        removed_by_admin: removed,
        retried_by_admin: retried,
        workers_killed: fleet.killed.len(),
        redis_paused_secs: s.redis_pause_secs,
        redis_restarts: 1,
        lost_lease_writes: lost_writes,
        skewed_worker_secs: if skewed { s.skew_secs } else { 0 },
        workers_drained: 1,
        mongo_frozen_secs: s.freeze_secs,
        mongo_stopped_secs: s.outage_secs,
        unfinished: (counts.waiting + counts.active + counts.delayed + counts.paused) as usize,
        mismatches: mismatches.len(),
        mismatch_examples: mismatches.into_iter().take(5).collect(),
        double_runs: audit.stalls_of_live_workers,
        audit,
        worker_panics: panics.len(),
        panic_examples: panics.into_iter().take(5).collect(),
        seconds: (clock.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        logs: logs.display().to_string(),
    })
}

/// Pauses every client of the run's Redis for `secs` (what a slow fork, an AOF rewrite on a busy
/// disk or a managed failover looks like), and waits it out.
async fn pause_redis(ns: &TestNamespace, secs: u64) -> Result<(), String> {
    let mut conn = connect_redis(&ns.settings.redis)
        .await
        .map_err(|e| e.to_string())?;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(secs * 1000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Ok(())
}

/// Waits (briefly) until some job is running, so the next fault meets work in flight.
async fn running(queue: &Queue) {
    wait_until(Duration::from_secs(10), || async {
        queue.counts().await.is_ok_and(|c| c.active > 0)
    })
    .await;
}

/// Every job finished and JobStatus has recorded every event.
async fn settled(queue: &Queue) -> bool {
    let Ok(counts) = queue.counts().await else {
        return false;
    };
    let busy = counts.waiting + counts.active + counts.delayed + counts.paused;
    busy == 0 && queue.event_backlog(GROUP).await.is_ok_and(|b| b.total() == 0)
}

/// Polls `check` until it holds or `limit` passes (the report then shows what is unfinished).
async fn wait_until<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !check().await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Demo users with working accounts, and the revoked users.
async fn seed(db: &Database, s: &Scenario) -> Result<Vec<String>, String> {
    demo::seed(db, s.users, s.accounts, &|_| {})
        .await
        .map_err(|e| e.to_string())?;
    for (n, user) in REVOKED_USERS.iter().enumerate() {
        accounts::upsert_user(db, user, true)
            .await
            .map_err(|e| e.to_string())?;
        let seller = format!("REVOKED-CHAOS-{n}");
        let account = NewAccount {
            user_id: (*user).to_owned(),
            refresh_token: format!("Atzr|{seller}|revoked").as_str().into(),
            seller_id: seller,
            region: Region::Na,
            marketplace_id: "ATVPDKIKX0DER".into(),
        };
        accounts::upsert_account(db, &account)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok((0..s.users).map(demo::user_id).collect())
}

async fn enqueue(queue: &Queue, users: &[String]) -> Result<Vec<String>, String> {
    let report = producer::enqueue_refresh(queue, users, Trigger::Manual, 50)
        .await
        .map_err(|e| e.to_string())?;
    Ok(report.enqueued.into_iter().map(|j| j.job_id).collect())
}

/// An admin removes the newest waiting jobs (as `DELETE /api/jobs/:id` does).
async fn remove_waiting(queue: &Queue, n: usize) -> Result<usize, String> {
    let waiting = queue
        .list(JobState::Waiting, 0, n)
        .await
        .map_err(|e| e.to_string())?;
    let mut removed = 0;
    for job in waiting {
        // It may have been taken by a worker meanwhile: then it is not removable, and that is fine.
        if queue.remove(&job.id).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Waits for the revoked users' jobs to fail, then an admin retries them (they fail again).
async fn retry_revoked(queue: &Queue, jobs: &[String], s: &Scenario) -> Result<usize, String> {
    let revoked: Vec<String> = jobs[jobs.len() - REVOKED_USERS.len()..].to_vec();
    let failed = |id: String| async move {
        queue
            .get(&id)
            .await
            .ok()
            .flatten()
            .is_some_and(|j| j.state == "failed")
    };
    wait_until(Duration::from_secs(s.deadline_secs), || async {
        for id in &revoked {
            if !failed(id.clone()).await {
                return false;
            }
        }
        true
    })
    .await;
    let mut retried = 0;
    for id in &revoked {
        if queue.retry(id).await.is_ok() {
            retried += 1;
        }
    }
    Ok(retried)
}

/// The users of every failed job.
async fn failed_users(queue: &Queue) -> Result<Vec<String>, String> {
    let failed = queue
        .list(JobState::Failed, 0, 10_000)
        .await
        .map_err(|e| e.to_string())?;
    Ok(failed
        .iter()
        .filter_map(|j| j.data["userId"].as_str().map(str::to_owned))
        .collect())
}

/// The worker processes' settings: this run's namespace, MongoDB and stand-in, fast retries.
fn worker_env(ns: &TestNamespace, mongo_uri: &str, sim: &SimUrls, s: &Scenario) -> Vec<(String, String)> {
    let redis = &ns.settings.redis;
    [
        ("REDIS_HOST", redis.host.clone()),
        ("REDIS_PORT", redis.port.to_string()),
        ("REDIS_KEY_PREFIX", ns.key_prefix().to_owned()),
        ("MONGODB_URI", mongo_uri.to_owned()),
        ("MONGODB_DATABASE", ns.database().to_owned()),
        ("WORKER_CONCURRENCY", s.concurrency.to_string()),
        ("JOB_RETRY_DELAY", "200".to_owned()),
        ("SELLERSYNC_WORKER__USER_BUSY_DELAY_MS", "200".to_owned()),
        ("SELLERSYNC_WORKER__STORE_UNAVAILABLE_DELAY_MS", "500".to_owned()),
        (
            "SELLERSYNC_QUEUES__USER-DATA__KEEP_COMPLETED",
            "1000000".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(sim.env())
    .collect()
}
