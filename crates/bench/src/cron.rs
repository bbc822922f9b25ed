//! `sellersync-bench cron`: one hourly tick of N users, run as the producer runs it, timed until
//! every job is readable as `queued` (the status read model) and, apart, until MongoDB holds
//! every `queued` record (off the tick's critical path); with Redis's peak memory over the tick
//! and the read model's bytes per user.

use std::time::{Duration, Instant};

use sellersync_core::Settings;
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::jobs::job_status::projector::{GROUP, READ_MODEL_GROUP};
use sellersync_core::jobs::job_status::read_model::ReadModel;
use sellersync_core::jobs::job_status::{self, Status, reads};
use sellersync_core::jobs::producer::{Producer, TickOutcome};
use sellersync_queue::Queue;
use serde_json::json;

use crate::harness::{Bench, MemorySampler, drop_bench_database, emit};

#[derive(clap::Args, Debug, Clone)]
pub struct CronBenchArgs {
    /// Stale users (each with one seller account) the tick selects and enqueues.
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Users per enqueue round trip (seed 000: 50).
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
    /// Users whose status is read back after the tick (each must answer `queued` from the read
    /// model) and whose read-model bytes are measured.
    #[arg(long, default_value_t = 1000)]
    pub check: usize,
}

/// `sellersync-bench cron` (see the module documentation). Temporary database and key prefix,
/// dropped afterwards.
pub async fn cron(settings: &Settings, args: &CronBenchArgs) -> Result<(), String> {
    let bench = Bench::fresh(settings, "cron").await?;
    let db = bench.database().await?;
    let result = cron_run(args, &bench, &db).await;
    drop_bench_database(db).await;
    bench.reset().await?;
    result
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn cron_run(args: &CronBenchArgs, bench: &Bench, db: &mongodb::Database) -> Result<(), String> {
    let settings = &bench.settings;
    sellersync_core::infra::migrations::apply(db).await.map_err(err)?;
    sellersync_core::demo::seed(db, args.users, 1, &|_| {})
        .await
        .map_err(err)?;
    let queue = bench.open_queue(USER_DATA_QUEUE);
    let read_model = settings
        .job_status
        .read_model(bench.redis.clone(), &bench.prefix)
        .ok_or("job_status.read_model_jobs is 0: the status read model is off")?;
    let producer = Producer {
        db: db.clone(),
        redis: bench.redis.clone(),
        queue: queue.clone(),
        instance: "bench".into(),
        key_prefix: bench.prefix.clone(),
        batch_size: args.batch_size,
        lease_ttl: Duration::from_secs(30),
        due_tolerance: settings.cron.due_tolerance,
    };

    let memory_before = bench.used_memory().await?;
    let sampler = MemorySampler::start(bench.redis.clone());
    let projectors =
        sellersync_core::bootstrap::spawn_projector(settings, queue.clone(), db.clone(), "bench")
            .map_err(err)?
            .ok_or("job_status.projector is off")?;
    let clock = Instant::now();
    let tick = match producer.run_tick(chrono::Utc::now()).await.map_err(err)? {
        TickOutcome::Ran(report) => report,
        other => return Err(format!("the tick did not run: {other:?}")),
    };
    let tick_secs = clock.elapsed().as_secs_f64();
    caught_up(&queue, READ_MODEL_GROUP).await?;
    let readable_secs = clock.elapsed().as_secs_f64();
    let memory_peak = sampler.stop().await;
    caught_up(&queue, GROUP).await?;
    let recorded_secs = clock.elapsed().as_secs_f64();
    projectors.stop().await;

    let check = read_back(db, &read_model, &tick.tick_id, args.check).await?;
    let records = db
        .collection::<mongodb::bson::Document>(job_status::JOB_STATUS)
        .count_documents(mongodb::bson::doc! { "status": "queued" })
        .await
        .map_err(err)?;
    let round = |s: f64| (s * 1000.0).round() / 1000.0;
    emit(json!({
        "scenario": "cron_tick", "users": args.users, "selected": tick.selected, "enqueued": tick.enqueued,
        "batch_size": args.batch_size,
        "tick_seconds": round(tick_secs),
        "queued_readable_seconds": round(readable_secs),
        "job_status_recorded_seconds": round(recorded_secs),
        "job_status_records": records,
        "checked_users": check.users, "checked_queued": check.queued,
        "read_model_bytes_per_user": check.bytes_per_user,
        "redis_peak_mib": round((memory_peak - memory_before).max(0) as f64 / 1_048_576.0),
    }));
    Ok(())
}

/// Waits until consumer group `group` has read and acknowledged every event of `queue`.
async fn caught_up(queue: &Queue, group: &str) -> Result<(), String> {
    while queue.event_backlog(group).await.map_err(err)?.total() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// What reading statuses back after the tick found.
struct ReadBack {
    users: usize,
    /// Users whose tick job the read model holds as `queued`.
    queued: usize,
    /// Mean read-model bytes per user once its status was read (freshness, job list, job).
    bytes_per_user: u64,
}

/// Reads back the status of the first `limit` users: their tick's job from the read model alone
/// (it must say `queued`), then the user's status as a client polls it (which fills the user's
/// entry), then the entries' size.
async fn read_back(
    db: &mongodb::Database,
    read_model: &ReadModel,
    tick: &str,
    limit: usize,
) -> Result<ReadBack, String> {
    let mut cursor = db
        .collection::<mongodb::bson::Document>(sellersync_core::domain::accounts::USERS)
        .find(mongodb::bson::doc! {})
        .projection(mongodb::bson::doc! { "_id": 1 })
        .limit(limit as i64)
        .await
        .map_err(err)?;
    let mut users = Vec::with_capacity(limit);
    while cursor.advance().await.map_err(err)? {
        users.push(cursor.deserialize_current().map_err(err)?);
    }
    let (mut queued, mut bytes) = (0, 0);
    for user in users.iter().filter_map(|u| u.get_str("_id").ok()) {
        let job = read_model.job(&format!("{user}@{tick}")).await.map_err(err)?;
        queued += usize::from(job.is_some_and(|j| j.status == Status::Queued));
        reads::user_status(db, Some(read_model), user, 10)
            .await
            .map_err(err)?;
        bytes += read_model.memory_of_user(user).await.map_err(err)?;
    }
    Ok(ReadBack {
        users: users.len(),
        queued,
        bytes_per_user: bytes / users.len().max(1) as u64,
    })
}
