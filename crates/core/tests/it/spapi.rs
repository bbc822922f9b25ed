use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use sellersync_core::spapi::SpApiError;
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::SimConfig;

use crate::sim::{self, creds};

const US: &str = "ATVPDKIKX0DER";

fn window() -> (String, String) {
    let end = Utc::now() - TimeDelta::hours(1);
    let fmt = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (fmt(end - TimeDelta::days(10)), fmt(end))
}

#[tokio::test]
async fn pagination_collects_every_page() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig {
        page_size: 3,
        orders_per_day: 4,
        ..SimConfig::default()
    })
    .await;
    let client = sim.client(&ns);
    let (after, before) = window();
    let orders = client.orders(&creds("PAGES"), US, &after, &before).await.unwrap();

    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&Utc)
    };
    let expected = sellersync_spapi_sim::data::orders("PAGES", US, parse(&after), parse(&before), 4);
    assert!(
        expected.len() > 9,
        "several pages of 3 ({} orders)",
        expected.len()
    );
    let ids: Vec<_> = orders.iter().map(|o| o.amazon_order_id.clone()).collect();
    let expected_ids: Vec<_> = expected.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids, expected_ids);

    let inventory = client.inventory(&creds("PAGES"), US).await.unwrap();
    assert_eq!(inventory.len(), 12, "three pages of five");
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    sim.fault("THROTTLED", 429, 1, Some(1)).await;
    let started = Instant::now();
    let inventory = sim.client(&ns).inventory(&creds("THROTTLED"), US).await.unwrap();
    assert!(!inventory.is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_give_up_after_the_limit() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let client = sim.client(&ns);
    sim.fault("FLAKY", 500, 2, None).await;
    client
        .inventory(&creds("FLAKY"), US)
        .await
        .expect("succeeds on the third try");

    sim.fault("DOWN", 503, 100, None).await;
    let error = client.inventory(&creds("DOWN"), US).await.unwrap_err();
    assert!(
        matches!(
            error,
            SpApiError::Server {
                status: 503,
                attempts: 5
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_403_fails_at_once_without_retry() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    sim.fault("DENIED", 403, 100, None).await;
    let before = sim.stats().await.0;
    let error = sim.client(&ns).inventory(&creds("DENIED"), US).await.unwrap_err();
    assert!(
        matches!(error, SpApiError::Denied { status: 403, .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(sim.stats().await.0 - before, 1, "one request, no retries");
}

#[tokio::test]
async fn tokens_are_cached_and_refreshed_on_401_and_near_expiry() {
    let ns = TestNamespace::new();
    // Tokens live 61 s; the client renews them 60 s early, i.e. after about a second.
    let sim = sim::spawn(SimConfig {
        token_ttl_secs: 61,
        ..SimConfig::default()
    })
    .await;
    let client = sim.client(&ns);
    let seller = creds("TOKENS");
    client.inventory(&seller, US).await.unwrap();
    client.inventory(&seller, US).await.unwrap();
    assert_eq!(sim.stats().await.1, 1, "one token for two calls (six requests)");

    sim.fault("TOKENS", 401, 1, None).await;
    client.inventory(&seller, US).await.unwrap();
    assert_eq!(sim.stats().await.1, 2, "a 401 refreshes the token once");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.inventory(&seller, US).await.unwrap();
    assert_eq!(sim.stats().await.1, 3, "renewed before expiry");
}

#[tokio::test]
async fn an_invalid_grant_fails_without_retry() {
    let ns = TestNamespace::new();
    let sim = sim::spawn(SimConfig::default()).await;
    let error = sim
        .client(&ns)
        .inventory(&creds("REVOKED-1"), US)
        .await
        .unwrap_err();
    assert!(matches!(error, SpApiError::InvalidGrant), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(sim.stats().await, (0, 1), "one token request, no API call");
}
