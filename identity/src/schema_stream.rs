//! Identity schemas from the operator's `identity-schemas` stream (in a cluster): subscribes with
//! `PORTCULLIS_STREAM_URL` / `PORTCULLIS_STREAM_TOKEN`, keeps the last good snapshot in
//! `PORTCULLIS_STREAM_CACHE`, and swaps the schema registry atomically. A snapshot that does not
//! yield a valid registry with a default schema is refused; the previous one stays in force.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_stream::{ApplyError, StreamToken, Subscriber, SubscriberConfig};

use crate::schema::SchemaRegistry;

/// Where the stream is (from the environment in a cluster).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub url: url::Url,
    pub token: StreamToken,
    pub cache: Option<PathBuf>,
}

/// Why the stream settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum StreamSettingsError {
    #[error("PORTCULLIS_STREAM_URL is not a URL: {0}")]
    Url(String),
    #[error("PORTCULLIS_STREAM_URL is set but PORTCULLIS_STREAM_TOKEN is empty or missing")]
    Token,
}

impl StreamSettings {
    /// Reads `PORTCULLIS_STREAM_URL`, `PORTCULLIS_STREAM_TOKEN`, `PORTCULLIS_STREAM_CACHE`;
    /// `Ok(None)` when no URL is set.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, StreamSettingsError> {
        let Some(raw) = env("PORTCULLIS_STREAM_URL").filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let url =
            url::Url::parse(raw.trim()).map_err(|e| StreamSettingsError::Url(e.to_string()))?;
        let token = env("PORTCULLIS_STREAM_TOKEN")
            .and_then(StreamToken::new)
            .ok_or(StreamSettingsError::Token)?;
        Ok(Some(Self {
            url,
            token,
            cache: env("PORTCULLIS_STREAM_CACHE")
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from),
        }))
    }
}

/// Follows the stream; each accepted snapshot replaces `registry` (file schemas from `base`
/// plus the snapshot's).
pub fn subscribe(
    settings: StreamSettings,
    base: Arc<SchemaRegistry>,
    registry: Arc<ArcSwap<SchemaRegistry>>,
) -> Subscriber {
    let mut config = SubscriberConfig::new(
        settings.url,
        portcullis_stream::TOPIC_IDENTITY_SCHEMAS,
        settings.token,
    );
    if let Some(cache) = settings.cache {
        config = config.with_cache_path(cache);
    }
    Subscriber::start(config, move |snapshot| {
        let next = base
            .with_stream_items(&snapshot.items)
            .map_err(|e| ApplyError(e.to_string()))?;
        tracing::info!(
            version = snapshot.version,
            schemas = snapshot.items.len(),
            default = next.default_id(),
            "identity schemas updated from the operator"
        );
        registry.store(Arc::new(next));
        Ok(())
    })
}
