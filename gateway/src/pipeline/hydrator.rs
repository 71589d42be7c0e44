//! The `hydrator` mutator: posts the session to an API that returns it enriched (extra data,
//! headers). The subject must not change. Any failure is a 500 (fail closed). Responses can be
//! cached (`cache.enabled`, `cache.ttl`, default 1m) by the posted session and URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::PipelineError;
use super::mutate::Mutator;
use super::session::{AuthenticationSession, RequestInfo};
use crate::config::parse_duration;
use crate::metrics::Metrics;

const TIMEOUT: Duration = Duration::from_secs(5);
const CACHE_LIMIT: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HydratorConfig {
    api: ApiConfig,
    #[serde(default)]
    cache: Option<CacheConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiConfig {
    url: String,
    #[serde(default)]
    auth: Option<AuthConfig>,
    #[serde(default)]
    #[allow(dead_code)]
    retry: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    basic: BasicAuth,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuth {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheConfig {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    ttl: Option<String>,
}

/// A configured `hydrator` mutator.
pub struct Hydrator {
    url: url::Url,
    basic: Option<(String, String)>,
    cache_ttl: Option<Duration>,
    cache: Mutex<HashMap<String, (Instant, Value)>>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl Hydrator {
    /// Builds from the merged config.
    pub fn new(config: &Value, deps: &super::Deps) -> Result<Self, String> {
        let c: HydratorConfig =
            serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let url = url::Url::parse(&c.api.url).map_err(|e| format!("api.url: {e}"))?;
        let cache_ttl = match c.cache {
            Some(CacheConfig { enabled: true, ttl }) => Some(match ttl {
                Some(t) => parse_duration(&t)
                    .ok_or_else(|| format!("cache.ttl: {t:?} is not a duration"))?,
                None => Duration::from_secs(60),
            }),
            _ => None,
        };
        Ok(Self {
            url,
            basic: c.api.auth.map(|a| (a.basic.username, a.basic.password)),
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
            client: deps.client.clone(),
            metrics: Arc::clone(&deps.metrics),
        })
    }
}

/// The session in Oathkeeper's JSON names.
fn session_json(session: &AuthenticationSession, req: &RequestInfo) -> Value {
    let mut header = Map::new();
    for (name, value) in &session.header {
        header.insert(name.clone(), json!([value]));
    }
    let data = session.template_data(req);
    json!({
        "subject": session.subject,
        "extra": session.extra,
        "header": header,
        "match_context": {
            "regexp_capture_groups": session.capture_groups,
            "url": data["MatchContext"]["URL"],
            "method": req.method,
            "header": data["MatchContext"]["Header"],
        },
    })
}

#[async_trait]
impl Mutator for Hydrator {
    async fn mutate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        let body = session_json(session, req);
        let cache_key = format!("{}\u{0}{body}", self.url);
        let cached = self.cache_ttl.and_then(|_| {
            let hit = self.cache.lock().ok().and_then(|c| {
                c.get(&cache_key)
                    .filter(|(until, _)| Instant::now() < *until)
                    .map(|(_, v)| v.clone())
            });
            self.metrics.cache("hydrator", hit.is_some());
            hit
        });
        let hydrated = match cached {
            Some(v) => v,
            None => {
                let mut url = self.url.clone();
                if let Some(q) = &req.query {
                    url.set_query(Some(q));
                }
                let mut call = self.client.post(url).timeout(TIMEOUT);
                for (name, value) in &req.headers {
                    if !matches!(
                        name.as_str(),
                        "content-length" | "host" | "transfer-encoding" | "connection"
                    ) {
                        call = call.header(name.as_str(), value.as_bytes());
                    }
                }
                if let Some((user, password)) = &self.basic {
                    call = call.basic_auth(user, Some(password));
                }
                let response = call
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|_| PipelineError::internal("hydrator API is unreachable"))?;
                if response.status() != reqwest::StatusCode::OK {
                    return Err(PipelineError::internal(format!(
                        "hydrator API answered {}",
                        response.status()
                    )));
                }
                let hydrated: Value = response
                    .json()
                    .await
                    .map_err(|_| PipelineError::internal("hydrator answer is not JSON"))?;
                if let (Some(ttl), Ok(mut cache)) = (self.cache_ttl, self.cache.lock()) {
                    if cache.len() >= CACHE_LIMIT {
                        cache.clear();
                    }
                    cache.insert(cache_key, (Instant::now() + ttl, hydrated.clone()));
                }
                hydrated
            }
        };
        if hydrated.get("subject").and_then(Value::as_str) != Some(session.subject.as_str()) {
            return Err(PipelineError::internal("hydrator changed the subject"));
        }
        session.extra = match hydrated.get("extra") {
            Some(Value::Object(extra)) => extra.clone(),
            _ => Map::new(),
        };
        if let Some(Value::Object(headers)) = hydrated.get("header") {
            session.header.clear();
            for (name, values) in headers {
                let value = match values {
                    Value::Array(v) => v
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    Value::String(s) => s.clone(),
                    _ => continue,
                };
                if http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                    && http::HeaderValue::from_str(&value).is_ok()
                {
                    session.set_header(name, value);
                }
            }
        }
        Ok(())
    }
}
