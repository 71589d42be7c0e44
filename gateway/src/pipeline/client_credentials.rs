//! The `oauth2_client_credentials` authenticator: HTTP Basic credentials are exchanged for a
//! token with the client-credentials grant; success means the client is who it claims to be.
//!
//! Status mapping as Oathkeeper: token endpoint 429/503/500/504/404 are passed on, any other
//! non-200 is a 401, no answer is a 503, an empty `access_token` is a 401. With `cache.enabled`
//! successful grants are remembered (by a hash of the credentials) for `min(ttl, expires_in)`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use portcullis_rules::handlers::ClientCredentialsConfig;
use serde_json::Value;

use super::authn::{Authenticator, AuthnError};
use super::error::PipelineError;
use super::session::{AuthenticationSession, RequestInfo};
use crate::config::parse_duration;
use crate::metrics::Metrics;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A configured `oauth2_client_credentials` authenticator.
pub struct ClientCredentials {
    token_url: url::Url,
    scopes: Vec<String>,
    cache: Option<(Duration, usize)>,
    granted: Mutex<HashMap<[u8; 32], Instant>>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl ClientCredentials {
    /// Builds from the merged config.
    pub fn new(config: &Value, deps: &super::Deps) -> Result<Self, String> {
        let c: ClientCredentialsConfig =
            serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let token_url = c.token_url.as_deref().ok_or("token_url is required")?;
        let token_url = url::Url::parse(token_url).map_err(|e| format!("token_url: {e}"))?;
        let cache = match &c.cache {
            Some(cache)
                if cache
                    .get("enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false) =>
            {
                let ttl = match cache.get("ttl").and_then(Value::as_str) {
                    Some(t) => parse_duration(t)
                        .ok_or_else(|| format!("cache.ttl: {t:?} is not a duration"))?,
                    None => Duration::from_secs(3600),
                };
                let max = cache
                    .get("max_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(1000) as usize;
                Some((ttl, max.max(1)))
            }
            _ => None,
        };
        Ok(Self {
            token_url,
            scopes: c.required_scope,
            cache,
            granted: Mutex::new(HashMap::new()),
            client: deps.client.clone(),
            metrics: Arc::clone(&deps.metrics),
        })
    }
}

fn basic_credentials(req: &RequestInfo) -> Option<(String, String)> {
    let value = req.header("authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

#[async_trait]
impl Authenticator for ClientCredentials {
    async fn authenticate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), AuthnError> {
        let (id, secret) = basic_credentials(req).ok_or(AuthnError::NotResponsible)?;
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!(
                "{}\u{0}{}\u{0}{id}\u{0}{secret}",
                self.token_url,
                self.scopes.join(" ")
            )
            .as_bytes(),
        );
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        if self.cache.is_some() {
            let hit = self
                .granted
                .lock()
                .ok()
                .is_some_and(|c| c.get(&key).is_some_and(|until| Instant::now() < *until));
            self.metrics.cache("client_credentials", hit);
            if hit {
                session.subject = id;
                return Ok(());
            }
        }
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if !self.scopes.is_empty() {
            form.push(("scope", self.scopes.join(" ")));
        }
        let response = self
            .client
            .post(self.token_url.clone())
            .timeout(TIMEOUT)
            .basic_auth(&id, Some(&secret))
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e.without_url(), "token endpoint unreachable");
                AuthnError::Failed(PipelineError::with_status(
                    503,
                    "token endpoint is unreachable",
                ))
            })?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            429 | 503 | 500 | 504 | 404 => {
                return Err(AuthnError::Failed(PipelineError::with_status(
                    status,
                    format!("token endpoint answered {status}"),
                )));
            }
            _ => {
                return Err(AuthnError::Failed(PipelineError::unauthorized(
                    "client credentials were rejected",
                )));
            }
        }
        let body: Value = response.json().await.map_err(|_| {
            AuthnError::Failed(PipelineError::unauthorized("token response is not JSON"))
        })?;
        if body
            .get("access_token")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(AuthnError::Failed(PipelineError::unauthorized(
                "token response has no access_token",
            )));
        }
        if let Some((ttl, max)) = self.cache
            && let Ok(mut cache) = self.granted.lock()
        {
            let lifetime = body
                .get("expires_in")
                .and_then(Value::as_u64)
                .map(Duration::from_secs)
                .map_or(ttl, |e| e.min(ttl));
            if cache.len() >= max {
                let now = Instant::now();
                cache.retain(|_, until| now < *until);
                if cache.len() >= max {
                    cache.clear();
                }
            }
            cache.insert(key, Instant::now() + lifetime);
        }
        session.subject = id;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded_and_unescaped() {
        let mut headers = http::HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%20client:s3cr%3At");
        headers.insert(
            "authorization",
            http::HeaderValue::from_str(&format!("Basic {encoded}"))
                .unwrap_or(http::HeaderValue::from_static("")),
        );
        let req = RequestInfo {
            method: "GET".into(),
            scheme: "http".into(),
            host: "h".into(),
            path: "/".into(),
            query: None,
            headers,
            remote_addr: None,
            body: None,
        };
        assert_eq!(
            basic_credentials(&req),
            Some(("my client".to_owned(), "s3cr:t".to_owned()))
        );
    }
}
