//! The SP-API stand-in on random ports (one per region), settings that point the client at it,
//! and its test controls. It records every exchange, so a test can check both sides of the wire
//! against Amazon's models ([`Sim::assert_contract`]).

use std::sync::Arc;

use sellersync_core::domain::spapi::SpApiSettings;
use sellersync_core::domain::spapi::{Credentials, Region, SpApiClient};
use sellersync_core::infra::connections::{connect_redis, mongo_database};
use sellersync_core::jobs::refresh::{Caches, RefreshStore, Refresher};
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::contract::Contract;
use sellersync_spapi_sim::{Exchange, SimConfig, SimUrls};

pub struct Sim {
    /// The NA host: LWA and the test controls.
    pub base: String,
    pub urls: SimUrls,
    http: reqwest::Client,
}

pub async fn spawn(config: SimConfig) -> Sim {
    let urls = sellersync_spapi_sim::spawn(SimConfig {
        record_exchanges: true,
        ..config
    })
    .await
    .unwrap();
    Sim {
        base: urls.na.clone(),
        urls,
        http: sellersync_core::infra::tls::http_client().build().unwrap(),
    }
}

impl Sim {
    /// SP-API settings of `ns` pointed at this stand-in, with short backoffs.
    pub fn settings(&self, ns: &TestNamespace) -> SpApiSettings {
        let mut settings = ns.settings.spapi.clone();
        settings.token_url = self.urls.token_url();
        settings.endpoints.na = self.urls.na.clone();
        settings.endpoints.eu = self.urls.eu.clone();
        settings.endpoints.fe = self.urls.fe.clone();
        settings.initial_backoff = std::time::Duration::from_millis(10);
        settings.max_backoff = std::time::Duration::from_millis(2000);
        settings
    }

    /// A refresher over `ns`'s MongoDB database and Redis prefix, calling this stand-in
    /// through `spapi` ([`Sim::client`] or [`Sim::shared_client`]).
    pub async fn refresher(&self, ns: &TestNamespace, spapi: Arc<SpApiClient>) -> Refresher {
        Refresher {
            store: RefreshStore::new(mongo_database(&ns.settings.mongo, "it").await.unwrap()),
            redis: connect_redis(&ns.settings.redis).await.unwrap(),
            spapi,
            settings: ns.settings.refresh.clone(),
            caches: Caches::new(connect_redis(&ns.settings.redis).await.unwrap(), ns.key_prefix()),
        }
    }

    /// A client that paces calls only by the 429s it gets (not wired to Redis).
    pub fn client(&self, ns: &TestNamespace) -> Arc<SpApiClient> {
        Arc::new(SpApiClient::new(self.settings(ns)).unwrap())
    }

    /// A client pacing calls through the namespace's shared Redis token buckets, as the workers
    /// of one deployment do.
    pub async fn shared_client(&self, ns: &TestNamespace) -> Arc<SpApiClient> {
        let redis = connect_redis(&ns.settings.redis).await.unwrap();
        let client = SpApiClient::new(self.settings(ns)).unwrap();
        Arc::new(client.with_shared_rate_limits(redis, ns.key_prefix()))
    }

    async fn post(&self, path: &str, body: serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
    }

    /// The next `count` API calls of `seller` answer `status`.
    pub async fn fault(&self, seller: &str, status: u16, count: u32) {
        let body = serde_json::json!({ "seller": seller, "status": status, "count": count });
        self.post("/_sim/faults", body).await;
    }

    /// The next `count` calls of `seller` to `operation` answer `status`.
    pub async fn fault_on(&self, seller: &str, operation: &str, status: u16, count: u32) {
        let body =
            serde_json::json!({ "seller": seller, "status": status, "count": count, "operation": operation });
        self.post("/_sim/faults", body).await;
    }

    /// The next `count` API calls of `seller` answer 403 `Unauthorized` with `details`.
    pub async fn fault_403(&self, seller: &str, details: &str, count: u32) {
        let body = serde_json::json!({ "seller": seller, "status": 403, "count": count, "details": details });
        self.post("/_sim/faults", body).await;
    }

    /// Gives `seller` its own usage plan for `operation`.
    pub async fn plan(&self, seller: &str, operation: &str, rate: f64, burst: f64) {
        let body =
            serde_json::json!({ "seller": seller, "operation": operation, "rate": rate, "burst": burst });
        self.post("/_sim/usage-plans", body).await;
    }

    /// `seller` grants (or withholds) the role `operation` needs.
    pub async fn role(&self, seller: &str, operation: &str, granted: bool) {
        let body = serde_json::json!({ "seller": seller, "operation": operation, "granted": granted });
        self.post("/_sim/roles", body).await;
    }

    /// `seller`'s exact orders and inventory in `marketplace` (the body of `POST /_sim/orders`
    /// without `seller` and `marketplace`).
    pub async fn seed(&self, seller: &str, marketplace: &str, mut data: serde_json::Value) {
        data["seller"] = seller.into();
        data["marketplace"] = marketplace.into();
        self.post("/_sim/orders", data).await;
    }

    /// Every request and answer so far.
    pub async fn exchanges(&self) -> Vec<Exchange> {
        let url = format!("{}/_sim/exchanges", self.base);
        self.http.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// Checks every request the client sent and every answer the stand-in served against
    /// Amazon's model files; returns the exchanges checked.
    pub async fn assert_contract(&self) -> Vec<Exchange> {
        let exchanges = self.exchanges().await;
        assert!(!exchanges.is_empty(), "no SP-API call was made");
        let violations = Contract::amazon().check_all(&exchanges);
        assert!(
            violations.is_empty(),
            "against Amazon's models:\n{}",
            violations.join("\n")
        );
        exchanges
    }

    /// Checks every answer the stand-in served against Amazon's model files (not the requests:
    /// for tests that send what Amazon refuses on purpose).
    pub async fn assert_served_contract(&self) {
        let exchanges = self.exchanges().await;
        let violations = Contract::amazon().served_all(&exchanges);
        assert!(
            violations.is_empty(),
            "against Amazon's models:\n{}",
            violations.join("\n")
        );
    }

    /// `seller` withdraws the app's authorization.
    pub async fn revoke(&self, seller: &str) {
        self.post("/_sim/revoke", serde_json::json!({ "seller": seller }))
            .await;
    }

    /// What the stand-in has served so far.
    pub async fn stats(&self) -> Stats {
        let stats: serde_json::Value = self
            .http
            .get(format!("{}/_sim/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let count = |name: &str| stats[name].as_u64().unwrap();
        Stats {
            api: count("apiRequests"),
            tokens: count("tokenRequests"),
            throttled: count("throttled"),
            most_calls_of_one_seller_at_once: count("mostCallsOfOneSellerAtOnce"),
        }
    }

    /// A raw GET on the NA host with the access token `token`.
    pub async fn raw_get(&self, path_and_query: &str, token: &str) -> reqwest::Response {
        self.raw_get_at(&self.urls.na, path_and_query, token).await
    }

    /// A raw GET on the host at `base` with the access token `token`.
    pub async fn raw_get_at(&self, base: &str, path_and_query: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{base}{path_and_query}"))
            .header("x-amz-access-token", token)
            .send()
            .await
            .unwrap()
    }

    /// A fresh access token of `seller`, straight from the stand-in's LWA endpoint.
    pub async fn access_token(&self, seller: &str) -> String {
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", format!("Atzr|{seller}|x")),
            ("client_id", "c".to_owned()),
            ("client_secret", "s".to_owned()),
        ];
        let body: serde_json::Value = self
            .http
            .post(format!("{}/auth/o2/token", self.base))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

/// Requests the stand-in served: API calls, LWA token exchanges, 429s sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub api: u64,
    pub tokens: u64,
    pub throttled: u64,
    pub most_calls_of_one_seller_at_once: u64,
}

pub fn creds(seller: &str) -> Credentials {
    Credentials {
        account_id: format!("acct-{seller}"),
        seller_id: seller.to_owned(),
        region: Region::Na,
        refresh_token: format!("Atzr|{seller}|s3cr3t-refresh-{seller}").as_str().into(),
    }
}
