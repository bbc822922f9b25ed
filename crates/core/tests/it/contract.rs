//! Both sides of the wire against Amazon's own model files (vendored in
//! `crates/spapi-sim/testdata/amazon-models`): every request the client sends in hourly refreshes
//! of sellers in the three regions, faults included, and every answer the stand-in serves
//! (`sellersync_spapi_sim::contract`). And the data sets: every field the client reads comes from
//! a data set it asks for.

use chrono::{TimeDelta, Utc};
use sellersync_core::domain::spapi::models::{ORDER_DATA_SETS, Order};
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::SimConfig;
use sellersync_spapi_sim::data;
use sellersync_spapi_sim::included::{DataSet, DataSets};

use crate::refresh_spapi::{age_order_book, refresher, user};
use crate::sim;

const US: &str = "ATVPDKIKX0DER";
const CA: &str = "A2EUQ1WTGCTBG2";
const DE: &str = "A1PA6795UKMFR9";
const JP: &str = "A1VC38T7YXB528";

#[tokio::test]
async fn every_request_and_answer_of_two_hourly_refreshes_follows_amazons_models() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig {
        orders_per_day: 40,
        page_size: 50,
        inventory_page_size: 5,
        ..SimConfig::default()
    })
    .await;
    let r = refresher(&ns, &sim).await;
    let ids = user(
        &r,
        "wire",
        &[("WIRE-US", US), ("WIRE-CA", CA), ("WIRE-DE", DE), ("WIRE-JP", JP)],
    )
    .await;
    // What Amazon does on a bad day: a throttle, a server error, an expired token, a role not granted.
    sim.fault_on("WIRE-US", "getInventorySummaries", 429, 1).await;
    sim.fault_on("WIRE-CA", "searchOrders", 500, 1).await;
    sim.fault_403("WIRE-DE", "The access token you provided has expired.", 1)
        .await;
    sim.role("WIRE-JP", "getInventorySummaries", false).await;

    let first = r.process_user_data("wire", &|_| {}).await.unwrap();
    assert_eq!(first.accounts_processed, 4, "{first:?}");
    // The next hour: each account's book was synced an hour earlier.
    for id in &ids {
        age_order_book(&r, id, 1).await;
    }
    let next = r.process_user_data("wire", &|_| {}).await.unwrap();
    assert_eq!(next.accounts_processed, 4, "{next:?}");

    let exchanges = sim.assert_contract().await;
    let statuses: std::collections::BTreeSet<u16> = exchanges.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [200, 403, 429, 500].into(),
        "faults were served and judged too"
    );
    let listings = |name: &str| exchanges.iter().filter(|e| !e.param(name).is_empty()).count();
    assert!(
        listings("paginationToken") > 0 && listings("nextToken") > 0,
        "next pages were judged"
    );
    assert!(
        listings("lastUpdatedAfter") >= 4,
        "the incremental listings were judged"
    );
}

/// Every `Order` field the client reads must come from a data set it asks for: an order served
/// with every data set reads the same as one served with only [`ORDER_DATA_SETS`]. A field read
/// from a set the client does not ask for (say `buyer`) would differ here, and Amazon would
/// never send it.
#[test]
fn the_order_fields_the_client_reads_come_from_the_data_sets_it_asks_for() {
    let asked: DataSets = ORDER_DATA_SETS
        .iter()
        .map(|name| DataSet::parse(name).expect("a data set of the model"))
        .collect();
    let end = Utc::now() - TimeDelta::hours(1);
    let us = sellersync_spapi_sim::marketplaces::find(US).unwrap();
    let orders = data::orders("SETS", us, end - TimeDelta::days(3), end, 30);
    let at = Utc::now();
    assert!(orders.iter().any(|o| o.status(at) == data::Status::Cancelled));
    let read = |sets: DataSets| -> Vec<Order> {
        let served = orders.iter().map(|o| data::order_json(o, US, at, sets));
        served.map(|json| serde_json::from_value(json).unwrap()).collect()
    };
    assert_eq!(
        read(asked),
        read(DataSets::all()),
        "a field comes from a data set not asked for"
    );
    assert_ne!(
        read(DataSets::default()),
        read(asked),
        "without them the client would miss what it reads"
    );
}
