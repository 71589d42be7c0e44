//! The browser journey: Debian's Chromium, driven headless by `e2e/browser/journey.mjs`
//! (playwright-core), through identity's built-in UI, with identity's courier mailing codes to a
//! loopback SMTP sink and the gateway guarding the demo upstream. Screenshots of every step land
//! in `target/browser-artifacts/`.
//!
//! Needs `node`, `chromium` and `npm ci` in `e2e/browser`; without them the test is skipped with
//! the reason printed, unless `CI` is set, where it fails instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_e2e::{Database, Stack, binaries};
use portcullis_smtp_sink::SmtpSink;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Why the journey cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        return Some("`node` is not installed".to_owned());
    }
    if !chromium().exists() {
        return Some(format!(
            "{} does not exist (apt-get install chromium)",
            chromium().display()
        ));
    }
    let modules = repo_root().join("e2e/browser/node_modules/playwright-core");
    if !modules.exists() {
        return Some(format!(
            "{} is missing (run `npm ci` in e2e/browser)",
            modules.display()
        ));
    }
    None
}

/// `target/browser-artifacts`, next to the test binary's profile directory.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("browser-artifacts")
}

/// Writes every mail the sink receives to `dir/<n>.json` until `stop` is set.
async fn serve_mail(
    sink: std::sync::Arc<SmtpSink>,
    dir: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut written = 0;
    loop {
        let messages = sink.messages();
        for (n, m) in messages.iter().enumerate().skip(written) {
            let json = serde_json::json!({"to": m.to, "subject": m.subject, "body": m.body});
            let tmp = dir.join(format!("{n}.tmp"));
            std::fs::write(&tmp, json.to_string()).expect("write mail");
            std::fs::rename(&tmp, dir.join(format!("{n}.json"))).expect("publish mail");
        }
        written = messages.len();
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_journey_through_the_built_in_ui() {
    if let Some(reason) = missing_prerequisite() {
        if std::env::var_os("CI").is_some() {
            panic!("the browser journey must run under CI, but {reason}");
        }
        eprintln!("skipped: {reason}; set CI=1 to make this fail");
        return;
    }
    let sink = std::sync::Arc::new(SmtpSink::start().await.expect("SMTP sink"));
    let env = [
        ("COURIER_SMTP_CONNECTION_URI", sink.connection_uri()),
        (
            "COURIER_SMTP_FROM_ADDRESS",
            "portcullis@example.com".to_owned(),
        ),
        ("SELFSERVICE_FLOWS_VERIFICATION_ENABLED", "true".to_owned()),
        ("SELFSERVICE_FLOWS_RECOVERY_ENABLED", "true".to_owned()),
        ("SELFSERVICE_METHODS_TOTP_ENABLED", "true".to_owned()),
        (
            "SELFSERVICE_METHODS_LOOKUP_SECRET_ENABLED",
            "true".to_owned(),
        ),
    ];
    let Some(stack) = Stack::start_with_env(&binaries!(), Database::Sqlite, &env).await else {
        return;
    };
    let mail_dir = stack.dir.path().join("mail");
    std::fs::create_dir_all(&mail_dir).expect("mail dir");
    let artifacts = artifacts_dir();
    if artifacts.exists() {
        std::fs::remove_dir_all(&artifacts).expect("clear old screenshots");
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mail = tokio::spawn(serve_mail(sink.clone(), mail_dir.clone(), stopped));

    let status = tokio::process::Command::new("node")
        .arg(repo_root().join("e2e/browser/journey.mjs"))
        .env("IDENTITY_URL", stack.identity_url(""))
        .env("GATEWAY_URL", stack.gateway_url(""))
        .env("MAIL_DIR", &mail_dir)
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", chromium())
        .kill_on_drop(true)
        .status()
        .await
        .expect("run node");
    let _ = stop.send(true);
    let _ = mail.await;
    println!("browser journey screenshots: {}", artifacts.display());
    assert!(
        status.success(),
        "the browser journey failed ({status}); screenshots in {}, identity log:\n{}",
        artifacts.display(),
        stack.identity.output()
    );
}
