//! `http://` and `https://` access-rule repositories: fetched when the gateway starts, then
//! every `portcullis.access_rules.poll_interval` (default 30 s; Oathkeeper fetches them once).
//!
//! Each poll is a conditional GET (`If-None-Match` / `If-Modified-Since` from the last
//! installed answer); a `304`, or a `200` with the bytes already installed, changes nothing and
//! compiles nothing. New content is parsed (JSON or YAML, detected from the content as
//! Oathkeeper does, whatever the `Content-Type`) and installed with the other repositories' rules
//! as one snapshot. A failed fetch (refused, timeout, non-2xx, oversized) or content that
//! cannot be served keeps the repository's last good rules and is logged with the URL (without
//! credentials) and the rule id and field; such content is fetched and tried again at the
//! next poll. Until its first good load the repository keeps the gateway not ready and is
//! retried sooner (1 s, doubling up to the poll interval).
//!
//! HTTP goes through `reqwest` with rustls, the client stack of the JWKS fetcher and the
//! session checks; unlike theirs, this client follows redirects (as Go's client does for
//! Oathkeeper).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use reqwest::header::{ETAG, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

use super::{Repositories, parse_document};
use crate::config::Repository;

/// Bound of one fetch (connect, headers and body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest accepted document.
pub const MAX_DOCUMENT_BYTES: usize = 32 << 20;
/// First retry delay while a repository has never loaded.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// What the last installed answer of a repository was.
#[derive(Default)]
struct Installed {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
    body: Option<Vec<u8>>,
}

/// What a fetch brought.
enum Fetched {
    /// `304 Not Modified`.
    NotModified,
    /// A `2xx` answer.
    Body {
        bytes: Vec<u8>,
        etag: Option<HeaderValue>,
        last_modified: Option<HeaderValue>,
    },
}

/// A `reqwest` error with its causes (connection refused, timeout…), never the URL.
fn describe_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn fetch(
    client: &reqwest::Client,
    url: &url::Url,
    installed: &Installed,
) -> Result<Fetched, String> {
    let mut request = client.get(url.clone()).timeout(FETCH_TIMEOUT);
    if installed.body.is_some() {
        if let Some(etag) = &installed.etag {
            request = request.header(IF_NONE_MATCH, etag.clone());
        }
        if let Some(date) = &installed.last_modified {
            request = request.header(IF_MODIFIED_SINCE, date.clone());
        }
    }
    let mut response = request.send().await.map_err(describe_error)?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_MODIFIED && installed.body.is_some() {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(format!("document larger than {MAX_DOCUMENT_BYTES} bytes"));
    }
    let etag = response.headers().get(ETAG).cloned();
    let last_modified = response.headers().get(LAST_MODIFIED).cloned();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe_error)? {
        if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("document larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body {
        bytes,
        etag,
        last_modified,
    })
}

/// One poll of repository `index`.
async fn poll(
    repos: &Repositories,
    client: &reqwest::Client,
    index: usize,
    url: &url::Url,
    installed: &mut Installed,
) {
    let name = redacted(repos, index);
    let failed = |why: String| {
        repos.pipeline().metrics().rules_rejected();
        if installed.body.is_none() {
            repos.pipeline().await_repository(&name, &why);
        }
        tracing::error!(
            repository = %name,
            error = %why,
            "access rule repository not loaded, keeping its last good rules"
        );
    };
    match fetch(client, url, installed).await {
        Err(why) => failed(why),
        Ok(Fetched::NotModified) => {
            tracing::debug!(repository = %name, "access rules not modified");
        }
        Ok(Fetched::Body {
            bytes,
            etag,
            last_modified,
        }) => {
            if installed.body.as_deref() == Some(bytes.as_slice()) {
                // Same bytes without validators (or with new ones): nothing to compile.
                installed.etag = etag;
                installed.last_modified = last_modified;
                return;
            }
            let result =
                parse_document(&bytes, &name).and_then(|rules| repos.update(vec![(index, rules)]));
            match result {
                Ok(count) => {
                    tracing::info!(repository = %name, rules = count, "access rules loaded");
                    *installed = Installed {
                        etag,
                        last_modified,
                        body: Some(bytes),
                    };
                }
                Err(e) => failed(e.to_string()),
            }
        }
    }
}

fn redacted(repos: &Repositories, index: usize) -> String {
    repos
        .list()
        .get(index)
        .map(Repository::describe)
        .unwrap_or_default()
}

/// Follows repository `index` until the task is dropped.
async fn follow(repos: Arc<Repositories>, client: reqwest::Client, index: usize, every: Duration) {
    let Some(Repository::Remote(url)) = repos.list().get(index).cloned() else {
        return;
    };
    let mut installed = Installed::default();
    let mut retry = FIRST_RETRY.min(every);
    loop {
        poll(&repos, &client, index, &url, &mut installed).await;
        let wait = if installed.body.is_some() {
            every
        } else {
            let wait = retry;
            retry = (retry * 2).min(every);
            wait
        };
        tokio::time::sleep(wait).await;
    }
}

/// Background service polling every URL repository until shutdown.
pub struct RemoteRepositories {
    repos: Arc<Repositories>,
    client: reqwest::Client,
    every: Duration,
}

impl RemoteRepositories {
    /// A service polling the URL repositories of `repos` every `every`.
    pub fn new(repos: Arc<Repositories>, every: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(10))
            .no_proxy()
            .build()?;
        Ok(Self {
            repos,
            client,
            every,
        })
    }

    /// Polls until `stop` resolves (what the background service runs).
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, repo) in self.repos.list().iter().enumerate() {
            if matches!(repo, Repository::Remote(_)) {
                tasks.spawn(follow(
                    Arc::clone(&self.repos),
                    self.client.clone(),
                    index,
                    self.every,
                ));
            }
        }
        stop.await;
        tasks.abort_all();
    }
}

#[async_trait]
impl BackgroundService for RemoteRepositories {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.run(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    }
}
