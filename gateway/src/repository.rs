//! Access-rule repositories: the entries of `access_rules.repositories` (rule files and
//! directories, `http(s)://` URLs, `inline://` documents) and the one rule set they make.
//!
//! Every repository keeps its last good rules; a change of any of them installs the union of
//! all of them as one snapshot, atomically (a rule moving between repositories is never served
//! twice or not at all). A repository whose new content cannot be read or served keeps its last
//! good rules while the others go on. Files are polled by a watcher thread (so Kubernetes
//! ConfigMap symlink swaps are seen too); URLs by [`remote`], with conditional GETs.
//!
//! Readiness: a URL repository that has never loaded keeps the gateway not ready (rules that
//! would come from it answer 404 meanwhile); Oathkeeper exits instead when such a fetch fails
//! at boot.

pub mod remote;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_rules::{ParseError, Rule, RuleError};

use crate::config::Repository;
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
    /// A document is not a valid rules document.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A rule is invalid for this gateway (unknown or disabled handler, bad config).
    #[error("{source_name}: {error}")]
    Rule {
        /// The repository holding the rule.
        source_name: String,
        /// The rule and field.
        error: RuleError,
    },
}

/// How long a changed rule file must keep its content before it is loaded.
const SETTLE: Duration = Duration::from_millis(50);

/// The files of a path repository: name and content.
pub type Documents = Vec<(String, Vec<u8>)>;

/// Rules with the repository (file, URL) each came from.
pub type SourcedRules = Vec<(String, Rule)>;

/// The rule files behind one path repository (a file, or a directory's `*.json|yaml|yml`), in
/// a stable order.
fn files(repo: &std::path::Path) -> Result<Vec<PathBuf>, LoadError> {
    if !repo.is_dir() {
        return Ok(vec![repo.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(repo)
        .map_err(|error| LoadError::Read {
            path: repo.display().to_string(),
            error,
        })?
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
    Ok(entries)
}

/// The raw content of a path repository's files, with their names (to detect changes without
/// parsing).
fn read_path(repo: &std::path::Path) -> Result<Documents, LoadError> {
    files(repo)?
        .into_iter()
        .map(|file| {
            let name = file.display().to_string();
            std::fs::read(&file)
                .map(|bytes| (name.clone(), bytes))
                .map_err(|error| LoadError::Read { path: name, error })
        })
        .collect()
}

/// Parses documents read by [`read_path`].
fn parse_files(documents: &Documents) -> Result<SourcedRules, LoadError> {
    let mut rules = Vec::new();
    for (name, bytes) in documents {
        for rule in portcullis_rules::parse_rules(bytes, name)? {
            rules.push((name.clone(), rule));
        }
    }
    Ok(rules)
}

/// Parses one fetched or inline document named `name`.
pub fn parse_document(bytes: &[u8], name: &str) -> Result<SourcedRules, LoadError> {
    Ok(portcullis_rules::parse_rules(bytes, name)?
        .into_iter()
        .map(|rule| (name.to_owned(), rule))
        .collect())
}

/// The repositories of a gateway and the last good rules of each.
pub struct Repositories {
    pipeline: Arc<Pipeline>,
    list: Vec<Repository>,
    /// Last good rules per repository, in `list` order; `None` until a first good load.
    parts: Mutex<Vec<Option<SourcedRules>>>,
}

impl Repositories {
    /// The repositories of `list`, none loaded yet. URL repositories are reported to the
    /// pipeline as awaited (not ready) until their first good load.
    pub fn new(pipeline: Arc<Pipeline>, list: Vec<Repository>) -> Self {
        for repo in &list {
            if matches!(repo, Repository::Remote(_)) {
                pipeline.await_repository(&repo.describe(), "not fetched yet");
            }
        }
        Self {
            parts: Mutex::new(vec![None; list.len()]),
            pipeline,
            list,
        }
    }

    /// The pipeline the rules go to.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The configured repositories.
    pub fn list(&self) -> &[Repository] {
        &self.list
    }

    /// Replaces the rules of the repositories in `changes` and installs the union of every
    /// repository's rules. On error nothing changes (each repository keeps its last good rules).
    pub fn update(&self, changes: Vec<(usize, SourcedRules)>) -> Result<usize, LoadError> {
        let mut parts = self.parts.lock().map_err(|_| LoadError::Rule {
            source_name: "access_rules.repositories".to_owned(),
            error: RuleError {
                rule_id: String::new(),
                field: String::new(),
                message: "repository state lock poisoned".to_owned(),
            },
        })?;
        let mut next = parts.clone();
        for (index, rules) in changes {
            if let Some(slot) = next.get_mut(index) {
                *slot = Some(rules);
            }
        }
        let all: SourcedRules = next.iter().flatten().flatten().cloned().collect();
        let count = self
            .pipeline
            .install_source(Source::Files, all)
            .map_err(|(source_name, error)| LoadError::Rule { source_name, error })?;
        for (index, part) in next.iter().enumerate() {
            if part.is_some()
                && let Some(repo @ Repository::Remote(_)) = self.list.get(index)
            {
                self.pipeline.repository_loaded(&repo.describe());
            }
        }
        *parts = next;
        Ok(count)
    }

    /// Loads the local repositories (files, directories, inline documents) at once; returns the
    /// content of the path repositories for [`Repositories::watch_files`]. URL repositories are
    /// left to [`remote::RemoteRepositories`].
    pub fn load_local(&self) -> Result<Vec<Option<Documents>>, LoadError> {
        let mut changes = Vec::new();
        let mut contents = Vec::new();
        for (index, repo) in self.list.iter().enumerate() {
            match repo {
                Repository::Path(path) => {
                    let documents = read_path(path)?;
                    changes.push((index, parse_files(&documents)?));
                    contents.push(Some(documents));
                }
                Repository::Inline(bytes) => {
                    changes.push((index, parse_document(bytes, &repo.describe())?));
                    contents.push(None);
                }
                Repository::Remote(_) => contents.push(None),
            }
        }
        let count = self.update(changes)?;
        tracing::info!(rules = count, "access rules loaded");
        Ok(contents)
    }

    /// Whether any repository is an `http(s)://` URL.
    pub fn has_remote(&self) -> bool {
        self.list.iter().any(|r| matches!(r, Repository::Remote(_)))
    }

    /// Watches the path repositories and reloads on change, until the process ends. All files
    /// changed since the last look are applied together; a broken version is reported once and
    /// the last good rules of those repositories kept.
    pub fn watch_files(self: &Arc<Self>, mut last: Vec<Option<Documents>>, every: Duration) {
        if !self.list.iter().any(|r| matches!(r, Repository::Path(_))) {
            return;
        }
        let repos = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("rules-watch".to_owned())
            .spawn(move || {
                let mut unreadable = false;
                loop {
                    std::thread::sleep(every);
                    let mut changed = Vec::new();
                    let mut failed = None;
                    for (index, repo) in repos.list.iter().enumerate() {
                        let Repository::Path(path) = repo else {
                            continue;
                        };
                        match read_path(path) {
                            Ok(documents) => {
                                if last.get(index).and_then(Option::as_ref) != Some(&documents) {
                                    changed.push((index, documents));
                                }
                            }
                            Err(e) => failed = Some(e),
                        }
                    }
                    if let Some(e) = failed {
                        if !unreadable {
                            repos.pipeline.metrics().rules_rejected();
                            tracing::error!(error = %e, "access rules not reloaded, keeping the last good set");
                        }
                        unreadable = true;
                        continue;
                    }
                    unreadable = false;
                    if changed.is_empty() {
                        continue;
                    }
                    // A file seen mid-write (truncated, half written) must not be installed:
                    // look again shortly and wait for the next tick unless the content held.
                    std::thread::sleep(SETTLE.min(every));
                    let settled = changed.iter().all(|(index, documents)| {
                        matches!(repos.list.get(*index), Some(Repository::Path(path))
                            if read_path(path).is_ok_and(|again| again == *documents))
                    });
                    if !settled {
                        continue;
                    }
                    let parsed = changed
                        .iter()
                        .map(|(index, documents)| {
                            parse_files(documents).map(|rules| (*index, rules))
                        })
                        .collect::<Result<Vec<_>, _>>();
                    for (index, documents) in changed {
                        if let Some(slot) = last.get_mut(index) {
                            *slot = Some(documents);
                        }
                    }
                    match parsed.and_then(|changes| repos.update(changes)) {
                        Ok(count) => tracing::info!(rules = count, "access rules reloaded"),
                        Err(e) => {
                            repos.pipeline.metrics().rules_rejected();
                            tracing::error!(error = %e, "access rules not reloaded, keeping the last good set");
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the rule watcher; rules will not hot-reload");
        }
    }
}

/// Loads the local repositories of `repositories` into `pipeline` (URL repositories are not
/// fetched: see [`remote`]).
pub fn load(pipeline: &Arc<Pipeline>, repositories: &[Repository]) -> Result<usize, LoadError> {
    Repositories::new(Arc::clone(pipeline), repositories.to_vec()).load_local()?;
    Ok(pipeline.snapshot().rules.len())
}

/// The display form of the repositories (for logs).
pub fn describe(repositories: &[Repository]) -> String {
    repositories
        .iter()
        .map(Repository::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;

    const RULE: &str = "- id: ok\n  match: {url: 'http://a/<.*>', methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n";

    fn pipeline(dir: &std::path::Path) -> anyhow::Result<Arc<Pipeline>> {
        let doc = serde_json::json!({
            "authenticators": {"anonymous": {"enabled": true}},
            "authorizers": {"allow": {"enabled": true}},
            "mutators": {"noop": {"enabled": true}},
        });
        let config = GatewayConfig::from_value(&doc, "test", dir)?;
        Ok(Arc::new(Pipeline::new(Arc::new(config))?))
    }

    #[test]
    fn a_failed_load_keeps_the_installed_set() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("rules.yml");
        std::fs::write(&file, RULE)?;
        let pipeline = pipeline(dir.path())?;
        let repos = vec![Repository::Path(dir.path().to_path_buf())];
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

    #[test]
    fn repositories_keep_their_own_last_good_rules() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("rules.yml");
        std::fs::write(&file, RULE)?;
        let pipeline = pipeline(dir.path())?;
        let url = url::Url::parse("http://127.0.0.1:9/rules.json")?;
        let inline = RULE.replace("id: ok", "id: inline").replace("//a/", "//b/");
        let repos = Arc::new(Repositories::new(
            Arc::clone(&pipeline),
            vec![
                Repository::Path(file.clone()),
                Repository::Remote(url),
                Repository::Inline(inline.into_bytes()),
            ],
        ));
        repos.load_local()?;
        assert_eq!(pipeline.snapshot().rules.len(), 2);
        // The URL repository has not loaded: rules serve, readiness waits for it.
        assert!(!pipeline.is_ready());

        let remote = RULE.replace("id: ok", "id: remote").replace("//a/", "//c/");
        repos.update(vec![(1, parse_document(remote.as_bytes(), "remote")?)])?;
        assert_eq!(pipeline.snapshot().rules.len(), 3);
        assert!(pipeline.is_ready());

        // A remote document with an unservable rule is refused as a whole; the others stay.
        let bad = remote
            .replace("id: remote", "id: bad")
            .replace("allow", "deny");
        let mut changes = parse_document(remote.as_bytes(), "remote")?;
        changes.extend(parse_document(bad.as_bytes(), "remote")?);
        let err = repos
            .update(vec![(1, changes)])
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("remote")
                && e.contains("\"bad\"")
                && e.contains("authorizer")),
            "{err:?}"
        );
        let snapshot = pipeline.snapshot();
        assert!(snapshot.rules.find("GET", "http://c/x").is_ok());
        assert_eq!(snapshot.rules.len(), 3);
        Ok(())
    }
}
