//! Users and their seller accounts in MongoDB (`users`, `seller_accounts`), and the durable copy
//! of each account's latest summary (`account_summaries`).
//!
//! A seller account is one seller id in one region and marketplace, with the LWA refresh token
//! that authorizes us: a [`Secret`], never logged and never serialised back out.

use futures::TryStreamExt;
use mongodb::Database;
use mongodb::bson::{self, Document, doc};
use serde::Deserialize;

use crate::analysis::Summary;
use crate::error::CoreResult;
use crate::secret::Secret;
use crate::spapi::{Credentials, Region};

pub const USERS: &str = "users";
pub const SELLER_ACCOUNTS: &str = "seller_accounts";
pub const ACCOUNT_SUMMARIES: &str = "account_summaries";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub last_data_update_at: Option<bson::DateTime>,
    #[serde(default = "default_interval")]
    pub update_interval_minutes: i64,
}

fn default_interval() -> i64 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SellerAccount {
    #[serde(rename = "_id")]
    pub id: String,
    pub user_id: String,
    pub seller_id: String,
    pub region: Region,
    pub marketplace_id: String,
    #[serde(default)]
    pub country: String,
    pub refresh_token: Secret,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl SellerAccount {
    pub fn credentials(&self) -> Credentials {
        Credentials {
            account_id: self.id.clone(),
            seller_id: self.seller_id.clone(),
            region: self.region,
            refresh_token: self.refresh_token.clone(),
        }
    }
}

/// A new seller account, for seeding and tests.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub user_id: String,
    pub seller_id: String,
    pub region: Region,
    pub marketplace_id: String,
    pub country: String,
    pub refresh_token: Secret,
}

impl NewAccount {
    pub fn id(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.user_id,
            self.seller_id,
            self.region.as_str(),
            self.marketplace_id
        )
    }
}

pub async fn find_user(db: &Database, user_id: &str) -> CoreResult<Option<User>> {
    Ok(db
        .collection::<User>(USERS)
        .find_one(doc! { "_id": user_id })
        .await?)
}

/// The user's enabled seller accounts, in a stable order.
pub async fn enabled_accounts(db: &Database, user_id: &str) -> CoreResult<Vec<SellerAccount>> {
    let cursor = db
        .collection::<SellerAccount>(SELLER_ACCOUNTS)
        .find(doc! { "userId": user_id, "enabled": true })
        .sort(doc! { "_id": 1 })
        .await?;
    Ok(cursor.try_collect().await?)
}

/// Ids of every active user, in id order.
pub async fn active_user_ids(db: &Database) -> CoreResult<Vec<String>> {
    user_ids(db, doc! { "active": true }).await
}

/// Ids of the users matching `filter`, in id order.
async fn user_ids(db: &Database, filter: Document) -> CoreResult<Vec<String>> {
    let cursor = db
        .collection::<Document>(USERS)
        .find(filter)
        .projection(doc! { "_id": 1 })
        .sort(doc! { "_id": 1 })
        .await?;
    let docs: Vec<Document> = cursor.try_collect().await?;
    Ok(docs
        .iter()
        .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
        .collect())
}

/// Creates or replaces a user (idempotent).
pub async fn upsert_user(db: &Database, user_id: &str, active: bool) -> CoreResult<()> {
    db.collection::<Document>(USERS)
        .update_one(
            doc! { "_id": user_id },
            doc! { "$set": { "active": active }, "$setOnInsert": { "updateIntervalMinutes": 60 } },
        )
        .upsert(true)
        .await?;
    Ok(())
}

/// Creates or updates a seller account (idempotent); the refresh token is written, never read back out.
pub async fn upsert_account(db: &Database, account: &NewAccount) -> CoreResult<String> {
    let id = account.id();
    let fields = doc! {
        "userId": &account.user_id,
        "sellerId": &account.seller_id,
        "region": account.region.as_str(),
        "marketplaceId": &account.marketplace_id,
        "country": &account.country,
        "refreshToken": account.refresh_token.expose(),
        "enabled": true,
    };
    db.collection::<Document>(SELLER_ACCOUNTS)
        .update_one(doc! { "_id": &id }, doc! { "$set": fields })
        .upsert(true)
        .await?;
    Ok(id)
}

/// Records one account's refresh: `lastUpdateAt`, `lastUpdateStatus` and the error, if any.
pub async fn record_account_update(db: &Database, account_id: &str, error: Option<&str>) -> CoreResult<()> {
    let status = if error.is_some() { "failed" } else { "ok" };
    let update = doc! { "$set": {
        "lastUpdateAt": bson::DateTime::now(),
        "lastUpdateStatus": status,
        "lastError": error,
    }};
    db.collection::<Document>(SELLER_ACCOUNTS)
        .update_one(doc! { "_id": account_id }, update)
        .await?;
    Ok(())
}

/// The user's data is fresh as of now (every account was attempted).
pub async fn record_user_refreshed(db: &Database, user_id: &str) -> CoreResult<()> {
    db.collection::<Document>(USERS)
        .update_one(
            doc! { "_id": user_id },
            doc! { "$set": { "lastDataUpdateAt": bson::DateTime::now() } },
        )
        .await?;
    Ok(())
}

/// Stores the account's latest summary durably (replacing the previous one).
pub async fn save_summary(db: &Database, account: &SellerAccount, summary: &Summary) -> CoreResult<()> {
    let summary = bson::to_bson(summary).map_err(|e| crate::CoreError::Encode {
        what: "summary",
        reason: e.to_string(),
    })?;
    let fields = doc! {
        "userId": &account.user_id,
        "sellerId": &account.seller_id,
        "region": account.region.as_str(),
        "marketplaceId": &account.marketplace_id,
        "summary": summary,
        "updatedAt": bson::DateTime::now(),
    };
    db.collection::<Document>(ACCOUNT_SUMMARIES)
        .update_one(doc! { "_id": &account.id }, doc! { "$set": fields })
        .upsert(true)
        .await?;
    Ok(())
}

/// Which of `user_ids` exist.
pub async fn existing_user_ids(
    db: &Database,
    user_ids: &[String],
) -> CoreResult<std::collections::HashSet<String>> {
    let found = self::user_ids(db, doc! { "_id": { "$in": user_ids } }).await?;
    Ok(found.into_iter().collect())
}
