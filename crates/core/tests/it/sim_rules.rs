//! The stand-in follows Amazon's documented rules (see `sellersync-spapi-sim`'s module docs for
//! the model files each comes from), checked over raw HTTP so the client's habits cannot hide a
//! difference.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use sellersync_spapi_sim::SimConfig;
use serde_json::{Value, json};

use crate::sim;

const US: &str = "ATVPDKIKX0DER";
const DE: &str = "A1PA6795UKMFR9";
const SE: &str = "A2NODRKZP88ZB9";
const LIMIT: &str = "x-amzn-ratelimit-limit";
const REQUEST_ID: &str = "x-amzn-requestid";

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn inventory_path(marketplace: &str) -> String {
    format!(
        "/fba/inventory/v1/summaries?granularityType=Marketplace&granularityId={marketplace}&marketplaceIds={marketplace}"
    )
}

async fn first_error(response: reqwest::Response) -> Value {
    let body: Value = response.json().await.unwrap();
    body["errors"][0].clone()
}

/// A `searchOrders` query of the last `days` days by creation in `marketplace`, plus `extra`.
fn search_path(marketplace: &str, days: i64, extra: &str) -> String {
    let after = iso(Utc::now() - TimeDelta::days(days));
    format!("/orders/2026-01-01/orders?marketplaceIds={marketplace}&createdAfter={after}{extra}")
}

async fn json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
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
    sim.assert_served_contract().await;
}

/// `amzn/selling-partner-api-models` issues 799, 943, 1167: a role the seller did not grant
/// gets 403 `Unauthorized` with empty details, for that operation only.
#[tokio::test]
async fn a_role_the_seller_did_not_grant_gets_403_unauthorized_with_empty_details() {
    let sim = sim::spawn(SimConfig::default()).await;
    sim.role("NOINV", "getInventorySummaries", false).await;
    let token = sim.access_token("NOINV").await;
    let refused = sim.raw_get(&inventory_path(US), &token).await;
    assert_eq!(refused.status(), 403);
    let error = first_error(refused).await;
    assert_eq!(
        (error["code"].as_str(), error["details"].as_str()),
        (Some("Unauthorized"), Some(""))
    );
    assert_eq!(error["message"], "Access to requested resource is denied.");
    assert_eq!(
        sim.raw_get(&search_path(US, 1, ""), &token).await.status(),
        200,
        "orders still granted"
    );
    sim.role("NOINV", "getInventorySummaries", true).await;
    assert_eq!(sim.raw_get(&inventory_path(US), &token).await.status(), 200);
    sim.assert_served_contract().await;
}

/// `includedData` (`orders_2026-01-01.json`): basic information only without it.
#[tokio::test]
async fn orders_carry_only_the_data_sets_asked_for() {
    let sim = sim::spawn(SimConfig {
        orders_per_day: 50,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await;
    let token = sim.access_token("SETS").await;
    let basic = json(sim.raw_get(&search_path(US, 3, ""), &token).await).await;
    let orders = basic["orders"].as_array().unwrap();
    assert!(orders.len() > 50, "{} orders", orders.len());
    for order in orders {
        for field in ["proceeds", "fulfillment", "buyer", "recipient", "payment", "tax"] {
            assert!(
                order.get(field).is_none(),
                "{field} without includedData: {order}"
            );
        }
        assert!(order["orderItems"][0].get("proceeds").is_none());
        assert!(
            order["orderItems"][0]["quantityOrdered"].is_u64(),
            "basic item information"
        );
    }
    let full = json(
        sim.raw_get(&search_path(US, 3, "&includedData=PROCEEDS,FULFILLMENT"), &token)
            .await,
    )
    .await;
    let orders = full["orders"].as_array().unwrap();
    assert!(
        orders
            .iter()
            .all(|o| o["fulfillment"]["fulfillmentStatus"].is_string())
    );
    assert!(
        orders
            .iter()
            .any(|o| o["fulfillment"]["fulfillmentStatus"] == "CANCELLED")
    );
    assert!(
        orders
            .iter()
            .any(|o| o["proceeds"]["grandTotal"]["amount"].is_string())
    );
    assert!(
        orders.iter().all(|o| o.get("buyer").is_none()),
        "only the sets asked for"
    );

    let unknown = sim
        .raw_get(&search_path(US, 3, "&includedData=PROCEEDS,EVERYTHING"), &token)
        .await;
    assert_eq!(unknown.status(), 400);
    assert!(
        first_error(unknown).await["message"]
            .as_str()
            .unwrap()
            .contains("EVERYTHING")
    );
    sim.assert_served_contract().await;
}

/// `Pagination` (`orders_2026-01-01.json`): a next page repeats every other parameter with the
/// same values (but `maxResultsPerPage` and `includedData`), and its token expires.
#[tokio::test]
async fn a_next_page_must_repeat_the_query_and_its_token_expires() {
    let sim = sim::spawn(SimConfig {
        orders_per_day: 40,
        page_size: 10,
        orders_token_ttl_secs: 2,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await;
    let token = sim.access_token("PAGED").await;
    let query = search_path(US, 2, "");
    let first = json(sim.raw_get(&query, &token).await).await;
    let next = first["pagination"]["nextToken"].as_str().unwrap().to_owned();

    let alone = format!("/orders/2026-01-01/orders?marketplaceIds={US}&paginationToken={next}");
    let refused = sim.raw_get(&alone, &token).await;
    assert_eq!(refused.status(), 400, "the token without the rest of the query");
    assert_eq!(first_error(refused).await["code"], "InvalidInput");
    let changed = format!("{}&paginationToken={next}", search_path(US, 1, ""));
    assert_eq!(
        sim.raw_get(&changed, &token).await.status(),
        400,
        "another createdAfter"
    );

    let same = format!("{query}&paginationToken={next}&includedData=PROCEEDS&maxResultsPerPage=5");
    let second = json(sim.raw_get(&same, &token).await).await;
    let ids = |page: &Value| -> Vec<String> {
        page["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["orderId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&second).len(),
        5,
        "maxResultsPerPage may change between pages"
    );
    assert!(
        ids(&second).iter().all(|id| !ids(&first).contains(id)),
        "the next orders"
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = sim
        .raw_get(&format!("{query}&paginationToken={next}"), &token)
        .await;
    assert_eq!(expired.status(), 400, "older than its lifetime");
    assert!(
        first_error(expired).await["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    sim.assert_served_contract().await;
}

/// The SP-API endpoints guide: one host per region; Amazon refuses another region's marketplace
/// (`amzn/selling-partner-api-models` issue 5126).
#[tokio::test]
async fn a_marketplace_is_answered_only_by_its_regions_host() {
    let sim = sim::spawn(SimConfig::default()).await;
    let token = sim.access_token("REGIONS").await;
    let wrong = sim
        .raw_get_at(&sim.urls.na, &search_path(DE, 1, ""), &token)
        .await;
    assert_eq!(wrong.status(), 403);
    let error = first_error(wrong).await;
    assert_eq!(error["code"], "Unauthorized");
    assert_eq!(
        error["details"],
        "The marketplaces you provided are not valid for region."
    );
    let inventory = sim.raw_get_at(&sim.urls.fe, &inventory_path(DE), &token).await;
    assert_eq!(inventory.status(), 403, "inventory too");
    let right = sim
        .raw_get_at(&sim.urls.eu, &search_path(DE, 1, ""), &token)
        .await;
    assert_eq!(right.status(), 200);
    sim.assert_served_contract().await;
}

/// Every answer carries `x-amzn-RequestId` (the models list it for every status); an error's
/// `message` is always a string.
#[tokio::test]
async fn every_answer_has_a_request_id_and_errors_have_a_message() {
    let sim = sim::spawn(SimConfig::default()).await;
    sim.plan("IDS", "getInventorySummaries", 0.01, 1.0).await;
    sim.fault_on("IDS", "searchOrders", 500, 1).await;
    let token = sim.access_token("IDS").await;
    let answers = [
        sim.raw_get(&inventory_path(US), &token).await,
        sim.raw_get(&inventory_path(US), &token).await,
        sim.raw_get(&search_path(US, 1, ""), &token).await,
        sim.raw_get("/fba/inventory/v1/summaries", &sim.access_token("OTHER").await)
            .await,
        sim.raw_get(&inventory_path(US), "Atza|nobody|1").await,
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 429, 500, 400, 403]);
    let mut ids = std::collections::HashSet::new();
    for answer in answers {
        let id = answer.headers()[REQUEST_ID].to_str().unwrap().to_owned();
        assert!(ids.insert(id), "one id per answer");
        if answer.status() != 200 {
            assert!(first_error(answer).await["message"].is_string());
        }
    }
    sim.assert_served_contract().await;
}

/// "at or after" / "at or before" (`createdAfter`, `createdBefore`); prices in the
/// marketplace's currency; `inventoryDetails` only with `details=true`.
#[tokio::test]
async fn bounds_are_inclusive_and_money_is_in_the_marketplaces_currency() {
    let sim = sim::spawn(SimConfig::default()).await;
    let (after, before) = (Utc::now() - TimeDelta::days(2), Utc::now() - TimeDelta::days(1));
    let order = |id: &str, at: chrono::DateTime<Utc>| {
        json!({ "orderId": id, "createdTime": iso(at), "status": "SHIPPED",
                "items": [{ "sellerSku": "S", "quantity": 1, "unitPrice": "99.50" }] })
    };
    let orders = [
        order("early", after - TimeDelta::seconds(1)),
        order("first", after),
        order("last", before),
        order("late", before + TimeDelta::seconds(1)),
    ];
    let stock = [json!({ "sellerSku": "S", "fulfillable": 7 })];
    sim.seed("BOUNDS", SE, json!({ "orders": orders, "inventory": stock }))
        .await;
    let token = sim.access_token("BOUNDS").await;
    let query = format!(
        "/orders/2026-01-01/orders?marketplaceIds={SE}&createdAfter={}&createdBefore={}&includedData=PROCEEDS",
        iso(after),
        iso(before)
    );
    let body = json(sim.raw_get_at(&sim.urls.eu, &query, &token).await).await;
    let ids: Vec<&str> = body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["first", "last"]);
    assert_eq!(
        body["orders"][0]["proceeds"]["grandTotal"],
        json!({ "currencyCode": "SEK", "amount": "99.50" })
    );

    let plain = json(sim.raw_get_at(&sim.urls.eu, &inventory_path(SE), &token).await).await;
    assert!(
        plain["payload"]["inventorySummaries"][0]
            .get("inventoryDetails")
            .is_none()
    );
    let details = json(
        sim.raw_get_at(
            &sim.urls.eu,
            &format!("{}&details=true", inventory_path(SE)),
            &token,
        )
        .await,
    )
    .await;
    assert_eq!(
        details["payload"]["inventorySummaries"][0]["inventoryDetails"]["fulfillableQuantity"],
        7
    );
    sim.assert_served_contract().await;
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
    sim.assert_served_contract().await;
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
