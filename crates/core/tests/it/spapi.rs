//! The SP-API client against the stand-in, which answers as Amazon documents (no Retry-After on
//! 429, 403 for refused tokens, usage plans per seller and operation, null error messages).

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use sellersync_core::domain::spapi::{OrderQuery, OrdersBy, SpApiError};
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::SimConfig;

use crate::sim::{self, creds};

const US: &str = "ATVPDKIKX0DER";

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Ten days ending an hour ago.
fn window() -> (String, String) {
    let end = Utc::now() - TimeDelta::hours(1);
    (iso(end - TimeDelta::days(10)), iso(end))
}

fn between<'a>(w: &'a (String, String)) -> OrderQuery<'a> {
    OrderQuery {
        by: OrdersBy::Created,
        after: &w.0,
        before: &w.1,
    }
}

#[tokio::test]
async fn pagination_collects_every_page_with_optional_fields_left_out() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig {
        page_size: 7,
        orders_per_day: 4,
        inventory_page_size: 5,
        ..SimConfig::default()
    })
    .await;
    let client = sim.client(&ns);
    let w = window();
    let orders = client.orders(&creds("PAGES"), US, between(&w)).await.unwrap();

    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&Utc)
    };
    let us = sellersync_spapi_sim::marketplaces::find(US).unwrap();
    let expected = sellersync_spapi_sim::data::orders("PAGES", us, parse(&w.0), parse(&w.1), 4);
    assert!(
        expected.len() > 14,
        "several pages of 7 ({} orders)",
        expected.len()
    );
    let ids: Vec<_> = orders.iter().map(|o| o.order_id.clone()).collect();
    let expected_ids: Vec<_> = expected.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids, expected_ids);
    assert!(
        orders.iter().all(|o| !o.order_items.is_empty()),
        "items are embedded in every order"
    );
    let no_sku = orders
        .iter()
        .flat_map(|o| &o.order_items)
        .filter(|i| i.seller_sku().is_none())
        .count();
    assert!(no_sku > 0, "items without a SellerSKU are read, not rejected");

    let inventory = client.inventory(&creds("PAGES"), US).await.unwrap();
    assert_eq!(inventory.len(), 12, "three pages of five");

    let exchanges = sim.assert_contract().await;
    let orders: Vec<_> = exchanges
        .iter()
        .filter(|e| e.path.starts_with("/orders/"))
        .collect();
    assert!(orders.len() > 2, "{} pages", orders.len());
    for page in &orders {
        assert_eq!(
            page.param("createdAfter"),
            [w.0.as_str()],
            "every page repeats the query"
        );
        assert_eq!(page.param("createdBefore"), [w.1.as_str()]);
        assert_eq!(page.param("includedData"), ["PROCEEDS,FULFILLMENT"]);
    }
    assert!(orders[1].param("paginationToken").len() == 1);
}

#[tokio::test]
async fn pending_orders_come_without_a_total() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig {
        orders_per_day: 2000,
        ..SimConfig::default()
    })
    .await;
    // The last hour's orders, up to the two minutes Amazon requires: some are still pending.
    let end = Utc::now() - TimeDelta::minutes(3);
    let w = (iso(end - TimeDelta::hours(1)), iso(end));
    let orders = sim
        .client(&ns)
        .orders(&creds("FRESH"), US, between(&w))
        .await
        .unwrap();
    let pending: Vec<_> = orders.iter().filter(|o| o.status() == Some("PENDING")).collect();
    assert!(!pending.is_empty(), "{} orders, none pending", orders.len());
    assert!(pending.iter().all(|o| o.total().is_none()));
}

#[tokio::test]
async fn created_before_within_two_minutes_of_now_is_refused_as_amazon_does() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let now = Utc::now();
    let w = (iso(now - TimeDelta::days(1)), iso(now - TimeDelta::seconds(60)));
    let error = sim
        .client(&ns)
        .orders(&creds("EARLY"), US, between(&w))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SpApiError::BadRequest { status: 400, message, request_id: Some(_) } if message.contains("InvalidInput") && message.contains("two minutes")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_429_without_retry_after_waits_at_least_one_refill_interval() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    sim.fault("THROTTLED", 429, 1).await;
    let client = sim.client(&ns);
    let started = Instant::now();
    let inventory = client.inventory(&creds("THROTTLED"), US).await.unwrap();
    assert!(!inventory.is_empty());
    // getInventorySummaries refills 2 tokens a second: at least 500 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited one refill interval: {:?}",
        started.elapsed()
    );
    assert_eq!(client.stats().throttled, 1);
    assert_eq!(sim.stats().await.api, 2, "one refused call, one retry");
}

#[tokio::test]
async fn a_429_whose_refill_is_beyond_the_budget_is_rate_bound_at_once() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    sim.fault("SLOW", 429, 1).await;
    let w = window();
    let started = Instant::now();
    let error = sim
        .client(&ns)
        .orders(&creds("SLOW"), US, between(&w))
        .await
        .unwrap_err();
    // searchOrders refills one token every 1/0.0056 s = 179 s, beyond the 30 s budget.
    let retry_after = error.retry_after().expect("rate-bound");
    assert!(
        (Duration::from_secs(170)..=Duration::from_secs(180)).contains(&retry_after),
        "{error}"
    );
    assert!(
        error.is_retryable() && error.to_string().contains("rate-bound"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not sit out the wait"
    );
    assert_eq!(sim.stats().await.api, 1, "no call sent into an empty bucket");
}

#[tokio::test]
async fn shared_buckets_keep_two_processes_of_one_seller_inside_the_usage_plan() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig {
        inventory_page_size: 50,
        ..SimConfig::default()
    })
    .await;
    // Two "processes" (clients with their own token caches), one Redis, one seller: 8 calls of an
    // operation whose plan is 2/s with a burst of 2.
    let (a, b) = (sim.shared_client(&ns).await, sim.shared_client(&ns).await);
    let started = Instant::now();
    let calls = (0..8).map(|i| {
        let client = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { client.inventory(&creds("FLEET"), US).await }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(
        sim.stats().await.throttled,
        0,
        "no call reached Amazon without a token"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "8 calls at 2/s after a burst of 2 take 3 s: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_rate_reported_in_x_amzn_ratelimit_limit_is_learned() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    // This seller's plan is ten times the default; the first answer reports it.
    sim.plan("FAST", "getInventorySummaries", 20.0, 2.0).await;
    let client = sim.shared_client(&ns).await;
    client.inventory(&creds("FAST"), US).await.unwrap();
    let started = Instant::now();
    for _ in 0..6 {
        client.inventory(&creds("FAST"), US).await.unwrap();
    }
    // At the default 2/s the six calls would take over 2 s; at 20/s about 0.25 s.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.stats().await.throttled, 0);
}

#[tokio::test]
async fn server_errors_are_retried_and_give_up_after_the_limit() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let client = sim.client(&ns);
    sim.fault("FLAKY", 500, 2).await;
    client
        .inventory(&creds("FLAKY"), US)
        .await
        .expect("succeeds on the third try");

    sim.fault("DOWN", 503, 100).await;
    let error = client.inventory(&creds("DOWN"), US).await.unwrap_err();
    assert!(
        matches!(
            error,
            SpApiError::Server {
                status: 503,
                attempts: 5,
                request_id: Some(_),
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

const EXPIRED: &str = "The access token you provided has expired.";

#[tokio::test]
async fn a_403_about_the_access_token_refreshes_it_once_and_retries() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let client = sim.client(&ns);
    sim.fault_403("EXPIRED", EXPIRED, 1).await;
    client.inventory(&creds("EXPIRED"), US).await.unwrap();
    let stats = sim.stats().await;
    assert_eq!((stats.api, stats.tokens), (2, 2), "refused, refreshed, retried");

    sim.fault_403("DENIED", EXPIRED, 100).await;
    let error = client.inventory(&creds("DENIED"), US).await.unwrap_err();
    assert!(
        matches!(&error, SpApiError::Denied { status: 403, message, .. } if message.contains("Unauthorized") && message.contains("expired")),
        "details kept: {error:?}"
    );
    assert!(!error.is_retryable() && !error.needs_reauthorization());
    let after = sim.stats().await;
    assert_eq!(
        (after.api - stats.api, after.tokens - stats.tokens),
        (2, 2),
        "one refresh, then it stops"
    );
}

#[tokio::test]
async fn a_403_without_details_is_a_missing_role_and_costs_no_token_refresh() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    sim.role("NOROLE", "getInventorySummaries", false).await;
    let error = sim.client(&ns).inventory(&creds("NOROLE"), US).await.unwrap_err();
    assert!(
        matches!(
            &error,
            SpApiError::MissingRole {
                operation: "getInventorySummaries",
                request_id: Some(_)
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable() && !error.needs_reauthorization());
    let stats = sim.stats().await;
    assert_eq!((stats.api, stats.tokens), (1, 1), "no token exchange spent on it");
}

#[tokio::test]
async fn a_marketplace_of_another_region_is_denied_with_amazons_reason() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    // An NA account asking for the German marketplace: the NA host refuses it.
    let error = sim
        .client(&ns)
        .inventory(&creds("MIXED"), "A1PA6795UKMFR9")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SpApiError::Denied { status: 403, message, request_id: Some(_) } if message.contains("not valid for region")),
        "{error:?}"
    );
    assert_eq!(sim.stats().await.tokens, 1, "no token refresh for it");
}

#[tokio::test]
async fn a_grant_revoked_mid_flight_needs_reauthorization() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let client = sim.client(&ns);
    client.inventory(&creds("LEAVER"), US).await.unwrap();
    sim.revoke("LEAVER").await;
    let error = client.inventory(&creds("LEAVER"), US).await.unwrap_err();
    assert!(matches!(error, SpApiError::InvalidGrant), "{error:?}");
    assert!(error.needs_reauthorization() && !error.is_retryable());
    assert!(error.to_string().contains("invalid_grant"));
}

#[tokio::test]
async fn a_refusal_keeps_amazons_code_message_and_request_id() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    sim.fault("REFUSED", 400, 1).await;
    let error = sim
        .client(&ns)
        .inventory(&creds("REFUSED"), US)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "request rejected (400): InvalidInput: Invalid Input"
    );
    let served = sim.exchanges().await;
    let id = served[0].headers["x-amzn-requestid"].as_str();
    assert_eq!(error.request_id(), Some(id), "the id Amazon sent");
}

#[tokio::test]
async fn an_expired_inventory_next_token_starts_the_listing_over_once() {
    let ns = TestNamespace::new();
    // Every next-page token has expired by the time it comes back.
    let sim = sim::spawn(SimConfig {
        inventory_page_size: 5,
        inventory_token_ttl_ms: 0,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await;
    let error = sim.client(&ns).inventory(&creds("STALE"), US).await.unwrap_err();
    assert!(error.to_string().contains("expired"), "{error}");
    assert_eq!(
        sim.stats().await.api,
        4,
        "page 1, page 2 refused, page 1, page 2 refused"
    );
}

#[tokio::test]
async fn tokens_are_cached_and_refreshed_on_401_and_near_expiry() {
    let ns = TestNamespace::new();
    // Tokens live 61 s; the client renews them 60 s early, i.e. after about a second.
    let sim = sim::spawn(SimConfig {
        token_ttl_secs: 61,
        ..SimConfig::default()
    })
    .await;
    let client = sim.client(&ns);
    let seller = creds("TOKENS");
    client.inventory(&seller, US).await.unwrap();
    client.inventory(&seller, US).await.unwrap();
    assert_eq!(sim.stats().await.tokens, 1, "one token for two calls");

    sim.fault("TOKENS", 401, 1).await;
    client.inventory(&seller, US).await.unwrap();
    assert_eq!(sim.stats().await.tokens, 2, "a 401 refreshes the token once");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.inventory(&seller, US).await.unwrap();
    assert_eq!(sim.stats().await.tokens, 3, "renewed before expiry");
}

#[tokio::test]
async fn an_invalid_grant_fails_without_retry() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let error = sim
        .client(&ns)
        .inventory(&creds("REVOKED-1"), US)
        .await
        .unwrap_err();
    assert!(matches!(error, SpApiError::InvalidGrant), "{error:?}");
    assert!(!error.is_retryable() && error.needs_reauthorization());
    let stats = sim.stats().await;
    assert_eq!(
        (stats.api, stats.tokens),
        (0, 1),
        "one token request, no API call"
    );
}
