//! Measures publish → applied latency of the config stream over loopback: 1 000 rules,
//! 3 subscribers, N updates; prints p50/p99/max. A benchmark, not a test:
//!
//! `cargo run --release -p portcullis-stream --example fanout_latency [-- updates]`

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use portcullis_stream::{
    Publisher, StreamToken, Subscriber, SubscriberConfig, TOPIC_RULES, server,
};
use serde_json::json;
use tokio::sync::mpsc;

const RULES: usize = 1_000;
const SUBSCRIBERS: usize = 3;

fn rules(generation: usize) -> Vec<serde_json::Value> {
    (0..RULES)
        .map(|i| {
            json!({
                "id": format!("rule-{i}.default"),
                "match": {"url": format!("http://app.example/r{i}/<.*>"), "methods": ["GET", "POST"]},
                "upstream": {"url": "http://127.0.0.1:4460", "preserve_host": false},
                "authenticators": [{"handler": "cookie_session"}],
                "authorizer": {"handler": "allow"},
                "mutators": [{"handler": "header", "config": {"headers": {"X-User": "{{ print .Subject }}", "X-Gen": generation.to_string()}}}],
            })
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let updates: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let token = StreamToken::new("bench").context("token")?;
    let publisher = Publisher::new();
    publisher.publish(TOPIC_RULES, rules(0))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = server::router(publisher.clone(), token.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u64, Instant)>();
    let mut subscribers = Vec::new();
    for n in 0..SUBSCRIBERS {
        let config = SubscriberConfig::new(
            format!("http://{addr}/").parse()?,
            TOPIC_RULES,
            token.clone(),
        );
        let tx = tx.clone();
        subscribers.push(Subscriber::start(config, move |snapshot| {
            // Stand-in for the gateway's compile step: parse every item.
            let parsed: usize = snapshot
                .items
                .iter()
                .filter(|i| i["id"].is_string())
                .count();
            let _ = tx.send((n, snapshot.version, Instant::now()));
            if parsed == RULES {
                Ok(())
            } else {
                Err(portcullis_stream::ApplyError("short".into()))
            }
        }));
    }
    // Initial snapshot on every subscriber.
    let mut initial = 0;
    while initial < SUBSCRIBERS {
        rx.recv().await.context("subscriber ended")?;
        initial += 1;
    }

    let mut latencies = Vec::with_capacity(updates * SUBSCRIBERS);
    for generation in 1..=updates {
        let items = rules(generation);
        let started = Instant::now();
        let version = publisher.publish(TOPIC_RULES, items)?;
        let mut seen = 0;
        while seen < SUBSCRIBERS {
            let (_, v, at) = rx.recv().await.context("subscriber ended")?;
            if v == version {
                latencies.push(at.duration_since(started));
                seen += 1;
            }
        }
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "{RULES} rules, {SUBSCRIBERS} subscribers, {updates} updates: publish→applied p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(Duration::ZERO)
    );
    drop(subscribers);
    Ok(())
}
