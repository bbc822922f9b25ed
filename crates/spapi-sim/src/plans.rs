//! Amazon's usage plans: one token bucket per (selling partner, operation), with the default rate
//! and burst each operation's model documents ("Usage Plan" table in the operation description):
//!
//! | operation | rate (req/s) | burst | source |
//! |---|---|---|---|
//! | searchOrders | 0.0056 | 20 | `models/orders-api-model/orders_2026-01-01.json` |
//! | getInventorySummaries | 2 | 2 | `models/fba-inventory-api-model/fbaInventory.json` |
//!
//! The usage-plans guide ("Usage Plans and Rate Limits", developer-docs.amazon.com/sp-api) says
//! the bucket refills at `rate` up to `burst`, each call takes one token, and a call without a
//! token is answered 429. A test may give one seller a different plan (`POST /_sim/usage-plans`),
//! as Amazon does for sellers with higher needs; `x-amzn-RateLimit-Limit` then reports it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

/// The operations the stand-in serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    SearchOrders,
    GetInventorySummaries,
}

impl Operation {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "searchOrders" => Self::SearchOrders,
            "getInventorySummaries" => Self::GetInventorySummaries,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::SearchOrders => "searchOrders",
            Self::GetInventorySummaries => "getInventorySummaries",
        }
    }

    /// Amazon's default usage plan of the operation (see the module table).
    pub fn default_plan(self) -> Plan {
        let (rate, burst) = match self {
            Self::SearchOrders => (0.0056, 20.0),
            Self::GetInventorySummaries => (2.0, 2.0),
        };
        Plan { rate, burst }
    }
}

/// A usage plan: tokens per second and bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Plan {
    pub rate: f64,
    pub burst: f64,
}

/// A seller's plan for one operation, set by a test.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanOverride {
    pub seller: String,
    pub operation: String,
    pub rate: f64,
    pub burst: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every seller's buckets, and the plans tests gave to some of them.
#[derive(Default)]
pub struct UsagePlans {
    buckets: Mutex<HashMap<(String, Operation), Bucket>>,
    overrides: Mutex<HashMap<(String, Operation), Plan>>,
}

impl UsagePlans {
    pub fn plan(&self, seller: &str, op: Operation) -> Plan {
        let overrides = self.overrides.lock().expect("plans lock");
        overrides
            .get(&(seller.to_owned(), op))
            .copied()
            .unwrap_or_else(|| op.default_plan())
    }

    pub fn set(&self, seller: &str, op: Operation, plan: Plan) {
        let key = (seller.to_owned(), op);
        self.overrides
            .lock()
            .expect("plans lock")
            .insert(key.clone(), plan);
        self.buckets.lock().expect("buckets lock").remove(&key);
    }

    /// Takes one token from the seller's bucket of `op`; false when it is empty (429).
    pub fn take(&self, seller: &str, op: Operation) -> bool {
        let plan = self.plan(seller, op);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("buckets lock");
        let bucket = buckets.entry((seller.to_owned(), op)).or_insert(Bucket {
            tokens: plan.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * plan.rate;
        bucket.tokens = (bucket.tokens + refill).min(plan.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
