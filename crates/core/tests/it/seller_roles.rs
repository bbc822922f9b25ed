//! 403s by cause in `process_user_data`: a role the seller did not grant (403 `Unauthorized`
//! without details) is recorded on the account with Amazon's request id, its operation is skipped
//! until the seller authorizes us again, and the account's other data and the user's other
//! accounts are refreshed as usual.

use sellersync_core::domain::accounts::{self, AccountStatus, NewAccount};
use sellersync_core::domain::spapi::Region;
use sellersync_core::jobs::refresh::Refresher;
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::SimConfig;

use crate::refresh_spapi::{cached_summary, refresher, user};
use crate::sim::{self, Sim};

const US: &str = "ATVPDKIKX0DER";
const INVENTORY: &str = "getInventorySummaries";
const ORDERS: &str = "searchOrders";

/// API calls of `operation` the stand-in has answered so far.
async fn calls(sim: &Sim, operation: &str) -> usize {
    let path = if operation == ORDERS { "/orders/" } else { "/fba/" };
    sim.exchanges()
        .await
        .iter()
        .filter(|e| e.path.starts_with(path))
        .count()
}

/// The seller authorizes us again: the account gets a new refresh token.
async fn reauthorize(r: &Refresher, user: &str, seller: &str) {
    let account = NewAccount {
        user_id: user.into(),
        seller_id: seller.into(),
        region: Region::Na,
        marketplace_id: US.into(),
        refresh_token: format!("Atzr|{seller}|granted-again").as_str().into(),
    };
    accounts::upsert_account(r.store.db(), &account).await.unwrap();
}

#[tokio::test]
async fn without_the_inventory_role_an_account_keeps_its_orders_and_is_not_asked_again_until_reauthorized() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    let ids = user(&r, "noinv", &[("NOINV", US)]).await;
    sim.role("NOINV", INVENTORY, false).await;

    let report = r.process_user_data("noinv", &|_| {}).await.unwrap();
    assert_eq!(
        (report.accounts_processed, report.accounts_failed),
        (1, 0),
        "{report:?}"
    );
    let summary = cached_summary(&r, &ids[0]).await;
    assert!(summary["orderCount"].as_u64().unwrap() > 0);
    assert!(
        summary["inventoryUnavailable"]
            .as_str()
            .unwrap()
            .contains("not granted"),
        "{summary}"
    );
    let user_record = accounts::find_user(r.store.db(), "noinv").await.unwrap().unwrap();
    let outcome = &user_record.account_outcomes[&ids[0]];
    assert_eq!(
        (outcome.status, outcome.missing_roles.as_slice()),
        (AccountStatus::Ok, [INVENTORY.to_owned()].as_slice())
    );
    assert_eq!(
        sim.stats().await.tokens,
        1,
        "no token exchange spent on the refusal"
    );

    r.process_user_data("noinv", &|_| {}).await.unwrap();
    assert_eq!(calls(&sim, INVENTORY).await, 1, "not asked again");

    sim.role("NOINV", INVENTORY, true).await;
    reauthorize(&r, "noinv", "NOINV").await;
    r.process_user_data("noinv", &|_| {}).await.unwrap();
    assert_eq!(calls(&sim, INVENTORY).await, 2, "asked again once re-authorized");
    let summary = cached_summary(&r, &ids[0]).await;
    assert!(summary.get("inventoryUnavailable").is_none(), "{summary}");
    sim.assert_contract().await;
}

#[tokio::test]
async fn without_the_orders_role_an_account_waits_for_its_seller_and_the_others_are_refreshed() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    let ids = user(&r, "half", &[("GRANTED", US), ("NOORDERS", US)]).await;
    sim.role("NOORDERS", ORDERS, false).await;

    let report = r.process_user_data("half", &|_| {}).await.unwrap();
    assert_eq!(
        (
            report.accounts_processed,
            report.accounts_failed,
            report.accounts_awaiting_reauthorization
        ),
        (1, 0, 1),
        "{report:?}"
    );
    let error = &report.errors[0];
    assert_eq!(error.missing_role.as_deref(), Some(ORDERS));
    assert!(!error.retryable);
    let served = sim.exchanges().await;
    let refusal = served.iter().find(|e| e.status == 403).expect("Amazon's refusal");
    let request_id = refusal.headers["x-amzn-requestid"].clone();
    assert_eq!(
        error.request_id.as_deref(),
        Some(request_id.as_str()),
        "Amazon's request id is kept"
    );

    let record = accounts::find_user(r.store.db(), "half").await.unwrap().unwrap();
    let outcome = &record.account_outcomes[&ids[1]];
    assert_eq!(outcome.status, AccountStatus::MissingRole);
    assert_eq!(
        outcome.request_id.as_deref(),
        Some(request_id.as_str()),
        "kept for admins"
    );
    assert!(
        record.last_data_update_at.is_some(),
        "the other account was refreshed"
    );
    assert!(!record.needs_reauthorization, "one account still works");

    let again = r.process_user_data("half", &|_| {}).await.unwrap();
    assert_eq!(again.accounts_awaiting_reauthorization, 1);
    let refusals = sim.exchanges().await.iter().filter(|e| e.status == 403).count();
    assert_eq!(refusals, 1, "the waiting account is not tried again");

    sim.role("NOORDERS", ORDERS, true).await;
    reauthorize(&r, "half", "NOORDERS").await;
    let granted = r.process_user_data("half", &|_| {}).await.unwrap();
    assert_eq!(granted.accounts_processed, 2, "{granted:?}");
    sim.assert_contract().await;
}
