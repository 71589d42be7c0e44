//! The operator's HTTP port over real loopback HTTP: health, readiness gated on the first
//! snapshot of every topic, Prometheus metrics, and the authenticated stream.

use std::sync::Arc;

use anyhow::{Context, Result};
use portcullis_operator::metrics::Metrics;
use portcullis_stream::{Publisher, StreamToken, TOPIC_IDENTITY_SCHEMAS, TOPIC_RULES};
use serde_json::json;

async fn serve(publisher: Publisher) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let token = StreamToken::new("op-test-token").context("token")?;
    let app = portcullis_operator::http::router(publisher, Arc::new(Metrics::new()), token);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

#[tokio::test]
async fn health_is_up_and_ready_waits_for_every_topic() -> Result<()> {
    let publisher = Publisher::new();
    let base = serve(publisher.clone()).await?;
    let client = reqwest::Client::new();

    assert_eq!(
        client.get(format!("{base}/healthz")).send().await?.status(),
        200
    );
    assert_eq!(
        client.get(format!("{base}/readyz")).send().await?.status(),
        503
    );
    publisher.publish(TOPIC_RULES, vec![])?;
    assert_eq!(
        client.get(format!("{base}/readyz")).send().await?.status(),
        503
    );
    publisher.publish(TOPIC_IDENTITY_SCHEMAS, vec![])?;
    assert_eq!(
        client.get(format!("{base}/readyz")).send().await?.status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn metrics_report_served_objects_and_versions() -> Result<()> {
    let publisher = Publisher::new();
    let version = publisher.publish(
        TOPIC_RULES,
        vec![json!({"id": "a.b"}), json!({"id": "c.d"})],
    )?;
    let base = serve(publisher).await?;
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        text.contains("portcullis_operator_objects_served{topic=\"rules\"} 2"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "portcullis_operator_snapshot_version{{topic=\"rules\"}} {version}"
        )),
        "{text}"
    );
    assert!(
        text.contains("portcullis_operator_subscribers{topic=\"rules\"} 0"),
        "{text}"
    );
    assert!(text.contains("portcullis_operator_leader 0"), "{text}");
    Ok(())
}

#[tokio::test]
async fn stream_needs_the_token() -> Result<()> {
    let publisher = Publisher::new();
    publisher.publish(TOPIC_RULES, vec![])?;
    let base = serve(publisher).await?;
    let client = reqwest::Client::new();
    let denied = client
        .get(format!("{base}/v1/streams/rules"))
        .send()
        .await?;
    assert_eq!(denied.status(), 401);
    let mut allowed = client
        .get(format!("{base}/v1/streams/rules"))
        .bearer_auth("op-test-token")
        .send()
        .await?;
    assert_eq!(allowed.status(), 200);
    let first = allowed.chunk().await?.context("first frame")?;
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("event: snapshot"), "{text}");
    Ok(())
}
