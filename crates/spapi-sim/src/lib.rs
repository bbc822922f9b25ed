//! A local stand-in for Amazon's Selling Partner API that follows Amazon's documented rules, not
//! our client's assumptions: the LWA token endpoint, Orders v0 (`getOrders`, `getOrderItems`),
//! Orders v2026-01-01 (`searchOrders`, items embedded) and FBA inventory summaries, with Amazon's
//! request and response shapes, deterministic data per seller, and pagination.
//!
//! Amazon's rules it enforces, each cited where it is implemented:
//! - a token bucket per (seller, operation) with Amazon's default usage plans, on by default
//!   ([`plans`]); 429 carries no `Retry-After`; `x-amzn-RateLimit-Limit` is sent on 2xx, 400 and
//!   404 answers and never on 429 ([`respond`]);
//! - expired or revoked access tokens get 403 `Unauthorized` with `details` ([`auth`]);
//! - `CreatedBefore` / `LastUpdatedBefore` at least two minutes before now ([`orders`]);
//! - inventory `nextToken`s expire 30 s after they were issued ([`inventory`]);
//! - optional fields left out where Amazon leaves them out (Pending orders without a total,
//!   items without a SellerSKU), and error bodies whose `message` is null ([`data`], faults).
//!
//! Tokens: a refresh token `Atzr|<sellerId>|<anything>` is accepted (a seller id starting with
//! `REVOKED`, or one revoked through `POST /_sim/revoke`, gets `invalid_grant`); the access token it
//! yields is `Atza|<sellerId>|<expiry ms>`.
//!
//! Test controls: `POST /_sim/faults` (the next calls of a seller fail), `POST /_sim/usage-plans`
//! (a seller's plan for an operation), `POST /_sim/revoke` (a seller withdraws authorization),
//! `GET /_sim/stats` (requests served, 429s sent, and the most API calls of one seller that
//! were under way at once: a test can tell whether two refreshes of one user overlapped).

pub mod auth;
pub mod data;
pub mod inventory;
pub mod orders;
pub mod plans;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use plans::{Operation, Plan, PlanOverride, UsagePlans};

/// The stand-in's behaviour.
#[derive(Debug, Clone, clap::Args)]
pub struct SimConfig {
    /// Added to every request.
    #[arg(long, env = "SPAPI_SIM_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of API requests answered 500 (0.0–1.0).
    #[arg(long, env = "SPAPI_SIM_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of API requests answered 429 regardless of the buckets (0.0–1.0).
    #[arg(long, env = "SPAPI_SIM_THROTTLE_RATE", default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Enforce Amazon's default usage plans per (seller, operation).
    #[arg(long, env = "SPAPI_SIM_RATE_LIMITS", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limits: bool,
    /// Lifetime of access tokens.
    #[arg(long, env = "SPAPI_SIM_TOKEN_TTL_SECS", default_value_t = 3600)]
    pub token_ttl_secs: u64,
    /// Most orders per page (Amazon: `MaxResultsPerPage` / `maxResultsPerPage`, 1–100).
    #[arg(long, env = "SPAPI_SIM_PAGE_SIZE", default_value_t = 100)]
    pub page_size: usize,
    /// Average orders a seller gets per day and marketplace.
    #[arg(long, env = "SPAPI_SIM_ORDERS_PER_DAY", default_value_t = 2)]
    pub orders_per_day: u64,
    /// Inventory summaries per page.
    #[arg(long, env = "SPAPI_SIM_INVENTORY_PAGE_SIZE", default_value_t = 50)]
    pub inventory_page_size: usize,
    /// Lifetime of an inventory `nextToken` (Amazon: 30 s).
    #[arg(long, env = "SPAPI_SIM_INVENTORY_TOKEN_TTL_MS", default_value_t = 30_000)]
    pub inventory_token_ttl_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            throttle_rate: 0.0,
            rate_limits: true,
            token_ttl_secs: 3600,
            page_size: 100,
            orders_per_day: 2,
            inventory_page_size: 50,
            inventory_token_ttl_ms: 30_000,
        }
    }
}

/// A scripted fault: the next `count` API requests of `seller` (to `operation`, or any) get
/// `status`, with an error body whose `message` is null, as Amazon sometimes sends.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    pub seller: String,
    pub status: u16,
    pub count: u32,
    #[serde(default)]
    pub operation: Option<String>,
}

#[derive(Deserialize)]
struct SellerOnly {
    seller: String,
}

#[derive(Default)]
struct Counters {
    api: AtomicU64,
    token: AtomicU64,
    throttled: AtomicU64,
    /// API calls under way per seller (while their latency is served), and the most ever seen.
    under_way: Mutex<HashMap<String, u64>>,
    most_under_way: AtomicU64,
}

impl Counters {
    /// Counts one API call of `seller` as under way until the returned guard drops.
    fn start_call(&self, seller: &str) -> CallUnderWay<'_> {
        let mut under_way = self.under_way.lock().expect("under-way lock");
        let count = under_way.entry(seller.to_owned()).or_default();
        *count += 1;
        self.most_under_way.fetch_max(*count, Ordering::Relaxed);
        CallUnderWay {
            counters: self,
            seller: seller.to_owned(),
        }
    }
}

struct CallUnderWay<'a> {
    counters: &'a Counters,
    seller: String,
}

impl Drop for CallUnderWay<'_> {
    fn drop(&mut self) {
        let mut under_way = self.counters.under_way.lock().expect("under-way lock");
        if let Some(count) = under_way.get_mut(&self.seller) {
            *count -= 1;
        }
    }
}

pub struct SimState {
    config: SimConfig,
    counters: Counters,
    plans: UsagePlans,
    faults: Mutex<HashMap<String, Fault>>,
    revoked: Mutex<HashSet<String>>,
}

type Sim = State<Arc<SimState>>;

/// The stand-in's routes.
/// Serves the stand-in in this process on a random local port; returns its base URL
/// (`http://127.0.0.1:<port>`). For benchmarks, the chaos suite and tests.
pub async fn spawn(config: SimConfig) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router(config)).await });
    Ok(base)
}

/// [`spawn`] with the default configuration plus `latency_ms` on every call.
pub async fn spawn_with_latency(latency_ms: u64) -> std::io::Result<String> {
    spawn(SimConfig {
        latency_ms,
        ..SimConfig::default()
    })
    .await
}

pub fn router(config: SimConfig) -> Router {
    let state = Arc::new(SimState {
        config,
        counters: Counters::default(),
        plans: UsagePlans::default(),
        faults: Mutex::default(),
        revoked: Mutex::default(),
    });
    Router::new()
        .route("/auth/o2/token", post(auth::token))
        .route("/orders/v0/orders", get(orders::get_orders))
        .route(
            "/orders/v0/orders/{order_id}/orderItems",
            get(orders::get_order_items),
        )
        .route("/orders/2026-01-01/orders", get(orders::search_orders))
        .route("/fba/inventory/v1/summaries", get(inventory::summaries))
        .route("/_sim/faults", post(add_fault))
        .route("/_sim/usage-plans", post(set_plan))
        .route("/_sim/revoke", post(revoke))
        .route("/_sim/stats", get(stats))
        .with_state(state)
}

/// An SP-API error answer. `details` is part of Amazon's `Error` model in every API used here.
#[derive(Debug, Clone)]
pub struct Rejection {
    status: StatusCode,
    code: &'static str,
    message: Option<String>,
    details: &'static str,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let error = json!({ "code": self.code, "message": self.message, "details": self.details });
        (self.status, Json(json!({ "errors": [error] }))).into_response()
    }
}

pub fn api_error(
    status: StatusCode,
    code: &'static str,
    message: Option<&str>,
    details: &'static str,
) -> Rejection {
    Rejection {
        status,
        code,
        message: message.map(str::to_owned),
        details,
    }
}

pub fn invalid_input(message: &str) -> Rejection {
    api_error(StatusCode::BAD_REQUEST, "InvalidInput", Some(message), "")
}

/// Finishes an answer of `op` for `seller`: `x-amzn-RateLimit-Limit` (the rate of the plan that
/// applied) goes on 2xx, 400 and 404 answers only, as the models' response headers list it
/// (`orders_2026-01-01.json`: 200/400/404 carry it; 403, 429 and 5xx do not).
pub fn respond(sim: &SimState, seller: &str, op: Operation, response: Response) -> Response {
    let mut response = response;
    let status = response.status();
    if status.is_success() || status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND {
        let rate = sim.plans.plan(seller, op).rate;
        if let Ok(value) = HeaderValue::from_str(&rate.to_string()) {
            response.headers_mut().insert("x-amzn-RateLimit-Limit", value);
        }
    }
    response
}

/// Authenticates an API call of `op` and applies latency, faults, the usage plan and random
/// errors. Returns the seller id, or the finished response to send instead.
pub async fn admit(sim: &SimState, headers: &HeaderMap, op: Operation) -> Result<String, Response> {
    let n = sim.counters.api.fetch_add(1, Ordering::Relaxed);
    let seller = match auth::check_access_token(sim, headers) {
        Ok(seller) => seller,
        Err(rejection) => {
            delay(sim).await;
            return Err(rejection.into_response());
        }
    };
    {
        let _call = sim.counters.start_call(&seller);
        delay(sim).await;
    }
    if let Some(response) = scripted_fault(sim, &seller, op) {
        return Err(respond(sim, &seller, op, response));
    }
    let over_plan = sim.config.rate_limits && !sim.plans.take(&seller, op);
    if over_plan || chance(n, "throttle", sim.config.throttle_rate) {
        sim.counters.throttled.fetch_add(1, Ordering::Relaxed);
        return Err(throttled());
    }
    if chance(n, "error", sim.config.error_rate) {
        let message = Some("We encountered an internal error. Please try again.");
        let error = api_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", message, "");
        return Err(error.into_response());
    }
    Ok(seller)
}

/// 429 as Amazon sends it: no `Retry-After` and no `x-amzn-RateLimit-Limit` (every model used here
/// lists only `x-amzn-RequestId` among the 429 response's headers).
fn throttled() -> Response {
    let message = Some("You exceeded your quota for the requested resource.");
    api_error(StatusCode::TOO_MANY_REQUESTS, "QuotaExceeded", message, "").into_response()
}

async fn delay(sim: &SimState) {
    if sim.config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(sim.config.latency_ms)).await;
    }
}

/// A deterministic coin: request number `n` hits with probability `rate`.
fn chance(n: u64, salt: &str, rate: f64) -> bool {
    rate > 0.0 && (data::hash(&[salt, &n.to_string()]) % 10_000) < (rate * 10_000.0) as u64
}

fn scripted_fault(sim: &SimState, seller: &str, op: Operation) -> Option<Response> {
    let mut faults = sim.faults.lock().expect("faults lock");
    let fault = faults.get_mut(seller)?;
    if fault.operation.as_deref().is_some_and(|name| name != op.name()) {
        return None;
    }
    fault.count -= 1;
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if fault.count == 0 {
        faults.remove(seller);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        sim.counters.throttled.fetch_add(1, Ordering::Relaxed);
        return Some(throttled());
    }
    let code = match status {
        StatusCode::FORBIDDEN => "Unauthorized",
        StatusCode::BAD_REQUEST => "InvalidInput",
        _ => "InternalFailure",
    };
    // The fbaInventory model's `Error` requires only `code`: `message` may be null.
    Some(api_error(status, code, None, "fault injected by the stand-in").into_response())
}

async fn add_fault(State(sim): Sim, Json(fault): Json<Fault>) -> StatusCode {
    if fault.count == 0 {
        return StatusCode::NO_CONTENT;
    }
    sim.faults
        .lock()
        .expect("faults lock")
        .insert(fault.seller.clone(), fault);
    StatusCode::NO_CONTENT
}

async fn set_plan(State(sim): Sim, Json(plan): Json<PlanOverride>) -> StatusCode {
    let Some(op) = Operation::parse(&plan.operation) else {
        return StatusCode::BAD_REQUEST;
    };
    if plan.rate <= 0.0 || plan.burst < 1.0 {
        return StatusCode::BAD_REQUEST;
    }
    let limits = Plan {
        rate: plan.rate,
        burst: plan.burst,
    };
    sim.plans.set(&plan.seller, op, limits);
    StatusCode::NO_CONTENT
}

async fn revoke(State(sim): Sim, Json(body): Json<SellerOnly>) -> StatusCode {
    sim.revoked.lock().expect("revoked lock").insert(body.seller);
    StatusCode::NO_CONTENT
}

async fn stats(State(sim): Sim) -> Json<serde_json::Value> {
    let c = &sim.counters;
    Json(json!({
        "apiRequests": c.api.load(Ordering::Relaxed),
        "tokenRequests": c.token.load(Ordering::Relaxed),
        "throttled": c.throttled.load(Ordering::Relaxed),
        "mostCallsOfOneSellerAtOnce": c.most_under_way.load(Ordering::Relaxed),
    }))
}
