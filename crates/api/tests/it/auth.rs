//! The auth matrix over every secured route of the OpenAPI document: no token, a malformed one,
//! expired, wrong key, `alg: none`, a user token on admin routes, user A reading user B; and
//! RS256 / issuer / audience when configured.

use std::time::Duration;

use figment::value::Value;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use sellersync_core::domain::auth::{self, Role};
use serde_json::json;

use crate::helpers::{SECRET, TestApp, alg_none, hs256, now, spawn_app, spawn_app_with};

/// Every (method, path) of the document that requires a token, with path parameters filled.
async fn secured_routes(app: &TestApp) -> Vec<(Method, String)> {
    let (_, document) = app.get_json("/openapi.json").await;
    let mut routes = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation["security"].as_array().is_some_and(|s| !s.is_empty()) {
                let path = path.replace("{name}", "user-data").replace(['{', '}'], "");
                routes.push((method.to_uppercase().parse().unwrap(), path));
            }
        }
    }
    assert!(routes.len() >= 23, "secured routes found: {routes:?}");
    routes
}

#[tokio::test]
async fn every_secured_route_refuses_missing_and_bad_tokens_and_user_tokens() {
    let app = spawn_app().await;
    let admin_claims = json!({ "sub": "ops", "role": "admin", "exp": now() + 60 });
    let bad_tokens = [
        ("malformed", "not.a.jwt".to_owned()),
        (
            "expired",
            hs256(
                SECRET,
                json!({ "sub": "ops", "role": "admin", "exp": now() - 3600 }),
            ),
        ),
        (
            "wrong key",
            hs256("another-secret-0123456789-0123456789", admin_claims.clone()),
        ),
        ("alg none", alg_none(&admin_claims)),
        (
            "no role",
            hs256(SECRET, json!({ "sub": "ops", "exp": now() + 60 })),
        ),
        ("no exp", hs256(SECRET, json!({ "sub": "ops", "role": "admin" }))),
    ];
    let user = app.token("u1", Role::User);
    let viewer = app.token("auditor", Role::Viewer);
    for (method, path) in secured_routes(&app).await {
        let (status, body) = app.call(method.clone(), &path, None, None).await;
        assert_eq!(status, 401, "{method} {path} without a token");
        assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        for (what, token) in &bad_tokens {
            let (status, _) = app.call(method.clone(), &path, Some(token), None).await;
            assert_eq!(status, 401, "{method} {path} with a {what} token");
        }
        // The live feed serves user tokens their own jobs: asking for another user's is 403.
        let as_user = if path == "/api/events" {
            format!("{path}?user=u2")
        } else {
            path.clone()
        };
        let (status, body) = app.call(method.clone(), &as_user, Some(&user), None).await;
        if method == Method::GET && path == "/api/jobs/id" {
            // A user token may read its own jobs: a missing one is a 404 (jobs::a_user_token_reads_its_own_jobs_only).
            assert_eq!(status, 404, "{method} {path} with a user token");
        } else {
            assert_eq!(status, 403, "{method} {path} with a user token");
            assert_eq!(body["error"]["code"], "forbidden");
        }
        if method != Method::GET {
            let (status, body) = app.call(method.clone(), &path, Some(&viewer), None).await;
            assert_eq!(status, 403, "{method} {path} with a viewer token: {body}");
        }
    }
    let scheme = app
        .client
        .get(app.url("/api/jobs"))
        .header("Authorization", format!("Basic {}", app.admin()))
        .send()
        .await
        .unwrap();
    assert_eq!(scheme.status(), 401);
}

#[tokio::test]
async fn a_user_token_reads_its_own_status_only() {
    let app = spawn_app().await;
    app.add_users(&["alice", "bob"]).await;
    let alice = app.token("alice", Role::User);
    let own = app
        .call(
            Method::GET,
            "/app/job-status/status/user/alice",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(own.0, 200);
    let other = app
        .call(Method::GET, "/app/job-status/status/user/bob", Some(&alice), None)
        .await;
    assert_eq!(other.0, 403);
    assert!(other.1["error"]["message"].as_str().unwrap().contains("own user"));
}

#[tokio::test]
async fn tokens_within_the_leeway_are_accepted() {
    let app = spawn_app().await;
    let token = hs256(
        SECRET,
        json!({ "sub": "ops", "role": "admin", "exp": now() - 30 }),
    );
    let (status, _) = app
        .call(Method::GET, "/api/jobs/stats/all", Some(&token), None)
        .await;
    assert_eq!(status, 200, "30 s past exp is inside the 60 s leeway");
}

#[tokio::test]
async fn rs256_tokens_verify_with_the_configured_public_key_and_iss_aud_are_enforced() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let app = spawn_app_with(&[
        (
            "auth.jwt_public_key_file",
            Value::from(format!("{fixtures}/jwt-test-public.pem")),
        ),
        ("auth.issuer", Value::from("https://id.example")),
        ("auth.audience", Value::from("sellersync")),
    ])
    .await;
    let private = std::fs::read(format!("{fixtures}/jwt-test-private.pem")).unwrap();
    let key = EncodingKey::from_rsa_pem(&private).unwrap();
    let rs256 = |claims: serde_json::Value| {
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
    };
    let path = "/api/jobs/stats/all";
    let good = json!({ "sub": "ops", "role": "admin", "exp": now() + 60, "iss": "https://id.example", "aud": "sellersync" });
    let (status, body) = app
        .call(Method::GET, path, Some(&rs256(good.clone())), None)
        .await;
    assert_eq!(status, 200, "{body}");

    let mut wrong_issuer = good.clone();
    wrong_issuer["iss"] = json!("https://evil.example");
    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("other-service");
    let mut no_issuer = good.clone();
    no_issuer.as_object_mut().unwrap().remove("iss");
    for claims in [wrong_issuer, wrong_audience, no_issuer] {
        let (status, _) = app
            .call(Method::GET, path, Some(&rs256(claims.clone())), None)
            .await;
        assert_eq!(status, 401, "{claims}");
    }
    // HS256 still works with the secret (minted tokens carry the configured iss/aud) ...
    let minted = auth::mint(&app.settings().auth, "ops", Role::Admin, Duration::from_secs(60)).unwrap();
    assert_eq!(app.call(Method::GET, path, Some(&minted), None).await.0, 200);
    // ... but an HS256 token signed with the public key as its secret (key confusion) is not.
    let public = std::fs::read_to_string(format!("{fixtures}/jwt-test-public.pem")).unwrap();
    let confused = hs256(&public, good);
    assert_eq!(app.call(Method::GET, path, Some(&confused), None).await.0, 401);
}

#[tokio::test]
async fn rs256_keys_are_chosen_by_kid_from_a_jwks_file_that_rotates_without_a_restart() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{fixtures}/jwt-test-jwks.json")).unwrap())
            .unwrap();
    let dir = std::env::temp_dir().join(format!("sellersync-jwks-{}-{}", std::process::id(), now()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let app = spawn_app_with(&[
        ("auth.jwks_file", Value::from(file.display().to_string())),
        ("auth.issuer", Value::from("https://id.example")),
        ("auth.audience", Value::from("sellersync")),
    ])
    .await;
    let private = std::fs::read(format!("{fixtures}/jwt-test-private.pem")).unwrap();
    let key = EncodingKey::from_rsa_pem(&private).unwrap();
    let signed = |kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let claims = json!({ "sub": "ops", "role": "admin", "exp": now() + 60, "iss": "https://id.example", "aud": "sellersync" });
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let path = "/api/jobs/stats/all";
    assert_eq!(
        app.call(Method::GET, path, Some(&signed("test-2026")), None)
            .await
            .0,
        200
    );
    assert_eq!(
        app.call(Method::GET, path, Some(&signed("unknown")), None)
            .await
            .0,
        401
    );

    // The identity provider rotates: the key is published under a new kid, the old one removed.
    let mut rotated = jwks.clone();
    rotated["keys"][0]["kid"] = json!("next-2027");
    std::fs::write(&file, rotated.to_string()).unwrap();
    sellersync_core::testing::eventually(Duration::from_secs(10), "the rotated JWKS is read", || async {
        app.call(Method::GET, path, Some(&signed("next-2027")), None)
            .await
            .0
            == 200
    })
    .await;
    assert_eq!(
        app.call(Method::GET, path, Some(&signed("test-2026")), None)
            .await
            .0,
        401,
        "the removed key no longer signs in"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreadable_public_key_stops_start_up_naming_the_setting() {
    use sellersync_core::Settings;
    use sellersync_core::config::Environment;
    let figment = Settings::figment(Environment::Test, &sellersync_core::testing::config_dir()).merge(
        figment::providers::Serialized::default("auth.jwt_public_key_file", "/nonexistent/key.pem"),
    );
    let error = Settings::from_figment(Environment::Test, figment)
        .unwrap_err()
        .to_string();
    assert!(error.contains("JWT_PUBLIC_KEY_FILE"), "{error}");
    assert!(error.contains("/nonexistent/key.pem"), "{error}");
}
