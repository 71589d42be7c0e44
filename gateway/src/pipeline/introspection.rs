//! The `oauth2_introspection` authenticator: an opaque token checked at an RFC 7662 endpoint.
//!
//! `POST introspection_url` with `token=<t>` (plus `scope` when the strategy is `none` and
//! scopes are required). Non-200 → 500, `active: false` or expired → 401, wrong `token_use`,
//! audience, issuer or scope → 403. Results can be cached (`cache.enabled`, `cache.ttl`), keyed
//! by a hash of the token; `exp` is re-checked on every hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use portcullis_rules::handlers::IntrospectionConfig;
use serde_json::{Map, Value};

use super::authn::{Authenticator, AuthnError};
use super::error::PipelineError;
use super::jwt::scope_matches;
use super::session::{AuthenticationSession, RequestInfo};
use super::session_check::extract_token;
use crate::config::parse_duration;
use crate::metrics::Metrics;

const TIMEOUT: Duration = Duration::from_secs(5);
const CACHE_LIMIT: usize = 10_000;

/// A configured `oauth2_introspection` authenticator.
pub struct Introspection {
    config: IntrospectionConfig,
    url: url::Url,
    cache_ttl: Option<Option<Duration>>,
    cache: Mutex<HashMap<[u8; 32], (Instant, Value)>>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl Introspection {
    /// Builds from the merged config.
    pub fn new(config: &Value, deps: &super::Deps) -> Result<Self, String> {
        let config: IntrospectionConfig =
            serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let url = config
            .introspection_url
            .as_deref()
            .ok_or("introspection_url is required")?;
        let url = url::Url::parse(url).map_err(|e| format!("introspection_url: {e}"))?;
        if config
            .pre_authorization
            .as_ref()
            .and_then(|p| p.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            return Err("pre_authorization is not supported by this gateway yet".to_owned());
        }
        let strategy = config.scope_strategy.as_deref().unwrap_or("none");
        if !matches!(strategy, "none" | "exact" | "hierarchic" | "wildcard") {
            return Err(format!("unknown scope_strategy {strategy:?}"));
        }
        let cache_ttl = match &config.cache {
            Some(c) if c.get("enabled").and_then(Value::as_bool).unwrap_or(false) => {
                match c.get("ttl").and_then(Value::as_str) {
                    Some(t) => {
                        Some(Some(parse_duration(t).ok_or_else(|| {
                            format!("cache.ttl: {t:?} is not a duration")
                        })?))
                    }
                    None => Some(None),
                }
            }
            _ => None,
        };
        Ok(Self {
            config,
            url,
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
            client: deps.client.clone(),
            metrics: Arc::clone(&deps.metrics),
        })
    }

    fn uses_cache(&self) -> bool {
        // Oathkeeper bypasses the cache when the server checks scopes (strategy none).
        let server_checks_scope = self.config.scope_strategy.as_deref().unwrap_or("none") == "none"
            && !self.config.required_scope.is_empty();
        self.cache_ttl.is_some() && !server_checks_scope
    }

    async fn introspect(&self, req: &RequestInfo, token: &str) -> Result<Value, PipelineError> {
        let mut form = vec![("token", token.to_owned())];
        if self.config.scope_strategy.as_deref().unwrap_or("none") == "none"
            && !self.config.required_scope.is_empty()
        {
            form.push(("scope", self.config.required_scope.join(" ")));
        }
        let mut call = self
            .client
            .post(self.url.clone())
            .timeout(TIMEOUT)
            .form(&form);
        if self.config.preserve_host {
            call = call.header("x-forwarded-host", req.host.as_str());
        }
        for (name, value) in &self.config.introspection_request_headers {
            call = call.header(name.as_str(), value.as_str());
        }
        let response = call.send().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "introspection endpoint unreachable");
            PipelineError::internal("introspection endpoint is unreachable")
        })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(PipelineError::internal(format!(
                "introspection endpoint answered {}",
                response.status()
            )));
        }
        response
            .json()
            .await
            .map_err(|_| PipelineError::internal("introspection response is not JSON"))
    }

    fn check(&self, body: &Value) -> Result<(), PipelineError> {
        if let Some(use_) = body.get("token_use").and_then(Value::as_str)
            && use_ != "access_token"
        {
            return Err(PipelineError::forbidden(format!("token_use is {use_:?}")));
        }
        if !body.get("active").and_then(Value::as_bool).unwrap_or(false) {
            return Err(PipelineError::unauthorized("token is not active"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        if let Some(exp) = body.get("exp").and_then(Value::as_f64)
            && exp > 0.0
            && now >= exp
        {
            return Err(PipelineError::unauthorized("token is expired"));
        }
        if !self.config.target_audience.is_empty() {
            let aud: Vec<&str> = match body.get("aud") {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !self
                .config
                .target_audience
                .iter()
                .all(|t| aud.contains(&t.as_str()))
            {
                return Err(PipelineError::forbidden("token audience does not match"));
            }
        }
        if !self.config.trusted_issuers.is_empty() {
            let iss = body.get("iss").and_then(Value::as_str).unwrap_or_default();
            if !self.config.trusted_issuers.iter().any(|t| t == iss) {
                return Err(PipelineError::forbidden("token issuer is not trusted"));
            }
        }
        let strategy = self.config.scope_strategy.as_deref().unwrap_or("none");
        if strategy != "none" {
            let granted: Vec<&str> = body
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            for required in &self.config.required_scope {
                if !granted.iter().any(|g| scope_matches(strategy, g, required)) {
                    return Err(PipelineError::forbidden(format!(
                        "token lacks scope {required:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Authenticator for Introspection {
    async fn authenticate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), AuthnError> {
        let token = extract_token(req, self.config.token_from.as_ref())
            .ok_or(AuthnError::NotResponsible)?;
        if let Some(prefix) = &self.config.prefix
            && !token.starts_with(prefix.as_str())
        {
            return Err(AuthnError::NotResponsible);
        }
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{}\u{0}{token}", self.url).as_bytes(),
        );
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        let cached = if self.uses_cache() {
            let hit = self.cache.lock().ok().and_then(|c| {
                c.get(&key)
                    .filter(|(until, _)| Instant::now() < *until)
                    .map(|(_, body)| body.clone())
            });
            self.metrics.cache("introspection", hit.is_some());
            hit
        } else {
            None
        };
        let body = match cached {
            Some(body) => body,
            None => {
                let body = self
                    .introspect(req, &token)
                    .await
                    .map_err(AuthnError::Failed)?;
                if self.uses_cache()
                    && body.get("active").and_then(Value::as_bool).unwrap_or(false)
                    && let Ok(mut cache) = self.cache.lock()
                {
                    if cache.len() >= CACHE_LIMIT {
                        cache.clear();
                    }
                    let ttl = self
                        .cache_ttl
                        .flatten()
                        .unwrap_or(Duration::from_secs(3600));
                    cache.insert(key, (Instant::now() + ttl, body.clone()));
                }
                body
            }
        };
        self.check(&body).map_err(AuthnError::Failed)?;
        let mut extra: Map<String, Value> = match body.get("ext") {
            Some(Value::Object(ext)) => ext.clone(),
            _ => Map::new(),
        };
        for name in ["username", "client_id", "scope", "aud"] {
            if let Some(v) = body.get(name) {
                extra.insert(name.to_owned(), v.clone());
            }
        }
        session.subject = body
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        session.extra = extra;
        Ok(())
    }
}
