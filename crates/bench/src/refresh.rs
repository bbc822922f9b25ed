//! `sellersync-bench refresh`: `process_user_data` against the SP-API stand-in per seller size.

use std::time::Instant;

use redis::AsyncCommands;
use sellersync_core::Settings;
use sellersync_core::infra::connections::delete_keys;
use sellersync_queue::RedisConnection;
use serde_json::json;

use crate::harness::{Bench, drop_bench_database, emit};

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

/// `sellersync-bench refresh`: per seller size, one user's accounts refreshed twice by
/// `process_user_data` against the stand-in (Amazon's default usage plans on, the given latency
/// per call): the first run lists each account's window whole, the second (as the next hourly
/// run would) only what changed since. Prints SP-API calls per account, 429s received,
/// rate-bound accounts and accounts/s for each run. Temporary database and key prefix, dropped
/// afterwards.
pub async fn refresh(settings: &Settings, args: &RefreshBenchArgs) -> Result<(), String> {
    let bench = Bench::fresh(settings, "refresh").await?;
    let db = bench.database().await?;
    let result = refresh_scenarios(&bench, args, &db).await;
    drop_bench_database(db).await;
    bench.reset().await?;
    result
}

async fn refresh_scenarios(
    bench: &Bench,
    args: &RefreshBenchArgs,
    db: &mongodb::Database,
) -> Result<(), String> {
    let settings = &bench.settings;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    sellersync_core::demo::seed(db, 1, args.accounts, &|_| {})
        .await
        .map_err(|e| err(&e))?;
    let user = sellersync_core::demo::user_id(0);
    let redis = bench.redis.clone();
    for &orders_per_day in &args.orders_per_day {
        let sim = sellersync_spapi_sim::spawn(sellersync_spapi_sim::SimConfig {
            latency_ms: args.latency_ms,
            orders_per_day,
            ..sellersync_spapi_sim::SimConfig::default()
        })
        .await
        .map_err(|e| err(&e))?;
        let key_prefix = format!("{}o{orders_per_day}:", bench.prefix);
        let refresher = bench_refresher(settings, args, db, &redis, &sim, &key_prefix)?;
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
    let caches = sellersync_core::jobs::refresh::Caches::new(redis.clone(), prefix);
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> = conn.scan_match(format!("{prefix}cache:orders:*")).await?;
        let mut keys = Vec::new();
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
        keys
    };
    for key in keys {
        let Some(stored) = caches.get(&key).await? else {
            continue;
        };
        let Ok(mut book) = serde_json::from_slice::<sellersync_core::jobs::refresh::OrderBook>(&stored)
        else {
            continue;
        };
        if book.pending.is_none() {
            book.synced_through -= chrono::TimeDelta::hours(1);
        }
        let json = serde_json::to_vec(&book).unwrap_or(stored);
        let fence = sellersync_core::domain::accounts::Fence::now();
        caches
            .put(&key, &json, fence, std::time::Duration::from_secs(3600))
            .await?;
    }
    Ok(())
}

/// A refresher against the stand-in at `sim`, its rate-limit buckets and caches under `key_prefix`.
fn bench_refresher(
    settings: &Settings,
    args: &RefreshBenchArgs,
    db: &mongodb::Database,
    redis: &sellersync_queue::RedisConnection,
    sim: &sellersync_spapi_sim::SimUrls,
    key_prefix: &str,
) -> Result<sellersync_core::jobs::refresh::Refresher, String> {
    let mut spapi = settings.spapi.clone();
    spapi.token_url = sim.token_url();
    spapi.endpoints = sellersync_core::domain::spapi::SpApiEndpoints {
        na: sim.na.clone(),
        eu: sim.eu.clone(),
        fe: sim.fe.clone(),
    };
    let client = sellersync_core::domain::spapi::SpApiClient::new(spapi)
        .map_err(|e| e.to_string())?
        .with_shared_rate_limits(redis.clone(), key_prefix);
    let mut refresh = settings.refresh.clone();
    refresh.account_concurrency = args.concurrency;
    Ok(sellersync_core::jobs::refresh::Refresher {
        store: sellersync_core::jobs::refresh::RefreshStore::new(db.clone()),
        redis: redis.clone(),
        spapi: std::sync::Arc::new(client),
        settings: refresh,
        caches: sellersync_core::jobs::refresh::Caches::new(redis.clone(), key_prefix),
    })
}
