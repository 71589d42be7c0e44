//! Access-rule repositories: rule files and directories from `access_rules.repositories`.
//!
//! All files are read and concatenated into one rule set. A watcher thread re-reads them when
//! their content changes (polling, so Kubernetes ConfigMap symlink swaps are seen too) and
//! installs the new snapshot atomically; on any error the last good set keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis_rules::{ParseError, Rule, RuleError};

use crate::pipeline::{Pipeline, Source};

/// Rules that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory cannot be read.
    #[error("{path}: {error}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file is not a valid rules document.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A rule is invalid for this gateway (unknown or disabled handler, bad config).
    #[error("{source_name}: {error}")]
    Rule {
        /// The file holding the rule.
        source_name: String,
        /// The rule and field.
        error: RuleError,
    },
}

/// The rule files behind the repositories, in a stable order.
fn files(repositories: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for repo in repositories {
        let read_err = |error| LoadError::Read {
            path: repo.display().to_string(),
            error,
        };
        if repo.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(repo)
                .map_err(read_err)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"))
                })
                .collect();
            entries.sort();
            out.extend(entries);
        } else {
            out.push(repo.clone());
        }
    }
    Ok(out)
}

/// Rules with the file each came from.
pub type SourcedRules = Vec<(String, Rule)>;

/// Reads every repository: the concatenated rules and the content fingerprint.
pub fn read_all(repositories: &[PathBuf]) -> Result<(SourcedRules, Vec<u8>), LoadError> {
    let mut rules = Vec::new();
    let mut fingerprint = Vec::new();
    for file in files(repositories)? {
        let name = file.display().to_string();
        let bytes = std::fs::read(&file).map_err(|error| LoadError::Read {
            path: name.clone(),
            error,
        })?;
        fingerprint.extend_from_slice(name.as_bytes());
        fingerprint.push(0);
        fingerprint.extend_from_slice(&bytes);
        fingerprint.push(0);
        for rule in portcullis_rules::parse_rules(&bytes, &name)? {
            rules.push((name.clone(), rule));
        }
    }
    Ok((rules, fingerprint))
}

/// Loads the repositories into `pipeline`; returns the fingerprint of what was loaded.
pub fn load(pipeline: &Pipeline, repositories: &[PathBuf]) -> Result<Vec<u8>, LoadError> {
    let (rules, fingerprint) = read_all(repositories)?;
    let count = pipeline
        .install_source(Source::Files, rules)
        .map_err(|(source_name, error)| LoadError::Rule { source_name, error })?;
    tracing::info!(rules = count, "access rules loaded");
    Ok(fingerprint)
}

/// The raw content of every rule file (to detect changes without parsing).
fn fingerprint(repositories: &[PathBuf]) -> Result<Vec<u8>, LoadError> {
    let mut out = Vec::new();
    for file in files(repositories)? {
        let bytes = std::fs::read(&file).map_err(|error| LoadError::Read {
            path: file.display().to_string(),
            error,
        })?;
        out.extend_from_slice(file.display().to_string().as_bytes());
        out.push(0);
        out.extend_from_slice(&bytes);
        out.push(0);
    }
    Ok(out)
}

/// Watches the repositories and reloads on change, until the process ends. Each changed
/// version is tried once: a broken version is reported once and the last good set kept.
pub fn watch(
    pipeline: Arc<Pipeline>,
    repositories: Vec<PathBuf>,
    mut last: Vec<u8>,
    every: Duration,
) {
    if repositories.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("rules-watch".to_owned())
        .spawn(move || {
            let mut unreadable = false;
            loop {
                std::thread::sleep(every);
                let current = match fingerprint(&repositories) {
                    Ok(f) => {
                        unreadable = false;
                        f
                    }
                    Err(e) => {
                        if !unreadable {
                            pipeline.metrics().rules_rejected();
                            tracing::error!(error = %e, "access rules not reloaded, keeping the last good set");
                        }
                        unreadable = true;
                        continue;
                    }
                };
                if current == last {
                    continue;
                }
                last = current;
                if let Err(e) = load(&pipeline, &repositories) {
                    pipeline.metrics().rules_rejected();
                    tracing::error!(error = %e, "access rules not reloaded, keeping the last good set");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the rule watcher; rules will not hot-reload");
    }
}

/// The display form of a repository path (for logs).
pub fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;

    const RULE: &str = "- id: ok\n  match: {url: 'http://a/<.*>', methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n";

    #[test]
    fn a_failed_load_keeps_the_installed_set() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("rules.yml");
        std::fs::write(&file, RULE)?;
        let doc = serde_json::json!({
            "authenticators": {"anonymous": {"enabled": true}},
            "authorizers": {"allow": {"enabled": true}},
            "mutators": {"noop": {"enabled": true}},
        });
        let config = GatewayConfig::from_value(&doc, "test", dir.path())?;
        let pipeline = Pipeline::new(Arc::new(config))?;
        let repos = vec![dir.path().to_path_buf()];
        load(&pipeline, &repos)?;
        assert_eq!(pipeline.snapshot().rules.len(), 1);

        std::fs::write(&file, RULE.replace("<.*>", "<.*"))?;
        let err = load(&pipeline, &repos)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("rules.yml") && err.contains("\"ok\"") && err.contains("match.url"),
            "{err}"
        );
        assert_eq!(pipeline.snapshot().rules.len(), 1);
        assert!(pipeline.snapshot().rules.find("GET", "http://a/x").is_ok());

        std::fs::write(dir.path().join("more.json"), "[]")?;
        std::fs::write(dir.path().join("ignored.txt"), "not rules")?;
        std::fs::write(&file, RULE)?;
        load(&pipeline, &repos)?;
        assert_eq!(pipeline.snapshot().rules.len(), 1);
        Ok(())
    }
}
