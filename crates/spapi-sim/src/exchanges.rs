//! What the stand-in was asked and what it answered, kept when `record_exchanges` is on (the last
//! 10,000 API calls), so a test can check both sides of the wire against Amazon's models
//! ([`crate::contract`]): `GET /_sim/exchanges` returns them oldest first (`?drain=true` also
//! forgets them).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::{Host, SimState};

/// Most exchanges kept; the oldest go first.
const KEEP: usize = 10_000;
/// Largest response body kept whole (a page of 100 orders is ~150 KB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One API call and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    pub method: String,
    pub path: String,
    /// The query parameters in the order sent, decoded.
    pub query: Vec<(String, String)>,
    pub status: u16,
    /// The response headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The response body (`null` when it is not JSON).
    pub body: serde_json::Value,
}

impl Exchange {
    /// The values of query parameter `name`, in order.
    pub fn param(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub struct Recorder {
    on: bool,
    kept: Mutex<VecDeque<Exchange>>,
}

impl Recorder {
    pub fn new(on: bool) -> Self {
        Self {
            on,
            kept: Mutex::default(),
        }
    }

    fn keep(&self, exchange: Exchange) {
        let mut kept = self.kept.lock().expect("exchanges lock");
        if kept.len() == KEEP {
            kept.pop_front();
        }
        kept.push_back(exchange);
    }
}

/// Middleware of the API routes: records each call and its answer when recording is on.
pub async fn record(State(sim): State<Arc<SimState>>, request: Request, next: Next) -> Response {
    if !sim.exchanges.on {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    sim.exchanges.keep(Exchange {
        method,
        path,
        query,
        status: parts.status.as_u16(),
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    });
    Response::from_parts(parts, Body::from(bytes))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    drain: bool,
}

/// `GET /_sim/exchanges`.
pub async fn list(State(host): State<Host>, Query(q): Query<ListQuery>) -> Json<Vec<Exchange>> {
    let mut kept = host.sim.exchanges.kept.lock().expect("exchanges lock");
    let list = if q.drain {
        kept.drain(..).collect()
    } else {
        kept.iter().cloned().collect()
    };
    Json(list)
}
