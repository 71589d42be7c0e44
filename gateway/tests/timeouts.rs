//! `serve.proxy.timeout`: an upstream that does not answer in time is a 504, one that refuses
//! the connection a 502, both with Oathkeeper's JSON error body; real servers on loopback.

mod support;

use serde_json::{Value, json};
use support::*;

/// An upstream that accepts requests and never answers them.
async fn start_silent_upstream() -> String {
    spawn_app(axum::Router::new().fallback(std::future::pending::<&'static str>)).await
}

fn rules(slow: &str, fast: &str) -> String {
    format!(
        r#"
- id: slow
  match: {{url: "http://{{proxy}}/slow/<.*>", methods: [GET]}}
  upstream: {{url: "{slow}"}}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
- id: fast
  match: {{url: "http://{{proxy}}/fast/<.*>", methods: [GET]}}
  upstream: {{url: "{fast}"}}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
- id: refused
  match: {{url: "http://{{proxy}}/refused/<.*>", methods: [GET]}}
  upstream: {{url: "http://127.0.0.1:{dead}"}}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
"#,
        dead = free_port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_is_504_and_refused_is_502() {
    let (slow, fast) = (start_silent_upstream().await, start_upstream().await);
    let gw = Gateway::start_with_env(
        &handlers_yaml("http://127.0.0.1:9/unused"),
        &rules(&slow, &fast),
        &[("SERVE_PROXY_TIMEOUT_WRITE", "300ms")],
    )
    .await;
    let get = |path: &str| client().get(format!("{}{path}", gw.proxy)).send();

    let response = get("/fast/x").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);

    let response = get("/slow/x").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 504);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        body,
        json!({"error": {"code": 504, "status": "Gateway Timeout", "message": "The upstream service is timing out"}})
    );

    let response = get("/refused/x").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"]["code"], 502);
    assert_eq!(body["error"]["status"], "Bad Gateway");

    // The gateway keeps serving after both failures.
    let response = get("/fast/y").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
}

#[test]
fn bad_timeout_fails_start_up() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = write_files(&dir, free_port(), free_port(), "", "[]");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-gateway"))
        .args(["serve", "-c"])
        .arg(&config)
        .env("SERVE_PROXY_TIMEOUT_READ", "soon")
        .output()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("serve.proxy.timeout.read"), "{stderr}");
}
