//! Redis deployments that require passwords, as managed ones do: Sentinel (the sentinels' own
//! `redis.sentinel_password` and the data nodes' `redis.password`) and Cluster.

use figment::value::Value;
use sellersync_core::CoreError;
use sellersync_core::infra::connections::connect_redis;
use sellersync_core::testing::{PrivateCluster, PrivateSentinel, SentinelPasswords, TestNamespace};
use sellersync_queue::{Queue, QueueConfig};

use crate::connections::one_job_through;

const DATA_PASSWORD: &str = "data-pw-8a1f";
const SENTINEL_PASSWORD: &str = "sentinel-pw-3c7e";

/// `overrides` with `key` set to `value` instead.
fn with(mut overrides: Vec<(&'static str, Value)>, key: &'static str, value: &str) -> TestNamespace {
    overrides.retain(|(k, _)| *k != key);
    overrides.push((key, Value::from(value)));
    TestNamespace::with_overrides(&overrides)
}

/// Signs in with `overrides` (the right passwords) and runs one job through the queue.
async fn one_job_with(overrides: Vec<(&'static str, Value)>) {
    let namespace = TestNamespace::with_overrides(&overrides);
    let conn = connect_redis(&namespace.settings.redis)
        .await
        .expect("signed in with the right passwords");
    let queue = Queue::new(conn, namespace.key_prefix(), "user-data", QueueConfig::default());
    one_job_through(&queue).await;
}

/// Connecting with `wrong` as `key` is a configuration error naming `key` (waiting would not
/// help), and the error shows no password.
async fn refused(overrides: Vec<(&'static str, Value)>, key: &'static str, wrong: &str) {
    let namespace = with(overrides, key, wrong);
    let error = connect_redis(&namespace.settings.redis)
        .await
        .err()
        .unwrap_or_else(|| panic!("a wrong {key} is refused"));
    let text = error.to_string();
    assert!(
        matches!(error, CoreError::Config { setting, .. } if setting == key),
        "{key}: {text}"
    );
    assert!(!error.is_unavailable(), "{key}: {text}");
    for secret in [wrong, DATA_PASSWORD, SENTINEL_PASSWORD] {
        assert!(!text.contains(secret), "{key}: {text}");
    }
}

#[tokio::test]
async fn the_queue_runs_through_sentinels_and_data_nodes_that_require_passwords() {
    let deployment = PrivateSentinel::start_with(SentinelPasswords {
        data: Some(DATA_PASSWORD.into()),
        sentinel: Some(SENTINEL_PASSWORD.into()),
    });

    // A wrong password, either one, is refused, naming which.
    refused(
        deployment.overrides(),
        "redis.sentinel_password",
        "wrong-sentinel-pw",
    )
    .await;
    refused(deployment.overrides(), "redis.password", "wrong-data-pw").await;

    one_job_with(deployment.overrides()).await;
}

#[tokio::test]
async fn the_queue_runs_on_a_cluster_whose_nodes_require_a_password() {
    let cluster = PrivateCluster::start_with(Some(DATA_PASSWORD));
    refused(cluster.overrides(), "redis.password", "wrong-data-pw").await;

    one_job_with(cluster.overrides()).await;
}
