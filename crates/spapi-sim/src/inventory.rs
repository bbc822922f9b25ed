//! FBA inventory summaries (`getInventorySummaries`), paginated. As `fbaInventory.json` documents
//! for `nextToken`: "The string token will expire 30 seconds after being created"; an expired one
//! is refused with 400 `InvalidInput`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::plans::Operation;
use crate::{Rejection, SimState, admit, data, invalid_input, respond};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryQuery {
    granularity_id: Option<String>,
    marketplace_ids: Option<String>,
    next_token: Option<String>,
}

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
    State(sim): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<InventoryQuery>,
) -> Response {
    let op = Operation::GetInventorySummaries;
    let seller = match admit(&sim, &headers, op).await {
        Ok(seller) => seller,
        Err(response) => return response,
    };
    let response = page(&sim, &seller, q).unwrap_or_else(IntoResponse::into_response);
    respond(&sim, &seller, op, response)
}

fn page(sim: &SimState, seller: &str, q: InventoryQuery) -> Result<Response, Rejection> {
    let marketplace = q
        .granularity_id
        .or(q.marketplace_ids)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid_input("granularityId is required."))?;
    let start = match q.next_token.as_deref() {
        Some(t) => offset(sim, t)?,
        None => 0,
    };
    let size = sim.config.inventory_page_size.max(1);
    let all = data::inventory(seller, &marketplace);
    let page: Vec<_> = all.iter().skip(start).take(size).cloned().collect();
    let mut body = json!({
        "payload": {
            "granularity": { "granularityType": "Marketplace", "granularityId": marketplace },
            "inventorySummaries": page,
        }
    });
    if start + size < all.len() {
        body["pagination"] = json!({ "nextToken": token(start + size) });
    }
    Ok(Json(body).into_response())
}
