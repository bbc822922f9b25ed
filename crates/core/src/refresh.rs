//! `process_user_data`: refresh one user's seller data — for every enabled seller account, fetch
//! its orders and FBA inventory from SP-API, analyse them, cache the summary in Redis (with a TTL)
//! and store it durably in MongoDB, and record the account's outcome; then mark the user fresh.
//!
//! Accounts run with bounded concurrency; one failing account does not stop the others. Running
//! it twice is harmless: every write replaces the previous state, and the data window is aligned
//! to whole hours, so two runs within an hour produce the same summaries.
//!
//! Per account: one `searchOrders` listing (items embedded) and one inventory listing. An account
//! whose inventory cannot be read keeps its order analysis, flagged `inventoryUnavailable`. An
//! account whose calls are rate-bound fails with [`AccountErrorKind::RateBound`] and a
//! `retryAfterMs`; one whose seller withdrew authorization with
//! [`AccountErrorKind::NeedsReauthorization`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use futures::StreamExt;
use mongodb::Database;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::accounts::{self, SellerAccount};
use crate::analysis::{self, AnalysisParams, Summary, Window};
use crate::config::RefreshSettings;
use crate::error::CoreError;
use crate::spapi::{CreatedBetween, SpApiClient, SpApiError};

/// How far before the top of the hour the window ends. Amazon requires `CreatedBefore` at least
/// two minutes before the request (`ordersV0.json`, `orders_2026-01-01.json`); ending the window
/// a fixed margin before the hour keeps it the same for the whole hour (idempotent runs) and
/// leaves room for clock skew.
const WINDOW_END_MARGIN: TimeDelta = TimeDelta::minutes(5);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReport {
    pub accounts_total: usize,
    pub accounts_processed: usize,
    pub accounts_failed: usize,
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
    /// What kind of failure this is, for the caller to act on.
    #[serde(default)]
    pub kind: AccountErrorKind,
    /// For [`AccountErrorKind::RateBound`]: how long until the account's calls can go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The kinds of account failure a caller treats differently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccountErrorKind {
    /// Anything else; `retryable` says whether trying again can help.
    #[default]
    Failed,
    /// The seller withdrew the app's authorization (LWA `invalid_grant`): mark the account as
    /// needing re-authorization; retrying cannot help.
    NeedsReauthorization,
    /// Amazon's rate limits leave no room now: defer the job by `retry_after_ms` without
    /// counting an attempt.
    RateBound,
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

impl AccountError {
    /// How `error` failed `account`.
    pub fn new(account: &SellerAccount, error: &SpApiError) -> Self {
        let kind = if error.needs_reauthorization() {
            AccountErrorKind::NeedsReauthorization
        } else if error.retry_after().is_some() {
            AccountErrorKind::RateBound
        } else {
            AccountErrorKind::Failed
        };
        Self {
            account_id: account.id.clone(),
            seller_id: account.seller_id.clone(),
            region: account.region.as_str().to_owned(),
            marketplace_id: account.marketplace_id.clone(),
            message: error.to_string(),
            retryable: error.is_retryable(),
            kind,
            retry_after_ms: error.retry_after().map(|d| d.as_millis() as u64),
        }
    }
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
            .filter(|e| e.kind == AccountErrorKind::RateBound)
            .map(|e| Duration::from_millis(e.retry_after_ms.unwrap_or(0)))
            .max()
    }

    /// Accounts whose seller must re-authorize the app.
    pub fn needing_reauthorization(&self) -> impl Iterator<Item = &AccountError> {
        self.errors
            .iter()
            .filter(|e| e.kind == AccountErrorKind::NeedsReauthorization)
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
    pub db: Database,
    pub redis: ConnectionManager,
    pub spapi: Arc<SpApiClient>,
    pub settings: RefreshSettings,
    /// The deployment's Redis key prefix; summaries are cached under `<prefix>cache:summary:<account>`.
    pub key_prefix: String,
}

impl Refresher {
    /// Refreshes every enabled seller account of `user_id`, reporting progress 0–100 by accounts done.
    pub async fn process_user_data(
        &self,
        user_id: &str,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<RefreshReport, RefreshError> {
        let user = accounts::find_user(&self.db, user_id)
            .await?
            .ok_or_else(|| RefreshError::UnknownUser(user_id.to_owned()))?;
        if !user.active {
            return Err(RefreshError::InactiveUser(user_id.to_owned()));
        }
        let accounts = accounts::enabled_accounts(&self.db, user_id).await?;
        let window = self.window(Utc::now());
        let total = accounts.len();
        let mut report = RefreshReport {
            accounts_total: total,
            ..RefreshReport::default()
        };
        // Owned futures (not closures over borrowed accounts) keep the whole run `Send`.
        let runs = accounts.into_iter().map(|account| {
            let this = self.clone();
            async move { this.refresh_account(&account, window).await }
        });
        let mut outcomes = futures::stream::iter(runs).buffer_unordered(self.settings.account_concurrency);
        let mut done = 0;
        while let Some(outcome) = outcomes.next().await {
            done += 1;
            match outcome? {
                None => report.accounts_processed += 1,
                Some(error) => {
                    report.accounts_failed += 1;
                    report.errors.push(error);
                }
            }
            progress((done * 100 / total.max(1)) as u8);
        }
        report.errors.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        accounts::record_user_refreshed(&self.db, user_id).await?;
        if total == 0 {
            progress(100);
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

    /// One account: `Ok(None)` when refreshed, `Ok(Some(error))` when SP-API failed for it, `Err`
    /// when our own stores failed (which fails the whole run).
    async fn refresh_account(
        &self,
        account: &SellerAccount,
        window: Window,
    ) -> Result<Option<AccountError>, CoreError> {
        match self.fetch_and_analyse(account, window).await {
            Ok(summary) => {
                self.store(account, &summary).await?;
                accounts::record_account_update(&self.db, &account.id, None).await?;
                Ok(None)
            }
            Err(error) => {
                tracing::warn!(account_id = %account.id, seller_id = %account.seller_id, %error, retryable = error.is_retryable(), "seller account refresh failed");
                accounts::record_account_update(&self.db, &account.id, Some(&error.to_string())).await?;
                Ok(Some(AccountError::new(account, &error)))
            }
        }
    }

    /// The account's orders (items embedded) and inventory, analysed. Orders are required;
    /// inventory is not: without it the summary keeps the order analysis and says why the
    /// inventory is missing.
    async fn fetch_and_analyse(
        &self,
        account: &SellerAccount,
        window: Window,
    ) -> Result<Summary, SpApiError> {
        let creds = account.credentials();
        let rfc3339 = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let (after, before) = (rfc3339(window.start), rfc3339(window.end));
        let created = CreatedBetween {
            after: &after,
            before: &before,
        };
        let orders = self
            .spapi
            .orders(&creds, &account.marketplace_id, created)
            .await?;
        let (inventory, unavailable) = match self.spapi.inventory(&creds, &account.marketplace_id).await {
            Ok(inventory) => (inventory, None),
            Err(error) if error.needs_reauthorization() => return Err(error),
            Err(error) => {
                tracing::warn!(account_id = %account.id, seller_id = %account.seller_id, %error, "inventory unavailable; summary without it");
                (Vec::new(), Some(error.to_string()))
            }
        };
        let params = AnalysisParams {
            stockout_days: self.settings.stockout_days,
            top_skus: self.settings.top_skus,
        };
        let mut summary = analysis::analyse(window, &orders, &inventory, params);
        summary.inventory_unavailable = unavailable;
        Ok(summary)
    }

    async fn store(&self, account: &SellerAccount, summary: &Summary) -> Result<(), CoreError> {
        let json = serde_json::to_string(summary).map_err(|e| CoreError::Encode {
            what: "summary",
            reason: e.to_string(),
        })?;
        let _: () = self
            .redis
            .clone()
            .set_ex(self.cache_key(&account.id), json, self.settings.cache_ttl_secs)
            .await?;
        accounts::save_summary(&self.db, account, summary).await
    }

    pub fn cache_key(&self, account_id: &str) -> String {
        format!("{}cache:summary:{account_id}", self.key_prefix)
    }
}
