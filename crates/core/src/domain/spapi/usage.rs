//! Staying inside Amazon's usage plans: the operations we call, their default rate and burst, and
//! the pacing of every call through a token bucket per (selling partner, operation).
//!
//! Amazon limits each operation per selling partner and application with a token bucket (usage
//! plans guide); the defaults are in each operation's model, and `x-amzn-RateLimit-Limit` on 2xx,
//! 400 and 404 answers reports the rate that applies. A 429 carries no `Retry-After`.
//!
//! With shared buckets ([`TokenBuckets`] in Redis) every worker process and every account of a
//! seller draws from the same bucket, learns the reported rate, and empties it on a 429, so the
//! next call waits at least one refill interval. Without them (a client not wired to Redis) only
//! 429s slow a call down, again by at least one refill interval. Either way a call that would wait
//! longer than its budget stops with [`SpApiError::RateBound`], for the job to be deferred.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::SpApiError;
use sellersync_queue::rate_limit::{Limit, RateLimitError, Take, TokenBuckets};

/// Amazon counts a call when it arrives, so a call sent the instant its token refilled can arrive
/// "early" when it travels faster than the one before it: calls wait for this much extra refill.
const ARRIVAL_HEADROOM: Duration = Duration::from_millis(100);

/// The SP-API operations the client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Orders v2026-01-01; default plan 0.0056 req/s, burst 20 (`orders_2026-01-01.json`).
    SearchOrders,
    /// FBA Inventory v1; default plan 2 req/s, burst 2 (`fbaInventory.json`).
    GetInventorySummaries,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Self::SearchOrders => "searchOrders",
            Self::GetInventorySummaries => "getInventorySummaries",
        }
    }

    /// Amazon's default usage plan (the "Usage Plan" table of the operation's model).
    pub fn default_limit(self) -> Limit {
        let (rate_per_sec, burst) = match self {
            Self::SearchOrders => (0.0056, 20),
            Self::GetInventorySummaries => (2.0, 2),
        };
        Limit { rate_per_sec, burst }
    }
}

/// Paces calls of one client: shared buckets if wired, plus the rates servers reported.
#[derive(Default)]
pub(super) struct Pacer {
    buckets: Option<TokenBuckets>,
    /// Rates from `x-amzn-RateLimit-Limit`, by (seller, operation).
    learned: Mutex<HashMap<(String, Operation), f64>>,
}

/// The pacing state of one call (all its attempts).
#[derive(Debug)]
pub(super) struct CallPace<'a> {
    pub seller: &'a str,
    pub op: Operation,
    /// Time spent waiting for tokens so far; the budget bounds it.
    pub waited: Duration,
    /// 429s this call received.
    pub refusals: u32,
}

impl Pacer {
    pub fn shared(buckets: TokenBuckets) -> Self {
        Self {
            buckets: Some(buckets),
            learned: Mutex::default(),
        }
    }

    fn learned(&self, seller: &str, op: Operation) -> Option<f64> {
        let learned = self.learned.lock().expect("learned rates lock");
        learned.get(&(seller.to_owned(), op)).copied()
    }

    /// The limit in force: the default plan at the rate the server last reported.
    fn limit(&self, seller: &str, op: Operation) -> Limit {
        let mut limit = op.default_limit();
        if let Some(rate) = self.learned(seller, op) {
            limit.rate_per_sec = rate;
        }
        limit
    }

    /// Remembers the rate an answer reported (`x-amzn-RateLimit-Limit`).
    pub fn learn(&self, seller: &str, op: Operation, rate: Option<f64>) {
        if let Some(rate) = rate.filter(|r| r.is_finite() && *r > 0.0) {
            let mut learned = self.learned.lock().expect("learned rates lock");
            learned.insert((seller.to_owned(), op), rate);
        }
    }

    /// Waits until the call may go: for a token of the shared bucket, and after a 429 for at
    /// least one refill interval. Fails with `RateBound` when the wait would exceed `budget`.
    pub async fn before_attempt(&self, pace: &mut CallPace<'_>, budget: Duration) -> Result<(), SpApiError> {
        let limit = self.limit(pace.seller, pace.op);
        let remaining = budget.saturating_sub(pace.waited);
        let wait = match &self.buckets {
            Some(buckets) => {
                let take = Take {
                    max_wait: remaining,
                    learned_rate: self.learned(pace.seller, pace.op),
                    refused: pace.refusals > 0,
                    headroom: ARRIVAL_HEADROOM,
                };
                let name = format!("{}:{}", pace.seller, pace.op.name());
                buckets
                    .reserve(&name, limit, take)
                    .await
                    .map_err(|e| rate_bound(e, pace.op))?
            }
            None if pace.refusals > 0 => {
                let wait = limit.refill_interval() * pace.refusals.min(8);
                if wait > remaining {
                    return Err(rate_bound_for(pace.op, wait));
                }
                wait
            }
            None => Duration::ZERO,
        };
        if !wait.is_zero() {
            metrics::histogram!(crate::infra::metrics::SPAPI_RATE_LIMIT_WAIT, "operation" => pace.op.name())
                .record(wait.as_secs_f64());
            tracing::debug!(
                operation = pace.op.name(),
                wait_ms = wait.as_millis() as u64,
                "waiting for an SP-API rate-limit token"
            );
            tokio::time::sleep(wait).await;
            pace.waited += wait;
        }
        Ok(())
    }
}

fn rate_bound(error: RateLimitError, op: Operation) -> SpApiError {
    match error {
        RateLimitError::WaitTooLong { wait, .. } => rate_bound_for(op, wait),
        RateLimitError::Redis(e) => SpApiError::RateLimiter(e.to_string()),
    }
}

/// A call given up because its rate limit would make it wait `wait` (counted in the metrics).
fn rate_bound_for(op: Operation, wait: Duration) -> SpApiError {
    metrics::counter!(crate::infra::metrics::SPAPI_RATE_BOUND, "operation" => op.name()).increment(1);
    SpApiError::RateBound {
        operation: op.name(),
        retry_after: wait,
    }
}

/// The rate in an `x-amzn-RateLimit-Limit` header value (requests per second); a value that is
/// not a positive, finite number (`-1`, `0`, `inf`, `NaN`, text) is ignored.
pub(super) fn reported_rate(headers: &reqwest::header::HeaderMap) -> Option<f64> {
    let value = headers.get("x-amzn-ratelimit-limit")?.to_str().ok()?;
    parse_rate(value)
}

fn parse_rate(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|rate| rate.is_finite() && *rate > 0.0)
}

#[cfg(test)]
mod rate_header_tests {
    use super::parse_rate;

    #[test]
    fn only_positive_finite_rates_are_taken() {
        assert_eq!(parse_rate(" 0.5 "), Some(0.5));
        for odd in ["-1", "0", "inf", "-inf", "NaN", "", "fast", "1e400"] {
            assert_eq!(parse_rate(odd), None, "{odd:?}");
        }
    }
}
