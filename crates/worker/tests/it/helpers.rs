//! Test harness: the SP-API stand-in on a random port, settings pointing at it, and worker
//! instances (in this process, or as real processes of the binary).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use figment::value::Value;
use mongodb::Database;
use mongodb::bson::{Document, doc};
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::domain::accounts::{self, NewAccount};
use sellersync_core::domain::spapi::Region;
use sellersync_core::infra::connections::{connect_redis, mongo_database};
use sellersync_core::jobs::job_status::JOB_STATUS;
use sellersync_core::jobs::payload::Trigger;
use sellersync_core::jobs::producer::{EnqueueReport, enqueue_refresh};
use sellersync_core::testing::{TestNamespace, config_dir};
pub use sellersync_core::testing::{eventually, sigterm, wait_exit};
use sellersync_queue::Queue;
use sellersync_spapi_sim::SimConfig;
use tokio::sync::oneshot;

pub struct Env {
    pub ns: TestNamespace,
    /// The stand-in's NA host (LWA and the test controls).
    pub sim: String,
    pub db: Database,
    pub queue: Queue,
    http: reqwest::Client,
}

/// A namespace, a stand-in with `sim`, and settings with fast retries pointing at it.
pub async fn env(sim: SimConfig, extra: &[(&str, Value)]) -> Env {
    let urls = sellersync_spapi_sim::spawn(sim).await.unwrap();
    let base = urls.na.clone();
    let mut overrides: Vec<(&str, Value)> = urls
        .settings()
        .into_iter()
        .map(|(name, url)| (name, Value::from(url)))
        .collect();
    overrides.extend([
        ("spapi.initial_backoff_ms", Value::from(10)),
        ("jobs.retry_delay_ms", Value::from(50)),
        ("worker.user_busy_delay_ms", Value::from(100)),
    ]);
    overrides.extend(extra.iter().cloned());
    let ns = TestNamespace::with_overrides(&overrides);
    let db = mongo_database(&ns.settings.mongo, "it").await.unwrap();
    sellersync_core::infra::migrations::apply(&db).await.unwrap();
    let redis = connect_redis(&ns.settings.redis).await.unwrap();
    let queue = ns.settings.open_queue(redis, USER_DATA_QUEUE).unwrap();
    Env {
        ns,
        sim: base,
        db,
        queue,
        http: sellersync_core::infra::tls::http_client().build().unwrap(),
    }
}

impl Env {
    /// Users `u0..un` each with `accounts` US seller accounts named `<user>-S<j>`.
    pub async fn users(&self, n: usize, accounts_per_user: usize) -> Vec<String> {
        let mut users = Vec::new();
        for i in 0..n {
            let user = format!("u{i}");
            self.user(
                &user,
                &(0..accounts_per_user)
                    .map(|j| format!("{user}-S{j}"))
                    .collect::<Vec<_>>(),
            )
            .await;
            users.push(user);
        }
        users
    }

    pub async fn user(&self, user: &str, sellers: &[String]) {
        accounts::upsert_user(&self.db, user, true).await.unwrap();
        for seller in sellers {
            let account = NewAccount {
                user_id: user.into(),
                seller_id: seller.clone(),
                region: Region::Na,
                marketplace_id: "ATVPDKIKX0DER".into(),
                refresh_token: format!("Atzr|{seller}|rt").as_str().into(),
            };
            accounts::upsert_account(&self.db, &account).await.unwrap();
        }
    }

    pub async fn enqueue(&self, users: &[String]) -> EnqueueReport {
        enqueue_refresh(&self.queue, users, Trigger::Manual, 50)
            .await
            .unwrap()
    }

    pub async fn fault(&self, seller: &str, status: u16, count: u32) {
        let body = serde_json::json!({ "seller": seller, "status": status, "count": count });
        self.http
            .post(format!("{}/_sim/faults", self.sim))
            .json(&body)
            .send()
            .await
            .unwrap();
    }

    /// The stand-in's `GET /_sim/stats`.
    pub async fn sim_stats(&self) -> serde_json::Value {
        let response = self
            .http
            .get(format!("{}/_sim/stats", self.sim))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    pub async fn status(&self, job_id: &str) -> Document {
        self.db
            .collection::<Document>(JOB_STATUS)
            .find_one(doc! { "_id": job_id })
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub async fn count_status(&self, status: &str) -> u64 {
        self.db
            .collection::<Document>(JOB_STATUS)
            .count_documents(doc! { "status": status })
            .await
            .unwrap()
    }

    /// Starts a worker in this process; send on the returned channel to stop it.
    pub fn start_worker(&self) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let settings = self.ns.settings.clone();
        let handle = tokio::spawn(async move {
            sellersync_worker::run(settings, async move {
                let _ = stopped.await;
            })
            .await
            .expect("the worker runs and stops cleanly");
        });
        (stop, handle)
    }

    /// Starts `n` workers in this process; [`Workers::stop`] stops them.
    pub fn start_workers(&self, n: usize) -> Workers {
        Workers((0..n).map(|_| self.start_worker()).collect())
    }

    /// Waits (at most `limit`) until `n` JobStatus records are completed.
    pub async fn wait_completed(&self, n: u64, limit: Duration) {
        eventually(limit, &format!("{n} completed job statuses"), || async {
            self.count_status("completed").await == n
        })
        .await;
    }

    /// The worker binary with this environment's settings.
    pub fn spawn_worker_process(&self) -> Child {
        self.worker_command().spawn().unwrap()
    }

    /// The worker binary's command with this environment's settings (warnings only, no output
    /// captured): adjust, then spawn.
    pub fn worker_command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sellersync-worker"));
        command
            .env("SELLERSYNC_ENV", "test")
            .env("SELLERSYNC_CONFIG_DIR", config_dir())
            .env("REDIS_KEY_PREFIX", self.ns.key_prefix())
            .env("MONGODB_DATABASE", self.ns.database())
            .env(
                "SELLERSYNC_SPAPI__TOKEN_URL",
                format!("{}/auth/o2/token", self.sim),
            )
            .env("SELLERSYNC_SPAPI__ENDPOINTS__NA", &self.sim)
            .env("JOB_RETRY_DELAY", "50")
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }
}

/// The start of a fault test: an environment with `overrides` against a stand-in of 40 ms per
/// call, 16 one-account users enqueued and two workers that have completed at least 2 of them.
pub async fn sixteen_jobs_under_way(overrides: &[(&str, Value)]) -> (Env, Workers) {
    let e = env(
        SimConfig {
            latency_ms: 40,
            ..SimConfig::default()
        },
        overrides,
    )
    .await;
    let users = e.users(16, 1).await;
    e.enqueue(&users).await;
    let workers = e.start_workers(2);
    eventually(Duration::from_secs(30), "some jobs done", || async {
        e.count_status("completed").await >= 2
    })
    .await;
    (e, workers)
}

/// Workers running in this process (see [`Env::start_workers`]).
pub struct Workers(Vec<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>);

impl Workers {
    /// Stops every worker and waits until each has stopped cleanly.
    pub async fn stop(self) {
        for (stop, handle) in self.0 {
            let _ = stop.send(());
            handle.await.unwrap();
        }
    }
}
