//! The monitoring that ships in `deploy/`: the Grafana dashboard imports (the structure Grafana
//! needs: unique panel ids, a grid layout, Prometheus targets through the datasource variable),
//! and every metric the dashboard and the alert rules query is one sellersync exports: the
//! API's, read from a real `/metrics` scrape, or a worker's (named in `sellersync_core::infra::metrics`).
//! `scripts/check-monitoring` checks the PromQL itself with promtool.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::helpers::spawn_app;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy")).join(path)
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(deploy("grafana/sellersync.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every query of the dashboard.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// The `expr:` of every alert rule (one-line or `|` block).
fn alert_queries() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("prometheus/sellersync.rules.yml")).unwrap();
    let mut queries = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(expr) = line.trim().strip_prefix("expr:") else {
            continue;
        };
        let mut query = expr.trim().trim_start_matches('|').trim().to_owned();
        while let Some(next) = lines.peek() {
            let body = next.trim();
            if body.is_empty() || body.contains(": ") || body.ends_with(':') || body.starts_with('-') {
                break;
            }
            query.push(' ');
            query.push_str(body);
            lines.next();
        }
        queries.push(query);
    }
    queries
}

/// The metric names a query reads (identifiers of our families; histogram suffixes removed).
fn metric_names(query: &str) -> BTreeSet<String> {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("sellersync_") || word.starts_with("process_"))
        .map(|word| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_owned()
        })
        .collect()
}

#[test]
fn the_dashboard_has_what_grafana_needs_to_import_it() {
    let dashboard = dashboard();
    assert!(
        dashboard["uid"]
            .as_str()
            .is_some_and(|uid| !uid.is_empty() && uid.len() <= 40)
    );
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for panel in panels {
        let id = panel["id"].as_u64().expect("a numeric panel id");
        assert!(ids.insert(id), "panel id {id} is not unique");
        let kind = panel["type"].as_str().unwrap();
        assert!(["row", "timeseries", "stat"].contains(&kind), "{kind}");
        let grid = &panel["gridPos"];
        let (x, w, h) = (
            grid["x"].as_u64().unwrap(),
            grid["w"].as_u64().unwrap(),
            grid["h"].as_u64().unwrap(),
        );
        assert!(grid["y"].is_u64() && h > 0 && w > 0 && x + w <= 24, "{panel}");
        if kind == "row" {
            continue;
        }
        assert!(titles.insert(panel["title"].as_str().unwrap()), "duplicate title");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "a panel without a query: {panel}");
        for target in targets {
            assert!(
                target["refId"].is_string() && target["expr"].is_string(),
                "{target}"
            );
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{target}");
        }
    }
    // What the issue asks the dashboard to show.
    let all = dashboard_queries(&dashboard).join("\n");
    for family in [
        "sellersync_queue_jobs",
        "sellersync_queue_jobs_completed_total",
        "sellersync_queue_jobs_failed_total",
        "sellersync_queue_job_duration_seconds_bucket",
        "sellersync_spapi_requests_total",
        "sellersync_spapi_request_duration_seconds_bucket",
        "sellersync_users_refreshed_last_hour",
    ] {
        assert!(all.contains(family), "the dashboard shows {family}");
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_query_is_exported() {
    let app = spawn_app().await;
    let scrape = app.scrape().await.text().await.unwrap();
    let mut exported: BTreeSet<String> = scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    use sellersync_core::infra::metrics as m;
    exported.extend(
        [
            m::HTTP_REQUESTS,
            m::HTTP_REQUEST_DURATION,
            m::WORKER_ATTEMPTS,
            m::WORKER_ATTEMPT_DURATION,
            m::WORKER_IN_FLIGHT,
            m::WORKER_CONCURRENCY,
            m::SPAPI_REQUESTS,
            m::SPAPI_REQUEST_DURATION,
            m::SPAPI_RATE_LIMIT_WAIT,
            m::SPAPI_RATE_BOUND,
            m::JOB_STATUS_DEAD_LETTERS,
        ]
        .map(str::to_owned),
    );
    let alerts = alert_queries();
    assert_eq!(alerts.len(), 12, "{alerts:?}");
    let queries = dashboard_queries(&dashboard()).into_iter().chain(alerts);
    for query in queries {
        let names = metric_names(&query);
        for name in &names {
            assert!(exported.contains(name), "{name} (in {query}) is not exported");
        }
    }
}
