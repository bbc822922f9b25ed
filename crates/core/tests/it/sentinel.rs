//! Redis Sentinel deployments that require passwords, as managed ones do: the sentinels' own
//! (`redis.sentinel_password`) and the data nodes' (`redis.password`).

use figment::value::Value;
use sellersync_core::CoreError;
use sellersync_core::infra::connections::connect_redis;
use sellersync_core::testing::{PrivateSentinel, SentinelPasswords, TestNamespace};
use sellersync_queue::{Queue, QueueConfig};

use crate::connections::one_job_through;

const DATA_PASSWORD: &str = "data-pw-8a1f";
const SENTINEL_PASSWORD: &str = "sentinel-pw-3c7e";

/// The deployment's settings with `key` set to `value` instead.
fn with(deployment: &PrivateSentinel, key: &'static str, value: &str) -> TestNamespace {
    let mut overrides = deployment.overrides();
    overrides.retain(|(k, _)| *k != key);
    overrides.push((key, Value::from(value)));
    TestNamespace::with_overrides(&overrides)
}

#[tokio::test]
async fn the_queue_runs_through_sentinels_and_data_nodes_that_require_passwords() {
    let deployment = PrivateSentinel::start_with(SentinelPasswords {
        data: Some(DATA_PASSWORD.into()),
        sentinel: Some(SENTINEL_PASSWORD.into()),
    });

    // A wrong password, either one, is refused as a configuration error naming that setting
    // (waiting would not help), and the error shows no password.
    for (key, wrong) in [
        ("redis.sentinel_password", "wrong-sentinel-pw"),
        ("redis.password", "wrong-data-pw"),
    ] {
        let namespace = with(&deployment, key, wrong);
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

    let namespace = TestNamespace::with_overrides(&deployment.overrides());
    let conn = connect_redis(&namespace.settings.redis)
        .await
        .expect("signed in to the sentinels and to the master they name");
    let queue = Queue::new(conn, namespace.key_prefix(), "user-data", QueueConfig::default());
    one_job_through(&queue).await;
}
