//! Orders v0 (`getOrders`, `getOrderItems`) and Orders v2026-01-01 (`searchOrders`, items
//! embedded), with the filters both models document:
//!
//! - exactly one of `CreatedAfter` / `LastUpdatedAfter`; the created and last-updated filters
//!   cannot be mixed (`ordersV0.json` and `orders_2026-01-01.json`, parameter notes);
//! - `CreatedBefore` / `LastUpdatedBefore`, when given, must be at or after the matching "after"
//!   and "at least two minutes before the time of the request"; otherwise 400 `InvalidInput`;
//! - `MaxResultsPerPage` 1–100 (default 100); a next-page token stands for the rest of the query.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::data::{self, LIFECYCLE};
use crate::plans::Operation;
use crate::{Rejection, SimState, admit, invalid_input, respond};

/// How far before the request `CreatedBefore` / `LastUpdatedBefore` must be.
pub const BEFORE_MARGIN: Duration = Duration::minutes(2);

/// Which timestamp the window filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Created,
    Updated,
}

/// One page of a search, as the query or its next-page token describes it.
#[derive(Debug, Clone)]
struct Search {
    marketplace: String,
    by: By,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Statuses are as of this instant for every page of one search.
    at: DateTime<Utc>,
    size: usize,
    offset: usize,
}

impl Search {
    /// The opaque next-page token: `p.<offset>.<c|u>.<from>.<to>.<at>.<size>.<marketplace>`.
    fn token(&self, offset: usize) -> String {
        let by = if self.by == By::Created { "c" } else { "u" };
        format!(
            "p.{offset}.{by}.{}.{}.{}.{}.{}",
            self.from.timestamp(),
            self.to.timestamp(),
            self.at.timestamp(),
            self.size,
            self.marketplace
        )
    }

    fn from_token(token: &str) -> Option<Self> {
        let mut parts = token.strip_prefix("p.")?.split('.');
        let offset = parts.next()?.parse().ok()?;
        let by = match parts.next()? {
            "c" => By::Created,
            "u" => By::Updated,
            _ => return None,
        };
        let mut time = || DateTime::from_timestamp(parts.next()?.parse().ok()?, 0);
        let (from, to, at) = (time()?, time()?, time()?);
        Some(Self {
            size: parts.next()?.parse().ok()?,
            marketplace: parts.next().filter(|m| !m.is_empty())?.to_owned(),
            by,
            from,
            to,
            at,
            offset,
        })
    }

    /// Every matching order, in the order pages list them.
    fn matches(&self, seller: &str, per_day: u64) -> Vec<data::Order> {
        let mk = &self.marketplace;
        match self.by {
            By::Created => data::orders(seller, mk, self.from, self.to, per_day),
            By::Updated => {
                let mut all: Vec<_> = data::orders(seller, mk, self.from - LIFECYCLE, self.to, per_day)
                    .into_iter()
                    .filter(|o| (self.from..self.to).contains(&o.last_updated(self.at)))
                    .collect();
                all.sort_by_key(|o| (o.last_updated(self.at), o.id.clone()));
                all
            }
        }
    }
}

/// The filters of a first page, named as in either model.
struct Filters<'a> {
    marketplaces: Option<&'a str>,
    created_after: Option<&'a str>,
    created_before: Option<&'a str>,
    updated_after: Option<&'a str>,
    updated_before: Option<&'a str>,
    max_results: Option<usize>,
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Rejection> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| invalid_input(&format!("{name} must be an ISO 8601 date-time.")))
        })
        .transpose()
}

impl Filters<'_> {
    fn search(&self, sim: &SimState, now: DateTime<Utc>) -> Result<Search, Rejection> {
        let marketplace = self
            .marketplaces
            .and_then(|m| m.split(',').next())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| invalid_input("MarketplaceIds is required."))?;
        let size = self.max_results.unwrap_or(100);
        if !(1..=100).contains(&size) {
            return Err(invalid_input("MaxResultsPerPage must be between 1 and 100."));
        }
        let created = (
            parse_time("CreatedAfter", self.created_after)?,
            parse_time("CreatedBefore", self.created_before)?,
        );
        let updated = (
            parse_time("LastUpdatedAfter", self.updated_after)?,
            parse_time("LastUpdatedBefore", self.updated_before)?,
        );
        let (by, (from, before)) = match (created, updated) {
            ((Some(_), _), (None, None)) => (By::Created, created),
            ((None, None), (Some(_), _)) => (By::Updated, updated),
            _ => {
                return Err(invalid_input(
                    "Exactly one of CreatedAfter and LastUpdatedAfter is required, and created and last-updated filters cannot be combined.",
                ));
            }
        };
        let from = from.expect("matched Some");
        let latest = now - BEFORE_MARGIN;
        let to = before.unwrap_or(latest);
        if to > latest {
            return Err(invalid_input(
                "CreatedBefore and LastUpdatedBefore must be at least two minutes before the time of the request.",
            ));
        }
        if to < from {
            return Err(invalid_input(
                "The 'before' date must be at or after the 'after' date.",
            ));
        }
        Ok(Search {
            marketplace: marketplace.to_owned(),
            by,
            from,
            to,
            at: now,
            size: size.min(sim.config.page_size.max(1)),
            offset: 0,
        })
    }
}

/// The page of `search`, rendered by `render`, and the token of the next page if there is one.
fn page(
    sim: &SimState,
    seller: &str,
    search: &Search,
    render: fn(&data::Order, &str, DateTime<Utc>) -> Value,
) -> (Vec<Value>, Option<String>) {
    let all = search.matches(seller, sim.config.orders_per_day);
    let page = all
        .iter()
        .skip(search.offset)
        .take(search.size)
        .map(|o| render(o, &search.marketplace, search.at))
        .collect();
    let next = search.offset + search.size;
    (page, (next < all.len()).then(|| search.token(next)))
}

fn start(sim: &SimState, token: Option<&str>, filters: Filters<'_>) -> Result<Search, Rejection> {
    match token {
        Some(token) => Search::from_token(token).ok_or_else(|| invalid_input("Invalid NextToken.")),
        None => filters.search(sim, Utc::now()),
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct V0Query {
    marketplace_ids: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    last_updated_after: Option<String>,
    last_updated_before: Option<String>,
    max_results_per_page: Option<usize>,
    next_token: Option<String>,
}

/// `GET /orders/v0/orders` (getOrders).
pub async fn get_orders(
    State(sim): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<V0Query>,
) -> Response {
    let op = Operation::GetOrders;
    let seller = match admit(&sim, &headers, op).await {
        Ok(seller) => seller,
        Err(response) => return response,
    };
    let filters = Filters {
        marketplaces: q.marketplace_ids.as_deref(),
        created_after: q.created_after.as_deref(),
        created_before: q.created_before.as_deref(),
        updated_after: q.last_updated_after.as_deref(),
        updated_before: q.last_updated_before.as_deref(),
        max_results: q.max_results_per_page,
    };
    let response = match start(&sim, q.next_token.as_deref(), filters) {
        Ok(search) => {
            let (orders, next) = page(&sim, &seller, &search, data::order_v0);
            let mut payload = json!({ "Orders": orders, "CreatedBefore": iso(search.to) });
            if let Some(next) = next {
                payload["NextToken"] = json!(next);
            }
            Json(json!({ "payload": payload })).into_response()
        }
        Err(rejection) => rejection.into_response(),
    };
    respond(&sim, &seller, op, response)
}

/// `GET /orders/v0/orders/{orderId}/orderItems` (getOrderItems).
pub async fn get_order_items(
    State(sim): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Response {
    let op = Operation::GetOrderItems;
    let seller = match admit(&sim, &headers, op).await {
        Ok(seller) => seller,
        Err(response) => return response,
    };
    let marketplace = "ATVPDKIKX0DER";
    let items: Vec<Value> = data::order_items(&seller, &order_id)
        .iter()
        .map(|item| data::order_item_v0(item, marketplace))
        .collect();
    let body = json!({ "payload": { "AmazonOrderId": order_id, "OrderItems": items } });
    respond(&sim, &seller, op, Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchQuery {
    marketplace_ids: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    last_updated_after: Option<String>,
    last_updated_before: Option<String>,
    max_results_per_page: Option<usize>,
    pagination_token: Option<String>,
}

/// `GET /orders/2026-01-01/orders` (searchOrders): orders with their items embedded.
pub async fn search_orders(
    State(sim): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Response {
    let op = Operation::SearchOrders;
    let seller = match admit(&sim, &headers, op).await {
        Ok(seller) => seller,
        Err(response) => return response,
    };
    let filters = Filters {
        marketplaces: q.marketplace_ids.as_deref(),
        created_after: q.created_after.as_deref(),
        created_before: q.created_before.as_deref(),
        updated_after: q.last_updated_after.as_deref(),
        updated_before: q.last_updated_before.as_deref(),
        max_results: q.max_results_per_page,
    };
    let response = match start(&sim, q.pagination_token.as_deref(), filters) {
        Ok(search) => {
            let (orders, next) = page(&sim, &seller, &search, data::order_v2026);
            let mut body = json!({ "orders": orders });
            let field = if search.by == By::Created {
                "createdBefore"
            } else {
                "lastUpdatedBefore"
            };
            body[field] = json!(iso(search.to));
            if let Some(next) = next {
                body["pagination"] = json!({ "nextToken": next });
            }
            Json(body).into_response()
        }
        Err(rejection) => rejection.into_response(),
    };
    respond(&sim, &seller, op, response)
}
