//! Test support: starts the real identity service in-process on 127.0.0.1 port 0 with a fresh
//! database per test (a SQLite file in a temp dir, or a uniquely named PostgreSQL database that
//! is dropped afterwards), and the `dual_db_test!` macro that runs one body against both.

#![allow(dead_code)]

pub mod mail;

use std::path::PathBuf;

use portcullis_identity::config::Config;
use portcullis_identity::server::{self, Running};
use serde_json::{Value, json};
use sqlx::Connection;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs the same async test body against SQLite and PostgreSQL:
/// `dual_db_test!(name, body_fn)` makes `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! dual_db_test {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body($crate::support::Db::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body($crate::support::Db::Postgres).await;
            }
        }
    };
}

pub const SCHEMA: &str = include_str!("../../examples/local/identity.schema.json");

pub fn postgres_admin_url() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A running service with its own database.
pub struct TestServer {
    pub public: String,
    pub admin: String,
    running: Option<Running>,
    config: Config,
    _dir: tempfile::TempDir,
    pg_database: Option<String>,
}

impl TestServer {
    /// Stops the service and drops its PostgreSQL database.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        if let Some(name) = self.pg_database.take() {
            sqlx::any::install_default_drivers();
            if let Ok(mut conn) = sqlx::AnyConnection::connect(&postgres_admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }

    /// Stops the service and starts it again on the same database with the same config, changed
    /// by `configure` (new ports).
    pub async fn restart(&mut self, configure: impl FnOnce(&mut Config)) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let mut config = self.config.clone();
        configure(&mut config);
        let running = server::start(config, true).await.expect("server restarts");
        self.public = running.settings.public_base.clone();
        self.admin = running.settings.admin_base.clone();
        self.running = Some(running);
    }

    /// Starts another instance on the same database and config (a second replica); stop it
    /// with `Running::shutdown` before stopping this server.
    pub async fn replica(&self) -> Running {
        server::start(self.config.clone(), true)
            .await
            .expect("replica starts")
    }

    /// The DSN of this server's database.
    pub fn dsn(&self) -> String {
        self.config.dsn.clone().expect("a DSN")
    }

    /// The PostgreSQL database of this server, when it runs on PostgreSQL.
    pub fn pg_database(&self) -> Option<&str> {
        self.pg_database.as_deref()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{}", self.admin, path)
    }
}

/// The base test config: loopback listeners on port 0, the example schema, the session hook,
/// cheap argon2 parameters.
pub fn base_config(dir: &std::path::Path) -> Config {
    std::fs::write(dir.join("identity.schema.json"), SCHEMA).expect("write schema");
    let yaml = r#"
serve:
  public: {host: 127.0.0.1, port: 0}
  admin: {host: 127.0.0.1, port: 0}
identity:
  default_schema_id: default
  schemas:
    - {id: default, url: "file://identity.schema.json"}
selfservice:
  flows:
    registration:
      after:
        password:
          hooks: [{hook: session}]
hashers:
  argon2: {memory: 1MB, iterations: 1, parallelism: 1}
"#;
    let (config, warnings) =
        Config::from_str_with_env(yaml, PathBuf::from(dir), &|_| None).expect("config");
    assert!(warnings.is_empty(), "{warnings:?}");
    config
}

/// Starts a server on a fresh database; `None` when PostgreSQL is unreachable outside CI.
pub async fn start(db: Db, configure: impl FnOnce(&mut Config)) -> Option<TestServer> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = base_config(dir.path());
    let mut pg_database = None;
    config.dsn = Some(match db {
        Db::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("identity.sqlite").display()
        ),
        Db::Postgres => {
            sqlx::any::install_default_drivers();
            let admin_url = postgres_admin_url();
            let mut conn = match sqlx::AnyConnection::connect(&admin_url).await {
                Ok(c) => c,
                Err(e) => {
                    if std::env::var_os("CI").is_some() {
                        panic!("PostgreSQL at {admin_url} is unreachable and CI is set: {e}");
                    }
                    eprintln!("skipping the PostgreSQL variant: {admin_url} is unreachable: {e}");
                    return None;
                }
            };
            let name = format!("portcullis_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let _ = conn.close().await;
            let url = match admin_url.rsplit_once('/') {
                Some((base, _)) => format!("{base}/{name}"),
                None => format!("{admin_url}/{name}"),
            };
            pg_database = Some(name);
            url
        }
    });
    configure(&mut config);
    let running = server::start(config.clone(), true)
        .await
        .expect("server starts");
    Some(TestServer {
        public: running.settings.public_base.clone(),
        admin: running.settings.admin_base.clone(),
        running: Some(running),
        config,
        _dir: dir,
        pg_database,
    })
}

/// A client that does not follow redirects and keeps no cookies (an API client).
pub fn api_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A client that keeps cookies (a browser) but does not follow redirects.
pub fn browser_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client")
}

/// The password every `api_register` identity gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// Registers through the API flow at `public` (a public base URL) with the password method and
/// [`PASSWORD`]: the submit's status and body.
pub async fn api_register(public: &str, traits: Value) -> (u16, Value) {
    let flow: Value = api_client()
        .get(format!("{public}/self-service/registration/api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = api_client()
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "password": PASSWORD, "traits": traits}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A session token of a new identity with this email (registration must succeed).
pub async fn api_register_token(public: &str, email: &str) -> String {
    let (status, body) = api_register(public, json!({"email": email})).await;
    assert_eq!(status, 200, "{body}");
    body["session_token"].as_str().unwrap().to_owned()
}

/// whoami with a session token at `public`: status and body (`Null` when not JSON).
pub async fn api_whoami(public: &str, token: &str) -> (u16, Value) {
    let response = api_client()
        .get(format!("{public}/sessions/whoami"))
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
