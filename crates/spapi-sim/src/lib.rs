//! A local stand-in for Amazon's Selling Partner API: the LWA token endpoint, Orders v0 (orders
//! and order items) and FBA inventory summaries, with Amazon's request and response shapes,
//! deterministic data per seller, pagination, and knobs for latency, errors, throttling and
//! per-seller rate limits. Tests can also script faults for one seller (`POST /_sim/faults`).
//!
//! Tokens: a refresh token `Atzr|<sellerId>|<anything>` is accepted (a seller id starting with
//! `REVOKED` gets `invalid_grant`); the access token it yields is `Atza|<sellerId>|<expiry ms>`
//! and is refused with 401 once expired.

pub mod data;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

/// The stand-in's behaviour.
#[derive(Debug, Clone, clap::Args)]
pub struct SimConfig {
    /// Added to every request.
    #[arg(long, env = "SPAPI_SIM_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of API requests answered 500 (0.0–1.0).
    #[arg(long, env = "SPAPI_SIM_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of API requests answered 429 with Retry-After (0.0–1.0).
    #[arg(long, env = "SPAPI_SIM_THROTTLE_RATE", default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Requests per second each seller may make (token bucket; 0 = unlimited).
    #[arg(long, env = "SPAPI_SIM_RATE_LIMIT", default_value_t = 0.0)]
    pub rate_limit_per_sec: f64,
    /// Burst size of the per-seller token bucket.
    #[arg(long, env = "SPAPI_SIM_BURST", default_value_t = 20.0)]
    pub burst: f64,
    /// Lifetime of access tokens.
    #[arg(long, env = "SPAPI_SIM_TOKEN_TTL_SECS", default_value_t = 3600)]
    pub token_ttl_secs: u64,
    /// Orders per page (Amazon: up to 100).
    #[arg(long, env = "SPAPI_SIM_PAGE_SIZE", default_value_t = 20)]
    pub page_size: usize,
    /// Average orders a seller gets per day and marketplace.
    #[arg(long, env = "SPAPI_SIM_ORDERS_PER_DAY", default_value_t = 2)]
    pub orders_per_day: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            throttle_rate: 0.0,
            rate_limit_per_sec: 0.0,
            burst: 20.0,
            token_ttl_secs: 3600,
            page_size: 20,
            orders_per_day: 2,
        }
    }
}

/// A scripted fault: the next `count` API requests of `seller` get `status`.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    pub seller: String,
    pub status: u16,
    pub count: u32,
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct SimState {
    config: SimConfig,
    requests: AtomicU64,
    token_requests: AtomicU64,
    buckets: Mutex<HashMap<String, Bucket>>,
    faults: Mutex<HashMap<String, Fault>>,
}

/// The stand-in's routes.
pub fn router(config: SimConfig) -> Router {
    let state = Arc::new(SimState {
        config,
        requests: AtomicU64::new(0),
        token_requests: AtomicU64::new(0),
        buckets: Mutex::default(),
        faults: Mutex::default(),
    });
    Router::new()
        .route("/auth/o2/token", post(token))
        .route("/orders/v0/orders", get(orders))
        .route("/orders/v0/orders/{order_id}/orderItems", get(order_items))
        .route("/fba/inventory/v1/summaries", get(inventory))
        .route("/_sim/faults", post(add_fault))
        .route("/_sim/stats", get(stats))
        .with_state(state)
}

type Sim = State<Arc<SimState>>;

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "errors": [{ "code": code, "message": message }] })),
    )
        .into_response()
}

fn now_ms() -> u64 {
    Utc::now().timestamp_millis() as u64
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(State(sim): Sim, Form(form): Form<TokenForm>) -> Response {
    sim.token_requests.fetch_add(1, Ordering::Relaxed);
    delay(&sim).await;
    let invalid = |error: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": error, "error_description": description })),
        )
            .into_response()
    };
    if form.grant_type != "refresh_token" {
        return invalid("unsupported_grant_type", "only refresh_token is supported");
    }
    if form.client_id.as_deref().unwrap_or("").is_empty()
        || form.client_secret.as_deref().unwrap_or("").is_empty()
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client", "error_description": "Client authentication failed" })),
        )
            .into_response();
    }
    let refresh = form.refresh_token.unwrap_or_default();
    let Some(seller) = refresh
        .strip_prefix("Atzr|")
        .and_then(|rest| rest.split('|').next())
        .filter(|s| !s.is_empty())
    else {
        return invalid(
            "invalid_grant",
            "The request has an invalid grant parameter : refresh_token",
        );
    };
    if seller.starts_with("REVOKED") {
        return invalid(
            "invalid_grant",
            "The request has an invalid grant parameter : refresh_token",
        );
    }
    let expires = now_ms() + sim.config.token_ttl_secs * 1000;
    Json(json!({
        "access_token": format!("Atza|{seller}|{expires}"),
        "token_type": "bearer",
        "expires_in": sim.config.token_ttl_secs,
        "refresh_token": refresh,
    }))
    .into_response()
}

async fn delay(sim: &SimState) {
    if sim.config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(sim.config.latency_ms)).await;
    }
}

/// Authenticates an API call and applies latency, faults, throttling and errors. Returns the
/// seller id, or the response to send instead.
async fn admit(sim: &SimState, headers: &HeaderMap) -> Result<String, Response> {
    let n = sim.requests.fetch_add(1, Ordering::Relaxed);
    delay(sim).await;
    let token = headers
        .get("x-amz-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = token.strip_prefix("Atza|").unwrap_or("").split('|');
    let (Some(seller), Some(expires)) = (
        parts.next().filter(|s| !s.is_empty()),
        parts.next().and_then(|e| e.parse::<u64>().ok()),
    ) else {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "Unauthorized",
            "Access to requested resource is denied.",
        ));
    };
    if expires <= now_ms() {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The access token you provided has expired.",
        ));
    }
    if let Some(response) = scripted_fault(sim, seller) {
        return Err(response);
    }
    if !take_token(sim, seller) || chance(n, "throttle", sim.config.throttle_rate) {
        return Err(throttled(1));
    }
    if chance(n, "error", sim.config.error_rate) {
        return Err(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "We encountered an internal error. Please try again.",
        ));
    }
    Ok(seller.to_owned())
}

fn throttled(retry_after_secs: u64) -> Response {
    let mut response = api_error(
        StatusCode::TOO_MANY_REQUESTS,
        "QuotaExceeded",
        "You exceeded your quota for the requested resource.",
    );
    let headers = response.headers_mut();
    headers.insert("retry-after", HeaderValue::from(retry_after_secs));
    headers.insert("x-amzn-ratelimit-limit", HeaderValue::from_static("1.0"));
    response
}

/// A deterministic coin: request number `n` hits with probability `rate`.
fn chance(n: u64, salt: &str, rate: f64) -> bool {
    rate > 0.0 && (data::hash(&[salt, &n.to_string()]) % 10_000) < (rate * 10_000.0) as u64
}

fn take_token(sim: &SimState, seller: &str) -> bool {
    let rate = sim.config.rate_limit_per_sec;
    if rate <= 0.0 {
        return true;
    }
    let mut buckets = sim.buckets.lock().expect("buckets lock");
    let bucket = buckets.entry(seller.to_owned()).or_insert(Bucket {
        tokens: sim.config.burst,
        at: Instant::now(),
    });
    let now = Instant::now();
    bucket.tokens =
        (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(sim.config.burst);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        true
    } else {
        false
    }
}

fn scripted_fault(sim: &SimState, seller: &str) -> Option<Response> {
    let mut faults = sim.faults.lock().expect("faults lock");
    let fault = faults.get_mut(seller)?;
    if fault.count == 0 {
        faults.remove(seller);
        return None;
    }
    fault.count -= 1;
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Some(match status {
        StatusCode::TOO_MANY_REQUESTS => throttled(fault.retry_after_secs.unwrap_or(1)),
        status => api_error(status, "InjectedFault", "fault injected by the stand-in"),
    })
}

async fn add_fault(State(sim): Sim, Json(fault): Json<Fault>) -> StatusCode {
    sim.faults
        .lock()
        .expect("faults lock")
        .insert(fault.seller.clone(), fault);
    StatusCode::NO_CONTENT
}

async fn stats(State(sim): Sim) -> Json<serde_json::Value> {
    Json(json!({
        "apiRequests": sim.requests.load(Ordering::Relaxed),
        "tokenRequests": sim.token_requests.load(Ordering::Relaxed),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OrdersQuery {
    marketplace_ids: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    next_token: Option<String>,
}

async fn orders(State(sim): Sim, headers: HeaderMap, Query(q): Query<OrdersQuery>) -> Response {
    let seller = match admit(&sim, &headers).await {
        Ok(seller) => seller,
        Err(response) => return response,
    };
    let Some(marketplace) = q
        .marketplace_ids
        .as_deref()
        .and_then(|m| m.split(',').next())
        .filter(|m| !m.is_empty())
    else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "MarketplaceIds is required.",
        );
    };
    // As on Amazon, a NextToken stands for the rest of the original query: here it carries the
    // offset and the window, `page-<offset>-<after>-<before>` (seconds since the epoch).
    let (offset, after, before) = match q.next_token.as_deref() {
        Some(token) => match parse_page_token(token) {
            Some(page) => page,
            None => return api_error(StatusCode::BAD_REQUEST, "InvalidInput", "Invalid NextToken."),
        },
        None => {
            let parse = |value: &Option<String>| value.as_deref().map(DateTime::parse_from_rfc3339);
            match (parse(&q.created_after), parse(&q.created_before)) {
                (Some(Ok(after)), Some(Ok(before))) => {
                    (0, after.with_timezone(&Utc), before.with_timezone(&Utc))
                }
                (Some(Ok(after)), None) => (
                    0,
                    after.with_timezone(&Utc),
                    Utc::now() - chrono::Duration::minutes(2),
                ),
                _ => {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidInput",
                        "CreatedAfter must be an ISO 8601 date-time.",
                    );
                }
            }
        }
    };
    let all = data::orders(&seller, marketplace, after, before, sim.config.orders_per_day);
    let page: Vec<_> = all
        .iter()
        .skip(offset)
        .take(sim.config.page_size)
        .map(|o| data::order_json(o, marketplace))
        .collect();
    let mut payload =
        json!({ "Orders": page, "CreatedBefore": before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) });
    if offset + sim.config.page_size < all.len() {
        let next = offset + sim.config.page_size;
        payload["NextToken"] = json!(format!(
            "page-{next}-{}-{}",
            after.timestamp(),
            before.timestamp()
        ));
    }
    Json(json!({ "payload": payload })).into_response()
}

fn parse_page_token(token: &str) -> Option<(usize, DateTime<Utc>, DateTime<Utc>)> {
    let mut parts = token.strip_prefix("page-")?.split('-');
    let offset = parts.next()?.parse().ok()?;
    let after = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
    let before = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
    Some((offset, after, before))
}

async fn order_items(State(sim): Sim, headers: HeaderMap, Path(order_id): Path<String>) -> Response {
    let seller = match admit(&sim, &headers).await {
        Ok(seller) => seller,
        Err(response) => return response,
    };
    let items: Vec<_> = data::order_items(&seller, &order_id)
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let price = item.price_cents * item.quantity;
            json!({
                "ASIN": format!("B0{:08X}", data::hash(&[&item.sku]) & 0xffff_ffff),
                "SellerSKU": item.sku,
                "OrderItemId": format!("{order_id}-{i}"),
                "QuantityOrdered": item.quantity,
                "ItemPrice": { "CurrencyCode": "USD", "Amount": format!("{}.{:02}", price / 100, price % 100) },
            })
        })
        .collect();
    Json(json!({ "payload": { "AmazonOrderId": order_id, "OrderItems": items } })).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InventoryQuery {
    granularity_id: Option<String>,
    marketplace_ids: Option<String>,
    next_token: Option<String>,
}

async fn inventory(State(sim): Sim, headers: HeaderMap, Query(q): Query<InventoryQuery>) -> Response {
    let seller = match admit(&sim, &headers).await {
        Ok(seller) => seller,
        Err(response) => return response,
    };
    let Some(marketplace) = q.granularity_id.or(q.marketplace_ids).filter(|m| !m.is_empty()) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "granularityId is required.",
        );
    };
    let all = data::inventory(&seller, &marketplace);
    let per_page = 5;
    let offset: usize = q
        .next_token
        .as_deref()
        .and_then(|t| t.strip_prefix("inv-"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<_> = all.iter().skip(offset).take(per_page).cloned().collect();
    let mut body = json!({
        "payload": {
            "granularity": { "granularityType": "Marketplace", "granularityId": marketplace },
            "inventorySummaries": page,
        }
    });
    if offset + per_page < all.len() {
        body["pagination"] = json!({ "nextToken": format!("inv-{}", offset + per_page) });
    }
    Json(body).into_response()
}
