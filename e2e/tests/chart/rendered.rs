//! Rendering the chart for the chart tests: finding `helm`, running `helm template` with a
//! values file, and reading the YAML documents it prints as JSON values.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/portcullis")
}

/// The helm binary, or `None` (after saying why) when the test should be skipped.
pub fn helm() -> Result<Option<PathBuf>> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("helm"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let tools = std::env::var_os("PORTCULLIS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/tools"));
    let cached = tools.join("bin/helm");
    if let Some(found) = on_path
        .into_iter()
        .chain([cached.clone()])
        .find(|p| p.is_file())
    {
        return Ok(Some(found));
    }
    if std::env::var_os("CI").is_some() {
        bail!(
            "helm not found on PATH nor at {}; run `bash charts/test.sh --tools` first",
            cached.display()
        );
    }
    eprintln!(
        "skipping: helm not found on PATH nor at {} (run `bash charts/test.sh --tools`)",
        cached.display()
    );
    Ok(None)
}

/// The values files the chart is tested with.
pub fn values_files() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(chart_dir().join("ci")).context("read charts/portcullis/ci")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.push(test_data("secrets-in-config.yaml"));
    files.sort();
    ensure!(
        files.len() >= 4,
        "expected several values files, found {files:?}"
    );
    Ok(files)
}

pub fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/chart")
        .join(name)
}

/// `helm template` with the given values file and `--set` flags, parsed into one JSON value per
/// YAML document (empty documents dropped).
pub fn render(helm: &Path, values: &Path, sets: &[&str]) -> Result<Vec<Value>> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "portcullis"])
        .arg(chart_dir())
        .args([
            "--namespace",
            "portcullis",
            "--kube-version",
            "1.33.0",
            "-f",
        ])
        .arg(values);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd
        .output()
        .with_context(|| format!("run {}", helm.display()))?;
    ensure!(
        out.status.success(),
        "helm template -f {} failed: {}",
        values.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).context("helm output is not UTF-8")?;
    parse_documents(&text).with_context(|| format!("parse helm template -f {}", values.display()))
}

pub fn parse_documents(text: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)?;
    Ok(docs.into_iter().filter(|d| d.is_object()).collect())
}

pub fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

pub fn name(doc: &Value) -> String {
    format!(
        "{}/{}",
        kind(doc),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// The pod spec of a workload object, if it is one.
pub fn pod_spec(doc: &Value) -> Option<&Value> {
    match kind(doc) {
        "Deployment" | "StatefulSet" | "Job" | "DaemonSet" => {
            Some(&doc["spec"]["template"]["spec"])
        }
        "Pod" => Some(&doc["spec"]),
        _ => None,
    }
}

pub fn containers(spec: &Value, field: &str) -> Vec<Value> {
    spec[field].as_array().cloned().unwrap_or_default()
}
