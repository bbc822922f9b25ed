//! The stored analysis against known truth: sellers seeded with exact orders (cancelled, pending
//! without proceeds, two currencies, an item without a SKU, an order before the window) served two
//! per page, refreshed through the real client, and the summary in MongoDB and Redis compared
//! with figures this test computes itself from the same orders.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use mongodb::bson::{Document, doc};
use sellersync_core::domain::accounts::ACCOUNT_SUMMARIES;
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::SimConfig;
use serde_json::{Value, json};

use crate::refresh_spapi::{cached_summary, refresher, user};
use crate::sim;

const US: &str = "ATVPDKIKX0DER";
const JP: &str = "A1VC38T7YXB528";

/// One seeded order: id, hours before the window's end, status, currency, items (SKU, units,
/// unit price in the currency's minor unit).
struct Seed {
    id: &'static str,
    hours_before_end: i64,
    status: &'static str,
    currency: &'static str,
    items: &'static [(Option<&'static str>, u64, u64)],
}

const US_ORDERS: [Seed; 8] = [
    Seed {
        id: "A",
        hours_before_end: 1,
        status: "SHIPPED",
        currency: "USD",
        items: &[(Some("SKU-A"), 2, 1000), (Some("SKU-B"), 1, 550)],
    },
    Seed {
        id: "B",
        hours_before_end: 20,
        status: "UNSHIPPED",
        currency: "USD",
        items: &[(Some("SKU-B"), 3, 550)],
    },
    Seed {
        id: "C",
        hours_before_end: 30,
        status: "CANCELLED",
        currency: "USD",
        items: &[(Some("SKU-A"), 4, 1000)],
    },
    Seed {
        id: "D",
        hours_before_end: 2,
        status: "PENDING",
        currency: "USD",
        items: &[(Some("SKU-C"), 1, 725)],
    },
    Seed {
        id: "E",
        hours_before_end: 50,
        status: "SHIPPED",
        currency: "CAD",
        items: &[(Some("SKU-C"), 2, 800)],
    },
    Seed {
        id: "F",
        hours_before_end: 60,
        status: "CANCELLED",
        currency: "USD",
        items: &[(Some("SKU-B"), 1, 550)],
    },
    Seed {
        id: "G",
        hours_before_end: 100,
        status: "SHIPPED",
        currency: "USD",
        items: &[(None, 1, 300)],
    },
    // Created before the seven-day window: not part of it.
    Seed {
        id: "H",
        hours_before_end: 7 * 24 + 1,
        status: "SHIPPED",
        currency: "USD",
        items: &[(Some("SKU-A"), 9, 1000)],
    },
];
const US_STOCK: [(&str, u64); 3] = [("SKU-A", 3), ("SKU-B", 100), ("SKU-C", 1)];

const JP_ORDERS: [Seed; 2] = [
    Seed {
        id: "X",
        hours_before_end: 5,
        status: "SHIPPED",
        currency: "JPY",
        items: &[(Some("SKU-J"), 2, 1500)],
    },
    Seed {
        id: "Y",
        hours_before_end: 6,
        status: "PENDING",
        currency: "JPY",
        items: &[(Some("SKU-J"), 1, 1500)],
    },
];
const JP_STOCK: [(&str, u64); 1] = [("SKU-J", 0)];

/// The window a refresh now uses: seven days ending five minutes before this hour.
fn window_end() -> DateTime<Utc> {
    Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::minutes(5)
}

fn amount(minor: u64, currency: &str) -> String {
    if currency == "JPY" {
        minor.to_string()
    } else {
        format!("{}.{:02}", minor / 100, minor % 100)
    }
}

fn seed_body(orders: &[Seed], stock: &[(&str, u64)], end: DateTime<Utc>) -> Value {
    let orders: Vec<Value> = orders
        .iter()
        .map(|o| {
            let items: Vec<Value> = o
                .items
                .iter()
                .map(|(sku, quantity, price)| json!({ "sellerSku": sku, "quantity": quantity, "unitPrice": amount(*price, o.currency) }))
                .collect();
            let created = (end - TimeDelta::hours(o.hours_before_end)).to_rfc3339();
            json!({ "orderId": o.id, "createdTime": created, "status": o.status, "currencyCode": o.currency, "items": items })
        })
        .collect();
    let stock: Vec<Value> = stock
        .iter()
        .map(|(sku, n)| json!({ "sellerSku": sku, "fulfillable": n }))
        .collect();
    json!({ "orders": orders, "inventory": stock })
}

/// The summary's figures, computed here from the seeds with the analysis' documented rules.
fn expected(orders: &[Seed], stock: &[(&str, u64)]) -> Value {
    let in_window: Vec<&Seed> = orders.iter().filter(|o| o.hours_before_end <= 7 * 24).collect();
    let live: Vec<&&Seed> = in_window.iter().filter(|o| o.status != "CANCELLED").collect();
    let mut revenue: BTreeMap<&str, u64> = BTreeMap::new();
    let mut priced: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_sku: BTreeMap<&str, u64> = BTreeMap::new();
    let mut units = 0;
    for order in &live {
        let total: u64 = order.items.iter().map(|(_, n, price)| n * price).sum();
        if order.status != "PENDING" {
            *revenue.entry(order.currency).or_default() += total;
            *priced.entry(order.currency).or_default() += 1;
        }
        for (sku, n, _) in order.items {
            units += n;
            if let Some(sku) = sku {
                *by_sku.entry(sku).or_default() += n;
            }
        }
    }
    let average: BTreeMap<&str, u64> = revenue.iter().map(|(c, total)| (*c, total / priced[c])).collect();
    let mut top: Vec<(&str, u64)> = by_sku.iter().map(|(s, n)| (*s, *n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut risk: Vec<Value> = Vec::new();
    for (sku, fulfillable) in stock {
        let Some(sold) = by_sku.get(sku) else { continue };
        let per_day = *sold as f64 / 7.0;
        let cover = *fulfillable as f64 / per_day;
        if cover < 14.0 {
            risk.push(json!({ "sku": sku, "fulfillable": fulfillable,
                "unitsPerDay": (per_day * 100.0).round() / 100.0, "daysOfCover": (cover * 10.0).round() / 10.0 }));
        }
    }
    risk.sort_by(|a, b| {
        a["daysOfCover"]
            .as_f64()
            .unwrap()
            .total_cmp(&b["daysOfCover"].as_f64().unwrap())
    });
    let cancelled = in_window.len() - live.len();
    json!({
        "orderCount": in_window.len(),
        "cancelledCount": cancelled,
        "cancelledShare": cancelled as f64 / in_window.len() as f64,
        "units": units,
        "revenueMinor": revenue,
        "averageOrderValueMinor": average,
        "topSkus": top.iter().take(5).map(|(sku, units)| json!({ "sku": sku, "units": units })).collect::<Vec<_>>(),
        "stockoutRisk": risk,
    })
}

/// The figures of a stored summary (its window left out).
fn figures(summary: &Value) -> Value {
    let mut figures = summary.clone();
    figures.as_object_mut().unwrap().remove("window");
    figures
}

#[tokio::test]
async fn a_seeded_sellers_stored_summary_equals_the_figures_computed_here() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig {
        page_size: 2,
        ..SimConfig::default()
    })
    .await;
    let end = window_end();
    sim.seed("TRUTH-US", US, seed_body(&US_ORDERS, &US_STOCK, end))
        .await;
    sim.seed("TRUTH-JP", JP, seed_body(&JP_ORDERS, &JP_STOCK, end))
        .await;
    let r = refresher(&ns, &sim).await;
    let ids = user(&r, "truth", &[("TRUTH-US", US), ("TRUTH-JP", JP)]).await;

    let report = r.process_user_data("truth", &|_| {}).await.unwrap();
    assert_eq!(
        (report.accounts_processed, report.errors.len()),
        (2, 0),
        "{report:?}"
    );

    let us = expected(&US_ORDERS, &US_STOCK);
    // The computation above, checked by hand once: USD 25.50 + 16.50 + 3.00, CAD 16.00.
    assert_eq!(us["revenueMinor"], json!({ "CAD": 1600, "USD": 4500 }));
    assert_eq!(
        (
            us["orderCount"].as_u64(),
            us["cancelledCount"].as_u64(),
            us["units"].as_u64()
        ),
        (Some(7), Some(2), Some(10))
    );
    let jp = expected(&JP_ORDERS, &JP_STOCK);
    assert_eq!(jp["revenueMinor"], json!({ "JPY": 3000 }));

    let stored: Vec<Document> = {
        use futures::TryStreamExt;
        let filter = doc! { "userId": "truth" };
        let collection = r.store.db().collection::<Document>(ACCOUNT_SUMMARIES);
        collection
            .find(filter)
            .sort(doc! { "_id": 1 })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    assert_eq!(stored.len(), 2);
    for (id, truth) in [(&ids[0], &us), (&ids[1], &jp)] {
        let cached = cached_summary(&r, id).await;
        assert_eq!(figures(&cached), *truth, "{id} (cached)");
        let durable = stored
            .iter()
            .find(|d| d.get_str("_id") == Ok(id.as_str()))
            .unwrap();
        let durable: Value = serde_json::to_value(durable.get_document("summary").unwrap()).unwrap();
        assert_eq!(durable["revenueMinor"], truth["revenueMinor"], "{id} (MongoDB)");
        assert_eq!(durable["cancelledCount"], truth["cancelledCount"]);
        assert_eq!(durable["topSkus"], truth["topSkus"]);
    }
    let pages = sim
        .assert_contract()
        .await
        .iter()
        .filter(|e| e.param("marketplaceIds") == [US] && e.path.starts_with("/orders/"))
        .count();
    assert_eq!(pages, 4, "seven orders in the window, two a page");
}
