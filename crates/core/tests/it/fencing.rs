//! User data is written compare-and-set on the attempt's fence: an older attempt that runs on
//! after a newer one (its worker was cut off from Redis, or frozen) writes nothing over it, in
//! MongoDB (summaries, the user's record) or Redis (cached summaries, order books).

use mongodb::bson::{Document, doc};
use sellersync_core::domain::accounts::{self, Fence};
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::SimConfig;
use serde_json::json;

use crate::refresh_spapi::{cached_summary, refresher, user};
use crate::sim;

const US: &str = "ATVPDKIKX0DER";

fn orders(count: usize) -> serde_json::Value {
    let created = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    let orders: Vec<_> = (0..count)
        .map(|i| {
            json!({ "orderId": format!("O-{i}"), "createdTime": created, "status": "SHIPPED",
                         "items": [{ "sellerSku": "S", "quantity": 1, "unitPrice": "1.00" }] })
        })
        .collect();
    json!({ "orders": orders })
}

#[tokio::test]
async fn an_older_attempt_writes_nothing_over_a_newer_ones_data() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let mut settings_refresher = refresher(&ns, &sim).await;
    // Listing whole every run, so each run reads what the stand-in holds now.
    settings_refresher.settings.order_book_ttl = std::time::Duration::ZERO;
    let r = settings_refresher;
    let ids = user(&r, "fenced", &[("FENCED", US)]).await;

    sim.seed("FENCED", US, orders(3)).await;
    let newer = r.refresh("fenced", Fence(2_000_000), &|_| {}).await.unwrap();
    assert_eq!(newer.accounts_processed, 1);

    // The older attempt, late, sees other data: none of it may land.
    sim.seed("FENCED", US, orders(7)).await;
    let older = r.refresh("fenced", Fence(1_000_000), &|_| {}).await.unwrap();
    assert_eq!(older.accounts_processed, 1, "it ran, but wrote nothing");

    assert_eq!(
        cached_summary(&r, &ids[0]).await["orderCount"],
        3,
        "Redis keeps the newer summary"
    );
    let stored: Document = r
        .store
        .db()
        .collection::<Document>(accounts::ACCOUNT_SUMMARIES)
        .find_one(doc! { "_id": &ids[0] })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored
            .get_document("summary")
            .unwrap()
            .get_i64("orderCount")
            .ok()
            .or(stored
                .get_document("summary")
                .unwrap()
                .get_i32("orderCount")
                .ok()
                .map(i64::from)),
        Some(3)
    );
    assert_eq!(stored.get_i64("fence").unwrap(), 2_000_000);
    let user_doc: Document = r
        .store
        .db()
        .collection::<Document>(accounts::USERS)
        .find_one(doc! { "_id": "fenced" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user_doc.get_i64("refreshFence").unwrap(),
        2_000_000,
        "the user's record is the newer attempt's"
    );

    // A newer attempt still writes.
    let newest = r.refresh("fenced", Fence(3_000_000), &|_| {}).await.unwrap();
    assert_eq!(newest.accounts_processed, 1);
    assert_eq!(cached_summary(&r, &ids[0]).await["orderCount"], 7);
}
