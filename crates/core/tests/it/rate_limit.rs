//! The Redis token buckets (`core::rate_limit`) on the real Redis: burst, refill, reservations in
//! turn, waits beyond the budget, learned rates and refusals.

use std::time::Duration;

use sellersync_core::infra::connections::connect_redis;
use sellersync_core::testing::TestNamespace;
use sellersync_queue::rate_limit::{Limit, RateLimitError, Take, TokenBuckets};

async fn buckets(ns: &TestNamespace) -> TokenBuckets {
    let redis = connect_redis(&ns.settings.redis).await.unwrap();
    TokenBuckets::new(redis, format!("{}ratelimit:test:", ns.key_prefix()))
}

const TEN_PER_SEC: Limit = Limit {
    rate_per_sec: 10.0,
    burst: 3,
};

fn within(max_wait_ms: u64) -> Take {
    Take {
        max_wait: Duration::from_millis(max_wait_ms),
        ..Take::default()
    }
}

/// `actual` is `expected_ms`, less what refilled while the test ran (a busy machine: up to 80 ms).
fn near(actual: Duration, expected_ms: u64) -> bool {
    let ms = actual.as_millis() as u64;
    ms <= expected_ms + 1 && ms + 80 >= expected_ms
}

#[tokio::test]
async fn a_burst_goes_at_once_then_reservations_wait_their_turn() {
    let ns = TestNamespace::new();
    let b = buckets(&ns).await;
    for _ in 0..3 {
        assert_eq!(
            b.reserve("x", TEN_PER_SEC, within(1000)).await.unwrap(),
            Duration::ZERO
        );
    }
    let waits = [
        b.reserve("x", TEN_PER_SEC, within(1000)).await.unwrap(),
        b.reserve("x", TEN_PER_SEC, within(1000)).await.unwrap(),
    ];
    assert!(near(waits[0], 100) && near(waits[1], 200), "{waits:?}");
    assert_eq!(
        b.reserve("y", TEN_PER_SEC, within(1000)).await.unwrap(),
        Duration::ZERO,
        "buckets are independent"
    );
}

#[tokio::test]
async fn a_wait_beyond_the_budget_reserves_nothing() {
    let ns = TestNamespace::new();
    let b = buckets(&ns).await;
    for _ in 0..3 {
        b.reserve("x", TEN_PER_SEC, within(0)).await.unwrap();
    }
    let error = b.reserve("x", TEN_PER_SEC, within(50)).await.unwrap_err();
    let RateLimitError::WaitTooLong { wait, .. } = error else {
        panic!("{error:?}")
    };
    assert!(near(wait, 100), "{wait:?}");
    // Nothing was reserved: the next caller waits the same ~100 ms, not 200.
    let next = b.reserve("x", TEN_PER_SEC, within(1000)).await.unwrap();
    assert!(near(next, 100), "{next:?}");
}

#[tokio::test]
async fn a_refusal_empties_the_bucket_and_a_learned_rate_is_shared() {
    let ns = TestNamespace::new();
    let b = buckets(&ns).await;
    let refused = Take {
        refused: true,
        ..within(5000)
    };
    let wait = b.reserve("x", TEN_PER_SEC, refused).await.unwrap();
    assert!(
        near(wait, 100),
        "a full bucket refused waits one refill interval: {wait:?}"
    );

    let learned = Take {
        learned_rate: Some(1.0),
        refused: true,
        ..within(5000)
    };
    let wait = b.reserve("y", TEN_PER_SEC, learned).await.unwrap();
    assert!(near(wait, 1000), "at the learned 1/s: {wait:?}");
    // Another process that never saw the header uses the stored rate too.
    let other = buckets(&ns).await;
    let wait = other.reserve("y", TEN_PER_SEC, within(5000)).await.unwrap();
    assert!(near(wait, 2000), "queued behind at 1/s: {wait:?}");
}

#[tokio::test]
async fn headroom_waits_for_extra_refill_but_never_beyond_a_full_bucket() {
    let ns = TestNamespace::new();
    let b = buckets(&ns).await;
    let cushioned = Take {
        headroom: Duration::from_millis(100),
        ..within(5000)
    };
    for _ in 0..3 {
        b.reserve("x", TEN_PER_SEC, cushioned).await.unwrap();
    }
    let wait = b.reserve("x", TEN_PER_SEC, cushioned).await.unwrap();
    assert!(near(wait, 200), "one token plus 100 ms of refill: {wait:?}");

    let one = Limit {
        rate_per_sec: 10.0,
        burst: 1,
    };
    assert_eq!(
        b.reserve("y", one, cushioned).await.unwrap(),
        Duration::ZERO,
        "a full bucket goes"
    );
}
