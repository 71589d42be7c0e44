//! The config stream end to end over real loopback HTTP: an axum server fed by a `Publisher`,
//! and `Subscriber` clients. Every wait is on a condition (with a generous upper bound so a
//! broken build fails instead of hanging), never a fixed sleep.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use portcullis_stream::{
    ApplyError, Publisher, Snapshot, StreamToken, Subscriber, SubscriberConfig, TOPIC_RULES, server,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TOKEN: &str = "test-stream-token";
const PATIENCE: Duration = Duration::from_secs(20);

fn token() -> Result<StreamToken> {
    StreamToken::new(TOKEN).context("token")
}

async fn serve(publisher: Publisher, addr: SocketAddr) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = server::router(publisher, token()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}

async fn serve_any_port(publisher: Publisher) -> Result<(SocketAddr, JoinHandle<()>)> {
    serve(publisher, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

fn config(addr: SocketAddr) -> Result<SubscriberConfig> {
    let mut config =
        SubscriberConfig::new(format!("http://{addr}/").parse()?, TOPIC_RULES, token()?);
    config.min_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(200);
    Ok(config)
}

/// Waits until the subscriber's snapshot satisfies `predicate`.
async fn wait_for(
    rx: &mut watch::Receiver<Option<Arc<Snapshot>>>,
    what: &str,
    predicate: impl Fn(&Snapshot) -> bool,
) -> Result<Arc<Snapshot>> {
    let waited = tokio::time::timeout(
        PATIENCE,
        rx.wait_for(|s| s.as_deref().is_some_and(&predicate)),
    )
    .await;
    match waited {
        Ok(Ok(snapshot)) => snapshot.clone().context("snapshot"),
        Ok(Err(_)) => bail!("subscriber stopped while waiting for {what}"),
        Err(_) => bail!("gave up waiting for {what}"),
    }
}

fn ids(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .items
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn subscriber_gets_snapshot_on_connect_then_each_update() -> Result<()> {
    let publisher = Publisher::new();
    let v1 = publisher.publish(TOPIC_RULES, vec![json!({"id": "a.default"})])?;
    let (addr, _server) = serve_any_port(publisher.clone()).await?;

    let subscriber = Subscriber::start_accepting_all(config(addr)?);
    let mut rx = subscriber.watch();
    let first = wait_for(&mut rx, "first snapshot", |s| s.version == v1).await?;
    assert_eq!(ids(&first), ["a.default"]);
    assert!(subscriber.is_connected());
    assert_eq!(publisher.subscribers(TOPIC_RULES), 1);

    let v2 = publisher.publish(
        TOPIC_RULES,
        vec![json!({"id": "a.default"}), json!({"id": "b.default"})],
    )?;
    assert!(v2 > v1);
    let second = wait_for(&mut rx, "second snapshot", |s| s.version == v2).await?;
    assert_eq!(ids(&second), ["a.default", "b.default"]);
    assert_eq!(subscriber.served_version(), Some(v2));
    Ok(())
}

#[tokio::test]
async fn subscriber_waits_for_the_first_publish() -> Result<()> {
    let publisher = Publisher::new();
    let (addr, _server) = serve_any_port(publisher.clone()).await?;
    let subscriber = Subscriber::start_accepting_all(config(addr)?);
    // Connected, but the operator has not synced yet: nothing is served, nothing is wiped.
    let connected = tokio::time::timeout(PATIENCE, async {
        while publisher.subscribers(TOPIC_RULES) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(connected.is_ok(), "subscriber never connected");
    assert_eq!(subscriber.served_version(), None);
    let v1 = publisher.publish(TOPIC_RULES, vec![])?;
    wait_for(&mut subscriber.watch(), "first publish", |s| {
        s.version == v1
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn wrong_or_missing_token_is_401() -> Result<()> {
    let publisher = Publisher::new();
    publisher.publish(TOPIC_RULES, vec![])?;
    let (addr, _server) = serve_any_port(publisher.clone()).await?;
    let url = format!("http://{addr}/v1/streams/rules");
    let client = reqwest::Client::new();

    let wrong = client.get(&url).bearer_auth("not-the-token").send().await?;
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong
            .headers()
            .get("www-authenticate")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let missing = client.get(&url).send().await?;
    assert_eq!(missing.status(), 401);
    let prefix = client.get(&url).bearer_auth(&TOKEN[..4]).send().await?;
    assert_eq!(prefix.status(), 401);
    assert_eq!(publisher.subscribers(TOPIC_RULES), 0);

    let unknown = client
        .get(format!("http://{addr}/v1/streams/nope"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(unknown.status(), 404);
    Ok(())
}

#[tokio::test]
async fn subscriber_reconnects_after_server_restart() -> Result<()> {
    let first = Publisher::new();
    let v1 = first.publish(TOPIC_RULES, vec![json!({"id": "old.default"})])?;
    let (addr, server) = serve_any_port(first.clone()).await?;
    let subscriber = Subscriber::start_accepting_all(config(addr)?);
    let mut rx = subscriber.watch();
    wait_for(&mut rx, "snapshot from the first server", |s| {
        s.version == v1
    })
    .await?;

    // The operator goes away: streams are closed and the listener is gone.
    first.close_streams();
    server.abort();
    let _ = server.await;
    let mut connection = subscriber.connection();
    // Drop the borrow at once: holding a watch `Ref` would block the subscriber's writes.
    let down = tokio::time::timeout(PATIENCE, async {
        connection.wait_for(|up| !*up).await.map(|_| ())
    })
    .await;
    assert!(
        matches!(down, Ok(Ok(()))),
        "subscriber never saw the stream close"
    );
    assert_eq!(
        subscriber.served_version(),
        Some(v1),
        "last snapshot kept while disconnected"
    );

    // A new operator process on the same address, with newer content.
    let second = Publisher::new();
    second.publish(TOPIC_RULES, vec![json!({"id": "new.default"})])?;
    let (_, _server) = serve(second.clone(), addr).await?;
    let snapshot = wait_for(&mut rx, "snapshot from the restarted server", |s| {
        ids(s) == ["new.default"]
    })
    .await?;
    assert!(snapshot.version >= v1);
    Ok(())
}

#[tokio::test]
async fn subscriber_starts_from_disk_cache_when_operator_is_unreachable() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("rules.json");

    let publisher = Publisher::new();
    let v1 = publisher.publish(TOPIC_RULES, vec![json!({"id": "cached.default"})])?;
    let (addr, server) = serve_any_port(publisher.clone()).await?;
    {
        let subscriber = Subscriber::start_accepting_all(config(addr)?.with_cache_path(&cache));
        wait_for(&mut subscriber.watch(), "snapshot", |s| s.version == v1).await?;
        // The cache is written after the snapshot comes into force: wait for the file.
        tokio::time::timeout(PATIENCE, async {
            while !cache.exists() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .context("cache file never written")?;
    }
    publisher.close_streams();
    server.abort();
    let _ = server.await;

    let mut applied = Vec::new();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let subscriber = Subscriber::start(config(addr)?.with_cache_path(&cache), move |s| {
        let _ = seen_tx.send(s.version);
        Ok(())
    });
    applied.extend(seen_rx.try_iter());
    assert_eq!(applied, [v1], "the cached snapshot is applied at start");
    assert_eq!(subscriber.served_version(), Some(v1));
    assert!(!subscriber.is_connected());
    let snapshot = subscriber.snapshot().context("snapshot")?;
    assert_eq!(ids(&snapshot), ["cached.default"]);
    Ok(())
}

#[tokio::test]
async fn refused_snapshot_keeps_the_previous_one() -> Result<()> {
    let publisher = Publisher::new();
    let v1 = publisher.publish(TOPIC_RULES, vec![json!({"id": "good.default"})])?;
    let (addr, _server) = serve_any_port(publisher.clone()).await?;
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::unbounded_channel();
    let subscriber = Subscriber::start(config(addr)?, move |s| {
        if ids(s).iter().any(|id| id.starts_with("bad")) {
            let _ = refused_tx.send(s.version);
            return Err(ApplyError("does not compile".into()));
        }
        Ok(())
    });
    wait_for(&mut subscriber.watch(), "good snapshot", |s| {
        s.version == v1
    })
    .await?;

    let bad = publisher.publish(TOPIC_RULES, vec![json!({"id": "bad.default"})])?;
    let refused = tokio::time::timeout(PATIENCE, refused_rx.recv()).await?;
    assert_eq!(refused, Some(bad));
    assert_eq!(subscriber.served_version(), Some(v1));

    let v3 = publisher.publish(TOPIC_RULES, vec![json!({"id": "fixed.default"})])?;
    wait_for(&mut subscriber.watch(), "fixed snapshot", |s| {
        s.version == v3
    })
    .await?;
    Ok(())
}
