//! `oauth2_introspection` against a real loopback RFC 7662 endpoint, with its result cache.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Form;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use support::*;

async fn introspect(
    State(calls): State<Arc<AtomicUsize>>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    calls.fetch_add(1, Ordering::SeqCst);
    let base = json!({"active": true, "sub": "svc-1", "scope": "orders.read profile",
        "aud": ["api"], "iss": "https://idp.example", "client_id": "c1", "ext": {"tenant": "acme"}});
    Json(match form.get("token").map(String::as_str) {
        Some("good") => base,
        Some("refresh") => json!({"active": true, "sub": "x", "token_use": "refresh_token"}),
        Some("other-aud") => {
            json!({"active": true, "sub": "x", "aud": ["else"], "iss": "https://idp.example"})
        }
        Some("expired") => {
            json!({"active": true, "sub": "x", "exp": 1, "aud": ["api"], "iss": "https://idp.example"})
        }
        _ => json!({"active": false}),
    })
}

const RULES: &str = r#"
- id: orders
  match: {url: 'http://api.example/orders', methods: [GET]}
  authenticators: [{handler: oauth2_introspection}]
  authorizer: {handler: allow}
  mutators:
    - handler: header
      config:
        headers:
          X-User-Id: "{{ print .Subject }}"
          X-Tenant: "{{ .Extra.tenant }}"
- id: admin
  match: {url: 'http://api.example/admin', methods: [GET]}
  authenticators:
    - handler: oauth2_introspection
      config: {required_scope: [orders.write], scope_strategy: exact}
  authorizer: {handler: allow}
  mutators: [{handler: header}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_outcomes_and_cache() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/oauth2/introspect", axum::routing::post(introspect))
        .with_state(Arc::clone(&calls));
    let endpoint = format!("{}/oauth2/introspect", spawn_app(app).await);
    let config = format!(
        r#"
authenticators:
  oauth2_introspection:
    enabled: true
    config:
      introspection_url: {endpoint}
      target_audience: [api]
      trusted_issuers: [https://idp.example]
      scope_strategy: exact
      cache: {{enabled: true, ttl: 5m}}
authorizers:
  allow: {{enabled: true}}
mutators:
  header: {{enabled: true}}
"#
    );
    let gw = Gateway::start(&config, RULES).await;
    let ask = |path: &'static str, token: &'static str| {
        client()
            .get(format!("{}/decisions{path}", gw.api))
            .header("x-forwarded-host", "api.example")
            .bearer_auth(token)
            .send()
    };
    let ok = ask("/orders", "good")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-user-id"], "svc-1");
    assert_eq!(ok.headers()["x-tenant"], "acme");
    let status =
        |r: reqwest::Result<reqwest::Response>| r.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status(ask("/orders", "good").await), 200);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second request is served from the cache"
    );

    assert_eq!(status(ask("/orders", "inactive").await), 401);
    assert_eq!(status(ask("/orders", "expired").await), 401);
    assert_eq!(status(ask("/orders", "refresh").await), 403);
    assert_eq!(status(ask("/orders", "other-aud").await), 403);
    assert_eq!(
        status(ask("/admin", "good").await),
        403,
        "scope orders.write is missing"
    );
}
