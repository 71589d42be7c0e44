//! `remote` and `remote_json` authorizers against a real loopback policy server.

mod support;

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;
use support::*;

async fn check_json(Json(payload): Json<Value>) -> impl IntoResponse {
    match (payload["subject"].as_str(), payload["resource"].as_str()) {
        (_, Some("boom")) => (StatusCode::INTERNAL_SERVER_ERROR, [("x-authz-grant", "no")]),
        (Some(USER_ID), Some("docs")) => (StatusCode::OK, [("x-authz-grant", "docs")]),
        _ => (StatusCode::FORBIDDEN, [("x-authz-grant", "no")]),
    }
}

async fn check_body(headers: HeaderMap, body: Bytes) -> StatusCode {
    let tenant_ok = headers.get("x-tenant").is_some_and(|v| v == "acme");
    if body.as_ref() == b"let me in" && tenant_ok {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    }
}

async fn start_policy() -> String {
    let app = axum::Router::new()
        .route("/check", axum::routing::post(check_json))
        .route("/body", axum::routing::post(check_body));
    spawn_app(app).await
}

fn config(whoami: &str, policy: &str) -> String {
    format!(
        r#"{handlers}
authorizers:
  allow: {{enabled: true}}
  remote:
    enabled: true
    config:
      remote: {policy}/body
      headers:
        X-Tenant: acme
        X-Empty: "{{{{ .Extra.nothing }}}}"
  remote_json:
    enabled: true
    config:
      remote: {policy}/check
      payload: '{{"subject":"{{{{ print .Subject }}}}","resource":"{{{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}}}"}}'
      forward_response_headers_to_upstream: [X-Authz-Grant]
"#,
        handlers = handlers_yaml(whoami).replace(
            "authorizers:\n  allow: {enabled: true}\n  deny: {enabled: true}\n",
            ""
        )
    )
}

const RULES: &str = r#"
- id: resources
  match: {url: 'http://app.example/r/<[a-z]+>', methods: [GET]}
  authenticators: [{handler: bearer_token}, {handler: anonymous}]
  authorizer: {handler: remote_json}
  mutators: [{handler: noop}]
- id: upload
  match: {url: 'http://app.example/upload', methods: [POST]}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: remote}
  mutators: [{handler: noop}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_json_allows_denies_and_fails_closed() {
    let whoami = start_whoami().await;
    let policy = start_policy().await;
    let gw = Gateway::start(&config(&whoami, &policy), RULES).await;
    let c = client();
    let ask = |resource: &str, token: Option<&str>| {
        let mut r = c
            .get(format!("{}/decisions/r/{resource}", gw.api))
            .header("x-forwarded-host", "app.example");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let ok = ask("docs", Some(GOOD_TOKEN))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-authz-grant"], "docs");
    let status =
        |r: reqwest::Result<reqwest::Response>| r.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(
        status(ask("docs", None).await),
        403,
        "anonymous is not allowed"
    );
    assert_eq!(status(ask("secrets", Some(GOOD_TOKEN)).await), 403);
    assert_eq!(status(ask("boom", Some(GOOD_TOKEN)).await), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forwards_the_request_body_and_unreachable_is_500() {
    let whoami = start_whoami().await;
    let policy = start_policy().await;
    let gw = Gateway::start(&config(&whoami, &policy), RULES).await;
    let post = |body: &'static str| {
        client()
            .post(format!("{}/decisions/upload", gw.api))
            .header("x-forwarded-host", "app.example")
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    let status =
        |r: reqwest::Result<reqwest::Response>| r.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status(post("let me in").await), 200);
    assert_eq!(status(post("something else").await), 403);

    let dead = format!("http://127.0.0.1:{}", free_port());
    let gw = Gateway::start(&config(&whoami, &dead), RULES).await;
    let response = client()
        .post(format!("{}/decisions/upload", gw.api))
        .header("x-forwarded-host", "app.example")
        .body("let me in")
        .send()
        .await;
    assert_eq!(status(response), 500);
}

async fn echo_body(body: Bytes) -> Bytes {
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_sees_the_body_in_proxy_mode_and_upstream_still_gets_it() {
    let whoami = start_whoami().await;
    let policy = start_policy().await;
    let upstream = spawn_app(axum::Router::new().fallback(echo_body)).await;
    let rules = format!(
        "- id: upload-proxy\n  match: {{url: 'http://{{proxy}}/upload', methods: [POST]}}\n  upstream: {{url: '{upstream}'}}\n  authenticators: [{{handler: anonymous}}]\n  authorizer: {{handler: remote}}\n  mutators: [{{handler: noop}}]\n"
    );
    let gw = Gateway::start(&config(&whoami, &policy), &rules).await;
    let post = |body: Vec<u8>| {
        client()
            .post(format!("{}/upload", gw.proxy))
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    let ok = post(b"let me in".to_vec())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap_or_default(), "let me in");
    let denied = post(b"nope".to_vec())
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(denied, 403);
    let huge = post(vec![b'x'; 100 * 1024])
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(huge, 413);
}
