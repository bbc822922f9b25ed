use mongodb::bson::{Document, doc};
use sellersync_core::infra::connections::mongo_database;
use sellersync_core::testing::TestNamespace;
use sellersync_core::{demo, domain::accounts};
use sellersync_spapi_sim::SimConfig;

use crate::sim;

#[tokio::test]
async fn demo_data_is_seeded_once_and_the_stand_in_accepts_it() {
    let ns = TestNamespace::new();
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    assert_eq!(demo::seed(&db, 5, 2, &|_| {}).await.unwrap(), 15);
    assert_eq!(demo::seed(&db, 5, 2, &|_| {}).await.unwrap(), 0, "idempotent");
    let accounts = db
        .collection::<Document>(accounts::SELLER_ACCOUNTS)
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(accounts, 10);

    let sim = sim::spawn(SimConfig::default()).await;
    let refresher = sim.refresher(&ns, sim.client(&ns)).await;
    let report = refresher
        .process_user_data(&demo::user_id(3), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.accounts_processed, report.accounts_failed),
        (2, 0),
        "{report:?}"
    );
}
