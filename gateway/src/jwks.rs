//! JWKS fetching and caching for the `jwt` authenticator (and the `id_token` signer).
//!
//! Key sets come from `file://` paths or `http(s)://` URLs; the content is a JWK set (JSON) or
//! one PEM private key ([`crate::pem_key`], detected by content). Each URL is cached for a TTL; an
//! unknown `kid` triggers one refresh (at most once per second per URL, so forged `kid`s
//! cannot turn into a request flood). When a refresh fails the stale keys keep being used.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

use crate::jose::{Jwk, JwkSet};

const MIN_REFRESH: Duration = Duration::from_secs(1);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A key set that cannot be fetched.
#[derive(Clone, Debug, thiserror::Error)]
#[error("JWKS {url}: {message}")]
pub struct JwksError {
    /// The location.
    pub url: String,
    /// What went wrong.
    pub message: String,
}

struct Entry {
    keys: Arc<JwkSet>,
    fetched: Instant,
}

/// A key set from a file's or response's bytes: one PEM private key (a set of one) or a JWK set.
pub fn parse_key_set(bytes: &[u8]) -> Result<JwkSet, String> {
    if crate::pem_key::looks_like_pem(bytes) {
        return crate::pem_key::private_key_from_pem(bytes).map(|key| JwkSet { keys: vec![key] });
    }
    // serde_json's messages name a position, never the input.
    serde_json::from_slice(bytes)
        .map_err(|e| format!("neither a PEM private key nor a JWK set: {e}"))
}

/// Checks that every local (`file://`) signing key source can be loaded; the error names the
/// file. Used at start-up so a bad key mount fails fast instead of answering 500 per request.
pub fn check_local_key_files(urls: &[String]) -> Result<(), JwksError> {
    for url in urls {
        let Some(path) = url.strip_prefix("file://") else {
            continue;
        };
        let err = |message: String| JwksError {
            url: url.clone(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        parse_key_set(&bytes).map_err(err)?;
    }
    Ok(())
}

/// The process-wide JWKS cache.
pub struct JwksCache {
    client: reqwest::Client,
    entries: RwLock<HashMap<String, Entry>>,
}

impl JwksCache {
    /// An empty cache using `client` for http(s) URLs.
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// Fetches a key set without caching.
    pub async fn fetch(&self, url: &str) -> Result<JwkSet, JwksError> {
        let err = |message: String| JwksError {
            url: url.to_owned(),
            message,
        };
        let bytes = if let Some(path) = url.strip_prefix("file://") {
            tokio::fs::read(path)
                .await
                .map_err(|e| err(e.to_string()))?
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let response = self
                .client
                .get(url)
                .timeout(FETCH_TIMEOUT)
                .send()
                .await
                .map_err(|e| err(e.without_url().to_string()))?;
            if !response.status().is_success() {
                return Err(err(format!("answered {}", response.status())));
            }
            response
                .bytes()
                .await
                .map_err(|e| err(e.to_string()))?
                .to_vec()
        } else {
            return Err(err(
                "only file://, http:// and https:// are supported".to_owned()
            ));
        };
        parse_key_set(&bytes).map_err(err)
    }

    /// The key set at `url`, from cache when younger than `ttl`.
    pub async fn get(&self, url: &str, ttl: Duration) -> Result<Arc<JwkSet>, JwksError> {
        if let Some(entry) = self.entries.read().await.get(url)
            && entry.fetched.elapsed() < ttl
        {
            return Ok(Arc::clone(&entry.keys));
        }
        self.refresh(url, Duration::ZERO).await
    }

    /// Re-fetches `url` unless it was fetched less than `min_age` ago; on failure the stale
    /// keys are returned if there are any.
    async fn refresh(&self, url: &str, min_age: Duration) -> Result<Arc<JwkSet>, JwksError> {
        let mut entries = self.entries.write().await;
        if let Some(entry) = entries.get(url)
            && entry.fetched.elapsed() < min_age
        {
            return Ok(Arc::clone(&entry.keys));
        }
        match self.fetch(url).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                entries.insert(
                    url.to_owned(),
                    Entry {
                        keys: Arc::clone(&keys),
                        fetched: Instant::now(),
                    },
                );
                Ok(keys)
            }
            Err(e) => match entries.get(url) {
                Some(stale) => {
                    tracing::warn!(error = %e, "using stale JWKS");
                    Ok(Arc::clone(&stale.keys))
                }
                None => Err(e),
            },
        }
    }

    /// Finds the signing key `kid` in any of `urls`, refreshing once if it is unknown.
    pub async fn find_key(
        &self,
        urls: &[String],
        kid: &str,
        ttl: Duration,
    ) -> Result<Option<Jwk>, JwksError> {
        let mut last_error = None;
        for url in urls {
            match self.get(url, ttl).await {
                Ok(set) => {
                    if let Some(key) = set.find(kid) {
                        return Ok(Some(key.clone()));
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        for url in urls {
            if let Ok(set) = self.refresh(url, MIN_REFRESH).await
                && let Some(key) = set.find(kid)
            {
                return Ok(Some(key.clone()));
            }
        }
        match last_error {
            Some(e) if urls.len() == 1 => Err(e),
            _ => Ok(None),
        }
    }
}
