//! whoami's session cache on PostgreSQL: it serves repeated checks without the database, and
//! every change (revocation, identity update, through any replica or straight in SQL) reaches
//! every replica's cache through the database's notifications; losing the notification
//! connection empties it. Each wait below is on an observable condition with a deadline.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use support::{Db, TestServer, api_client};

const DEADLINE: Duration = Duration::from_secs(10);

async fn sql(server: &TestServer, statement: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&server.dsn())
        .await
        .expect("connect");
    sqlx::query(statement)
        .execute(&mut conn)
        .await
        .expect(statement);
    let _ = conn.close().await;
}

/// Turns the notifying trigger on `sessions` off (to make writes nobody hears of) or on.
async fn session_trigger(server: &TestServer, on: bool) {
    let mode = if on { "ENABLE" } else { "DISABLE" };
    sql(
        server,
        &format!("ALTER TABLE sessions {mode} TRIGGER portcullis_whoami_changed"),
    )
    .await;
}

/// One value of `/metrics` on an admin base URL.
async fn metric(admin: &str, name: &str) -> f64 {
    let text = api_client()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

async fn wait_for_metric(admin: &str, name: &str, at_least: f64) {
    let start = Instant::now();
    while metric(admin, name).await < at_least {
        assert!(
            start.elapsed() < DEADLINE,
            "{name} never reached {at_least}"
        );
        tokio::task::yield_now().await;
    }
}

async fn register(public: &str, email: &str) -> (String, String, String) {
    let (status, body) = support::api_register(public, json!({"email": email})).await;
    assert_eq!(status, 200, "{body}");
    (
        body["session_token"].as_str().unwrap().to_owned(),
        body["session"]["id"].as_str().unwrap().to_owned(),
        body["identity"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Polls whoami on `public` until `done` holds for its answer.
async fn wait_for_whoami(public: &str, token: &str, done: impl Fn(u16, &Value) -> bool) {
    let start = Instant::now();
    loop {
        let (status, body) = support::api_whoami(public, token).await;
        if done(status, &body) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "whoami kept answering {status} {body}"
        );
        tokio::task::yield_now().await;
    }
}

/// whoami until one answer came from the cache (a notification of an earlier write, such as the
/// registration's, may evict the first read or keep it from being cached).
async fn until_cached(public: &str, admin: &str, token: &str) {
    let start = Instant::now();
    loop {
        let before = metric(admin, HITS).await;
        assert_eq!(support::api_whoami(public, token).await.0, 200);
        if metric(admin, HITS).await > before {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "never served from the cache");
    }
}

const HITS: &str = "portcullis_identity_whoami_cache_lookups_total{result=\"hit\"}";
const LIVE: &str = "portcullis_identity_whoami_cache_live";
const LISTENS: &str = "portcullis_identity_whoami_cache_listens_total";

/// A server on PostgreSQL whose cache entries never expire within a test: only notifications
/// and writes evict. `None` when PostgreSQL is unreachable outside CI.
async fn start_without_expiry() -> Option<TestServer> {
    support::start(Db::Postgres, |c| {
        c.portcullis.whoami_cache.max_age = "1h".to_owned();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_replica_cache() {
    let Some(server) = start_without_expiry().await else {
        return;
    };
    let replica = server.replica().await;
    let replica_public = format!("http://{}", replica.public_addr);
    let replica_admin = format!("http://{}", replica.admin_addr);
    wait_for_metric(&server.admin, LIVE, 1.0).await;
    wait_for_metric(&replica_admin, LIVE, 1.0).await;

    let (token, session, identity) = register(&server.public, "ana@example.com").await;
    until_cached(&server.public, &server.admin, &token).await;

    // The hazard the triggers exist for: a write they do not see is not seen by the cache.
    session_trigger(&server, false).await;
    sql(&server, "UPDATE sessions SET active = 0").await;
    assert_eq!(
        support::api_whoami(&server.public, &token).await.0,
        200,
        "cached"
    );
    sql(&server, "UPDATE sessions SET active = 1").await;
    session_trigger(&server, true).await;

    // An identity updated through the other replica: the first replica's cache hears of it.
    let updated = api_client()
        .patch(format!("{replica_admin}/admin/identities/{identity}"))
        .json(&json!([{"op": "replace", "path": "/metadata_public", "value": {"plan": "gold"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200, "{}", updated.text().await.unwrap());
    wait_for_whoami(&server.public, &token, |s, b| {
        s == 200 && b["identity"]["metadata_public"]["plan"] == "gold"
    })
    .await;

    // A session revoked through the other replica: 401 here without waiting for any expiry.
    until_cached(&replica_public, &replica_admin, &token).await;
    let revoked = api_client()
        .delete(format!("{replica_admin}/admin/sessions/{session}"))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    // On the replica that revoked it: at once.
    assert_eq!(support::api_whoami(&replica_public, &token).await.0, 401);
    wait_for_whoami(&server.public, &token, |s, _| s == 401).await;

    // A change straight in SQL, by no replica at all.
    let (token, _, _) = register(&server.public, "bo@example.com").await;
    until_cached(&server.public, &server.admin, &token).await;
    until_cached(&replica_public, &replica_admin, &token).await;
    sql(&server, "UPDATE sessions SET active = 0").await;
    wait_for_whoami(&server.public, &token, |s, _| s == 401).await;
    wait_for_whoami(&replica_public, &token, |s, _| s == 401).await;

    replica.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_notification_connection_empties_the_cache() {
    let Some(server) = start_without_expiry().await else {
        return;
    };
    wait_for_metric(&server.admin, LIVE, 1.0).await;
    let listens = metric(&server.admin, LISTENS).await;
    let (token, _, _) = register(&server.public, "cy@example.com").await;
    until_cached(&server.public, &server.admin, &token).await;

    // Writes nobody is told about, then the listening connection dies.
    session_trigger(&server, false).await;
    sql(&server, "UPDATE sessions SET active = 0").await;
    let database = server.pg_database().expect("postgres").to_owned();
    sql(
        &server,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{database}' AND query LIKE 'LISTEN%'"
        ),
    )
    .await;
    // It listens again, having forgotten everything it held.
    wait_for_metric(&server.admin, LISTENS, listens + 1.0).await;
    wait_for_metric(&server.admin, LIVE, 1.0).await;
    assert_eq!(support::api_whoami(&server.public, &token).await.0, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_can_be_turned_off() {
    let Some(server) = support::start(Db::Postgres, |c| {
        c.portcullis.whoami_cache.enabled = false;
    })
    .await
    else {
        return;
    };
    let text = api_client()
        .get(server.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("whoami_cache"), "{text}");
    let (token, _, _) = register(&server.public, "di@example.com").await;
    assert_eq!(support::api_whoami(&server.public, &token).await.0, 200);
    session_trigger(&server, false).await;
    sql(&server, "UPDATE sessions SET active = 0").await;
    assert_eq!(
        support::api_whoami(&server.public, &token).await.0,
        401,
        "read every time"
    );
    server.stop().await;
}
