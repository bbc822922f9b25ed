//! `process_user_data`: refresh one user's seller data — for every enabled seller account, fetch
//! its orders and FBA inventory from SP-API, analyse them, cache the summaries in Redis (with a
//! TTL) and store them durably in MongoDB; then record the attempt on the user: each account's
//! outcome, `lastAttemptAt`, and `lastDataUpdateAt` only if the refresh completed (at least one
//! account refreshed, or none to refresh).
//!
//! Accounts run with bounded concurrency; one failing account does not stop the others. An
//! account whose seller must authorize us again is skipped until its refresh token changes.
//! MongoDB sees at most four round trips per user however many accounts it has (the user, its
//! accounts, the summaries in one bulk write, the attempt record), and far fewer under load: the
//! [`RefreshStore`] makes each of them one bulk call for every refresh waiting at that moment.
//! Running it twice is harmless: every write replaces the previous state, and the data window is
//! aligned to whole hours, so two runs within an hour produce the same summaries.
//!
//! Per account: one `searchOrders` listing (items embedded) — of the whole window the first
//! time, then only of the orders updated since the last run ([`OrderBook`]) — and one inventory
//! listing. An account
//! whose inventory cannot be read keeps its order analysis, flagged `inventoryUnavailable`. An
//! account whose calls are rate-bound fails with a `retryAfterMs` (defer, don't retry); one whose
//! seller withdrew authorization with `needsReauthorization`.

mod cache;
mod order_book;
mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures::StreamExt;
use sellersync_queue::RedisConnection;
use serde::{Deserialize, Serialize};

use crate::domain::accounts::{
    self, AccountOutcome, AccountStatus, Fence, RefreshRecord, SellerAccount, UserFreshness,
};
use crate::domain::analysis::{self, AnalysisParams, Summary, Window};
use crate::domain::spapi::models::{InventorySummary, Order};
use crate::domain::spapi::{OrderQuery, SpApiClient, SpApiError};
use crate::infra::error::CoreError;
use crate::jobs::job_status::read_model::ReadModel;
pub use cache::Caches;
pub use order_book::{Listing, OrderBook, Resume};
pub use store::{Attempt, RefreshStore};

/// How far before the top of the hour the window ends. Amazon requires `CreatedBefore` at least
/// two minutes before the request (`ordersV0.json`, `orders_2026-01-01.json`); ending the window
/// a fixed margin before the hour keeps it the same for the whole hour (idempotent runs) and
/// leaves room for clock skew.
const WINDOW_END_MARGIN: TimeDelta = TimeDelta::minutes(5);

/// What one run did: the job's result, stored with the completed job and projected to JobStatus.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReport {
    pub accounts_total: usize,
    pub accounts_processed: usize,
    pub accounts_failed: usize,
    /// Accounts skipped because their seller must authorize us again (not counted as failed).
    #[serde(default)]
    pub accounts_awaiting_reauthorization: usize,
    pub errors: Vec<AccountError>,
    /// Accounts refreshed with part of their data missing (e.g. no inventory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<DegradedAccount>,
}

/// Why one account failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountError {
    pub account_id: String,
    pub seller_id: String,
    pub region: String,
    pub marketplace_id: String,
    pub message: String,
    /// Whether a later attempt may succeed.
    pub retryable: bool,
    /// The seller's authorization is gone: only the seller can fix it.
    #[serde(default)]
    pub needs_reauthorization: bool,
    /// Set when the account is rate-bound: Amazon's usage plan has no room for its calls for
    /// this long. Not a failure of the job: defer it by this much instead of spending an attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The operation Amazon refused because the seller did not grant its role: the account is
    /// skipped until it is authorized again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_role: Option<String>,
    /// Amazon's `x-amzn-RequestId` of the failing answer, for Amazon's support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl AccountError {
    /// The account's status after this error.
    pub fn status(&self) -> AccountStatus {
        match () {
            _ if self.needs_reauthorization => AccountStatus::NeedsReauthorization,
            _ if self.missing_role.is_some() => AccountStatus::MissingRole,
            _ => AccountStatus::Failed,
        }
    }
}

/// An account refreshed with part of its data missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DegradedAccount {
    pub account_id: String,
    pub seller_id: String,
    /// What is missing and why.
    pub message: String,
}

impl DegradedAccount {
    /// The degradation of `account`'s refreshed `summary`, if any.
    pub fn of(account: &SellerAccount, summary: &Summary) -> Option<Self> {
        let reason = summary.inventory_unavailable.as_ref()?;
        Some(Self {
            account_id: account.id.clone(),
            seller_id: account.seller_id.clone(),
            message: format!("inventory unavailable: {reason}"),
        })
    }
}

/// An account refreshed: its summary, and the operations Amazon refused for a role the seller
/// did not grant (skipped next time until the account is authorized again).
struct Refreshed {
    summary: Summary,
    missing_roles: Vec<String>,
}

impl RefreshReport {
    /// True when some account failed with an error a retry may fix.
    pub fn has_retryable_failures(&self) -> bool {
        self.errors.iter().any(|e| e.retryable)
    }

    /// When some account is rate-bound: the longest of their waits, after which a deferred job
    /// can run again (no attempt spent). `None` when no account is rate-bound.
    pub fn rate_bound_retry_after(&self) -> Option<Duration> {
        self.errors
            .iter()
            .filter_map(|e| e.retry_after_ms)
            .max()
            .map(Duration::from_millis)
    }

    /// Accounts whose seller must authorize the app again.
    pub fn needing_reauthorization(&self) -> impl Iterator<Item = &AccountError> {
        self.errors.iter().filter(|e| e.needs_reauthorization)
    }

    /// Whether every account was refreshed (none failed or waits for its seller).
    pub fn all_accounts_refreshed(&self) -> bool {
        self.accounts_processed == self.accounts_total
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("user {0} does not exist")]
    UnknownUser(String),
    #[error("user {0} is not active")]
    InactiveUser(String),
    #[error(transparent)]
    Store(#[from] CoreError),
}

impl RefreshError {
    /// MongoDB or Redis did not answer: nothing is wrong with the user, the run should wait.
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_unavailable())
    }

    /// Whether retrying the whole run can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::UnknownUser(_) | Self::InactiveUser(_) => false,
            Self::Store(e) => e.is_unavailable(),
        }
    }
}

/// Everything a refresh needs, built once per process.
#[derive(Clone)]
pub struct Refresher {
    /// MongoDB, through bulk calls shared by the refreshes running at once.
    pub store: RefreshStore,
    pub redis: RedisConnection,
    pub spapi: Arc<SpApiClient>,
    pub settings: RefreshSettings,
    /// Summaries and order books in Redis, written under the attempt's fence.
    pub caches: Caches,
    /// The status read model, told each user's new freshness (`None`: off).
    pub read_model: Option<ReadModel>,
}

impl Refresher {
    /// [`Self::refresh`] outside a job (the CLI, tests, benchmarks): fenced by the clock.
    pub async fn process_user_data(
        &self,
        user_id: &str,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<RefreshReport, RefreshError> {
        self.refresh(user_id, Fence::now(), progress).await
    }

    /// Refreshes every enabled seller account of `user_id`, reporting progress 0–100 by accounts
    /// done. Every write of user data (summaries, order books, the user's record) is fenced by
    /// `fence`, the attempt's lease token: none replaces data a newer attempt wrote. The
    /// summaries it stores name no job ([`Self::refresh_job`] for a queue job's attempt).
    pub async fn refresh(
        &self,
        user_id: &str,
        fence: Fence,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<RefreshReport, RefreshError> {
        self.run(user_id, fence, None, progress).await
    }

    /// [`Self::refresh`] for an attempt of queue job `job_id`: each summary it stores names the
    /// job (the dashboard's user page links it).
    pub async fn refresh_job(
        &self,
        user_id: &str,
        job_id: &str,
        fence: Fence,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<RefreshReport, RefreshError> {
        self.run(user_id, fence, Some(job_id), progress).await
    }

    async fn run(
        &self,
        user_id: &str,
        fence: Fence,
        job_id: Option<&str>,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<RefreshReport, RefreshError> {
        let (user, accounts) = self
            .store
            .load(user_id)
            .await?
            .ok_or_else(|| RefreshError::UnknownUser(user_id.to_owned()))?;
        if !user.active {
            return Err(RefreshError::InactiveUser(user_id.to_owned()));
        }
        let (waiting, runnable): (Vec<SellerAccount>, Vec<SellerAccount>) = accounts
            .into_iter()
            .partition(|account| user.awaits_reauthorization(account));
        let window = self.window(Utc::now());
        let total = runnable.len();
        // Owned futures (not closures over borrowed accounts) keep the whole run `Send`.
        let runs = runnable.into_iter().map(|account| {
            let this = self.clone();
            let withheld = user.withheld_roles(&account).to_vec();
            async move {
                let result = this.fetch_and_analyse(&account, window, &withheld, fence).await;
                (account, result)
            }
        });
        let mut results = futures::stream::iter(runs).buffer_unordered(self.settings.account_concurrency);
        let mut finished = Vec::with_capacity(total);
        while let Some(result) = results.next().await {
            finished.push(result);
            progress((finished.len() * 100 / total.max(1)) as u8);
        }
        if total == 0 {
            progress(100);
        }
        let report = self.record(&user, &waiting, finished, (fence, job_id)).await?;
        Ok(report)
    }

    /// Stores the summaries and records the attempt on the user; returns the run's report.
    async fn record(
        &self,
        user: &accounts::User,
        waiting: &[SellerAccount],
        finished: Vec<(SellerAccount, Result<Refreshed, SpApiError>)>,
        (fence, job_id): (Fence, Option<&str>),
    ) -> Result<RefreshReport, CoreError> {
        let now = mongodb::bson::DateTime::now();
        let mut report = RefreshReport {
            accounts_total: finished.len() + waiting.len(),
            accounts_awaiting_reauthorization: waiting.len(),
            ..RefreshReport::default()
        };
        let mut outcomes: HashMap<String, AccountOutcome> = waiting
            .iter()
            .filter_map(|a| Some((a.id.clone(), user.account_outcomes.get(&a.id)?.clone())))
            .collect();
        let mut refreshed: Vec<(SellerAccount, Summary)> = Vec::new();
        for (account, result) in finished {
            let outcome = match result {
                Ok(Refreshed {
                    summary,
                    missing_roles,
                }) => {
                    report.degraded.extend(DegradedAccount::of(&account, &summary));
                    refreshed.push((account.clone(), summary));
                    report.accounts_processed += 1;
                    ok_outcome(&account, missing_roles, now)
                }
                Err(error) => {
                    let error = account_error(&account, &error);
                    match error.status() {
                        AccountStatus::MissingRole => report.accounts_awaiting_reauthorization += 1,
                        _ => report.accounts_failed += 1,
                    }
                    let last_refreshed = user
                        .account_outcomes
                        .get(&account.id)
                        .and_then(|o| o.refreshed_at);
                    let outcome = failed_outcome(&account, &error, last_refreshed, now);
                    report.errors.push(error);
                    outcome
                }
            };
            outcomes.insert(account.id.clone(), outcome);
        }
        report.errors.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        self.cache(&refreshed, fence).await?;
        let record = RefreshRecord {
            outcomes,
            completed: report.accounts_processed > 0 || report.accounts_total == 0,
            at: now,
        };
        let freshness = record.freshness(&UserFreshness::of(user));
        self.store
            .record(Attempt {
                user_id: user.id.clone(),
                fence,
                job_id: job_id.map(str::to_owned),
                summaries: refreshed,
                record,
            })
            .await?;
        if let Some(read_model) = &self.read_model
            && let Err(error) = read_model.put_user(&user.id, &freshness, fence).await
        {
            tracing::warn!(user_id = %user.id, %error, "the user's status read model entry was not updated; it expires or the next refresh rewrites it");
        }
        Ok(report)
    }

    /// The last `window_days` days, ending [`WINDOW_END_MARGIN`] before the start of the current
    /// hour: the same all hour long, and always far enough in the past for Amazon.
    fn window(&self, now: DateTime<Utc>) -> Window {
        let end = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now) - WINDOW_END_MARGIN;
        Window {
            start: end - TimeDelta::days(i64::from(self.settings.window_days)),
            end,
        }
    }

    /// The account's orders (items embedded) and inventory, analysed. Orders are required;
    /// inventory is not: without it the summary keeps the order analysis and says why the
    /// inventory is missing. Operations in `withheld` (roles the seller did not grant) are not
    /// called.
    async fn fetch_and_analyse(
        &self,
        account: &SellerAccount,
        window: Window,
        withheld: &[String],
        fence: Fence,
    ) -> Result<Refreshed, SpApiError> {
        let creds = account.credentials();
        let orders = self.current_orders(account, &creds, window, fence).await?;
        let (inventory, unavailable, missing_roles) = self.inventory(account, &creds, withheld).await?;
        let params = AnalysisParams {
            stockout_days: self.settings.stockout_days,
            top_skus: self.settings.top_skus,
        };
        let mut summary = analysis::analyse(window, &orders, &inventory, params);
        summary.inventory_unavailable = unavailable;
        Ok(Refreshed {
            summary,
            missing_roles,
        })
    }

    /// The account's FBA inventory; or why it is missing, and the roles found missing (the
    /// inventory role is skipped while it is known to be withheld).
    async fn inventory(
        &self,
        account: &SellerAccount,
        creds: &crate::domain::spapi::Credentials,
        withheld: &[String],
    ) -> Result<(Vec<InventorySummary>, Option<String>, Vec<String>), SpApiError> {
        let op = crate::domain::spapi::usage::Operation::GetInventorySummaries.name();
        if withheld.iter().any(|w| w == op) {
            let reason = format!(
                "the seller has not granted the role {op} needs; not asked again until the account is authorized again"
            );
            return Ok((Vec::new(), Some(reason), vec![op.to_owned()]));
        }
        match self.spapi.inventory(creds, &account.marketplace_id).await {
            Ok(inventory) => Ok((inventory, None, Vec::new())),
            Err(error) if error.needs_reauthorization() => Err(error),
            Err(error) => {
                tracing::warn!(account_id = %account.id, seller_id = %account.seller_id, %error, request_id = error.request_id(), "inventory unavailable; summary without it");
                let missing = error.missing_role().map(str::to_owned).into_iter().collect();
                Ok((Vec::new(), Some(error.to_string()), missing))
            }
        }
    }

    /// The account's orders created in `window`: its order book brought up to date with what
    /// changed since the last run (or listed whole when there is no usable book). A listing the
    /// seller's rate limit cuts short is kept with where to resume, so a seller too large for
    /// one run's quota is filled over several runs instead of starting over each time.
    async fn current_orders(
        &self,
        account: &SellerAccount,
        creds: &crate::domain::spapi::Credentials,
        window: Window,
        fence: Fence,
    ) -> Result<Vec<Order>, SpApiError> {
        let mut book = self.load_order_book(account).await;
        let mut listed = false;
        // At most: finish an interrupted listing, then catch up from its end to the window's.
        for _ in 0..2 {
            if book.as_ref().is_some_and(|b| b.is_current(window)) {
                break;
            }
            let listing = OrderBook::listing(book.as_ref(), window, Utc::now());
            let (after, before) = listing.bounds();
            let query = OrderQuery {
                by: listing.by,
                after: &after,
                before: &before,
            };
            let resume = listing.resume.as_ref().map(|r| r.token.clone());
            match self
                .spapi
                .orders_from(creds, &account.marketplace_id, query, resume)
                .await
            {
                Ok(orders) => {
                    book = Some(OrderBook::apply(book, listing, orders, None, window));
                    listed = true;
                }
                Err(stopped) => {
                    if let (Some(token), Some(_)) = (stopped.resume, stopped.error.retry_after()) {
                        let resume = Resume {
                            token,
                            issued_at: Utc::now(),
                        };
                        let part = OrderBook::apply(book, listing, stopped.items, Some(resume), window);
                        self.save_order_book(account, &part, fence).await;
                    }
                    return Err(stopped.error);
                }
            }
        }
        let book = book.expect("a current book, or listed at least once");
        // A book that was already current (a same-hour re-run) is not written again.
        if listed {
            self.save_order_book(account, &book, fence).await;
        }
        Ok(book.orders)
    }

    /// The stored order book; none when incremental refresh is off, the book expired or Redis
    /// cannot give it (the run then lists the window whole).
    async fn load_order_book(&self, account: &SellerAccount) -> Option<OrderBook> {
        if self.settings.order_book_ttl.is_zero() {
            return None;
        }
        let key = self.order_book_key(&account.id);
        let stored = match self.caches.get(&key).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(account_id = %account.id, %error, "order book unreadable; listing the window whole");
                return None;
            }
        };
        serde_json::from_slice(&stored?).ok()
    }

    /// Stores the book for the next run (unless a newer attempt stored one); a failure only
    /// costs that run a full listing.
    async fn save_order_book(&self, account: &SellerAccount, book: &OrderBook, fence: Fence) {
        if self.settings.order_book_ttl.is_zero() {
            return;
        }
        let Ok(json) = serde_json::to_vec(book) else {
            return;
        };
        let key = self.order_book_key(&account.id);
        match self
            .caches
            .put(&key, &json, fence, self.settings.order_book_ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(account_id = %account.id, "order book not stored: a newer attempt stored one")
            }
            Err(error) => {
                tracing::warn!(account_id = %account.id, %error, "order book not stored; the next run lists the window whole");
            }
        }
    }

    pub fn order_book_key(&self, account_id: &str) -> String {
        self.caches.order_book_key(account_id)
    }

    /// Caches the summaries in Redis, all at once (one key per account: on a Redis Cluster the
    /// accounts' keys lie in different slots, so they cannot share a pipeline; sent together over
    /// the multiplexed connection they still cost about one round trip). A summary a newer
    /// attempt cached stays.
    async fn cache(&self, refreshed: &[(SellerAccount, Summary)], fence: Fence) -> Result<(), CoreError> {
        let mut writes = Vec::with_capacity(refreshed.len());
        for (account, summary) in refreshed {
            let json = serde_json::to_vec(summary).map_err(|e| CoreError::Encode {
                what: "summary",
                reason: e.to_string(),
            })?;
            let (key, ttl, caches) = (self.cache_key(&account.id), self.settings.cache_ttl, &self.caches);
            writes.push(async move { caches.put(&key, &json, fence, ttl).await });
        }
        futures::future::try_join_all(writes).await?;
        Ok(())
    }

    pub fn cache_key(&self, account_id: &str) -> String {
        self.caches.summary_key(account_id)
    }
}

fn ok_outcome(
    account: &SellerAccount,
    missing_roles: Vec<String>,
    at: mongodb::bson::DateTime,
) -> AccountOutcome {
    AccountOutcome {
        status: AccountStatus::Ok,
        at,
        error: None,
        token_fingerprint: (!missing_roles.is_empty()).then(|| account.refresh_token.fingerprint()),
        missing_roles,
        request_id: None,
        refreshed_at: Some(at),
    }
}

/// Why `account` failed, as the job's report shows it.
fn account_error(account: &SellerAccount, error: &SpApiError) -> AccountError {
    tracing::warn!(account_id = %account.id, seller_id = %account.seller_id, %error, request_id = error.request_id(), retryable = error.is_retryable(), "seller account refresh failed");
    AccountError {
        account_id: account.id.clone(),
        seller_id: account.seller_id.clone(),
        region: account.region.as_str().to_owned(),
        marketplace_id: account.marketplace_id.clone(),
        message: error.to_string(),
        retryable: error.is_retryable(),
        needs_reauthorization: error.needs_reauthorization(),
        retry_after_ms: error.retry_after().map(|d| d.as_millis() as u64),
        missing_role: error.missing_role().map(str::to_owned),
        request_id: error.request_id().map(str::to_owned),
    }
}

/// A failed account's outcome: a seller's refusal (withdrawn grant, no role for its orders) is
/// kept with the refused token's fingerprint; when it was last refreshed is carried over.
fn failed_outcome(
    account: &SellerAccount,
    error: &AccountError,
    refreshed_at: Option<mongodb::bson::DateTime>,
    at: mongodb::bson::DateTime,
) -> AccountOutcome {
    let status = error.status();
    let refused = matches!(
        status,
        AccountStatus::NeedsReauthorization | AccountStatus::MissingRole
    );
    AccountOutcome {
        status,
        at,
        error: Some(error.message.clone()),
        token_fingerprint: refused.then(|| account.refresh_token.fingerprint()),
        missing_roles: error.missing_role.clone().into_iter().collect(),
        request_id: error.request_id.clone(),
        refreshed_at,
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshSettings {
    pub account_concurrency: usize,
    pub item_concurrency: usize,
    pub window_days: u32,
    pub stockout_days: u32,
    pub top_skus: usize,
    #[serde(rename = "cache_ttl_secs", with = "crate::infra::settings::seconds")]
    pub cache_ttl: Duration,
    /// Lifetime of an account's order book (incremental refresh); 0 lists every window whole.
    #[serde(rename = "order_book_ttl_secs", with = "crate::infra::settings::seconds")]
    pub order_book_ttl: Duration,
}

/// The longest analysis window: Amazon's default `searchOrders` plan refills about 20 pages an
/// hour, so a longer window takes a large seller's first listing over a day, and its order book
/// grows with it.
pub const MAX_WINDOW_DAYS: u32 = 30;

impl RefreshSettings {
    pub fn validate(&self) -> Result<(), crate::infra::settings::Invalid> {
        if self.window_days > MAX_WINDOW_DAYS {
            let problem = format!("must be at most {MAX_WINDOW_DAYS} (days)");
            return Err(crate::infra::settings::Invalid::new(
                "refresh.window_days",
                problem,
            ));
        }
        for (key, value) in [
            ("refresh.account_concurrency", self.account_concurrency as u64),
            ("refresh.item_concurrency", self.item_concurrency as u64),
            ("refresh.window_days", u64::from(self.window_days)),
            ("refresh.cache_ttl_secs", self.cache_ttl.as_secs()),
        ] {
            if value == 0 {
                return Err(crate::infra::settings::Invalid::new(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}
