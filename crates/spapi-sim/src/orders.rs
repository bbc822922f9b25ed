//! Orders v2026-01-01 `searchOrders` (`GET /orders/2026-01-01/orders`), with the rules its model
//! (`orders_2026-01-01.json`) documents:
//!
//! - exactly one of `createdAfter` / `lastUpdatedAfter`; created and last-updated filters cannot be
//!   mixed (parameters `createdAfter`, `lastUpdatedAfter`);
//! - bounds are inclusive ("created at or after", "at or before"); `createdBefore` /
//!   `lastUpdatedBefore`, when given, must be at or after the matching "after" and at least two
//!   minutes before the time of the request; otherwise 400 `InvalidInput`;
//! - `maxResultsPerPage` 1–100, default 100;
//! - `includedData` chooses the data sets an order carries beyond its basic information
//!   ([`crate::included`]); an unknown value is refused;
//! - a next page (`paginationToken`) must repeat every other parameter with the same values except
//!   `maxResultsPerPage` and `includedData`, and its token expires after 24 hours (`Pagination`);
//!   otherwise 400 `InvalidInput`;
//! - every marketplace must be one the host's region serves ([`crate::marketplaces`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::data::{self, LIFECYCLE};
use crate::included::DataSets;
use crate::marketplaces::{self, Marketplace};
use crate::plans::Operation;
use crate::{Host, Rejection, SimState, admit, invalid_input, not_valid_for_region, respond};

/// How far before the request `createdBefore` / `lastUpdatedBefore` must be.
pub const BEFORE_MARGIN: Duration = Duration::minutes(2);

/// The parameters whose values a next page must repeat (all but `maxResultsPerPage`,
/// `includedData` and the token itself).
const REPEATED: [&str; 7] = [
    "marketplaceIds",
    "createdAfter",
    "createdBefore",
    "lastUpdatedAfter",
    "lastUpdatedBefore",
    "fulfillmentStatuses",
    "fulfilledBy",
];

/// Which timestamp the search filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Created,
    Updated,
}

/// One page of a search, as its query (and next-page token) describe it.
#[derive(Debug)]
struct Search {
    marketplaces: Vec<&'static Marketplace>,
    by: By,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    statuses: Option<Vec<String>>,
    sets: DataSets,
    size: usize,
    /// Statuses are as of this instant for every page of one search.
    at: DateTime<Utc>,
    offset: usize,
    /// Identifies the repeated parameters' values.
    fingerprint: u64,
}

/// A next-page token: `v1.<offset>.<as-of seconds>.<issued ms>.<fingerprint>`.
struct Token {
    offset: usize,
    at: DateTime<Utc>,
    issued_ms: i64,
    fingerprint: u64,
}

impl Token {
    fn encode(&self) -> String {
        format!(
            "v1.{}.{}.{}.{:016x}",
            self.offset,
            self.at.timestamp(),
            self.issued_ms,
            self.fingerprint
        )
    }

    fn decode(token: &str) -> Option<Self> {
        let mut parts = token.strip_prefix("v1.")?.split('.');
        let offset = parts.next()?.parse().ok()?;
        let at = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
        let issued_ms = parts.next()?.parse().ok()?;
        let fingerprint = u64::from_str_radix(parts.next()?, 16).ok()?;
        parts.next().is_none().then_some(Self {
            offset,
            at,
            issued_ms,
            fingerprint,
        })
    }
}

/// The query as sent: each parameter's value (the last one if repeated).
struct Params(BTreeMap<String, String>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, Rejection> {
        self.get(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| invalid_input(&format!("{name} must be an ISO 8601 date-time.")))
            })
            .transpose()
    }

    fn fingerprint(&self) -> u64 {
        let values: Vec<&str> = REPEATED.iter().map(|name| self.get(name).unwrap_or("")).collect();
        data::hash(&values)
    }
}

/// The search a request describes, as of `now`, or Amazon's refusal.
fn search(sim: &SimState, host: &Host, params: &Params, now: DateTime<Utc>) -> Result<Search, Rejection> {
    let sets = DataSets::parse(params.get("includedData")).map_err(|m| invalid_input(&m))?;
    let size = match params.get("maxResultsPerPage") {
        None => 100,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| invalid_input("maxResultsPerPage must be an integer between 1 and 100."))?,
    };
    let (by, from, before) = filters(params)?;
    let (at, offset) = match params.get("paginationToken") {
        Some(token) => resume(sim, params, token, now)?,
        None => (now, 0),
    };
    let to = before.unwrap_or(at - BEFORE_MARGIN);
    if before.is_some_and(|b| b > now - BEFORE_MARGIN) {
        return Err(invalid_input(
            "createdBefore and lastUpdatedBefore must be at least two minutes before the time of the request.",
        ));
    }
    if to < from {
        return Err(invalid_input(
            "The 'before' date must be equal to or after the 'after' date.",
        ));
    }
    Ok(Search {
        marketplaces: requested_marketplaces(host, params)?,
        by,
        from,
        to,
        statuses: params
            .get("fulfillmentStatuses")
            .map(|s| s.split(',').map(str::to_owned).collect()),
        sets,
        size: size.min(sim.config.page_size.max(1)),
        at,
        offset,
        fingerprint: params.fingerprint(),
    })
}

/// The filter kind, its "after" bound and its optional "before" bound.
type Filter = (By, DateTime<Utc>, Option<DateTime<Utc>>);

fn filters(params: &Params) -> Result<Filter, Rejection> {
    let created = (params.time("createdAfter")?, params.time("createdBefore")?);
    let updated = (
        params.time("lastUpdatedAfter")?,
        params.time("lastUpdatedBefore")?,
    );
    match (created, updated) {
        ((Some(after), before), (None, None)) => Ok((By::Created, after, before)),
        ((None, None), (Some(after), before)) => Ok((By::Updated, after, before)),
        _ => Err(invalid_input(
            "Exactly one of createdAfter and lastUpdatedAfter is required, and created and last-updated filters cannot be combined.",
        )),
    }
}

/// Where a next page starts and as of when, if its token belongs to this query and is alive.
fn resume(
    sim: &SimState,
    params: &Params,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, usize), Rejection> {
    let token = Token::decode(token).ok_or_else(|| invalid_input("Invalid paginationToken."))?;
    let age_ms = now.timestamp_millis() - token.issued_ms;
    if age_ms >= (sim.config.orders_token_ttl_secs * 1000) as i64 {
        return Err(invalid_input("The paginationToken has expired."));
    }
    if token.fingerprint != params.fingerprint() {
        return Err(invalid_input(
            "All parameters other than maxResultsPerPage and includedData must have the values of the request that returned the paginationToken.",
        ));
    }
    Ok((token.at, token.offset))
}

/// `marketplaceIds` (at most 50), each one the host's region serves.
fn requested_marketplaces(host: &Host, params: &Params) -> Result<Vec<&'static Marketplace>, Rejection> {
    let ids: Vec<&str> = params
        .get("marketplaceIds")
        .map_or(Vec::new(), |v| v.split(',').collect());
    if ids.is_empty() || ids.len() > 50 {
        return Err(invalid_input(
            "marketplaceIds must list between 1 and 50 marketplaces.",
        ));
    }
    ids.iter()
        .map(|id| marketplaces::served_by(id, host.region).ok_or_else(not_valid_for_region))
        .collect()
}

impl Search {
    /// Every matching order with its marketplace, in the order pages list them.
    fn matches(&self, sim: &SimState, seller: &str) -> Vec<(data::Order, &'static Marketplace)> {
        let mut all: Vec<(data::Order, &'static Marketplace)> = self
            .marketplaces
            .iter()
            .flat_map(|mk| self.orders_of(sim, seller, mk).into_iter().map(move |o| (o, *mk)))
            .filter(|(o, _)| self.wanted(o))
            .collect();
        all.sort_by_key(|(o, _)| (self.time_of(o), o.id.clone()));
        all
    }

    fn orders_of(&self, sim: &SimState, seller: &str, mk: &Marketplace) -> Vec<data::Order> {
        if let Some(seeded) = sim.seeded(seller, mk.id) {
            return seeded.orders;
        }
        let earliest = match self.by {
            By::Created => self.from,
            By::Updated => self.from - LIFECYCLE,
        };
        data::orders(seller, mk, earliest, self.to, sim.config.orders_per_day)
    }

    /// The time the search filters on: creation, or the last update as of the search.
    fn time_of(&self, order: &data::Order) -> DateTime<Utc> {
        match self.by {
            By::Created => order.purchased,
            By::Updated => order.last_updated(self.at),
        }
    }

    fn wanted(&self, order: &data::Order) -> bool {
        let status = order.status(self.at).name();
        (self.from..=self.to).contains(&self.time_of(order))
            && self
                .statuses
                .as_ref()
                .is_none_or(|wanted| wanted.iter().any(|s| s == status))
    }

    /// This page's orders, and the token of the next page if there is one.
    fn page(&self, sim: &SimState, seller: &str, now: DateTime<Utc>) -> (Vec<Value>, Option<String>) {
        let all = self.matches(sim, seller);
        let page = all
            .iter()
            .skip(self.offset)
            .take(self.size)
            .map(|(o, mk)| data::order_json(o, mk.id, self.at, self.sets))
            .collect();
        let next = self.offset + self.size;
        let token = (next < all.len()).then(|| {
            Token {
                offset: next,
                at: self.at,
                issued_ms: now.timestamp_millis(),
                fingerprint: self.fingerprint,
            }
            .encode()
        });
        (page, token)
    }
}

/// `GET /orders/2026-01-01/orders` (searchOrders).
pub async fn search_orders(
    State(host): State<Host>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let op = Operation::SearchOrders;
    let sim = &host.sim;
    let seller = match admit(sim, &headers, op).await {
        Ok(seller) => seller,
        Err(response) => return response,
    };
    let params = Params(params.into_iter().collect());
    let now = Utc::now();
    let response = match search(sim, &host, &params, now) {
        Ok(search) => {
            let (orders, next) = search.page(sim, &seller, now);
            let mut body = json!({ "orders": orders });
            let field = match search.by {
                By::Created => "createdBefore",
                By::Updated => "lastUpdatedBefore",
            };
            body[field] = json!(search.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            if let Some(next) = next {
                body["pagination"] = json!({ "nextToken": next });
            }
            Json(body).into_response()
        }
        Err(rejection) => rejection.into_response(),
    };
    respond(sim, &seller, op, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let token = Token {
            offset: 200,
            at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            issued_ms: 1_790_000_000_123,
            fingerprint: 0xdead_beef,
        };
        let decoded = Token::decode(&token.encode()).unwrap();
        assert_eq!(
            (decoded.offset, decoded.at, decoded.issued_ms, decoded.fingerprint),
            (200, token.at, token.issued_ms, 0xdead_beef)
        );
        assert!(Token::decode("p.100.c.1.2.3.100.ATVPDKIKX0DER").is_none());
        assert!(Token::decode(&format!("{}.extra", token.encode())).is_none());
    }
}
