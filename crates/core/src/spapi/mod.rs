//! The Selling Partner API client: LWA token exchange and caching, Orders v0 and FBA inventory,
//! with throttling, retries and error classification.
//!
//! - Access tokens are cached per account until a minute before expiry, and refreshed once when
//!   a call answers 401.
//! - 429 waits out `Retry-After` (or backs off exponentially with jitter), 5xx and timeouts are
//!   retried; every wait is capped and the number of attempts is bounded.
//! - Errors say whether a retry can help: `invalid_grant`, 400 and 403 cannot.
//! - Refresh tokens and access tokens never appear in errors or logs.

pub mod models;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::config::SpApiSettings;
use crate::secret::Secret;
use models::{
    GetInventorySummariesResponse, GetOrderItemsResponse, GetOrdersResponse, InventorySummary, Order,
    OrderItem, TokenError, TokenResponse,
};

/// Most pages read from one paginated listing (a guard against a server that never stops).
const MAX_PAGES: usize = 200;
/// Tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

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

/// Who a call is made for: one seller account's region and LWA refresh token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Cache key of the account's access token.
    pub account_id: String,
    pub region: Region,
    pub refresh_token: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum SpApiError {
    #[error("the seller's authorization is no longer valid (invalid_grant); the seller must re-authorize")]
    InvalidGrant,
    #[error("the LWA client credentials were rejected ({0})")]
    InvalidClient(String),
    #[error("access denied ({status}): {message}")]
    Denied { status: u16, message: String },
    #[error("request rejected ({status}): {message}")]
    BadRequest { status: u16, message: String },
    #[error("throttled by SP-API after {attempts} attempts")]
    Throttled { attempts: u32 },
    #[error("SP-API server error {status} after {attempts} attempts")]
    Server { status: u16, attempts: u32 },
    #[error("SP-API did not answer in time after {attempts} attempts")]
    Timeout { attempts: u32 },
    #[error("cannot reach SP-API: {0}")]
    Connection(String),
    #[error("unexpected SP-API response: {0}")]
    Decode(String),
}

impl SpApiError {
    /// True when a later attempt may succeed (throttling, server errors, timeouts, network).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Server { .. } | Self::Timeout { .. } | Self::Connection(_)
        )
    }
}

/// A paginated listing: its path, the query every page sends, what only the first page adds,
/// and the name of the next-page parameter.
struct Page<'a> {
    path: &'a str,
    base: Vec<(&'static str, String)>,
    first: &'a [(&'static str, String)],
    token_param: &'static str,
}

struct CachedToken {
    token: Secret,
    renew_at: Instant,
}

/// One client per process: it holds the HTTP connection pool and the token cache.
pub struct SpApiClient {
    http: reqwest::Client,
    settings: SpApiSettings,
    /// One slot per account, each locked only while that account's token is exchanged, so
    /// accounts never wait for each other's token exchanges.
    tokens: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<CachedToken>>>>>,
}

/// What one HTTP exchange came to.
enum Outcome {
    Done(Vec<u8>),
    /// Worth another attempt, after the server's wait if it gave one.
    Retry {
        after: Option<Duration>,
        error: SpApiError,
    },
    /// 401: the access token was refused.
    Unauthorized,
    /// Final: another attempt cannot help.
    Fail(SpApiError),
}

impl SpApiClient {
    pub fn new(settings: SpApiSettings) -> Result<Self, SpApiError> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout())
            .connect_timeout(settings.request_timeout().min(Duration::from_secs(10)))
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
        })
    }

    /// Every order created in `[created_after, created_before)` in `marketplace`. As Amazon
    /// requires, later pages send only `NextToken` (plus the marketplace).
    pub async fn orders(
        &self,
        creds: &Credentials,
        marketplace: &str,
        created_after: &str,
        created_before: &str,
    ) -> Result<Vec<Order>, SpApiError> {
        let base = vec![("MarketplaceIds", marketplace.to_owned())];
        let first = [
            ("CreatedAfter", created_after.to_owned()),
            ("CreatedBefore", created_before.to_owned()),
        ];
        let page = Page {
            path: "/orders/v0/orders",
            base,
            first: &first,
            token_param: "NextToken",
        };
        self.paginate(creds, page, |p: GetOrdersResponse| {
            (p.payload.orders, p.payload.next_token)
        })
        .await
    }

    pub async fn order_items(
        &self,
        creds: &Credentials,
        order_id: &str,
    ) -> Result<Vec<OrderItem>, SpApiError> {
        let path = format!("/orders/v0/orders/{order_id}/orderItems");
        let page = Page {
            path: &path,
            base: Vec::new(),
            first: &[],
            token_param: "NextToken",
        };
        self.paginate(creds, page, |p: GetOrderItemsResponse| {
            (p.payload.order_items, p.payload.next_token)
        })
        .await
    }

    /// FBA inventory summaries of every SKU in `marketplace`.
    pub async fn inventory(
        &self,
        creds: &Credentials,
        marketplace: &str,
    ) -> Result<Vec<InventorySummary>, SpApiError> {
        let base = vec![
            ("details", "true".to_owned()),
            ("granularityType", "Marketplace".to_owned()),
            ("granularityId", marketplace.to_owned()),
            ("marketplaceIds", marketplace.to_owned()),
        ];
        let page = Page {
            path: "/fba/inventory/v1/summaries",
            base,
            first: &[],
            token_param: "nextToken",
        };
        self.paginate(creds, page, |p: GetInventorySummariesResponse| {
            (
                p.payload.inventory_summaries,
                p.pagination.and_then(|p| p.next_token),
            )
        })
        .await
    }

    /// Follows a listing's next-page token until it ends, at most [`MAX_PAGES`] pages.
    async fn paginate<R, T>(
        &self,
        creds: &Credentials,
        page: Page<'_>,
        split: impl Fn(R) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, SpApiError>
    where
        R: DeserializeOwned,
    {
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = page.base.clone();
            match next.take() {
                Some(token) => query.push((page.token_param, token)),
                None => query.extend(page.first.iter().cloned()),
            }
            let (batch, token) = split(self.get(creds, page.path, &query).await?);
            items.extend(batch);
            match token {
                Some(token) => next = Some(token),
                None => return Ok(items),
            }
        }
        Err(SpApiError::Decode(format!(
            "{} did not end after {MAX_PAGES} pages",
            page.path
        )))
    }

    /// One GET with the account's token: refreshes the token once on 401, waits out throttling
    /// and retries server errors and timeouts, at most `max_retries` times.
    async fn get<T: DeserializeOwned>(
        &self,
        creds: &Credentials,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, SpApiError> {
        let url = format!(
            "{}{path}",
            self.settings.endpoint(creds.region).trim_end_matches('/')
        );
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.access_token(creds, false).await?;
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
                .await;
            match classify(sent, attempt).await {
                Outcome::Done(body) => return decode(&body),
                Outcome::Unauthorized if !refreshed => {
                    refreshed = true;
                    attempt -= 1;
                    self.access_token(creds, true).await?;
                }
                Outcome::Unauthorized => {
                    return Err(SpApiError::Denied {
                        status: 401,
                        message: "unauthorized after a token refresh".into(),
                    });
                }
                Outcome::Fail(error) => return Err(error),
                Outcome::Retry { error, .. } if attempt > self.settings.max_retries => return Err(error),
                Outcome::Retry { after, error } => {
                    let wait = self.backoff(attempt, after);
                    tracing::debug!(%error, path, wait_ms = wait.as_millis() as u64, "SP-API call will be retried");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Exponential backoff with full jitter, or the server's Retry-After; both capped.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self.settings.max_backoff();
        if let Some(after) = retry_after {
            return after.min(cap);
        }
        let exp = self
            .settings
            .initial_backoff()
            .saturating_mul(1 << attempt.min(16))
            .min(cap);
        let millis = exp.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
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
        loop {
            attempt += 1;
            let sent = self.http.post(&self.settings.token_url).form(&form).send().await;
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
                    let error: Option<TokenError> = response.json().await.ok();
                    let code = error.as_ref().map_or("unknown", |e| e.error.as_str());
                    return Err(match code {
                        "invalid_grant" => SpApiError::InvalidGrant,
                        "invalid_client" | "unauthorized_client" => {
                            SpApiError::InvalidClient(code.to_owned())
                        }
                        _ => SpApiError::BadRequest {
                            status: 400,
                            message: error
                                .map(|e| format!("{}: {}", e.error, e.error_description))
                                .unwrap_or_default(),
                        },
                    });
                }
                other => match classify(other, attempt).await {
                    Outcome::Retry { after, error } if attempt <= self.settings.max_retries => {
                        tokio::time::sleep(self.backoff(attempt, after)).await;
                        tracing::debug!(%error, "LWA token exchange will be retried");
                    }
                    Outcome::Retry { error, .. } | Outcome::Fail(error) => return Err(error),
                    Outcome::Done(_) | Outcome::Unauthorized => {
                        return Err(SpApiError::Decode("unexpected token endpoint response".into()));
                    }
                },
            }
        }
    }
}

/// Sorts a response into done, retry (with the server's wait) or unauthorized.
async fn classify(sent: Result<reqwest::Response, reqwest::Error>, attempts: u32) -> Outcome {
    let response = match sent {
        Ok(response) => response,
        Err(error) if error.is_timeout() => {
            return Outcome::Retry {
                after: None,
                error: SpApiError::Timeout { attempts },
            };
        }
        Err(error) => {
            return Outcome::Retry {
                after: None,
                error: SpApiError::Connection(without_url(&error)),
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return match response.bytes().await {
            Ok(body) => Outcome::Done(body.to_vec()),
            Err(error) => Outcome::Retry {
                after: None,
                error: SpApiError::Connection(without_url(&error)),
            },
        };
    }
    if status == StatusCode::UNAUTHORIZED {
        return Outcome::Unauthorized;
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(Duration::from_secs_f64);
        return Outcome::Retry {
            after,
            error: SpApiError::Throttled { attempts },
        };
    }
    if status.is_server_error() {
        return Outcome::Retry {
            after: None,
            error: SpApiError::Server {
                status: status.as_u16(),
                attempts,
            },
        };
    }
    let message = response
        .json::<models::ErrorList>()
        .await
        .ok()
        .and_then(|list| list.errors.into_iter().next())
        .map(|e| format!("{}: {}", e.code, e.message))
        .unwrap_or_default();
    let status = status.as_u16();
    let error = if status == 403 {
        SpApiError::Denied { status, message }
    } else {
        SpApiError::BadRequest { status, message }
    };
    Outcome::Fail(error)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, SpApiError> {
    serde_json::from_slice(body).map_err(|e| SpApiError::Decode(e.to_string()))
}

/// reqwest errors name the URL; ours carry no secrets in URLs, but keep messages short.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), url.path());
    }
    text
}
