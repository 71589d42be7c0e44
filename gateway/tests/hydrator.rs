//! The `hydrator` mutator against a real loopback enrichment API.

mod support;

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use support::*;

async fn hydrate(Json(mut session): Json<Value>) -> axum::response::Response {
    match session["match_context"]["regexp_capture_groups"][0].as_str() {
        Some("rename") => {
            session["subject"] = json!("someone-else");
            Json(session).into_response()
        }
        Some("fail") => StatusCode::BAD_GATEWAY.into_response(),
        _ => {
            session["extra"]["plan"] = json!("gold");
            session["header"]["X-Plan"] = json!(["gold"]);
            Json(session).into_response()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydrator_enriches_the_session_and_fails_closed() {
    let api = spawn_app(axum::Router::new().route("/hydrate", axum::routing::post(hydrate))).await;
    let config = format!(
        "authenticators:\n  anonymous: {{enabled: true}}\nauthorizers:\n  allow: {{enabled: true}}\nmutators:\n  hydrator:\n    enabled: true\n    config:\n      api: {{url: '{api}/hydrate'}}\n  header: {{enabled: true}}\n"
    );
    let rules = r#"
- id: h
  match: {url: 'http://app.example/<[a-z]+>', methods: [GET]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators:
    - handler: hydrator
    - handler: header
      config: {headers: {X-Plan-Extra: '{{ .Extra.plan }}'}}
"#;
    let gw = Gateway::start(&config, rules).await;
    let ask = |path: &'static str| {
        client()
            .get(format!("{}/decisions/{path}", gw.api))
            .header("x-forwarded-host", "app.example")
            .send()
    };
    let ok = ask("orders").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-plan"], "gold");
    assert_eq!(ok.headers()["x-plan-extra"], "gold");
    let status =
        |r: reqwest::Result<reqwest::Response>| r.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status(ask("rename").await), 500);
    assert_eq!(status(ask("fail").await), 500);
}
