//! `process_user_data` against the stand-in with Amazon's default usage plans on and the client
//! pacing through shared Redis buckets, as deployed: big sellers, sellers with several accounts,
//! partial failures, revoked grants, currencies.

use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use sellersync_core::domain::accounts::{self, Fence, NewAccount};
use sellersync_core::domain::spapi::marketplaces;
use sellersync_core::jobs::refresh::Refresher;
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::SimConfig;

use crate::sim::{self, Sim};

const US: &str = "ATVPDKIKX0DER";
const DE: &str = "A1PA6795UKMFR9";
const JP: &str = "A1VC38T7YXB528";

pub async fn refresher(ns: &TestNamespace, sim: &Sim) -> Refresher {
    sim.refresher(ns, sim.shared_client(ns).await).await
}

/// A namespace, a stand-in whose sellers have `orders_per_day`, and a refresher against it.
async fn with_orders_per_day(orders_per_day: u64) -> (TestNamespace, Sim, Refresher) {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig {
        orders_per_day,
        ..SimConfig::default()
    })
    .await;
    let r = refresher(&ns, &sim).await;
    (ns, sim, r)
}

/// A user with one account per (seller, marketplace); returns the account ids.
pub async fn user(r: &Refresher, user: &str, accounts: &[(&str, &str)]) -> Vec<String> {
    accounts::upsert_user(r.store.db(), user, true).await.unwrap();
    let mut ids = Vec::new();
    for (seller, marketplace) in accounts {
        let account = NewAccount {
            user_id: user.into(),
            seller_id: (*seller).into(),
            region: marketplaces::region_of(marketplace).expect("an Amazon marketplace"),
            marketplace_id: (*marketplace).into(),
            refresh_token: format!("Atzr|{seller}|secret").as_str().into(),
        };
        ids.push(accounts::upsert_account(r.store.db(), &account).await.unwrap());
    }
    ids
}

pub async fn cached_summary(r: &Refresher, account_id: &str) -> serde_json::Value {
    let cached = r.caches.get(&r.cache_key(account_id)).await.unwrap();
    serde_json::from_slice(&cached.expect("summary cached")).unwrap()
}

/// As if the account's last run had been `hours` earlier: its order book was synced then.
pub async fn age_order_book(r: &Refresher, account_id: &str, hours: i64) {
    let key = r.order_book_key(account_id);
    let stored = r.caches.get(&key).await.unwrap().expect("an order book");
    let mut book: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    let synced: chrono::DateTime<Utc> = book["syncedThrough"].as_str().unwrap().parse().unwrap();
    book["syncedThrough"] = serde_json::json!(synced - TimeDelta::hours(hours));
    let book = book.to_string();
    let written = r
        .caches
        .put(&key, book.as_bytes(), Fence::now(), Duration::from_secs(3600));
    assert!(written.await.unwrap());
}

#[tokio::test]
async fn a_seller_with_1000_live_orders_is_refreshed_within_the_job_timeout_without_a_429() {
    let (ns, sim, r) = with_orders_per_day(200).await;
    let ids = user(&r, "big", &[("BIGSELLER", US)]).await;

    let started = Instant::now();
    let report = r.process_user_data("big", &|_| {}).await.unwrap();
    let elapsed = started.elapsed();

    assert_eq!(
        (report.accounts_processed, report.errors.len()),
        (1, 0),
        "{report:?}"
    );
    assert!(elapsed < ns.settings.worker.job_timeout, "{elapsed:?}");
    let summary = cached_summary(&r, &ids[0]).await;
    let orders = summary["orderCount"].as_u64().unwrap();
    let live = orders - summary["cancelledCount"].as_u64().unwrap();
    assert!(live >= 1000, "{live} live orders");
    assert_eq!(sim.stats().await.throttled, 0, "no 429 at all");
    let calls = r.spapi.stats();
    assert_eq!(calls.throttled, 0);
    assert!(
        calls.requests <= orders / 100 + 2,
        "one call per page of 100 orders plus inventory, no per-order calls: {calls:?}"
    );
}

#[tokio::test]
async fn accounts_of_one_seller_share_its_bucket_and_the_excess_is_rate_bound_not_throttled() {
    let (_ns, sim, r) = with_orders_per_day(200).await;
    // Two marketplaces of one seller: about 28 searchOrders pages against a burst of 20.
    user(&r, "eu", &[("EUSELLER", US), ("EUSELLER", DE)]).await;

    let report = r.process_user_data("eu", &|_| {}).await.unwrap();

    assert_eq!(
        sim.stats().await.throttled,
        0,
        "the shared bucket kept every call inside the plan"
    );
    assert!(!report.errors.is_empty(), "28 pages cannot fit a burst of 20");
    for error in &report.errors {
        assert!(error.retryable && !error.needs_reauthorization, "{error:?}");
        let after = error.retry_after_ms.expect("rate-bound");
        assert!((170_000..=180_000).contains(&after), "{after} ms");
    }
    let defer = report.rate_bound_retry_after().expect("the job can be deferred");
    assert!(defer >= Duration::from_secs(170));
}

#[tokio::test]
async fn an_inventory_failure_keeps_the_order_analysis() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    let ids = user(&r, "noinv", &[("NOINV", US)]).await;
    // Amazon's inventory service fails for longer than the retries last.
    sim.fault_on("NOINV", "getInventorySummaries", 503, 100).await;

    let report = r.process_user_data("noinv", &|_| {}).await.unwrap();

    assert_eq!((report.accounts_processed, report.accounts_failed), (1, 0));
    let summary = cached_summary(&r, &ids[0]).await;
    assert!(summary["orderCount"].as_u64().unwrap() > 0, "{summary}");
    let why = summary["inventoryUnavailable"].as_str().expect("flagged");
    assert!(why.contains("server error 503"), "{why}");
    assert_eq!(summary["stockoutRisk"], serde_json::json!([]));
    assert_eq!(report.degraded.len(), 1, "the job says so: {report:?}");
}

#[tokio::test]
async fn a_revoked_grant_marks_the_account_as_needing_reauthorization() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    user(&r, "gone", &[("REVOKED-7", US), ("STILL-HERE", US)]).await;

    let report = r.process_user_data("gone", &|_| {}).await.unwrap();

    assert_eq!((report.accounts_processed, report.accounts_failed), (1, 1));
    let revoked: Vec<_> = report.needing_reauthorization().collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].seller_id, "REVOKED-7");
    assert!(!revoked[0].retryable && revoked[0].message.contains("invalid_grant"));
    assert_eq!(report.rate_bound_retry_after(), None);
}

#[tokio::test]
async fn a_throttled_account_reports_when_to_retry() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    user(&r, "busy", &[("BUSY", US)]).await;
    // Someone else (another app of this seller's) took the searchOrders tokens: Amazon says 429.
    sim.fault_on("BUSY", "searchOrders", 429, 1).await;

    let report = r.process_user_data("busy", &|_| {}).await.unwrap();

    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].retry_after_ms.is_some(), "rate-bound");
    let after = report.rate_bound_retry_after().unwrap();
    assert!(
        after >= Duration::from_secs(170),
        "a 429 waits a refill interval: {after:?}"
    );
    assert_eq!(
        sim.stats().await.api,
        1,
        "nothing more was sent into the empty bucket"
    );
}

#[tokio::test]
async fn yen_are_counted_in_yen_and_the_window_ends_before_the_hour() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    let ids = user(&r, "tokyo", &[("TOKYO", JP)]).await;

    let report = r.process_user_data("tokyo", &|_| {}).await.unwrap();
    assert_eq!(report.accounts_processed, 1, "{report:?}");

    let summary = cached_summary(&r, &ids[0]).await;
    let end = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::minutes(5);
    let window_end: chrono::DateTime<Utc> = summary["window"]["end"].as_str().unwrap().parse().unwrap();
    assert_eq!(window_end, end, "five minutes before the top of the hour");
    let start = end - TimeDelta::days(7);
    let now = Utc::now();
    let jp = sellersync_spapi_sim::marketplaces::find(JP).unwrap();
    let expected: u64 = sellersync_spapi_sim::data::orders("TOKYO", jp, start, end, 2)
        .iter()
        .filter(|o| {
            let status = o.status(now);
            status != sellersync_spapi_sim::data::Status::Cancelled
                && status != sellersync_spapi_sim::data::Status::Pending
        })
        .map(|o| o.amount_minor())
        .sum();
    assert!(expected > 0);
    assert_eq!(
        summary["revenueMinor"]["JPY"].as_u64(),
        Some(expected),
        "{summary}"
    );
}

#[tokio::test]
async fn the_next_hourly_run_lists_only_the_orders_updated_since() {
    let (_ns, sim, r) = with_orders_per_day(200).await;
    let ids = user(&r, "hourly", &[("HOURLY", US)]).await;
    let first = r.process_user_data("hourly", &|_| {}).await.unwrap();
    assert_eq!(first.accounts_processed, 1, "{first:?}");
    let full = sim.stats().await.api;
    let full_summary = cached_summary(&r, &ids[0]).await;

    // As if that run had been the previous hour's: the book was synced an hour earlier.
    age_order_book(&r, &ids[0], 1).await;

    let next = r.process_user_data("hourly", &|_| {}).await.unwrap();
    assert_eq!(next.accounts_processed, 1, "{next:?}");
    let incremental = sim.stats().await.api - full;
    assert!(
        full >= 14 && incremental <= 3,
        "the window ({full} calls) was listed once; the next run made {incremental} calls"
    );
    let summary = cached_summary(&r, &ids[0]).await;
    for field in ["orderCount", "cancelledCount", "units"] {
        assert_eq!(
            summary[field], full_summary[field],
            "{field}: the book agrees with a full listing"
        );
    }
}

#[tokio::test]
async fn a_listing_cut_short_by_the_rate_limit_resumes_where_it_stopped() {
    let (ns, sim, r) = with_orders_per_day(400).await;
    let ids = user(&r, "huge", &[("HUGE", US)]).await;
    let first = r.process_user_data("huge", &|_| {}).await.unwrap();
    assert_eq!(
        first.accounts_processed, 0,
        "~28 pages cannot fit a burst of 20: {first:?}"
    );
    assert!(first.rate_bound_retry_after().is_some(), "{first:?}");
    let cut_short = sim.stats().await.api;

    // Later, with quota again (a client whose pacer starts full, a plan with room).
    sim.plan("HUGE", "searchOrders", 100.0, 100.0).await;
    let later = Refresher {
        spapi: sim.client(&ns),
        ..r.clone()
    };
    let second = later.process_user_data("huge", &|_| {}).await.unwrap();
    assert_eq!(second.accounts_processed, 1, "{second:?}");
    let resumed = sim.stats().await.api - cut_short;

    let summary = cached_summary(&later, &ids[0]).await;
    let orders = summary["orderCount"].as_u64().unwrap();
    let pages = orders.div_ceil(100);
    assert!(orders > 2_000, "{orders}");
    assert!(
        cut_short + resumed <= pages + 3,
        "{pages} pages in all were read once: {cut_short} calls, then {resumed} (inventory and a catch-up page included)"
    );
}

#[tokio::test]
async fn a_resumed_listing_whose_token_amazon_refuses_starts_over_once_with_the_same_query() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig {
        orders_per_day: 400,
        orders_token_ttl_secs: 1,
        ..SimConfig::default()
    })
    .await;
    let r = refresher(&ns, &sim).await;
    user(&r, "stale", &[("STALE", US)]).await;
    let first = r.process_user_data("stale", &|_| {}).await.unwrap();
    assert!(first.rate_bound_retry_after().is_some(), "cut short: {first:?}");
    let cut_short = sim.exchanges().await.len();

    // The stored token outlives Amazon's patience (here 1 s instead of 24 h).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.plan("STALE", "searchOrders", 100.0, 100.0).await;
    let later = Refresher {
        spapi: sim.client(&ns),
        ..r.clone()
    };
    let second = later.process_user_data("stale", &|_| {}).await.unwrap();
    assert_eq!(second.accounts_processed, 1, "{second:?}");

    let exchanges = sim.exchanges().await;
    let resumed: Vec<_> = exchanges[cut_short..]
        .iter()
        .filter(|e| e.path.starts_with("/orders/"))
        .collect();
    assert_eq!(resumed[0].status, 400, "the expired token was refused");
    assert!(resumed[0].param("paginationToken").len() == 1);
    assert!(
        resumed[1].param("paginationToken").is_empty(),
        "then the first page again"
    );
    assert_eq!(
        resumed[1].param("createdAfter"),
        resumed[0].param("createdAfter"),
        "the same query"
    );
    assert_eq!(resumed.iter().filter(|e| e.status == 400).count(), 1, "no loop");
    sim.assert_served_contract().await;
}
