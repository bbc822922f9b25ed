use std::io::Write;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use redis::AsyncCommands;
use sellersync_core::domain::accounts::{self, NewAccount};
use sellersync_core::domain::spapi::Region;
use sellersync_core::jobs::refresh::{RefreshError, Refresher};
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::SimConfig;

use crate::sim::{self, Sim};

async fn refresher(ns: &TestNamespace, sim: &Sim) -> Refresher {
    sim.refresher(ns, sim.client(ns)).await
}

/// A user with one account per seller id, all in the US marketplace.
async fn user_with_accounts(r: &Refresher, user: &str, sellers: &[&str]) -> Vec<String> {
    accounts::upsert_user(r.store.db(), user, true).await.unwrap();
    let mut ids = Vec::new();
    for seller in sellers {
        let account = NewAccount {
            user_id: user.into(),
            seller_id: (*seller).into(),
            region: Region::Na,
            marketplace_id: "ATVPDKIKX0DER".into(),
            refresh_token: format!("Atzr|{seller}|refresh-secret-{seller}").as_str().into(),
        };
        ids.push(accounts::upsert_account(r.store.db(), &account).await.unwrap());
    }
    ids
}

async fn summaries(r: &Refresher) -> Vec<Document> {
    let cursor = r
        .store
        .db()
        .collection::<Document>(accounts::ACCOUNT_SUMMARIES)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .unwrap();
    let docs: Vec<Document> = cursor.try_collect().await.unwrap();
    docs.into_iter()
        .map(|mut d| {
            d.remove("updatedAt");
            d.remove("fence");
            d
        })
        .collect()
}

#[tokio::test]
async fn one_failing_account_of_three_does_not_stop_the_others() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    let ids = user_with_accounts(&r, "u1", &["S-A", "REVOKED-B", "S-C"]).await;

    let seen = Mutex::new(Vec::new());
    let report = r
        .process_user_data("u1", &|p| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    assert_eq!(
        (
            report.accounts_total,
            report.accounts_processed,
            report.accounts_failed
        ),
        (3, 2, 1)
    );
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].seller_id, "REVOKED-B");
    assert!(report.errors[0].message.contains("invalid_grant") && !report.errors[0].retryable);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![33, 66, 100],
        "progress by accounts done"
    );

    let mut redis = r.redis.clone();
    let cached = r.caches.get(&r.cache_key(&ids[0])).await.unwrap();
    let cached: serde_json::Value = serde_json::from_slice(&cached.expect("summary cached")).unwrap();
    assert!(cached["orderCount"].as_u64().is_some());
    let ttl: i64 = redis.ttl(r.cache_key(&ids[0])).await.unwrap();
    assert!(
        ttl > 0 && ttl <= ns.settings.refresh.cache_ttl.as_secs() as i64,
        "ttl {ttl}"
    );
    assert!(r.caches.get(&r.cache_key(&ids[1])).await.unwrap().is_none());

    assert_eq!(summaries(&r).await.len(), 2);
    let user = user_doc(&r, "u1").await;
    let outcomes = user.get_document("accountOutcomes").unwrap();
    let status = |id: &str| {
        outcomes
            .get_document(id)
            .unwrap()
            .get_str("status")
            .unwrap()
            .to_owned()
    };
    assert_eq!(status(&ids[0]), "ok");
    assert_eq!(status(&ids[1]), "needsReauthorization");
    assert_eq!(status(&ids[2]), "ok");
    assert!(
        user.get_datetime("lastDataUpdateAt").is_ok(),
        "the user is marked fresh"
    );
    assert!(user.get_datetime("lastAttemptAt").is_ok());
    assert!(
        !user.get_bool("needsReauthorization").unwrap(),
        "two accounts still work"
    );
    assert!(!report.all_accounts_refreshed(), "the job says one was left out");

    sellersync_core::infra::migrations::apply(r.store.db())
        .await
        .unwrap();
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let freshness = accounts::freshness(r.store.db(), hour_ago).await.unwrap();
    assert_eq!(
        (
            freshness.refreshed_since,
            freshness.accounts_enabled,
            freshness.accounts_refreshed_since
        ),
        (1, 3, 2),
        "the user counts as refreshed, the account left out does not"
    );
}

async fn user_doc(r: &Refresher, id: &str) -> Document {
    r.store
        .db()
        .collection::<Document>(accounts::USERS)
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_refresh_where_every_account_failed_does_not_mark_the_user_fresh() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    user_with_accounts(&r, "u1", &["BROKEN-A"]).await;
    sim.fault("BROKEN-A", 500, 100).await;

    let report = r.process_user_data("u1", &|_| {}).await.unwrap();
    assert_eq!((report.accounts_processed, report.accounts_failed), (0, 1));
    let user = user_doc(&r, "u1").await;
    assert!(
        user.get_datetime("lastDataUpdateAt").is_err(),
        "not fresh: nothing was refreshed"
    );
    assert!(
        user.get_datetime("lastAttemptAt").is_ok(),
        "but the attempt is recorded"
    );
}

#[tokio::test]
async fn a_revoked_account_is_skipped_until_its_refresh_token_changes() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    let ids = user_with_accounts(&r, "u1", &["REVOKED-A"]).await;

    let first = r.process_user_data("u1", &|_| {}).await.unwrap();
    assert!(first.errors[0].needs_reauthorization, "{first:?}");
    assert!(user_doc(&r, "u1").await.get_bool("needsReauthorization").unwrap());

    let second = r.process_user_data("u1", &|_| {}).await.unwrap();
    assert_eq!(
        (second.accounts_failed, second.accounts_awaiting_reauthorization),
        (0, 1),
        "not tried again with the same token"
    );

    r.store
        .db()
        .collection::<Document>(accounts::SELLER_ACCOUNTS)
        .update_one(
            doc! { "_id": &ids[0] },
            doc! { "$set": { "refreshToken": "Atzr|S-NEW|fresh" } },
        )
        .await
        .unwrap();
    let third = r.process_user_data("u1", &|_| {}).await.unwrap();
    assert_eq!(
        (third.accounts_processed, third.accounts_awaiting_reauthorization),
        (1, 0)
    );
    assert!(!user_doc(&r, "u1").await.get_bool("needsReauthorization").unwrap());
}

#[tokio::test]
async fn running_twice_leaves_the_same_cache_and_mongo_state() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    let ids = user_with_accounts(&r, "u2", &["S-X", "S-Y"]).await;

    let first = r.process_user_data("u2", &|_| {}).await.unwrap();
    let (cache_1, docs_1) = (
        r.caches.get(&r.cache_key(&ids[1])).await.unwrap(),
        summaries(&r).await,
    );
    let second = r.process_user_data("u2", &|_| {}).await.unwrap();
    let (cache_2, docs_2) = (
        r.caches.get(&r.cache_key(&ids[1])).await.unwrap(),
        summaries(&r).await,
    );
    assert_eq!(first, second);
    assert_eq!(cache_1, cache_2);
    assert_eq!(docs_1, docs_2);
    assert_eq!(docs_2.len(), 2, "replaced, not duplicated");
}

/// Each stored summary says when and by which job it was refreshed (the dashboard's user page
/// shows it); a refresh outside a job names none.
#[tokio::test]
async fn each_summary_names_the_job_that_refreshed_it() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    let ids = user_with_accounts(&r, "u4", &["S-J1", "S-J2"]).await;
    let fence = accounts::Fence::now();
    r.refresh_job("u4", "job-7", fence, &|_| {}).await.unwrap();
    let stored = accounts::user_summaries(r.store.db(), "u4").await.unwrap();
    let seen: Vec<(&str, Option<&str>)> = stored
        .iter()
        .map(|s| (s.account_id.as_str(), s.job_id.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![(ids[0].as_str(), Some("job-7")), (ids[1].as_str(), Some("job-7"))]
    );
    assert!(
        stored
            .iter()
            .all(|s| s.user_id == "u4" && s.summary.order_count > 0)
    );
    r.process_user_data("u4", &|_| {}).await.unwrap();
    let again = accounts::user_summaries(r.store.db(), "u4").await.unwrap();
    assert!(again.iter().all(|s| s.job_id.is_none()), "{again:?}");
    assert!(again[0].updated_at >= stored[0].updated_at);
}

#[tokio::test]
async fn unknown_and_inactive_users_are_not_retryable() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    let error = r.process_user_data("nobody", &|_| {}).await.unwrap_err();
    assert!(matches!(error, RefreshError::UnknownUser(_)) && !error.is_retryable());
    accounts::upsert_user(r.store.db(), "sleeping", false)
        .await
        .unwrap();
    let error = r.process_user_data("sleeping", &|_| {}).await.unwrap_err();
    assert!(matches!(error, RefreshError::InactiveUser(_)) && !error.is_retryable());
}

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refresh_tokens_never_appear_in_logs() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let r = refresher(&ns, &sim).await;
    user_with_accounts(&r, "u3", &["S-LOG", "REVOKED-LOG"]).await;
    sim.fault("S-LOG", 500, 100).await;

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let report = {
        let _guard = tracing::subscriber::set_default(subscriber);
        r.process_user_data("u3", &|_| {}).await.unwrap()
    };
    assert_eq!(report.accounts_failed, 2);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("seller account refresh failed"),
        "logs were captured: {logs}"
    );
    assert!(
        !logs.contains("refresh-secret"),
        "a refresh token leaked into the logs:\n{logs}"
    );
    assert!(
        !logs.contains("Atza|"),
        "an access token leaked into the logs:\n{logs}"
    );
}
