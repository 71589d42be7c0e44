//! Rules from the operator's config stream (the real `portcullis-stream` server on loopback).

mod support;

use portcullis_stream::{Publisher, StreamToken, TOPIC_RULES};
use serde_json::json;
use support::*;

const HANDLERS: &str = "authenticators:\n  anonymous: {enabled: true}\nauthorizers:\n  allow: {enabled: true}\n  deny: {enabled: true}\nmutators:\n  noop: {enabled: true}\n";

fn rule(id: &str, path: &str, authorizer: &str, upstream: &str) -> serde_json::Value {
    json!({
        "id": id,
        "match": {"url": format!("http://<[^/]+>/{path}"), "methods": ["GET"]},
        "upstream": {"url": upstream},
        "authenticators": [{"handler": "anonymous"}],
        "authorizer": {"handler": authorizer},
        "mutators": [{"handler": "noop"}]
    })
}

async fn status(url: &str) -> u16 {
    client()
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_snapshots_are_served_and_bad_ones_refused() {
    let upstream = start_upstream().await;
    let publisher = Publisher::new();
    let token = StreamToken::new("stream-secret").unwrap_or_else(|| panic!("token"));
    let operator = spawn_app(portcullis_stream::server::router(publisher.clone(), token)).await;
    publisher
        .publish(
            TOPIC_RULES,
            vec![rule("orders.shop", "orders", "allow", &upstream)],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache_file = cache.path().join("rules.snapshot.json");
    let stream_url = format!("{operator}/v1/streams/rules");
    let cache_path = cache_file.display().to_string();
    let gw = Gateway::start_with_env(
        HANDLERS,
        "[]",
        &[
            ("PORTCULLIS_STREAM_URL", stream_url.as_str()),
            ("PORTCULLIS_STREAM_TOKEN", "stream-secret"),
            ("PORTCULLIS_STREAM_CACHE", cache_path.as_str()),
        ],
    )
    .await;
    let orders = format!("{}/orders", gw.proxy);
    let ready = format!("{}/health/ready", gw.api);
    eventually("the first snapshot", || async {
        status(&orders).await == 200
    })
    .await;
    assert_eq!(status(&ready).await, 200);

    // A new version replaces the stream's rules.
    publisher
        .publish(
            TOPIC_RULES,
            vec![
                rule("orders.shop", "orders", "deny", &upstream),
                rule("cart.shop", "cart", "allow", &upstream),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let cart = format!("{}/cart", gw.proxy);
    eventually("the second snapshot", || async {
        status(&cart).await == 200
    })
    .await;
    assert_eq!(status(&orders).await, 403);

    // A snapshot this gateway cannot serve (a disabled handler) is refused as a whole.
    let mut bad = rule("bad.shop", "bad", "allow", &upstream);
    bad["authenticators"] = json!([{"handler": "jwt"}]);
    publisher
        .publish(
            TOPIC_RULES,
            vec![rule("cart.shop", "cart", "deny", &upstream), bad],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = format!("{}/metrics", gw.api);
    eventually("the refused snapshot", || async {
        match client().get(&metrics).send().await {
            Ok(r) => r
                .text()
                .await
                .unwrap_or_default()
                .contains("portcullis_gateway_rule_reload_errors_total 1"),
            Err(_) => false,
        }
    })
    .await;
    assert_eq!(status(&cart).await, 200);
    assert!(
        cache_file.exists(),
        "the last good snapshot is kept on disk"
    );
}

/// A fresh cluster has no Rules yet: the operator publishes an empty snapshot, and the gateway
/// must still become ready (answering 404 to everything), or a rollout would never finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_snapshot_from_the_operator_makes_the_gateway_ready() {
    let publisher = Publisher::new();
    let token = StreamToken::new("stream-secret").unwrap_or_else(|| panic!("token"));
    let operator = spawn_app(portcullis_stream::server::router(publisher.clone(), token)).await;
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache_path = cache
        .path()
        .join("rules.snapshot.json")
        .display()
        .to_string();
    let stream_url = format!("{operator}/v1/streams/rules");
    let gw = Gateway::start_with_env(
        HANDLERS,
        "[]",
        &[
            ("PORTCULLIS_STREAM_URL", stream_url.as_str()),
            ("PORTCULLIS_STREAM_TOKEN", "stream-secret"),
            ("PORTCULLIS_STREAM_CACHE", cache_path.as_str()),
        ],
    )
    .await;
    let ready = format!("{}/health/ready", gw.api);
    // Before the operator has published anything there is nothing to serve: not ready.
    assert_eq!(status(&ready).await, 503);
    publisher
        .publish(TOPIC_RULES, Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("readiness after an empty snapshot", || async {
        status(&ready).await == 200
    })
    .await;
    assert_eq!(status(&format!("{}/anything", gw.proxy)).await, 404);
}

#[test]
fn stream_url_without_token_fails_start_up() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = write_files(&dir, free_port(), free_port(), HANDLERS, "[]");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-gateway"))
        .args(["serve", "-c"])
        .arg(&config)
        .env("PORTCULLIS_STREAM_URL", "http://127.0.0.1:1/")
        .env_remove("PORTCULLIS_STREAM_TOKEN")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("PORTCULLIS_STREAM_TOKEN"));
}
