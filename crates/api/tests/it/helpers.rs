//! `spawn_app`: the API on a random port in an isolated namespace, with a small client.

use std::net::SocketAddr;

use figment::value::Value;
use sellersync_api::Application;
use sellersync_core::testing::TestNamespace;

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
    let namespace = TestNamespace::with_overrides(overrides);
    let app = Application::build(namespace.settings.clone())
        .await
        .expect("the app builds");
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        _namespace: namespace,
    }
}

impl TestApp {
    pub fn settings(&self) -> &sellersync_core::Settings {
        &self._namespace.settings
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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
}

/// A free TCP port with nothing listening on it.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
