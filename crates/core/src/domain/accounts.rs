//! Users and their seller accounts in MongoDB (`users`, `seller_accounts`), and the durable copy
//! of each account's latest summary (`account_summaries`).
//!
//! A seller account is one seller id in one region and marketplace, with the LWA refresh token
//! that authorizes us: a [`Secret`], never logged and never serialised back out.

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::Database;
use mongodb::bson::{self, Bson, Document, doc};
use serde::{Deserialize, Serialize};

use crate::domain::analysis::Summary;
use crate::domain::spapi::marketplaces::MarketplaceError;
use crate::domain::spapi::{self, Credentials, Region};
use crate::infra::error::CoreResult;
pub use crate::infra::fenced::Fence;
use crate::infra::secret::Secret;

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
    /// When a refresh last completed (at least one account refreshed, or none to refresh).
    #[serde(default)]
    pub last_data_update_at: Option<bson::DateTime>,
    /// When a refresh was last attempted, whatever its outcome.
    #[serde(default)]
    pub last_attempt_at: Option<bson::DateTime>,
    #[serde(default = "default_interval")]
    pub update_interval_minutes: i64,
    /// Every enabled account's authorization is broken: the hourly producer skips the user until
    /// an account's credentials change.
    #[serde(default)]
    pub needs_reauthorization: bool,
    /// The last outcome of each account, by account id.
    #[serde(default)]
    pub account_outcomes: HashMap<String, AccountOutcome>,
    /// The fence of the refresh that last wrote this record ([`Fence`]).
    #[serde(default)]
    pub refresh_fence: i64,
}

/// How an account's last refresh went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AccountStatus {
    Ok,
    Failed,
    /// Its seller must authorize us again (`invalid_grant`, access revoked); not tried again
    /// until its refresh token changes.
    NeedsReauthorization,
    /// Amazon refuses its orders because the seller did not grant the role they need (403
    /// without details); not tried again until its refresh token changes (re-authorized).
    MissingRole,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountOutcome {
    pub status: AccountStatus,
    pub at: bson::DateTime,
    #[serde(default)]
    pub error: Option<String>,
    /// For `NeedsReauthorization` and missing roles: a fingerprint of the refresh token that was
    /// refused, so a new token (the seller authorized us again) is noticed.
    #[serde(default)]
    pub token_fingerprint: Option<String>,
    /// Operations Amazon refused for a role the seller did not grant (e.g.
    /// `getInventorySummaries`): skipped while the refresh token is the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_roles: Vec<String>,
    /// Amazon's `x-amzn-RequestId` of the answer that failed the account (support asks for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When the account was last refreshed (its summary is from then), whatever happened since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<bson::DateTime>,
}

impl User {
    /// The last outcome of `account` if it was decided with the refresh token the account still
    /// has (so what the seller refused then still holds).
    fn outcome_with_same_token(&self, account: &SellerAccount) -> Option<&AccountOutcome> {
        self.account_outcomes.get(&account.id).filter(|outcome| {
            outcome.token_fingerprint.as_deref() == Some(account.refresh_token.fingerprint().as_str())
        })
    }

    /// Whether `account` is waiting for its seller to authorize us again (withdrawn grant, or no
    /// role for its orders) and still has the token that was refused.
    pub fn awaits_reauthorization(&self, account: &SellerAccount) -> bool {
        self.outcome_with_same_token(account).is_some_and(|outcome| {
            matches!(
                outcome.status,
                AccountStatus::NeedsReauthorization | AccountStatus::MissingRole
            )
        })
    }

    /// The operations `account` must skip: roles its seller did not grant, while its refresh
    /// token is the one that was refused.
    pub fn withheld_roles(&self, account: &SellerAccount) -> &[String] {
        self.outcome_with_same_token(account)
            .map_or(&[], |outcome| outcome.missing_roles.as_slice())
    }
}

/// The user's freshness, as its status shows it: the fields of its record a refresh writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFreshness {
    #[serde(default)]
    pub last_data_update_at: Option<bson::DateTime>,
    #[serde(default)]
    pub last_attempt_at: Option<bson::DateTime>,
    #[serde(default)]
    pub needs_reauthorization: bool,
    #[serde(default)]
    pub account_outcomes: HashMap<String, AccountOutcome>,
}

impl UserFreshness {
    pub fn of(user: &User) -> Self {
        Self {
            last_data_update_at: user.last_data_update_at,
            last_attempt_at: user.last_attempt_at,
            needs_reauthorization: user.needs_reauthorization,
            account_outcomes: user.account_outcomes.clone(),
        }
    }
}

/// What one refresh attempt of a user records on the user.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    /// Every enabled account's outcome (accounts left waiting for re-authorization included).
    pub outcomes: HashMap<String, AccountOutcome>,
    /// At least one account was refreshed, or the user has none: the data is fresh.
    pub completed: bool,
    /// When the attempt was recorded.
    pub at: bson::DateTime,
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

/// A new seller account, for seeding and tests. Its marketplace must be one its region's host
/// serves ([`spapi::marketplaces`]); the country follows from the marketplace.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub user_id: String,
    pub seller_id: String,
    pub region: Region,
    pub marketplace_id: String,
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

    /// The account's fields as stored (the refresh token included), or why its marketplace and
    /// region cannot go together.
    pub fn fields(&self) -> Result<Document, MarketplaceError> {
        let country = spapi::marketplaces::check(self.region, &self.marketplace_id)?;
        Ok(doc! {
            "userId": &self.user_id,
            "sellerId": &self.seller_id,
            "region": self.region.as_str(),
            "marketplaceId": &self.marketplace_id,
            "country": country,
            "refreshToken": self.refresh_token.expose(),
            "enabled": true,
        })
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

/// How fresh the data is: active users and those refreshed since a moment (the share refreshed
/// within the last hour is the freshness the dashboard shows), and the same for enabled seller
/// accounts: a user whose refresh left an account out counts as refreshed, its account does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freshness {
    pub active: u64,
    pub refreshed_since: u64,
    pub accounts_enabled: u64,
    pub accounts_refreshed_since: u64,
}

/// Counts active users and those whose `lastDataUpdateAt` is at or after `since`, enabled seller
/// accounts and the account summaries stored at or after `since` (each count answered by an
/// index).
pub async fn freshness(db: &Database, since: chrono::DateTime<chrono::Utc>) -> CoreResult<Freshness> {
    let users = db.collection::<Document>(USERS);
    let (accounts, summaries) = (
        db.collection::<Document>(SELLER_ACCOUNTS),
        db.collection::<Document>(ACCOUNT_SUMMARIES),
    );
    let since = bson::DateTime::from_millis(since.timestamp_millis());
    let (active, refreshed_since, accounts_enabled, accounts_refreshed_since) = futures::try_join!(
        users.count_documents(doc! { "active": true }).into_future(),
        users
            .count_documents(doc! { "active": true, "lastDataUpdateAt": { "$gte": since } })
            .into_future(),
        accounts.count_documents(doc! { "enabled": true }).into_future(),
        summaries
            .count_documents(doc! { "updatedAt": { "$gte": since } })
            .into_future(),
    )?;
    Ok(Freshness {
        active,
        refreshed_since,
        accounts_enabled,
        accounts_refreshed_since,
    })
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

/// Creates or updates a seller account (idempotent); the refresh token is written, never read
/// back out. An account whose marketplace its region does not serve is refused, naming both.
pub async fn upsert_account(db: &Database, account: &NewAccount) -> CoreResult<String> {
    let id = account.id();
    let fields = account.fields()?;
    db.collection::<Document>(SELLER_ACCOUNTS)
        .update_one(doc! { "_id": &id }, doc! { "$set": fields })
        .upsert(true)
        .await?;
    Ok(id)
}

/// Records refresh attempts of users in one write: for each, `lastAttemptAt`, each account's
/// outcome, whether the user needs re-authorization, and `lastDataUpdateAt` only when the
/// refresh completed. An attempt whose fence is older than the user's last record's writes nothing.
pub async fn record_refreshes(db: &Database, attempts: &[(&str, &RefreshRecord, Fence)]) -> CoreResult<()> {
    let mut statements = Vec::with_capacity(attempts.len());
    for (user_id, record, fence) in attempts {
        let mut fields = refresh_fields(record)?;
        fields.insert("refreshFence", fence.0 as i64);
        let mut filter = fence.allows("refreshFence");
        filter.insert("_id", *user_id);
        statements.push(Bson::Document(doc! { "q": filter, "u": { "$set": fields } }));
    }
    bulk_update(db, USERS, statements, "user refresh records").await
}

impl RefreshRecord {
    /// The user's freshness once this record is written over `before`.
    pub fn freshness(&self, before: &UserFreshness) -> UserFreshness {
        let now = self.at;
        let waiting = |o: &AccountOutcome| {
            matches!(
                o.status,
                AccountStatus::NeedsReauthorization | AccountStatus::MissingRole
            )
        };
        UserFreshness {
            last_data_update_at: if self.completed {
                Some(now)
            } else {
                before.last_data_update_at
            },
            last_attempt_at: Some(now),
            needs_reauthorization: !self.outcomes.is_empty() && self.outcomes.values().all(waiting),
            account_outcomes: self.outcomes.clone(),
        }
    }
}

/// The `$set` of a refresh record (`lastDataUpdateAt` only when it completed).
fn refresh_fields(record: &RefreshRecord) -> CoreResult<Document> {
    let freshness = record.freshness(&UserFreshness::default());
    let mut set = bson::to_document(&freshness).map_err(|e| crate::CoreError::Encode {
        what: "account outcomes",
        reason: e.to_string(),
    })?;
    if !record.completed {
        set.remove("lastDataUpdateAt");
    }
    Ok(set)
}

/// One unordered `update` command with many statements; a statement MongoDB refused fails it.
async fn bulk_update(
    db: &Database,
    collection: &str,
    statements: Vec<Bson>,
    what: &'static str,
) -> CoreResult<()> {
    if statements.is_empty() {
        return Ok(());
    }
    let reply = db
        .run_command(doc! { "update": collection, "updates": statements, "ordered": false })
        .await?;
    if let Ok(concern) = reply.get_document("writeConcernError") {
        // Written, but not as durably as asked: an election may roll it back.
        return Err(crate::CoreError::Encode {
            what,
            reason: format!("MongoDB did not confirm the write concern: {concern}"),
        });
    }
    let refused = reply
        .get_array("writeErrors")
        .ok()
        .into_iter()
        .flatten()
        .find(|error| !fenced_out(error));
    match refused {
        Some(error) => Err(crate::CoreError::Encode {
            what,
            reason: format!("MongoDB refused a write: {error}"),
        }),
        None => Ok(()),
    }
}

/// A fenced upsert whose document a newer fence holds: the filter missed it, so MongoDB tried to
/// insert a second document with the same `_id` (11000). That is the compare-and-set saying no.
fn fenced_out(error: &Bson) -> bool {
    error
        .as_document()
        .and_then(|e| e.get("code"))
        .and_then(Bson::as_i32)
        == Some(11000)
}

/// Users by id with their enabled seller accounts (in a stable order), in two round trips
/// whatever the number of users.
pub async fn load_users(
    db: &Database,
    user_ids: &[String],
) -> CoreResult<HashMap<String, (User, Vec<SellerAccount>)>> {
    let users: Vec<User> = db
        .collection::<User>(USERS)
        .find(doc! { "_id": { "$in": user_ids } })
        .await?
        .try_collect()
        .await?;
    let accounts: Vec<SellerAccount> = db
        .collection::<SellerAccount>(SELLER_ACCOUNTS)
        .find(doc! { "userId": { "$in": user_ids }, "enabled": true })
        .sort(doc! { "_id": 1 })
        .await?
        .try_collect()
        .await?;
    let mut loaded: HashMap<String, (User, Vec<SellerAccount>)> = users
        .into_iter()
        .map(|u| (u.id.clone(), (u, Vec::new())))
        .collect();
    for account in accounts {
        if let Some((_, list)) = loaded.get_mut(&account.user_id) {
            list.push(account);
        }
    }
    Ok(loaded)
}

/// One account's new summary: the attempt's fence, and the job that refreshed it (if a job did).
pub struct SummaryWrite<'a> {
    pub account: &'a SellerAccount,
    pub summary: &'a Summary,
    pub fence: Fence,
    pub job_id: Option<&'a str>,
}

/// Stores the accounts' latest summaries durably (replacing the previous ones, with when and by
/// which job), in one round trip. An account summary whose fence is older than the stored one's
/// is not written.
pub async fn save_summaries(db: &Database, summaries: &[SummaryWrite<'_>]) -> CoreResult<()> {
    let now = bson::DateTime::now();
    let mut statements = Vec::with_capacity(summaries.len());
    for write in summaries {
        let (account, fence) = (write.account, write.fence);
        let summary = bson::to_bson(write.summary).map_err(|e| crate::CoreError::Encode {
            what: "summary",
            reason: e.to_string(),
        })?;
        let fields = doc! {
            "userId": &account.user_id,
            "sellerId": &account.seller_id,
            "region": account.region.as_str(),
            "marketplaceId": &account.marketplace_id,
            "summary": summary,
            "updatedAt": now,
            "fence": fence.0 as i64,
            "jobId": write.job_id,
        };
        let mut filter = fence.allows("fence");
        filter.insert("_id", &account.id);
        statements.push(Bson::Document(
            doc! { "q": filter, "u": { "$set": fields }, "upsert": true },
        ));
    }
    bulk_update(db, ACCOUNT_SUMMARIES, statements, "summaries").await
}

/// An account's latest stored summary: when it was refreshed, by which job.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSummary {
    /// The account's id.
    #[serde(rename = "_id")]
    pub account_id: String,
    pub user_id: String,
    #[serde(default)]
    pub seller_id: String,
    #[serde(default)]
    pub marketplace_id: String,
    pub summary: Summary,
    pub updated_at: bson::DateTime,
    /// The job that refreshed it (absent for summaries stored before jobs were recorded, or
    /// refreshed outside a job).
    #[serde(default)]
    pub job_id: Option<String>,
}

/// The latest summary of each of the user's accounts, by account id.
pub async fn user_summaries(db: &Database, user_id: &str) -> CoreResult<Vec<StoredSummary>> {
    Ok(db
        .collection::<StoredSummary>(ACCOUNT_SUMMARIES)
        .find(doc! { "userId": user_id })
        .sort(doc! { "_id": 1 })
        .await?
        .try_collect()
        .await?)
}

/// Users that wait for re-authorization but whose accounts' credentials have changed since:
/// the producer refreshes them again.
pub async fn reauthorized_users(db: &Database) -> CoreResult<Vec<String>> {
    let flagged: Vec<User> = db
        .collection::<User>(USERS)
        .find(doc! { "active": true, "needsReauthorization": true })
        .await?
        .try_collect()
        .await?;
    let mut changed = Vec::new();
    for user in flagged {
        let accounts = enabled_accounts(db, &user.id).await?;
        if accounts.iter().any(|a| !user.awaits_reauthorization(a)) {
            changed.push(user.id);
        }
    }
    Ok(changed)
}

/// Which of `user_ids` exist.
pub async fn existing_user_ids(
    db: &Database,
    user_ids: &[String],
) -> CoreResult<std::collections::HashSet<String>> {
    let found = self::user_ids(db, doc! { "_id": { "$in": user_ids } }).await?;
    Ok(found.into_iter().collect())
}
