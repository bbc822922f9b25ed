//! Every benchmark subcommand at a small size, against a private Redis and MongoDB-wire server
//! that also hold a deployment's data (queue jobs under its `sellersync:` key prefix, users in its
//! `sellersync` database): each must finish, print its JSON lines, and leave everything outside
//! its own namespace (`bench:<pid>:` keys, `bench_*` databases) exactly as it was, and its own
//! namespace removed.

use std::collections::BTreeMap;
use std::process::Command;

use figment::providers::Serialized;
use futures::TryStreamExt;
use mongodb::bson::doc;
use sellersync_core::config::{Environment, Settings, USER_DATA_QUEUE};
use sellersync_core::infra::connections::{close_mongo, connect_redis, mongo_database};
use sellersync_core::testing::{PrivateMongo, PrivateRedis, config_dir};

/// The deployment's namespace the benchmarks must not touch.
const LIVE_PREFIX: &str = "sellersync:";
const LIVE_DATABASE: &str = "sellersync";

struct Servers {
    redis: PrivateRedis,
    mongo: PrivateMongo,
}

impl Servers {
    fn start() -> Self {
        Self {
            redis: PrivateRedis::start(),
            mongo: PrivateMongo::start(),
        }
    }

    /// The deployment's settings on these servers.
    fn live(&self) -> Settings {
        let figment = Settings::figment(Environment::Test, &config_dir())
            .merge(Serialized::default("redis.host", "127.0.0.1"))
            .merge(Serialized::default("redis.port", self.redis.port))
            .merge(Serialized::default("redis.key_prefix", LIVE_PREFIX))
            .merge(Serialized::default("mongo.uri", self.mongo.uri()))
            .merge(Serialized::default("mongo.database", LIVE_DATABASE));
        Settings::from_figment(Environment::Test, figment).expect("settings")
    }

    /// Waiting jobs in the live queue and users in the live database.
    async fn seed_live_data(&self) {
        let live = self.live();
        let redis = connect_redis(&live.redis).await.unwrap();
        let queue = live.open_queue(redis, USER_DATA_QUEUE).unwrap();
        for user in ["live-1", "live-2", "live-3"] {
            let payload = serde_json::json!({ "userId": user });
            queue.enqueue(&payload, Default::default()).await.unwrap();
        }
        let db = mongo_database(&live.mongo, "bench-it").await.unwrap();
        sellersync_core::infra::migrations::apply(&db).await.unwrap();
        for user in ["live-1", "live-2"] {
            sellersync_core::domain::accounts::upsert_user(&db, user, true)
                .await
                .unwrap();
        }
        close_mongo(&db).await;
    }

    /// Runs `sellersync-bench <args>` configured for the deployment (its prefix and database);
    /// returns the JSON lines it printed.
    fn bench(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let output = Command::new(env!("CARGO_BIN_EXE_sellersync-bench"))
            .args(args)
            .env("SELLERSYNC_ENV", "test")
            .env("SELLERSYNC_CONFIG_DIR", config_dir())
            .env_remove("REDIS_URL")
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", self.redis.port.to_string())
            .env("REDIS_KEY_PREFIX", LIVE_PREFIX)
            .env("MONGODB_URI", self.mongo.uri())
            .env("MONGODB_DATABASE", LIVE_DATABASE)
            .env("LOG_LEVEL", "warn")
            .output()
            .expect("sellersync-bench runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "sellersync-bench {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON line: {line}")))
            .collect()
    }

    /// Every key with its value (`DUMP`), and every database's collections with their document
    /// counts; `own` is told which are the benchmark's.
    async fn snapshot(&self) -> Snapshot {
        let live = self.live();
        let mut redis = connect_redis(&live.redis).await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut redis).await.unwrap();
        let mut values = BTreeMap::new();
        for key in keys {
            let dumped: Vec<u8> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap();
            values.insert(key, dumped);
        }
        let db = mongo_database(&live.mongo, "bench-it").await.unwrap();
        let client = db.client().clone();
        let mut databases = BTreeMap::new();
        for name in client.list_database_names().await.unwrap() {
            let database = client.database(&name);
            let mut collections = BTreeMap::new();
            for collection in database.list_collection_names().await.unwrap() {
                let documents: Vec<mongodb::bson::Document> = database
                    .collection(&collection)
                    .find(doc! {})
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
                collections.insert(collection, format!("{documents:?}"));
            }
            databases.insert(name, collections);
        }
        close_mongo(&db).await;
        Snapshot { values, databases }
    }
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    values: BTreeMap<String, Vec<u8>>,
    /// Collections by database, each as the text of all its documents.
    databases: BTreeMap<String, BTreeMap<String, String>>,
}

impl Snapshot {
    /// What lies outside the benchmark's namespace.
    fn outside_bench(&self) -> Snapshot {
        Snapshot {
            values: self
                .values
                .iter()
                .filter(|(k, _)| !k.starts_with("bench:"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            databases: self
                .databases
                .iter()
                .filter(|(name, _)| !name.starts_with("bench_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    fn bench_leftovers(&self) -> Vec<String> {
        let keys = self.values.keys().filter(|k| k.starts_with("bench:")).cloned();
        let databases = self.databases.keys().filter(|d| d.starts_with("bench_")).cloned();
        keys.chain(databases).collect()
    }
}

/// Runs one subcommand at a small size; checks its output and that it touched nothing else.
async fn runs_in_its_own_namespace(args: &[&str], scenario: &str) -> Vec<serde_json::Value> {
    let servers = Servers::start();
    servers.seed_live_data().await;
    let before = servers.snapshot().await;
    assert!(
        before.values.keys().any(|k| k.starts_with(LIVE_PREFIX))
            && before.databases.contains_key(LIVE_DATABASE),
        "the deployment's data is there: {:?}",
        before.values.keys().collect::<Vec<_>>()
    );
    let lines = servers.bench(args);
    assert!(
        lines.iter().any(|l| l["scenario"] == scenario),
        "a {scenario} line among {lines:?}"
    );
    let after = servers.snapshot().await;
    assert_eq!(
        before.outside_bench(),
        after.outside_bench(),
        "sellersync-bench {args:?} changed data outside its namespace"
    );
    assert_eq!(
        after.bench_leftovers(),
        Vec::<String>::new(),
        "its own namespace is removed"
    );
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_runs_every_scenario_in_its_own_namespace() {
    let lines = runs_in_its_own_namespace(&["queue", "--jobs", "200"], "process").await;
    let scenarios: Vec<&str> = lines.iter().filter_map(|l| l["scenario"].as_str()).collect();
    for expected in [
        "enqueue_one",
        "enqueue_bulk",
        "script_cost",
        "pickup_latency",
        "crash",
        "rate_limit",
    ] {
        assert!(scenarios.contains(&expected), "{expected} in {scenarios:?}");
    }
    let crash = lines.iter().find(|l| l["scenario"] == "crash").unwrap();
    assert_eq!(
        (&crash["jobs_lost"], &crash["jobs_failed"]),
        (&0.into(), &0.into()),
        "{crash}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_runs_in_its_own_namespace() {
    let args = [
        "refresh",
        "--accounts",
        "2",
        "--orders-per-day",
        "5",
        "--latency-ms",
        "0",
        "--concurrency",
        "2",
    ];
    let lines = runs_in_its_own_namespace(&args, "refresh").await;
    assert!(lines.iter().all(|l| l["failed"] == 0), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_runs_its_workers_and_queue_in_its_own_namespace() {
    let args = [
        "e2e",
        "--users",
        "4",
        "--accounts",
        "1",
        "--latency-ms",
        "0",
        "--workers",
        "1",
        "--concurrency",
        "2",
    ];
    let lines = runs_in_its_own_namespace(&args, "e2e_refresh").await;
    assert_eq!(lines[0]["users"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn cron_enqueues_into_its_own_namespace() {
    let lines =
        runs_in_its_own_namespace(&["cron", "--users", "30", "--batch-size", "10"], "cron_tick").await;
    let line = &lines[0];
    assert_eq!(
        (
            &line["enqueued"],
            &line["job_status_records"],
            &line["checked_queued"]
        ),
        (&30.into(), &30.into(), &30.into()),
        "{line}"
    );
    assert!(line["read_model_bytes_per_user"].as_u64().unwrap() > 0, "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_scrapes_an_api_on_its_own_namespace() {
    let args = [
        "metrics",
        "--active-jobs",
        "50",
        "--scrapes",
        "10",
        "--rounds",
        "2",
    ];
    let lines = runs_in_its_own_namespace(&args, "metrics_scrape").await;
    let computations = lines[0]["computations"].as_f64().unwrap();
    assert!(
        computations <= 2.0,
        "20 scrapes in two rounds, within the cache's 2 s: {}",
        lines[0]
    );
}
