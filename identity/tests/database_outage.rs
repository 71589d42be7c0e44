//! PostgreSQL going away and coming back: whoami and readiness answer 503 with a JSON error while
//! the database refuses connections, and the service recovers by itself when it accepts them again.

mod support;

use serde_json::{Value, json};
use sqlx::Connection;
use support::{Db, api_client};

async fn admin_exec(sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&support::postgres_admin_url())
        .await
        .expect("admin connection");
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
    let _ = conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_503_and_recovers() {
    let Some(server) = support::start(Db::Postgres, |_| {}).await else {
        return;
    };
    let name = server.pg_database().expect("postgres").to_owned();
    let flow: Value = api_client()
        .get(server.url("/self-service/registration/api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let registered: Value = api_client()
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "password": "correct horse battery staple", "traits": {"email": "olga@example.com"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["session_token"].as_str().unwrap().to_owned();

    // Take the database away: refuse new connections and drop the existing ones.
    admin_exec(&format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
    ))
    .await;
    admin_exec(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;

    let whoami = api_client()
        .get(server.url("/sessions/whoami"))
        .header("X-Session-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 503, "fail closed, and say why");
    let body: Value = whoami.json().await.unwrap();
    assert_eq!(body["error"]["code"], 503);
    assert!(body["error"]["message"].is_string());
    let ready = api_client()
        .get(server.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert!(ready["errors"]["database"].is_string());
    let alive = api_client()
        .get(server.url("/health/alive"))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);

    // Bring it back: the very next request works, no restart.
    admin_exec(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await;
    let whoami = api_client()
        .get(server.url("/sessions/whoami"))
        .header("X-Session-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    let ready = api_client()
        .get(server.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    server.stop().await;
}
