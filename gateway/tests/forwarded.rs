//! `serve.proxy.trust_forwarded_headers`: X-Forwarded-Proto decides the matched scheme only when
//! trusted; untrusted forwarded headers never reach the upstream.

mod support;

use serde_json::Value;
use support::*;

const HANDLERS: &str = "authenticators:\n  noop: {enabled: true}\nauthorizers:\n  allow: {enabled: true}\nmutators:\n  noop: {enabled: true}\n";

fn rules(upstream: &str) -> String {
    format!(
        "- id: secure\n  match: {{url: 'https://{{proxy}}/<.*>', methods: [GET]}}\n  upstream: {{url: '{upstream}'}}\n  authenticators: [{{handler: noop}}]\n  authorizer: {{handler: allow}}\n  mutators: [{{handler: noop}}]\n"
    )
}

async fn get(gw: &Gateway, proto: &str) -> reqwest::Response {
    client()
        .get(format!("{}/x", gw.proxy))
        .header("x-forwarded-proto", proto)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_proto_is_used_only_when_trusted() {
    let upstream = start_upstream().await;
    let untrusted = Gateway::start(HANDLERS, &rules(&upstream)).await;
    assert_eq!(
        get(&untrusted, "https").await.status(),
        404,
        "untrusted: the scheme stays http"
    );

    let trusted = Gateway::start_with_env(
        HANDLERS,
        &rules(&upstream),
        &[("SERVE_PROXY_TRUST_FORWARDED_HEADERS", "true")],
    )
    .await;
    let response = get(&trusted, "https").await;
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap_or_default();
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
    assert_eq!(echo["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(get(&trusted, "http").await.status(), 404);
}
