//! A load benchmark of the identity service, in-process over loopback HTTP:
//! whoami requests/s, password logins/s and registrations/s at the configured argon2 cost.
//!
//! `cargo run --release -p portcullis-identity --example bench -- [sqlite|postgres] [seconds] [concurrency]`
//! (PostgreSQL from `PORTCULLIS_TEST_POSTGRES_URL`, default postgres://postgres@127.0.0.1:5432/postgres).
//! Client and server share the machine, so the figures are a floor.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use portcullis_identity::config::Config;
use serde_json::{Value, json};
use sqlx::Connection;

const PASSWORD: &str = "correct horse battery staple";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let db = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("sqlite")
        .to_owned();
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("identity.schema.json"),
        include_str!("local/identity.schema.json"),
    )?;
    let yaml = "serve: {public: {host: 127.0.0.1, port: 0}, admin: {host: 127.0.0.1, port: 0}}\n\
        identity: {schemas: [{id: default, url: file://identity.schema.json}]}\n\
        selfservice: {flows: {registration: {after: {password: {hooks: [{hook: session}]}}}, \
        login: {throttle: {enabled: false}}}}\n";
    let (mut config, _) = Config::from_str_with_env(yaml, PathBuf::from(dir.path()), &|_| None)?;
    let mut pg_db = None;
    config.dsn = Some(if db == "postgres" {
        sqlx::any::install_default_drivers();
        let admin = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("portcullis_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .context("admin url")?;
        pg_db = Some((admin, name.clone()));
        format!("{base}/{name}")
    } else {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.sqlite").display()
        )
    });
    let running = portcullis_identity::server::start(config, true).await?;
    let public = running.settings.public_base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    // Hash cost at the configured (default) argon2 parameters.
    let hasher = portcullis_identity::password::Hasher::new(&Default::default())?;
    let started = Instant::now();
    for _ in 0..5 {
        hasher
            .hash(&portcullis_identity::password::Password::new(
                PASSWORD.to_owned(),
            ))
            .await?;
    }
    let hash_ms = started.elapsed().as_secs_f64() * 1000.0 / 5.0;

    // Registrations/s.
    let regs = run_for(Duration::from_secs(seconds.min(5)), concurrency.min(8), {
        let client = client.clone();
        let public = public.clone();
        move || {
            let client = client.clone();
            let public = public.clone();
            async move {
                let flow: Value = client.get(format!("{public}/self-service/registration/api")).send().await?.json().await?;
                let email = format!("{}@bench.example", uuid::Uuid::new_v4().simple());
                let r = client
                    .post(flow["ui"]["action"].as_str().context("action")?)
                    .json(&json!({"method": "password", "password": PASSWORD, "traits": {"email": email}}))
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 200, "registration {}", r.status());
                Ok(())
            }
        }
    })
    .await;

    // One account for logins and whoami.
    let flow: Value = client
        .get(format!("{public}/self-service/registration/api"))
        .send()
        .await?
        .json()
        .await?;
    let token = client
        .post(flow["ui"]["action"].as_str().context("action")?)
        .json(&json!({"method": "password", "password": PASSWORD, "traits": {"email": "bench@bench.example"}}))
        .send()
        .await?
        .json::<Value>()
        .await?["session_token"]
        .as_str()
        .context("token")?
        .to_owned();

    let logins = run_for(Duration::from_secs(seconds.min(5)), concurrency.min(8), {
        let client = client.clone();
        let public = public.clone();
        move || {
            let client = client.clone();
            let public = public.clone();
            async move {
                let flow: Value = client.get(format!("{public}/self-service/login/api")).send().await?.json().await?;
                let r = client
                    .post(flow["ui"]["action"].as_str().context("action")?)
                    .json(&json!({"method": "password", "identifier": "bench@bench.example", "password": PASSWORD}))
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 200, "login {}", r.status());
                Ok(())
            }
        }
    })
    .await;

    let whoami = run_for(Duration::from_secs(seconds), concurrency, {
        let client = client.clone();
        let url = format!("{public}/sessions/whoami");
        move || {
            let client = client.clone();
            let url = url.clone();
            let token = token.clone();
            async move {
                let r = client
                    .get(&url)
                    .header("X-Session-Token", token)
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 200, "whoami {}", r.status());
                r.bytes().await?;
                Ok(())
            }
        }
    })
    .await;

    println!("database: {db}, concurrency: {concurrency}");
    println!("argon2id hash at default parameters (64 MiB, t=1, p=1): {hash_ms:.1} ms");
    println!("registrations/s: {:.1} ({} errors)", regs.0, regs.1);
    println!("logins/s: {:.1} ({} errors)", logins.0, logins.1);
    println!("whoami/s: {:.0} ({} errors)", whoami.0, whoami.1);
    running.shutdown().await;
    if let Some((admin, name)) = pg_db {
        let mut conn = sqlx::AnyConnection::connect(&admin).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

/// Runs `make()` futures on `workers` tasks until `duration` is over; returns (ops/s, errors).
async fn run_for<F, Fut>(duration: Duration, workers: usize, make: F) -> (f64, u64)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let make = Arc::new(make);
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (make, ok, errors) = (make.clone(), ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match make().await {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        errors.load(Ordering::Relaxed),
    )
}
