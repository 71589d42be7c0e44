//! `oauth2_client_credentials` against a real loopback token endpoint.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use serde_json::json;
use support::*;

async fn token(
    State(calls): State<Arc<AtomicUsize>>,
    headers: HeaderMap,
) -> axum::response::Response {
    calls.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let decoded = auth
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    match decoded.as_str() {
        "svc:good" => {
            Json(json!({"access_token": "at", "token_type": "bearer", "expires_in": 3600}))
                .into_response()
        }
        "svc:busy" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_are_checked_at_the_token_endpoint() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/oauth2/token", axum::routing::post(token))
        .with_state(Arc::clone(&calls));
    let url = format!("{}/oauth2/token", spawn_app(app).await);
    let config = format!(
        "authenticators:\n  oauth2_client_credentials:\n    enabled: true\n    config:\n      token_url: {url}\n      cache: {{enabled: true, ttl: 1m}}\nauthorizers:\n  allow: {{enabled: true}}\nmutators:\n  header: {{enabled: true, config: {{headers: {{X-Client: '{{{{ print .Subject }}}}'}}}}}}\n"
    );
    let rules = "- id: m2m\n  match: {url: 'http://api.example/<.*>', methods: [GET]}\n  authenticators: [{handler: oauth2_client_credentials}]\n  authorizer: {handler: allow}\n  mutators: [{handler: header}]\n";
    let gw = Gateway::start(&config, rules).await;
    let ask = |user: &'static str, password: Option<&'static str>| {
        let mut r = client()
            .get(format!("{}/decisions/x", gw.api))
            .header("x-forwarded-host", "api.example");
        if let Some(p) = password {
            r = r.basic_auth(user, Some(p));
        }
        r.send()
    };
    let ok = ask("svc", Some("good"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-client"], "svc");
    let status =
        |r: reqwest::Result<reqwest::Response>| r.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status(ask("svc", Some("good")).await), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the grant is cached");
    assert_eq!(status(ask("svc", Some("wrong")).await), 401);
    assert_eq!(status(ask("svc", Some("busy")).await), 503);
    assert_eq!(
        status(ask("svc", None).await),
        401,
        "no Basic credentials: not responsible"
    );
}
