//! `sellersync-bench e2e`: users refreshed per second end to end.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sellersync_core::Settings;
use serde_json::json;

use crate::harness::{
    Bench, drop_bench_database, emit, free_port, peak_rss_mib, progress_bar, sibling_binary, stop,
};

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
    let sim = sellersync_spapi_sim::spawn_with_latency(args.latency_ms)
        .await
        .map_err(|e| e.to_string())?;
    let bench = Bench::fresh(settings, "e2e").await?;
    let db = bench.database().await?;
    let result = e2e_run(args, &bench, &db, &sim).await;
    drop_bench_database(db).await;
    bench.reset().await?;
    result
}

async fn e2e_run(
    args: &E2eBenchArgs,
    bench: &Bench,
    db: &mongodb::Database,
    sim: &sellersync_spapi_sim::SimUrls,
) -> Result<(), String> {
    use sellersync_core::config::USER_DATA_QUEUE;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    sellersync_core::infra::migrations::apply(db)
        .await
        .map_err(|e| err(&e))?;
    sellersync_core::demo::seed(db, args.users, args.accounts, &|_| {})
        .await
        .map_err(|e| err(&e))?;
    let users: Vec<String> = (0..args.users).map(sellersync_core::demo::user_id).collect();
    let queue = bench.open_queue(USER_DATA_QUEUE);
    sellersync_core::jobs::producer::enqueue_refresh(
        &queue,
        &users,
        sellersync_core::jobs::payload::Trigger::Manual,
        50,
    )
    .await
    .map_err(|e| err(&e))?;
    let worker_bin = sibling_binary("sellersync-worker")?;
    let started = Instant::now();
    let metrics_ports: Vec<u16> = (0..args.workers).map(|_| free_port()).collect();
    let children: Vec<Child> = metrics_ports
        .iter()
        .map(|port| {
            Command::new(&worker_bin)
                .envs(bench.namespace_env())
                .env("METRICS_PORT", port.to_string())
                .env("WORKER_CONCURRENCY", args.concurrency.to_string())
                .envs(sim.env())
                .env("LOG_LEVEL", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", worker_bin.display()))
        })
        .collect::<Result<_, _>>()?;
    // Watched in Redis (the queue's counts and the projection's backlog), so the benchmark adds
    // no load to MongoDB; the JobStatus records are counted once at the end.
    let group = sellersync_core::jobs::job_status::projector::GROUP;
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
        .collection::<mongodb::bson::Document>(sellersync_core::jobs::job_status::JOB_STATUS)
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

/// MongoDB commands the workers sent (their `sellersync_mongodb_commands_total`, start-up and
/// JobStatus projection included), by command name, summed over the workers.
async fn mongo_commands(ports: &[u16]) -> std::collections::BTreeMap<String, u64> {
    let mut total = std::collections::BTreeMap::new();
    for port in ports {
        let client = sellersync_core::infra::tls::http_client().build();
        let Ok(response) = (match client {
            Ok(client) => {
                client
                    .get(format!("http://127.0.0.1:{port}/metrics"))
                    .send()
                    .await
            }
            Err(error) => Err(error),
        }) else {
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
