//! The stand-in follows Amazon's documented rules (see `sellersync-spapi-sim`'s module docs for
//! the model files each comes from), checked over raw HTTP so the client's habits cannot hide a
//! difference.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use sellersync_spapi_sim::SimConfig;
use sellersync_spapi_sim::data;

use crate::sim;

const US: &str = "ATVPDKIKX0DER";
const LIMIT: &str = "x-amzn-ratelimit-limit";

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn inventory_path(marketplace: &str) -> String {
    format!(
        "/fba/inventory/v1/summaries?granularityType=Marketplace&granularityId={marketplace}&marketplaceIds={marketplace}"
    )
}

async fn first_error(response: reqwest::Response) -> serde_json::Value {
    let body: serde_json::Value = response.json().await.unwrap();
    body["errors"][0].clone()
}

#[tokio::test]
async fn the_rate_limit_header_is_on_2xx_and_400_and_never_on_429_which_has_no_retry_after() {
    let sim = sim::spawn(SimConfig::default()).await;
    sim.plan("ONE", "getInventorySummaries", 0.01, 1.0).await;
    let token = sim.access_token("ONE").await;

    let ok = sim.raw_get(&inventory_path(US), &token).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()[LIMIT], "0.01");

    let throttled = sim.raw_get(&inventory_path(US), &token).await;
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_none());
    assert!(throttled.headers().get(LIMIT).is_none());
    assert_eq!(first_error(throttled).await["code"], "QuotaExceeded");

    let other = sim.access_token("OTHER").await;
    let bad = sim.raw_get("/fba/inventory/v1/summaries", &other).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()[LIMIT], "2", "getInventorySummaries' default rate");
    assert_eq!(sim.stats().await.throttled, 1);
}

#[tokio::test]
async fn default_usage_plans_throttle_per_seller_and_operation() {
    let sim = sim::spawn(SimConfig::default()).await;
    let (a, b) = (sim.access_token("A").await, sim.access_token("B").await);
    // getInventorySummaries: burst 2.
    for _ in 0..2 {
        assert_eq!(sim.raw_get(&inventory_path(US), &a).await.status(), 200);
    }
    assert_eq!(sim.raw_get(&inventory_path(US), &a).await.status(), 429);
    assert_eq!(
        sim.raw_get(&inventory_path(US), &b).await.status(),
        200,
        "another seller's bucket"
    );
    let after = iso(Utc::now() - TimeDelta::days(1));
    let orders = sim
        .raw_get(
            &format!("/orders/2026-01-01/orders?marketplaceIds={US}&createdAfter={after}"),
            &a,
        )
        .await;
    assert_eq!(orders.status(), 200, "another operation's bucket");
    assert_eq!(orders.headers()[LIMIT], "0.0056");
}

#[tokio::test]
async fn an_expired_or_revoked_access_token_gets_403_unauthorized_with_details() {
    let sim = sim::spawn(SimConfig {
        token_ttl_secs: 0,
        ..SimConfig::default()
    })
    .await;
    let expired = sim.access_token("OLD").await;
    let response = sim.raw_get(&inventory_path(US), &expired).await;
    assert_eq!(response.status(), 403);
    assert!(response.headers().get(LIMIT).is_none());
    let error = first_error(response).await;
    assert_eq!(error["code"], "Unauthorized");
    assert_eq!(error["details"], "The access token you provided has expired.");

    sim.revoke("OLD").await;
    let error = first_error(sim.raw_get(&inventory_path(US), &expired).await).await;
    assert!(error["details"].as_str().unwrap().contains("revoked"), "{error}");
}

#[tokio::test]
async fn created_before_must_be_two_minutes_in_the_past() {
    let sim = sim::spawn(SimConfig::default()).await;
    let token = sim.access_token("CLOCK").await;
    let now = Utc::now();
    let path = |before: chrono::DateTime<Utc>| {
        let after = iso(now - TimeDelta::days(1));
        format!(
            "/orders/2026-01-01/orders?marketplaceIds={US}&createdAfter={after}&createdBefore={}",
            iso(before)
        )
    };
    let early = sim.raw_get(&path(now - TimeDelta::seconds(90)), &token).await;
    assert_eq!(early.status(), 400);
    assert!(
        early.headers().get(LIMIT).is_some(),
        "400 carries the rate header"
    );
    assert_eq!(first_error(early).await["code"], "InvalidInput");
    let fine = sim.raw_get(&path(now - TimeDelta::seconds(150)), &token).await;
    assert_eq!(fine.status(), 200);
    let v0 = sim
        .raw_get(
            &format!(
                "/orders/v0/orders?MarketplaceIds={US}&CreatedAfter={}&CreatedBefore={}",
                iso(now - TimeDelta::days(1)),
                iso(now)
            ),
            &token,
        )
        .await;
    assert_eq!(v0.status(), 400, "Orders v0 has the same rule");
}

#[tokio::test]
async fn inventory_next_tokens_expire() {
    let sim = sim::spawn(SimConfig {
        inventory_page_size: 5,
        inventory_token_ttl_ms: 300,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await;
    let token = sim.access_token("INV").await;
    let next = |body: serde_json::Value| body["pagination"]["nextToken"].as_str().unwrap().to_owned();
    let page = |next: &str| format!("{}&nextToken={next}", inventory_path(US));

    let first: serde_json::Value = sim
        .raw_get(&inventory_path(US), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        sim.raw_get(&page(&next(first)), &token).await.status(),
        200,
        "fresh"
    );

    let first: serde_json::Value = sim
        .raw_get(&inventory_path(US), &token)
        .await
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stale = sim.raw_get(&page(&next(first)), &token).await;
    assert_eq!(stale.status(), 400, "older than its lifetime");
    assert_eq!(first_error(stale).await["code"], "InvalidInput");
}

#[tokio::test]
async fn v0_leaves_out_what_amazon_leaves_out() {
    let sim = sim::spawn(SimConfig {
        orders_per_day: 2000,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await;
    let token = sim.access_token("V0").await;
    let after = iso(Utc::now() - TimeDelta::hours(1));
    let body: serde_json::Value = sim
        .raw_get(
            &format!("/orders/v0/orders?MarketplaceIds={US}&CreatedAfter={after}"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    let orders = body["payload"]["Orders"].as_array().unwrap();
    let pending: Vec<_> = orders.iter().filter(|o| o["OrderStatus"] == "Pending").collect();
    assert!(!pending.is_empty(), "recent orders are pending");
    assert!(pending.iter().all(|o| o.get("OrderTotal").is_none()));

    let end = Utc::now() - TimeDelta::hours(1);
    let order = data::orders("V0", US, end - TimeDelta::days(3), end, 50)
        .into_iter()
        .find(|o| o.items().iter().any(|i| i.sku.is_none()))
        .expect("an order with an item without a SKU");
    let items: serde_json::Value = sim
        .raw_get(&format!("/orders/v0/orders/{}/orderItems", order.id), &token)
        .await
        .json()
        .await
        .unwrap();
    let items = items["payload"]["OrderItems"].as_array().unwrap();
    assert!(items.iter().any(|i| i.get("SellerSKU").is_none()), "{items:?}");
}

/// A test control, not one of Amazon's rules: the stats tell how many calls of one seller were
/// under way at once, at most (the worker tests use it to see that two refreshes of one user
/// never overlapped).
#[tokio::test]
async fn the_stats_count_the_most_calls_of_one_seller_under_way_at_once() {
    let sim = sim::spawn(SimConfig {
        latency_ms: 100,
        ..SimConfig::default()
    })
    .await;
    let (a, b) = (sim.access_token("A").await, sim.access_token("B").await);
    let path = inventory_path(US);
    let (one, other) = tokio::join!(sim.raw_get(&path, &a), sim.raw_get(&path, &b));
    assert_eq!((one.status().as_u16(), other.status().as_u16()), (200, 200));
    assert_eq!(
        sim.stats().await.most_calls_of_one_seller_at_once,
        1,
        "two sellers, one call each"
    );
    let c = sim.access_token("C").await;
    let (one, again) = tokio::join!(sim.raw_get(&path, &c), sim.raw_get(&path, &c));
    assert_eq!((one.status().as_u16(), again.status().as_u16()), (200, 200));
    assert_eq!(sim.stats().await.most_calls_of_one_seller_at_once, 2);
}
