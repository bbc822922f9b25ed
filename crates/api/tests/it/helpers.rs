//! `spawn_app`: the API on a random port in an isolated namespace, with a small client.

use std::net::SocketAddr;

use std::time::Duration;

use figment::value::Value;
use reqwest::Method;
use sellersync_api::Application;
use sellersync_core::domain::auth::{self, Role};
use sellersync_core::testing::TestNamespace;

/// The JWT secret every test app is configured with (unless a test overrides it).
pub const SECRET: &str = "test-secret-0123456789-0123456789-abcdef";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    /// Dropped after the server task: removes the test's Redis keys and Mongo database.
    pub _namespace: TestNamespace,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Like [`spawn_app`], with settings overridden by dotted key.
pub async fn spawn_app_with(overrides: &[(&str, Value)]) -> TestApp {
    spawn_app_until(overrides, std::future::pending()).await.0
}

/// An app that stops (as on SIGTERM) when [`Stopper::stop`] is called.
pub async fn spawn_stoppable_app_with(overrides: &[(&str, Value)]) -> (TestApp, Stopper) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (app, served) = spawn_app_until(overrides, async move {
        let _ = stopped.await;
    })
    .await;
    (app, Stopper { stop, served })
}

/// Stops an app from [`spawn_stoppable_app_with`].
pub struct Stopper {
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Stopper {
    /// Signals the stop and waits until `run_until_stopped` returns; how long that took.
    pub async fn stop(self) -> Duration {
        let started = std::time::Instant::now();
        self.stop.send(()).expect("the app is running");
        self.served
            .await
            .expect("the server task does not panic")
            .expect("the server stops cleanly");
        started.elapsed()
    }
}

async fn spawn_app_until(
    overrides: &[(&str, Value)],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (TestApp, tokio::task::JoinHandle<std::io::Result<()>>) {
    let mut all = vec![("auth.jwt_secret", Value::from(SECRET))];
    all.extend(overrides.iter().cloned());
    let namespace = TestNamespace::with_overrides(&all);
    let app = Application::build(namespace.settings.clone())
        .await
        .expect("the app builds");
    let addr = app.local_addr();
    let served = tokio::spawn(app.run_until_stopped(shutdown));
    let app = TestApp {
        addr,
        client: sellersync_core::infra::tls::http_client().build().unwrap(),
        _namespace: namespace,
    };
    (app, served)
}

impl TestApp {
    pub fn settings(&self) -> &sellersync_core::Settings {
        &self._namespace.settings
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `/metrics` as Prometheus scrapes it (with a viewer token).
    pub async fn scrape(&self) -> reqwest::Response {
        self.client
            .get(self.url("/metrics"))
            .bearer_auth(self.token("prometheus", Role::Viewer))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// GET `path` and return the status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// A token for `sub` with `role`, signed with the app's secret, valid for a minute.
    pub fn token(&self, sub: &str, role: Role) -> String {
        auth::mint(&self.settings().auth, sub, role, Duration::from_secs(60)).expect("a token")
    }

    pub fn admin(&self) -> String {
        self.token("ops", Role::Admin)
    }

    /// Sends `method path` with `token` (if any) and a JSON `body` (if any); returns the status
    /// and the JSON body (`Null` if the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// `method path` as an admin, without a body.
    pub async fn admin_call(&self, method: Method, path: &str) -> (u16, serde_json::Value) {
        self.call(method, path, Some(&self.admin()), None).await
    }

    /// GET `path` as an admin.
    pub async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(Method::GET, path, Some(&self.admin()), None).await
    }

    /// POST `path` as an admin, with an optional JSON body.
    pub async fn admin_post(&self, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        self.call(Method::POST, path, Some(&self.admin()), body).await
    }
}

/// A free TCP port with nothing listening on it.
pub fn closed_port() -> u16 {
    sellersync_core::testing::free_port()
}

impl TestApp {
    pub async fn db(&self) -> mongodb::Database {
        sellersync_core::infra::connections::mongo_database(&self.settings().mongo, "it")
            .await
            .expect("mongo")
    }

    /// The app's user-data queue, for setting up jobs in a given state.
    pub async fn queue(&self) -> sellersync_queue::Queue {
        let settings = self.settings();
        let redis = sellersync_core::infra::connections::connect_redis(&settings.redis)
            .await
            .expect("redis");
        let name = sellersync_core::config::USER_DATA_QUEUE;
        settings.open_queue(redis, name).expect("configured")
    }

    /// Waits until the projector has recorded job `job_id` with `status` in JobStatus.
    pub async fn wait_for_status(
        &self,
        job_id: &str,
        status: &str,
    ) -> sellersync_core::jobs::job_status::JobStatusRecord {
        let db = self.db().await;
        let found = std::sync::Mutex::new(None);
        sellersync_core::testing::eventually(
            std::time::Duration::from_secs(10),
            &format!("job {job_id} recorded as {status}"),
            || async {
                let record = sellersync_core::jobs::job_status::find(&db, job_id)
                    .await
                    .expect("read");
                let matches = record.as_ref().is_some_and(|r| r.status.as_str() == status);
                *found.lock().unwrap() = record;
                matches
            },
        )
        .await;
        found.into_inner().unwrap().expect("found")
    }

    /// Users (with no accounts) the manual enqueue accepts.
    pub async fn add_users(&self, ids: &[&str]) {
        let db = self.db().await;
        for id in ids {
            sellersync_core::domain::accounts::upsert_user(&db, id, true)
                .await
                .expect("user");
        }
    }

    /// Enqueues `users` through the API; returns their job ids.
    pub async fn enqueue(&self, users: &[&str]) -> Vec<String> {
        let (status, body) = self
            .admin_post(
                "/app/job-status/enqueue",
                Some(serde_json::json!({ "userIds": users })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["data"]["enqueued"]
            .as_array()
            .expect("enqueued")
            .iter()
            .map(|j| j["jobId"].as_str().expect("jobId").to_owned())
            .collect()
    }
}

/// Takes up to `n` waiting jobs as worker "test" and completes them (`Ok`) or fails them for
/// good (`Err`), as a worker would. Returns the ids.
pub async fn finish_jobs(
    queue: &sellersync_queue::Queue,
    n: usize,
    outcome: Result<(), &str>,
) -> Vec<String> {
    let jobs = queue.fetch("test", n).await.expect("fetch").jobs;
    for job in &jobs {
        match outcome {
            Ok(()) => {
                let ack = sellersync_queue::Ack {
                    id: job.id.clone(),
                    token: job.token,
                    result: "null".into(),
                };
                queue.complete(&[ack]).await.expect("complete");
            }
            Err(message) => {
                queue
                    .fail(&job.id, job.token, message, false)
                    .await
                    .expect("fail");
            }
        }
    }
    jobs.into_iter().map(|j| j.id).collect()
}

// --- forged and hand-made tokens (the auth and hostile-input tests) ---------------------------

/// Now, in seconds since the epoch (a token's `iat`, `exp`, `nbf`).
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// `claims` signed HS256 with `secret` (the right one, or a forger's).
pub fn hs256(secret: &str, claims: serde_json::Value) -> String {
    auth::sign_hs256(&sellersync_core::infra::secret::Secret::new(secret), &claims).unwrap()
}

/// `claims` as an unsigned `alg: none` token.
pub fn alg_none(claims: &serde_json::Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// What [`TestApp::store_figures`] stored for an account.
pub const FIGURES_ACCOUNT: &str = "acct-us";

impl TestApp {
    /// Stores the latest figures of `user`'s account [`FIGURES_ACCOUNT`] as refreshed by job
    /// `job_id` (USD and JPY revenue, a SKU at risk of running out), with the account's outcome: a
    /// role not granted and Amazon's request id.
    pub async fn store_figures(&self, user: &str, job_id: &str) {
        use sellersync_core::domain::accounts::{
            self, AccountOutcome, AccountStatus, Fence, RefreshRecord, SellerAccount, SummaryWrite,
        };
        use sellersync_core::domain::analysis::{Amounts, SkuUnits, StockCover, Summary, Window};
        let db = self.db().await;
        accounts::upsert_user(&db, user, true).await.expect("user");
        let account = SellerAccount {
            id: FIGURES_ACCOUNT.into(),
            user_id: user.into(),
            seller_id: "SELLER-1".into(),
            region: sellersync_core::domain::spapi::Region::Na,
            marketplace_id: "ATVPDKIKX0DER".into(),
            country: "US".into(),
            refresh_token: "Atzr|figures".into(),
            enabled: true,
        };
        let end = chrono::Utc::now();
        let summary = Summary {
            window: Window {
                start: end - chrono::Duration::days(7),
                end,
            },
            order_count: 5,
            cancelled_count: 1,
            cancelled_share: 0.2,
            units: 7,
            revenue_minor: Amounts::from([("JPY".into(), 4000), ("USD".into(), 4050)]),
            average_order_value_minor: Amounts::from([("JPY".into(), 2000), ("USD".into(), 2025)]),
            top_skus: vec![SkuUnits {
                sku: "SKU-1".into(),
                units: 4,
            }],
            stockout_risk: vec![StockCover {
                sku: "SKU-1".into(),
                fulfillable: 1,
                units_per_day: 0.57,
                days_of_cover: 1.8,
            }],
            inventory_unavailable: None,
        };
        let write = SummaryWrite {
            account: &account,
            summary: &summary,
            fence: Fence::now(),
            job_id: Some(job_id),
        };
        accounts::save_summaries(&db, &[write]).await.expect("summary");
        let outcome = AccountOutcome {
            status: AccountStatus::Ok,
            at: mongodb::bson::DateTime::now(),
            error: None,
            token_fingerprint: None,
            missing_roles: vec!["getInventorySummaries".into()],
            request_id: Some("req-figures-1".into()),
            refreshed_at: Some(mongodb::bson::DateTime::now()),
        };
        let record = RefreshRecord {
            outcomes: [(FIGURES_ACCOUNT.to_owned(), outcome)].into(),
            completed: true,
            at: mongodb::bson::DateTime::now(),
        };
        accounts::record_refreshes(&db, &[(user, &record, Fence::now())])
            .await
            .expect("outcome");
    }
}
