//! The real `portcullis-identity` binary: `--help`, `migrate sql -e --yes` with `DSN`, and
//! `serve -c kratos.yml` (env overrides, unknown-key warnings, graceful SIGTERM shutdown).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis-identity");

#[test]
fn help_is_available_everywhere() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "sql", "--help"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

#[test]
fn migrate_reads_dsn_from_env_and_requires_yes() {
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("db/x.sqlite").display()
    );
    let refused = Command::new(BIN)
        .args(["migrate", "sql", "-e"])
        .env("DSN", &dsn)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let out = Command::new(BIN)
        .args(["migrate", "sql", "-e", "--yes"])
        .env("DSN", &dsn)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("db/x.sqlite").exists());
    // Idempotent.
    let again = Command::new(BIN)
        .args(["migrate", "sql", "--yes", &dsn])
        .output()
        .unwrap();
    assert!(again.status.success());
}

#[tokio::test]
async fn serve_with_config_file_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("identity.schema.json"),
        include_str!("../examples/local/identity.schema.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("kratos.yml"),
        "dsn: memory\n\
         serve: {public: {host: 127.0.0.1, port: 0}, admin: {host: 127.0.0.1, port: 0}}\n\
         identity: {schemas: [{id: default, url: file://identity.schema.json}]}\n\
         courier: {smtp: {connection_uri: smtp://localhost}, channels: []}\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(dir.path().join("kratos.yml"))
        .env("LOG_FORMAT", "json")
        .env("SECRETS_COOKIE", "a-cookie-secret-of-some-length")
        .env("HASHERS_ARGON2_MEMORY", "1MB")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut warned = false;
    let mut public = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let Ok(entry) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let message = entry["fields"]["message"].as_str().unwrap_or_default();
        if message.contains("`courier.channels`") {
            warned = true;
        }
        if message == "identity service listening" {
            public = entry["fields"]["public"].as_str().map(str::to_owned);
            break;
        }
    }
    assert!(
        warned,
        "expected a warning for the unsupported courier.channels key"
    );
    let public = public.expect("listening line");
    let ready: Value = reqwest::get(format!("{public}/health/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ok");
    let reg = reqwest::get(format!("{public}/self-service/registration/api"))
        .await
        .unwrap();
    assert_eq!(reg.status(), 200);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
}
