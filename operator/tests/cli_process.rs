//! The `portcullis-operator` binary as a process: `--help`, and failing closed without a
//! stream token or a cluster.

use std::process::Command;

use anyhow::Result;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis-operator");

#[test]
fn help_lists_the_flags_and_the_token_variable() -> Result<()> {
    let output = Command::new(BIN).arg("--help").output()?;
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--listen",
        "--namespace",
        "--oathkeeper-compat",
        "--matching-strategy",
        "PORTCULLIS_STREAM_TOKEN",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    Ok(())
}

#[test]
fn refuses_to_start_without_a_stream_token() -> Result<()> {
    let output = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("PORTCULLIS_STREAM_TOKEN")
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("PORTCULLIS_STREAM_TOKEN"), "{log}");
    Ok(())
}

#[test]
fn exits_with_an_error_without_a_cluster() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let output = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_STREAM_TOKEN", "t")
        .env("KUBECONFIG", dir.path().join("missing"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(!log.contains("\"t\""), "the token must never be logged");
    Ok(())
}
