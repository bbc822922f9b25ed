//! FBA inventory summaries (`GET /fba/inventory/v1/summaries`, `getInventorySummaries`),
//! paginated, with the rules of `fbaInventory.json`:
//!
//! - `granularityType` (`Marketplace`), `granularityId` and `marketplaceIds` (one) are required;
//! - `inventoryDetails` only when `details=true` ("This object will not appear if the details
//!   parameter in the request is false");
//! - `nextToken` "will expire 30 seconds after being created": an expired one is refused with 400
//!   `InvalidInput`;
//! - the marketplace must be one the host's region serves ([`crate::marketplaces`]).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use crate::marketplaces;
use crate::plans::Operation;
use crate::{Host, Rejection, SimState, admit, data, invalid_input, not_valid_for_region, respond};

/// A next-page token: `inv.<offset>.<issued ms>`.
fn token(offset: usize) -> String {
    format!("inv.{offset}.{}", Utc::now().timestamp_millis())
}

/// The offset a token stands for, or why it cannot be used.
fn offset(sim: &SimState, token: &str) -> Result<usize, Rejection> {
    let mut parts = token.strip_prefix("inv.").unwrap_or("").split('.');
    let offset = parts.next().and_then(|o| o.parse().ok());
    let issued = parts.next().and_then(|t| t.parse::<i64>().ok());
    let (Some(offset), Some(issued)) = (offset, issued) else {
        return Err(invalid_input("Invalid nextToken."));
    };
    let age_ms = Utc::now().timestamp_millis() - issued;
    if age_ms >= sim.config.inventory_token_ttl_ms as i64 {
        return Err(invalid_input("The nextToken has expired."));
    }
    Ok(offset)
}

/// `GET /fba/inventory/v1/summaries`.
pub async fn summaries(
    State(host): State<Host>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let op = Operation::GetInventorySummaries;
    let sim = &host.sim;
    let seller = match admit(sim, &headers, op).await {
        Ok(seller) => seller,
        Err(response) => return response,
    };
    let response = page(&host, &seller, &q).unwrap_or_else(IntoResponse::into_response);
    respond(sim, &seller, op, response)
}

fn required<'a>(q: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Rejection> {
    q.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid_input(&format!("{name} is required.")))
}

fn page(host: &Host, seller: &str, q: &HashMap<String, String>) -> Result<Response, Rejection> {
    if required(q, "granularityType")? != "Marketplace" {
        return Err(invalid_input("granularityType must be Marketplace."));
    }
    let granularity_id = required(q, "granularityId")?;
    let marketplace = required(q, "marketplaceIds")?;
    if marketplace.contains(',') {
        return Err(invalid_input("marketplaceIds takes one marketplace."));
    }
    let marketplace = marketplaces::served_by(marketplace, host.region).ok_or_else(not_valid_for_region)?;
    if granularity_id != marketplace.id {
        return Err(invalid_input(
            "granularityId must be the marketplace of marketplaceIds.",
        ));
    }
    let details = q.get("details").map(String::as_str) == Some("true");
    let start = match q.get("nextToken") {
        Some(t) => offset(&host.sim, t)?,
        None => 0,
    };
    let size = host.sim.config.inventory_page_size.max(1);
    let all = match host.sim.seeded(seller, marketplace.id) {
        Some(seeded) => seeded.inventory,
        None => data::inventory(seller, marketplace.id),
    };
    let page: Vec<_> = all
        .iter()
        .skip(start)
        .take(size)
        .map(|(sku, fulfillable)| data::inventory_json(sku, *fulfillable, details))
        .collect();
    let mut body = json!({
        "payload": {
            "granularity": { "granularityType": "Marketplace", "granularityId": marketplace.id },
            "inventorySummaries": page,
        }
    });
    if start + size < all.len() {
        body["pagination"] = json!({ "nextToken": token(start + size) });
    }
    Ok(Json(body).into_response())
}
