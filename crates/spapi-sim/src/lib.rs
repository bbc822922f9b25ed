//! A local stand-in for Amazon's Selling Partner API that behaves as Amazon documents, not as
//! our client assumes: the LWA token endpoint, Orders v2026-01-01 `searchOrders` and FBA
//! inventory summaries, one host per region, with Amazon's request and response shapes.
//!
//! What it enforces, each rule cited where it is implemented and listed in `docs/spapi.md`:
//! - one host per region ([`marketplaces`]): a marketplace is answered only by its region's host;
//! - `includedData` ([`included`]): without it an order holds only its basic information;
//! - pagination ([`orders`]): a next page repeats the first page's query, and its token expires
//!   after 24 hours; inventory `nextToken`s after 30 s ([`inventory`]);
//! - inclusive time bounds, `createdBefore` at least two minutes in the past, exactly one of the
//!   created and last-updated filters ([`orders`]);
//! - usage plans per (seller, operation), 429 without `Retry-After` ([`plans`], [`respond`]);
//! - 403 `Unauthorized` for refused access tokens (with details) and for a role the seller did not
//!   grant (empty details) ([`auth`]);
//! - `x-amzn-RequestId` on every answer, `message` always a string ([`Rejection`]).
//!
//! Every response it serves can be checked against Amazon's own model files ([`contract`]).
//!
//! Tokens: a refresh token `Atzr|<sellerId>|<anything>` is accepted (a seller id starting with
//! `REVOKED`, or one revoked through `POST /_sim/revoke`, gets `invalid_grant`); the access token it
//! yields is `Atza|<sellerId>|<expiry ms>`.
//!
//! Test controls, on the NA host beside LWA: `POST /_sim/faults` (the next calls of a seller
//! fail), `POST /_sim/usage-plans` (a seller's plan for an operation), `POST /_sim/roles` (a
//! seller grants or withholds an operation's role), `POST /_sim/revoke` (a seller withdraws
//! authorization), `POST /_sim/orders` (a seller's exact orders and inventory in a marketplace),
//! `GET /_sim/stats` (requests served, 429s sent, the most API calls of one seller under way at
//! once) and `GET /_sim/exchanges` (what was asked and answered, when recording).

pub mod auth;
pub mod contract;
pub mod data;
pub mod exchanges;
pub mod included;
pub mod inventory;
pub mod marketplaces;
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

pub use exchanges::Exchange;
pub use marketplaces::Region;
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
    /// Most orders per page the stand-in serves (Amazon: `maxResultsPerPage`, 1–100, default
    /// 100); a smaller value makes tests page through fewer orders.
    #[arg(long, env = "SPAPI_SIM_PAGE_SIZE", default_value_t = 100)]
    pub page_size: usize,
    /// Lifetime of a `searchOrders` pagination token (Amazon: 24 hours).
    #[arg(long, env = "SPAPI_SIM_ORDERS_TOKEN_TTL_SECS", default_value_t = 86_400)]
    pub orders_token_ttl_secs: u64,
    /// Average orders a generated seller gets per day and marketplace.
    #[arg(long, env = "SPAPI_SIM_ORDERS_PER_DAY", default_value_t = 2)]
    pub orders_per_day: u64,
    /// Inventory summaries per page.
    #[arg(long, env = "SPAPI_SIM_INVENTORY_PAGE_SIZE", default_value_t = 50)]
    pub inventory_page_size: usize,
    /// Lifetime of an inventory `nextToken` (Amazon: 30 s).
    #[arg(long, env = "SPAPI_SIM_INVENTORY_TOKEN_TTL_MS", default_value_t = 30_000)]
    pub inventory_token_ttl_ms: u64,
    /// Keep the last 10,000 API requests and answers for `GET /_sim/exchanges` (contract checks).
    #[arg(long, env = "SPAPI_SIM_RECORD_EXCHANGES", default_value_t = false, action = clap::ArgAction::Set)]
    pub record_exchanges: bool,
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
            orders_token_ttl_secs: 86_400,
            orders_per_day: 2,
            inventory_page_size: 50,
            inventory_token_ttl_ms: 30_000,
            record_exchanges: false,
        }
    }
}

/// A scripted fault: the next `count` API requests of `seller` (to `operation`, or any) get
/// `status`, with Amazon's error body for it (a 403 is `Unauthorized` with `details`, empty
/// unless given: a missing role).
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    pub seller: String,
    pub status: u16,
    pub count: u32,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
}

/// A seller grants (`granted: true`) or withholds the role an operation needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    pub seller: String,
    pub operation: String,
    pub granted: bool,
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

/// A seeded seller's data in one marketplace (replaces the generated data).
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    pub orders: Vec<data::Order>,
    pub inventory: Vec<(String, u64)>,
}

pub struct SimState {
    config: SimConfig,
    counters: Counters,
    plans: UsagePlans,
    faults: Mutex<HashMap<String, Fault>>,
    revoked: Mutex<HashSet<String>>,
    /// (seller, operation) pairs whose role the seller did not grant.
    withheld: Mutex<HashSet<(String, Operation)>>,
    /// (seller, marketplace) → the data a test seeded.
    seeded: Mutex<HashMap<(String, String), Seeded>>,
    exchanges: exchanges::Recorder,
}

impl SimState {
    fn new(config: SimConfig) -> Self {
        Self {
            exchanges: exchanges::Recorder::new(config.record_exchanges),
            config,
            counters: Counters::default(),
            plans: UsagePlans::default(),
            faults: Mutex::default(),
            revoked: Mutex::default(),
            withheld: Mutex::default(),
            seeded: Mutex::default(),
        }
    }

    /// What a test seeded for `seller` in `marketplace`, if anything.
    pub fn seeded(&self, seller: &str, marketplace: &str) -> Option<Seeded> {
        let seeded = self.seeded.lock().expect("seeded lock");
        seeded.get(&(seller.to_owned(), marketplace.to_owned())).cloned()
    }

    fn role_withheld(&self, seller: &str, op: Operation) -> bool {
        let withheld = self.withheld.lock().expect("roles lock");
        withheld.contains(&(seller.to_owned(), op))
    }
}

/// One regional host: the shared state and the region it answers for.
#[derive(Clone)]
pub struct Host {
    pub sim: Arc<SimState>,
    pub region: Region,
}

/// The stand-in's base URLs: one host per region, LWA and the test controls on the NA host.
#[derive(Debug, Clone)]
pub struct SimUrls {
    pub na: String,
    pub eu: String,
    pub fe: String,
}

impl SimUrls {
    /// The LWA token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/auth/o2/token", self.na)
    }

    /// sellersync's settings that point its client here, by their dotted names
    /// (`spapi.token_url`, `spapi.endpoints.na`...).
    pub fn settings(&self) -> [(&'static str, String); 4] {
        [
            ("spapi.token_url", self.token_url()),
            ("spapi.endpoints.na", self.na.clone()),
            ("spapi.endpoints.eu", self.eu.clone()),
            ("spapi.endpoints.fe", self.fe.clone()),
        ]
    }

    /// The same settings as environment variables (`SELLERSYNC_SPAPI__TOKEN_URL`...), for a
    /// process started to run against the stand-in.
    pub fn env(&self) -> Vec<(String, String)> {
        self.settings()
            .into_iter()
            .map(|(name, value)| {
                let name = format!("SELLERSYNC_{}", name.to_ascii_uppercase().replace('.', "__"));
                (name, value)
            })
            .collect()
    }

    pub fn region(&self, region: Region) -> &str {
        match region {
            Region::Na => &self.na,
            Region::Eu => &self.eu,
            Region::Fe => &self.fe,
        }
    }
}

/// The routers of the three hosts (NA, EU, FE), sharing one state.
pub fn routers(config: SimConfig) -> [Router; 3] {
    let sim = Arc::new(SimState::new(config));
    Region::ALL.map(|region| {
        host_router(Host {
            sim: Arc::clone(&sim),
            region,
        })
    })
}

fn host_router(host: Host) -> Router {
    let api = Router::new()
        .route("/orders/2026-01-01/orders", get(orders::search_orders))
        .route("/fba/inventory/v1/summaries", get(inventory::summaries))
        // Only Amazon's routes carry a request id and are recorded: a stray request to another
        // path (a test of another process reusing the port) is no exchange of the client's.
        .route_layer(axum::middleware::map_response(with_request_id))
        // Outermost: records the answer as it leaves, request id included.
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&host.sim),
            exchanges::record,
        ));
    let router = if host.region == Region::Na {
        api.route("/auth/o2/token", post(auth::token))
            .route("/_sim/faults", post(add_fault))
            .route("/_sim/usage-plans", post(set_plan))
            .route("/_sim/roles", post(set_role))
            .route("/_sim/revoke", post(revoke))
            .route("/_sim/orders", post(seed_orders))
            .route("/_sim/stats", get(stats))
            .route("/_sim/exchanges", get(exchanges::list))
    } else {
        api
    };
    router.with_state(host)
}

/// Serves the three hosts on `addrs` (NA, EU, FE) until `shutdown` completes.
pub async fn serve(
    config: SimConfig,
    listeners: [tokio::net::TcpListener; 3],
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let servers = listeners
        .into_iter()
        .zip(routers(config))
        .map(|(listener, router)| {
            let mut stopped = stop.subscribe();
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.recv().await;
                    })
                    .await
            })
        });
    let servers: Vec<_> = servers.collect();
    shutdown.await;
    let _ = stop.send(());
    for server in servers {
        server.await.map_err(std::io::Error::other)??;
    }
    Ok(())
}

/// Serves the stand-in in this process on random local ports (one per region). For benchmarks,
/// the chaos suite and tests.
pub async fn spawn(config: SimConfig) -> std::io::Result<SimUrls> {
    let mut urls = Vec::with_capacity(3);
    for router in routers(config) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        urls.push(format!("http://{}", listener.local_addr()?));
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    let [na, eu, fe]: [String; 3] = urls.try_into().expect("three hosts");
    Ok(SimUrls { na, eu, fe })
}

/// [`spawn`] with the default configuration plus `latency_ms` on every call.
pub async fn spawn_with_latency(latency_ms: u64) -> std::io::Result<SimUrls> {
    spawn(SimConfig {
        latency_ms,
        ..SimConfig::default()
    })
    .await
}

/// Amazon's request id (the models list `x-amzn-RequestId` on every response of every status):
/// support asks for it, so the client keeps it with each error.
async fn with_request_id(mut response: Response) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}

/// An SP-API error answer: `{"errors": [{"code", "message", "details"}]}`. Both models'
/// `Error` have `message` as a string (`orders_2026-01-01.json` requires it), so it always is one.
#[derive(Debug, Clone)]
pub struct Rejection {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: String,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let error = json!({ "code": self.code, "message": self.message, "details": self.details });
        (self.status, Json(json!({ "errors": [error] }))).into_response()
    }
}

pub fn api_error(status: StatusCode, code: &'static str, message: &str, details: &str) -> Rejection {
    Rejection {
        status,
        code,
        message: message.to_owned(),
        details: details.to_owned(),
    }
}

pub fn invalid_input(message: &str) -> Rejection {
    api_error(StatusCode::BAD_REQUEST, "InvalidInput", message, "")
}

/// The answer for a marketplace the host does not serve (see [`marketplaces`]).
pub fn not_valid_for_region() -> Rejection {
    api_error(
        StatusCode::FORBIDDEN,
        "Unauthorized",
        auth::DENIED,
        "The marketplaces you provided are not valid for region.",
    )
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

/// Authenticates an API call of `op` and applies latency, faults, the seller's roles, the usage
/// plan and random errors. Returns the seller id, or the finished response to send instead.
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
    if sim.role_withheld(&seller, op) {
        return Err(auth::missing_role().into_response());
    }
    let over_plan = sim.config.rate_limits && !sim.plans.take(&seller, op);
    if over_plan || chance(n, "throttle", sim.config.throttle_rate) {
        sim.counters.throttled.fetch_add(1, Ordering::Relaxed);
        return Err(throttled());
    }
    if chance(n, "error", sim.config.error_rate) {
        return Err(internal_failure().into_response());
    }
    Ok(seller)
}

/// 429 as Amazon sends it: no `Retry-After` and no `x-amzn-RateLimit-Limit` (every model used here
/// lists only `x-amzn-RequestId` among the 429 response's headers).
fn throttled() -> Response {
    let message = "You exceeded your quota for the requested resource.";
    api_error(StatusCode::TOO_MANY_REQUESTS, "QuotaExceeded", message, "").into_response()
}

fn internal_failure() -> Rejection {
    let message = "We encountered an internal error. Please try again.";
    api_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", message, "")
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
    let fault = if fault.count == 0 {
        faults.remove(seller)?
    } else {
        fault.clone()
    };
    drop(faults);
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let rejection = match status {
        StatusCode::TOO_MANY_REQUESTS => {
            sim.counters.throttled.fetch_add(1, Ordering::Relaxed);
            return Some(throttled());
        }
        StatusCode::FORBIDDEN => {
            let details = fault.details.as_deref().unwrap_or("");
            api_error(status, "Unauthorized", auth::DENIED, details)
        }
        StatusCode::BAD_REQUEST => invalid_input("Invalid Input"),
        _ if status.is_server_error() => Rejection {
            status,
            ..internal_failure()
        },
        _ => api_error(status, "InvalidInput", "Invalid Input", ""),
    };
    Some(rejection.into_response())
}

async fn add_fault(State(host): State<Host>, Json(fault): Json<Fault>) -> StatusCode {
    if fault.count == 0 {
        return StatusCode::NO_CONTENT;
    }
    host.sim
        .faults
        .lock()
        .expect("faults lock")
        .insert(fault.seller.clone(), fault);
    StatusCode::NO_CONTENT
}

async fn set_plan(State(host): State<Host>, Json(plan): Json<PlanOverride>) -> StatusCode {
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
    host.sim.plans.set(&plan.seller, op, limits);
    StatusCode::NO_CONTENT
}

async fn set_role(State(host): State<Host>, Json(grant): Json<RoleGrant>) -> StatusCode {
    let Some(op) = Operation::parse(&grant.operation) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut withheld = host.sim.withheld.lock().expect("roles lock");
    let key = (grant.seller, op);
    if grant.granted {
        withheld.remove(&key);
    } else {
        withheld.insert(key);
    }
    StatusCode::NO_CONTENT
}

async fn revoke(State(host): State<Host>, Json(body): Json<SellerOnly>) -> StatusCode {
    host.sim.revoked.lock().expect("revoked lock").insert(body.seller);
    StatusCode::NO_CONTENT
}

/// `POST /_sim/orders`: a seller's exact orders and inventory in one marketplace.
async fn seed_orders(State(host): State<Host>, Json(seed): Json<data::SeededSeller>) -> Response {
    let Some(marketplace) = marketplaces::find(&seed.marketplace) else {
        let message = format!("unknown marketplace {:?}", seed.marketplace);
        return (StatusCode::BAD_REQUEST, message).into_response();
    };
    let orders: Result<Vec<data::Order>, String> =
        seed.orders.iter().map(|o| o.to_order(marketplace)).collect();
    let orders = match orders {
        Ok(orders) => orders,
        Err(problem) => return (StatusCode::BAD_REQUEST, problem).into_response(),
    };
    let inventory = seed
        .inventory
        .iter()
        .map(|s| (s.seller_sku.clone(), s.fulfillable))
        .collect();
    let key = (seed.seller, seed.marketplace);
    host.sim
        .seeded
        .lock()
        .expect("seeded lock")
        .insert(key, Seeded { orders, inventory });
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(host): State<Host>) -> Json<serde_json::Value> {
    let c = &host.sim.counters;
    Json(json!({
        "apiRequests": c.api.load(Ordering::Relaxed),
        "tokenRequests": c.token.load(Ordering::Relaxed),
        "throttled": c.throttled.load(Ordering::Relaxed),
        "mostCallsOfOneSellerAtOnce": c.most_under_way.load(Ordering::Relaxed),
    }))
}
