//! The Selling Partner API client: LWA token exchange and caching, Orders v2026-01-01
//! `searchOrders` (items embedded) and FBA inventory, paced by Amazon's usage plans, with retries
//! and error classification.
//!
//! - Access tokens are cached per account until a minute before expiry. Amazon answers an expired
//!   or revoked token with 403 `Unauthorized` (401 from some hosts): the token is refreshed once
//!   and the call retried; a refresh answered `invalid_grant` means the seller must re-authorize.
//! - Every call first takes a token of its (seller, operation) bucket ([`usage`]); a 429 (which
//!   carries no `Retry-After`) waits at least one refill interval; a wait beyond the configured
//!   budget ends the call as [`SpApiError::RateBound`] with the time to retry after.
//! - 5xx and timeouts are retried with capped exponential backoff, at most `max_retries` times.
//! - Error messages keep Amazon's `code`, `message` and `details`; refresh and access tokens never
//!   appear in errors or logs.

mod error;
pub mod marketplaces;
pub mod models;
mod probe;
mod settings;
pub mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sellersync_queue::RedisConnection;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::infra::secret::Secret;
pub use error::SpApiError;
use error::{Outcome, classify, lwa_error, without_url};
use models::{GetInventorySummariesResponse, InventorySummary, Order, SearchOrdersResponse, TokenResponse};
use sellersync_queue::rate_limit::TokenBuckets;
pub use settings::{SpApiEndpoints, SpApiSettings};
use usage::{CallPace, Operation, Pacer};

/// Most pages read from one paginated listing (a guard against a server that never stops).
const MAX_PAGES: usize = 200;
/// Tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Orders per `searchOrders` page: the model's maximum.
const ORDERS_PER_PAGE: &str = "100";

/// An SP-API region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Na,
    Eu,
    Fe,
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Na => "na",
            Self::Eu => "eu",
            Self::Fe => "fe",
        }
    }
}

/// Who a call is made for: one seller account's selling partner, region and LWA refresh token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Cache key of the account's access token.
    pub account_id: String,
    /// The selling partner: rate limits are per selling partner and operation.
    pub seller_id: String,
    pub region: Region,
    pub refresh_token: Secret,
}

/// What a client has done since it was created (for benchmarks and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallStats {
    /// SP-API requests sent (every attempt counts).
    pub requests: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// LWA token exchanges.
    pub token_exchanges: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    throttled: AtomicU64,
    token_exchanges: AtomicU64,
}

/// The filter of an orders search: orders created, or last updated, in `[after, before]`
/// (Amazon takes one kind of bound per search, never both; an update is any status change,
/// creation included). `before` must be at least two minutes in the past.
#[derive(Debug, Clone, Copy)]
pub struct OrderQuery<'a> {
    pub by: OrdersBy,
    pub after: &'a str,
    pub before: &'a str,
}

/// A listing that stopped before its end: the error, what its pages returned so far, and the
/// next-page token to resume from (`None` when it stopped on its first page).
#[derive(Debug)]
pub struct Interrupted<T> {
    pub error: SpApiError,
    pub items: Vec<T>,
    pub resume: Option<String>,
    /// The failing page was reached by a next-page token.
    by_token: bool,
}

/// Which timestamp an orders search filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrdersBy {
    Created,
    LastUpdated,
}

/// A paginated listing: its path and operation, the query every page sends (Amazon wants a next
/// page to repeat the first page's parameters with the same values: `Pagination` in
/// `orders_2026-01-01.json`), and the name of the next-page parameter.
struct Page<'a> {
    op: Operation,
    path: &'a str,
    query: Vec<(&'static str, String)>,
    token_param: &'static str,
}

struct CachedToken {
    token: Secret,
    renew_at: Instant,
}

/// One client per process: it holds the HTTP connection pool, the token cache and the pacer.
pub struct SpApiClient {
    http: reqwest::Client,
    settings: SpApiSettings,
    /// One slot per account, each locked only while that account's token is exchanged, so
    /// accounts never wait for each other's token exchanges.
    tokens: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<CachedToken>>>>>,
    pacer: Pacer,
    counters: Counters,
}

impl SpApiClient {
    pub fn new(settings: SpApiSettings) -> Result<Self, SpApiError> {
        let http = crate::infra::tls::http_client()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!(
                "sellersync/",
                env!("CARGO_PKG_VERSION"),
                " (Language=Rust)"
            ))
            .build()
            .map_err(|e| SpApiError::Connection(e.to_string()))?;
        Ok(Self {
            http,
            settings,
            tokens: std::sync::Mutex::default(),
            pacer: Pacer::default(),
            counters: Counters::default(),
        })
    }

    /// Paces every call through token buckets in Redis under `<key_prefix>ratelimit:spapi:`,
    /// shared with every other process using the same Redis and prefix.
    pub fn with_shared_rate_limits(mut self, redis: RedisConnection, key_prefix: &str) -> Self {
        let buckets = TokenBuckets::new(redis, format!("{key_prefix}ratelimit:spapi:"));
        self.pacer = Pacer::shared(buckets);
        self
    }

    /// Requests, 429s and token exchanges so far.
    pub fn stats(&self) -> CallStats {
        let c = &self.counters;
        CallStats {
            requests: c.requests.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            token_exchanges: c.token_exchanges.load(Ordering::Relaxed),
        }
    }

    /// Every order of `query` in `marketplace`, items included (`searchOrders`).
    pub async fn orders(
        &self,
        creds: &Credentials,
        marketplace: &str,
        query: OrderQuery<'_>,
    ) -> Result<Vec<Order>, SpApiError> {
        self.orders_from(creds, marketplace, query, None)
            .await
            .map_err(|interrupted| interrupted.error)
    }

    /// Like [`Self::orders`], starting at `resume` (the next-page token of an earlier pass of the
    /// same query that was interrupted) when given. An interrupted pass returns the orders it
    /// read and where to resume, so a listing longer than the seller's rate limit allows at once
    /// can be finished over several runs.
    pub async fn orders_from(
        &self,
        creds: &Credentials,
        marketplace: &str,
        query: OrderQuery<'_>,
        resume: Option<String>,
    ) -> Result<Vec<Order>, Interrupted<Order>> {
        let (after, before) = match query.by {
            OrdersBy::Created => ("createdAfter", "createdBefore"),
            OrdersBy::LastUpdated => ("lastUpdatedAfter", "lastUpdatedBefore"),
        };
        let page = Page {
            op: Operation::SearchOrders,
            path: "/orders/2026-01-01/orders",
            query: vec![
                ("marketplaceIds", marketplace.to_owned()),
                (after, query.after.to_owned()),
                (before, query.before.to_owned()),
                ("includedData", models::ORDER_DATA_SETS.join(",")),
                ("maxResultsPerPage", ORDERS_PER_PAGE.to_owned()),
            ],
            token_param: "paginationToken",
        };
        self.paginate(creds, &page, resume, |p: SearchOrdersResponse| {
            (p.orders, p.pagination.and_then(|p| p.next_token))
        })
        .await
    }

    /// FBA inventory summaries of every SKU in `marketplace`.
    pub async fn inventory(
        &self,
        creds: &Credentials,
        marketplace: &str,
    ) -> Result<Vec<InventorySummary>, SpApiError> {
        let page = Page {
            op: Operation::GetInventorySummaries,
            path: "/fba/inventory/v1/summaries",
            query: vec![
                ("details", "true".to_owned()),
                ("granularityType", "Marketplace".to_owned()),
                ("granularityId", marketplace.to_owned()),
                ("marketplaceIds", marketplace.to_owned()),
            ],
            token_param: "nextToken",
        };
        self.paginate(creds, &page, None, |p: GetInventorySummariesResponse| {
            (
                p.payload.inventory_summaries,
                p.pagination.and_then(|p| p.next_token),
            )
        })
        .await
        .map_err(|interrupted| interrupted.error)
    }

    /// Follows a listing's next-page token (from `resume`, else the first page) until it ends, at
    /// most [`MAX_PAGES`] pages. A refused next-page token (inventory tokens expire after 30 s)
    /// starts the listing over, once.
    async fn paginate<R, T>(
        &self,
        creds: &Credentials,
        page: &Page<'_>,
        resume: Option<String>,
        split: impl Fn(R) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, Interrupted<T>>
    where
        R: DeserializeOwned,
    {
        let mut start = resume;
        let mut restarted = false;
        loop {
            match self.read_pages(creds, page, start.take(), &split).await {
                Err(interrupted)
                    if interrupted.by_token
                        && !restarted
                        && matches!(interrupted.error, SpApiError::BadRequest { .. }) =>
                {
                    tracing::debug!(path = page.path, error = %interrupted.error, "next-page token refused; listing again from the start");
                    restarted = true;
                }
                result => return result,
            }
        }
    }

    /// One pass over a listing from `start` (a next-page token) or its first page.
    async fn read_pages<R, T>(
        &self,
        creds: &Credentials,
        page: &Page<'_>,
        start: Option<String>,
        split: &impl Fn(R) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, Interrupted<T>>
    where
        R: DeserializeOwned,
    {
        let mut items = Vec::new();
        let mut next = start;
        for _ in 0..MAX_PAGES {
            let mut query = page.query.clone();
            let by_token = next.is_some();
            if let Some(token) = &next {
                query.push((page.token_param, token.clone()));
            }
            let response = match self.get(creds, page.op, page.path, &query).await {
                Ok(response) => response,
                Err(error) => {
                    return Err(Interrupted {
                        error,
                        items,
                        resume: next,
                        by_token,
                    });
                }
            };
            let (batch, token) = split(response);
            items.extend(batch);
            match token {
                Some(token) => next = Some(token),
                None => return Ok(items),
            }
        }
        Err(Interrupted {
            error: SpApiError::Decode(format!("{} did not end after {MAX_PAGES} pages", page.path)),
            items,
            resume: None,
            by_token: false,
        })
    }

    /// One GET of `op` with the account's token: paced by the (seller, op) bucket, the token
    /// refreshed once when refused, server errors and timeouts retried at most `max_retries` times.
    async fn get<T: DeserializeOwned>(
        &self,
        creds: &Credentials,
        op: Operation,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, SpApiError> {
        let url = format!(
            "{}{path}",
            self.settings.endpoint(creds.region).trim_end_matches('/')
        );
        let mut pace = CallPace {
            seller: &creds.seller_id,
            op,
            waited: Duration::ZERO,
            refusals: 0,
        };
        let mut refreshed = false;
        let mut attempt = 0;
        let mut backoff = self.backoff();
        loop {
            self.pacer
                .before_attempt(&mut pace, self.settings.rate_limit_max_wait)
                .await?;
            let token = self.access_token(creds, false).await?;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let sent = self
                .http
                .get(&url)
                .query(query)
                .header("x-amz-access-token", token.expose())
                .header(
                    "x-amz-date",
                    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
                )
                .send()
                .instrument(call_span(op.name()))
                .await;
            record_call(op.name(), &sent, started);
            match classify(sent, op.name(), attempt + 1).await {
                Outcome::Done(body, rate) => {
                    self.pacer.learn(&creds.seller_id, op, rate);
                    return decode(&body);
                }
                Outcome::Throttled => {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    pace.refusals += 1;
                }
                Outcome::TokenRefused(reason) if !refreshed => {
                    tracing::debug!(path, %reason, "access token refused; refreshing it once");
                    refreshed = true;
                    self.access_token(creds, true).await?;
                }
                Outcome::TokenRefused(reason) => {
                    return Err(SpApiError::Denied {
                        status: 403,
                        message: format!("{reason}; still refused after a token refresh"),
                        request_id: None,
                    });
                }
                Outcome::Fail(error) => return Err(error),
                Outcome::Retry(error) if attempt >= self.settings.max_retries => return Err(error),
                Outcome::Retry(error) => {
                    attempt += 1;
                    let wait = backoff.next().unwrap_or(self.settings.max_backoff);
                    tracing::debug!(%error, path, wait_ms = wait.as_millis() as u64, "SP-API call will be retried");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The waits between retries of one call: retry n waits a random time in
    /// `[d/2, d)` with `d = initial_backoff * 2^n` capped at `max_backoff` ("equal jitter":
    /// backon's jitter adds up to the current delay to a base of half of it).
    fn backoff(&self) -> backon::ExponentialBackoff {
        call_backoff(self.settings.initial_backoff, self.settings.max_backoff)
    }

    /// The account's access token, from the cache unless `force` or it is about to expire.
    async fn access_token(&self, creds: &Credentials, force: bool) -> Result<Secret, SpApiError> {
        let slot = {
            let mut tokens = self.tokens.lock().expect("token cache lock");
            Arc::clone(tokens.entry(creds.account_id.clone()).or_default())
        };
        let mut slot = slot.lock().await;
        let cached = slot.as_ref().filter(|t| !force && t.renew_at > Instant::now());
        if let Some(cached) = cached {
            return Ok(cached.token.clone());
        }
        let fresh = self.exchange(creds).await?;
        let lifetime = Duration::from_secs(fresh.expires_in).saturating_sub(TOKEN_MARGIN);
        let token = Secret::new(fresh.access_token);
        *slot = Some(CachedToken {
            token: token.clone(),
            renew_at: Instant::now() + lifetime,
        });
        Ok(token)
    }

    /// `grant_type=refresh_token` against the LWA token endpoint, retried like API calls.
    async fn exchange(&self, creds: &Credentials) -> Result<TokenResponse, SpApiError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", creds.refresh_token.expose()),
            ("client_id", self.settings.lwa_client_id.as_str()),
            ("client_secret", self.settings.lwa_client_secret.expose()),
        ];
        let mut attempt = 0;
        let mut backoff = self.backoff();
        loop {
            attempt += 1;
            self.counters.token_exchanges.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let sent = self
                .http
                .post(&self.settings.token_url)
                .form(&form)
                .send()
                .instrument(call_span(LWA_TOKEN_OPERATION))
                .await;
            record_call(LWA_TOKEN_OPERATION, &sent, started);
            match sent {
                Ok(response) if response.status().is_success() => {
                    let body = response
                        .bytes()
                        .await
                        .map_err(|e| SpApiError::Connection(without_url(&e)))?;
                    return decode(&body);
                }
                Ok(response)
                    if response.status().is_client_error()
                        && response.status() != StatusCode::TOO_MANY_REQUESTS =>
                {
                    let status = response.status().as_u16();
                    return Err(lwa_error(status, response.json().await.ok()));
                }
                other => match classify(other, LWA_TOKEN_OPERATION, attempt).await {
                    Outcome::Retry(error) if attempt <= self.settings.max_retries => {
                        tracing::debug!(%error, "LWA token exchange will be retried");
                        tokio::time::sleep(backoff.next().unwrap_or(self.settings.max_backoff)).await;
                    }
                    Outcome::Throttled if attempt <= self.settings.max_retries => {
                        tokio::time::sleep(backoff.next().unwrap_or(self.settings.max_backoff)).await;
                    }
                    Outcome::Retry(error) | Outcome::Fail(error) => return Err(error),
                    _ => {
                        return Err(SpApiError::Decode("unexpected token endpoint response".into()));
                    }
                },
            }
        }
    }
}

/// The `operation` label of LWA token exchanges in the SP-API metrics.
const LWA_TOKEN_OPERATION: &str = "lwaToken";

/// The span of one HTTP call to Amazon (a child of the job's span in a trace).
fn call_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!("spapi_call", operation)
}

/// Counts one call by operation and status (`timeout` or `error` without a response) and
/// records how long it took to its response headers.
fn record_call(operation: &'static str, sent: &Result<reqwest::Response, reqwest::Error>, started: Instant) {
    use crate::infra::metrics::{SPAPI_REQUEST_DURATION, SPAPI_REQUESTS};
    let status = match sent {
        Ok(response) => response.status().as_u16().to_string(),
        Err(error) if error.is_timeout() => "timeout".to_owned(),
        Err(_) => "error".to_owned(),
    };
    metrics::counter!(SPAPI_REQUESTS, "operation" => operation, "status" => status).increment(1);
    metrics::histogram!(SPAPI_REQUEST_DURATION, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, SpApiError> {
    serde_json::from_slice(body).map_err(|e| SpApiError::Decode(e.to_string()))
}

/// See [`SpApiClient::backoff`].
fn call_backoff(initial: Duration, max: Duration) -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(initial)
        .with_max_delay(max / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn retries_wait_between_half_and_all_of_a_doubling_capped_delay() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        for _ in 0..50 {
            let waits: Vec<Duration> = call_backoff(initial, max).take(6).collect();
            // Retry n's delay d = 100 ms * 2^n capped at 1 s; the wait is in [d/2, d).
            let bounds = [
                (100, 200),
                (200, 400),
                (400, 800),
                (500, 1000),
                (500, 1000),
                (500, 1000),
            ];
            for (wait, (low, high)) in waits.iter().zip(bounds) {
                let ms = wait.as_millis() as u64;
                assert!((low..high).contains(&ms), "{waits:?}");
            }
        }
    }
}
