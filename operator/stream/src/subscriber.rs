//! The subscribing side, used by gateway and identity replicas: follows one topic's stream,
//! hands each new snapshot to a callback, keeps the last good one in memory and on disk, and
//! reconnects with capped exponential backoff. Starts from the disk copy when the operator is
//! unreachable, so a restarted gateway serves its last rules at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::server::SNAPSHOT_EVENT;
use crate::snapshot::Snapshot;
use crate::sse::{EventTooLarge, SseParser};
use crate::token::StreamToken;

/// The consumer refused a snapshot (e.g. a rule set that does not compile); the previous one
/// stays in force.
#[derive(Debug, thiserror::Error)]
#[error("snapshot refused: {0}")]
pub struct ApplyError(pub String);

/// Why one connection attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The stream URL could not be built from the base URL.
    #[error("invalid stream URL: {0}")]
    Url(#[from] url::ParseError),
    /// Connecting or reading failed.
    #[error("stream request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with a non-200 status (401: wrong token).
    #[error("stream answered HTTP {0}")]
    Status(u16),
    /// Nothing, not even a keep-alive, arrived within the idle timeout.
    #[error("stream idle for {0:?}; reconnecting")]
    Idle(Duration),
    /// A frame was not a valid snapshot of this topic.
    #[error("malformed snapshot: {0}")]
    Malformed(String),
    /// A frame exceeded the size bound.
    #[error("stream frame larger than {limit} bytes")]
    TooLarge {
        /// The bound, [`SubscriberConfig::max_event_bytes`].
        limit: usize,
    },
    /// The disk cache could not be read or written.
    #[error("snapshot cache {path}: {source}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// The I/O or parse error.
        source: std::io::Error,
    },
}

/// Where to subscribe and how to behave.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// Base URL of the operator Service, e.g. `http://portcullis-operator:4470/`.
    pub base_url: Url,
    /// Topic to follow (`rules` or `identity-schemas`).
    pub topic: String,
    /// Bearer token (the operator's `PORTCULLIS_STREAM_TOKEN`).
    pub token: StreamToken,
    /// File holding the last good snapshot; `None` keeps it in memory only.
    pub cache_path: Option<PathBuf>,
    /// First reconnect delay.
    pub min_backoff: Duration,
    /// Reconnect delays double up to this cap.
    pub max_backoff: Duration,
    /// Reconnect when nothing arrives for this long (the server sends keep-alives).
    pub idle_timeout: Duration,
    /// Largest accepted snapshot frame, in bytes.
    pub max_event_bytes: usize,
}

impl SubscriberConfig {
    /// Defaults: backoff 100 ms doubling to 10 s, idle timeout 45 s, frames up to 64 MiB.
    pub fn new(base_url: Url, topic: &str, token: StreamToken) -> Self {
        Self {
            base_url,
            topic: topic.to_owned(),
            token,
            cache_path: None,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            idle_timeout: crate::server::KEEP_ALIVE * 3,
            max_event_bytes: 64 * 1024 * 1024,
        }
    }

    /// Sets the disk cache file.
    pub fn with_cache_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_path = Some(path.into());
        self
    }
}

/// A running subscription. Dropping it stops the background task.
pub struct Subscriber {
    current: watch::Receiver<Option<Arc<Snapshot>>>,
    connected: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// Starts following `config.topic`. `apply` is called with every snapshot whose content
    /// differs from the one in force (first with the disk copy, if any); only snapshots it
    /// accepts become current and are written to disk. Must be called inside a Tokio runtime.
    pub fn start<F>(config: SubscriberConfig, mut apply: F) -> Self
    where
        F: FnMut(&Arc<Snapshot>) -> Result<(), ApplyError> + Send + 'static,
    {
        let (tx, current) = watch::channel(None);
        match config
            .cache_path
            .as_deref()
            .map(|p| load_cache(p, &config.topic))
        {
            Some(Ok(Some(snapshot))) => {
                let snapshot = Arc::new(snapshot);
                match apply(&snapshot) {
                    Ok(()) => {
                        tracing::info!(topic = %config.topic, version = snapshot.version, "starting from cached snapshot");
                        tx.send_replace(Some(snapshot));
                    }
                    Err(e) => {
                        tracing::warn!(topic = %config.topic, error = %e, "cached snapshot refused")
                    }
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "ignoring unreadable snapshot cache"),
            Some(Ok(None)) | None => {}
        }
        let (connected_tx, connected) = watch::channel(false);
        let task = tokio::spawn(follow(config, apply, tx, connected_tx));
        Self {
            current,
            connected,
            task,
        }
    }

    /// Starts a subscription that accepts every snapshot; read it with [`Subscriber::watch`].
    pub fn start_accepting_all(config: SubscriberConfig) -> Self {
        Self::start(config, |_| Ok(()))
    }

    /// The snapshot in force, if any.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.borrow().clone()
    }

    /// The version of the snapshot in force (what `/health/ready` and metrics report).
    pub fn served_version(&self) -> Option<u64> {
        self.current.borrow().as_ref().map(|s| s.version)
    }

    /// A channel that changes whenever a new snapshot comes into force.
    ///
    /// Do not hold a borrow of it (`borrow()`, or the `Ref` that `wait_for` returns) across an
    /// `.await`: while it is held the subscriber cannot install the next snapshot.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.current.clone()
    }

    /// Whether a stream connection is currently open.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// A channel that changes whenever the stream connection opens or closes. The same rule
    /// as for [`Subscriber::watch`] applies: never hold its borrow across an `.await`.
    pub fn connection(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow<F>(
    config: SubscriberConfig,
    mut apply: F,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    connected: watch::Sender<bool>,
) where
    F: FnMut(&Arc<Snapshot>) -> Result<(), ApplyError> + Send + 'static,
{
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the stream HTTP client");
            return;
        }
    };
    let mut backoff = config.min_backoff;
    loop {
        let mut received = false;
        let result =
            connect_and_read(&client, &config, &mut apply, &tx, &connected, &mut received).await;
        connected.send_replace(false);
        match result {
            Ok(()) => {
                tracing::info!(topic = %config.topic, "stream closed by the server; reconnecting")
            }
            Err(e) => tracing::warn!(topic = %config.topic, error = %e, "stream interrupted"),
        }
        if received {
            backoff = config.min_backoff;
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

/// Between half and all of `backoff`, so that many gateways losing the same operator replica
/// do not reconnect in lockstep.
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::random_range(0..=spread))
}

async fn connect_and_read<F>(
    client: &reqwest::Client,
    config: &SubscriberConfig,
    apply: &mut F,
    tx: &watch::Sender<Option<Arc<Snapshot>>>,
    connected: &watch::Sender<bool>,
    received: &mut bool,
) -> Result<(), SubscribeError>
where
    F: FnMut(&Arc<Snapshot>) -> Result<(), ApplyError>,
{
    let url = config
        .base_url
        .join(&format!("v1/streams/{}", config.topic))?;
    let mut response = client
        .get(url)
        .header(header::AUTHORIZATION, config.token.authorization())
        .header(header::ACCEPT, "text/event-stream")
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(SubscribeError::Status(response.status().as_u16()));
    }
    connected.send_replace(true);
    let mut parser = SseParser::new(config.max_event_bytes);
    loop {
        let chunk = tokio::time::timeout(config.idle_timeout, response.chunk())
            .await
            .map_err(|_| SubscribeError::Idle(config.idle_timeout))??;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        let events = parser
            .feed(&chunk)
            .map_err(|EventTooLarge { limit }| SubscribeError::TooLarge { limit })?;
        for event in events {
            if event.event != SNAPSHOT_EVENT {
                continue;
            }
            let snapshot: Snapshot = serde_json::from_str(&event.data)
                .map_err(|e| SubscribeError::Malformed(e.to_string()))?;
            if snapshot.topic != config.topic {
                return Err(SubscribeError::Malformed(format!(
                    "snapshot of topic {:?} on the {:?} stream",
                    snapshot.topic, config.topic
                )));
            }
            if !snapshot.digest_is_valid() {
                return Err(SubscribeError::Malformed(
                    "digest does not match items".into(),
                ));
            }
            *received = true;
            adopt(config, apply, tx, Arc::new(snapshot)).await;
        }
    }
}

/// Makes `snapshot` current if the consumer accepts it (or its content is already in force).
async fn adopt<F>(
    config: &SubscriberConfig,
    apply: &mut F,
    tx: &watch::Sender<Option<Arc<Snapshot>>>,
    snapshot: Arc<Snapshot>,
) where
    F: FnMut(&Arc<Snapshot>) -> Result<(), ApplyError>,
{
    let unchanged = tx
        .borrow()
        .as_ref()
        .is_some_and(|current| current.digest == snapshot.digest);
    if !unchanged {
        if let Err(e) = apply(&snapshot) {
            tracing::warn!(topic = %config.topic, version = snapshot.version, error = %e, "keeping the previous snapshot");
            return;
        }
        tracing::info!(topic = %config.topic, version = snapshot.version, items = snapshot.items.len(), "snapshot applied");
    }
    tx.send_replace(Some(snapshot.clone()));
    if let Some(path) = config.cache_path.clone() {
        let written = tokio::task::spawn_blocking(move || store_cache(&path, &snapshot)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot persist snapshot"),
            Err(e) => tracing::warn!(error = %e, "snapshot persist task failed"),
        }
    }
}

/// Reads a cached snapshot; `Ok(None)` when there is no file yet.
fn load_cache(path: &Path, topic: &str) -> Result<Option<Snapshot>, SubscribeError> {
    let cache_error = |source| SubscribeError::Cache {
        path: path.to_owned(),
        source,
    };
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cache_error(e)),
    };
    let snapshot: Snapshot = serde_json::from_slice(&text)
        .map_err(|e| cache_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    if snapshot.topic != topic || !snapshot.digest_is_valid() {
        return Err(cache_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "cached snapshot is for another topic or fails its digest",
        )));
    }
    Ok(Some(snapshot))
}

/// Writes the snapshot next to `path` and renames it into place, so a crash never leaves a
/// half-written cache.
fn store_cache(path: &Path, snapshot: &Snapshot) -> Result<(), SubscribeError> {
    use std::io::Write;
    let cache_error = |source| SubscribeError::Cache {
        path: path.to_owned(),
        source,
    };
    let bytes = serde_json::to_vec(snapshot)
        .map_err(|e| cache_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(cache_error)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(cache_error)?;
    file.write_all(&bytes).map_err(cache_error)?;
    file.sync_all().map_err(cache_error)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(cache_error)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        // Best effort: make the rename itself durable.
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jitter_stays_within_half_and_full_backoff() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(400));
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
    }

    #[test]
    fn cache_round_trips_and_rejects_tampering() -> Result<(), SubscribeError> {
        let dir = tempfile::tempdir().map_err(|source| SubscribeError::Cache {
            path: PathBuf::new(),
            source,
        })?;
        let path = dir.path().join("nested/rules.json");
        assert!(load_cache(&path, "rules")?.is_none());
        let snapshot = Snapshot::new("rules", 3, vec![json!({"id": "a"})]);
        store_cache(&path, &snapshot)?;
        assert_eq!(load_cache(&path, "rules")?, Some(snapshot));
        assert!(load_cache(&path, "identity-schemas").is_err());
        let tampered = std::fs::read_to_string(&path)
            .map_err(|source| SubscribeError::Cache {
                path: path.clone(),
                source,
            })?
            .replace("\"a\"", "\"b\"");
        std::fs::write(&path, tampered).map_err(|source| SubscribeError::Cache {
            path: path.clone(),
            source,
        })?;
        assert!(load_cache(&path, "rules").is_err());
        Ok(())
    }
}
