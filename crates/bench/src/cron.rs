//! `sellersync-bench cron`: the hourly producer's select and enqueue, timed in parts.

use std::time::{Duration, Instant};

use sellersync_core::Settings;
use serde_json::json;

use crate::harness::{Bench, drop_bench_database, emit};

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
    let bench = Bench::fresh(settings, "cron").await?;
    let db = bench.database().await?;
    let result = cron_run(args, &bench, &db).await;
    drop_bench_database(db).await;
    bench.reset().await?;
    result
}

async fn cron_run(args: &CronBenchArgs, bench: &Bench, db: &mongodb::Database) -> Result<(), String> {
    let settings = &bench.settings;
    use sellersync_core::config::USER_DATA_QUEUE;
    use sellersync_core::jobs::payload::Trigger;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    sellersync_core::infra::migrations::apply(db)
        .await
        .map_err(|e| err(&e))?;
    sellersync_core::demo::seed(db, args.users, 1, &|_| {})
        .await
        .map_err(|e| err(&e))?;
    let queue = bench.open_queue(USER_DATA_QUEUE);

    let clock = Instant::now();
    let mut stale = sellersync_core::jobs::producer::StaleUsers::open(
        db,
        chrono::Utc::now(),
        settings.cron.due_tolerance,
    )
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
    let projector = sellersync_core::bootstrap::spawn_projector(settings, queue.clone(), db.clone(), "bench")
        .map_err(|e| err(&e))?
        .ok_or("job_status.projector is off")?;
    let report =
        sellersync_core::jobs::producer::enqueue_refresh(&queue, &users, Trigger::Cron, args.batch_size)
            .await
            .map_err(|e| err(&e))?;
    let enqueue_secs = clock.elapsed().as_secs_f64();
    let group = sellersync_core::jobs::job_status::projector::GROUP;
    while queue.event_backlog(group).await.map_err(|e| err(&e))?.total() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let projected_secs = clock.elapsed().as_secs_f64();
    projector.stop().await;
    let records = db
        .collection::<mongodb::bson::Document>(sellersync_core::jobs::job_status::JOB_STATUS)
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
