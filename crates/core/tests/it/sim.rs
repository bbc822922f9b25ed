//! The SP-API stand-in on a random port, and settings that point the client at it.

use std::sync::Arc;

use sellersync_core::config::SpApiSettings;
use sellersync_core::spapi::{Credentials, Region, SpApiClient};
use sellersync_core::testing::TestNamespace;
use sellersync_spapi_sim::SimConfig;

pub struct Sim {
    pub base: String,
    http: reqwest::Client,
}

pub async fn spawn(config: SimConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, sellersync_spapi_sim::router(config))
            .await
            .unwrap()
    });
    Sim {
        base,
        http: reqwest::Client::new(),
    }
}

impl Sim {
    /// SP-API settings of `ns` pointed at this stand-in, with short backoffs.
    pub fn settings(&self, ns: &TestNamespace) -> SpApiSettings {
        let mut settings = ns.settings.spapi.clone();
        settings.token_url = format!("{}/auth/o2/token", self.base);
        settings.endpoints.na = self.base.clone();
        settings.endpoints.eu = self.base.clone();
        settings.endpoints.fe = self.base.clone();
        settings.initial_backoff_ms = 10;
        settings.max_backoff_ms = 2000;
        settings
    }

    pub fn client(&self, ns: &TestNamespace) -> Arc<SpApiClient> {
        Arc::new(SpApiClient::new(self.settings(ns)).unwrap())
    }

    /// The next `count` API calls of `seller` answer `status`.
    pub async fn fault(&self, seller: &str, status: u16, count: u32, retry_after_secs: Option<u64>) {
        let body = serde_json::json!({ "seller": seller, "status": status, "count": count, "retry_after_secs": retry_after_secs });
        let response = self
            .http
            .post(format!("{}/_sim/faults", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// (API requests, token requests) served so far.
    pub async fn stats(&self) -> (u64, u64) {
        let stats: serde_json::Value = self
            .http
            .get(format!("{}/_sim/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            stats["apiRequests"].as_u64().unwrap(),
            stats["tokenRequests"].as_u64().unwrap(),
        )
    }
}

pub fn creds(seller: &str) -> Credentials {
    Credentials {
        account_id: format!("acct-{seller}"),
        region: Region::Na,
        refresh_token: format!("Atzr|{seller}|s3cr3t-refresh-{seller}").as_str().into(),
    }
}
