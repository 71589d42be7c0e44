//! The `id_token` mutator: a signed JWT about the session for the upstream
//! (`Authorization: Bearer <jwt>`), with the key from a JWKS or PEM file or URL
//! ([`crate::pem_key`]).
//!
//! Claims are the rendered `claims` template, then `iss`, `sub`, `iat`, `nbf`, `exp`, `jti`
//! (which the template cannot override). Signed tokens are cached and reused until 10 % of
//! their lifetime is left, keyed by the signing key too, so a key rotation is picked up at once
//! (unlike Oathkeeper, ory/oathkeeper#763). The cache is bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use portcullis_rules::handlers::IdTokenConfig;
use portcullis_rules::template::Template;
use serde_json::{Map, Value};

use super::error::PipelineError;
use super::mutate::Mutator;
use super::session::{AuthenticationSession, RequestInfo};
use crate::config::parse_duration;
use crate::jose::{JwkSet, Signer};
use crate::jwks::JwksCache;

const CACHE_LIMIT: usize = 10_000;
const JWKS_TTL: Duration = Duration::from_secs(30);

/// A configured `id_token` mutator.
pub struct IdToken {
    issuer: String,
    jwks_url: String,
    ttl: Duration,
    claims: Option<Template>,
    jwks: Arc<JwksCache>,
    metrics: Arc<crate::metrics::Metrics>,
    signer: Mutex<Option<(Arc<JwkSet>, Arc<Signer>)>>,
    cache: Mutex<HashMap<String, (u64, String)>>,
}

impl IdToken {
    /// Builds from the merged config.
    pub fn new(config: &Value, deps: &super::Deps) -> Result<Self, String> {
        let c: IdTokenConfig = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let ttl = match c.ttl.as_deref() {
            Some(t) => parse_duration(t).ok_or_else(|| format!("ttl: {t:?} is not a duration"))?,
            None => Duration::from_secs(15 * 60),
        };
        Ok(Self {
            issuer: c.issuer_url.ok_or("issuer_url is required")?,
            jwks_url: c.jwks_url.ok_or("jwks_url is required")?,
            ttl,
            claims: c
                .claims
                .as_deref()
                .map(Template::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
            jwks: Arc::clone(&deps.jwks),
            metrics: Arc::clone(&deps.metrics),
            signer: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The JWKS URL whose public keys `/.well-known/jwks.json` publishes.
    pub fn jwks_url(&self) -> &str {
        &self.jwks_url
    }

    async fn signer(&self) -> Result<Arc<Signer>, PipelineError> {
        let set = self
            .jwks
            .get(&self.jwks_url, JWKS_TTL)
            .await
            .map_err(|e| PipelineError::internal(e.to_string()))?;
        if let Ok(guard) = self.signer.lock()
            && let Some((cached_set, signer)) = guard.as_ref()
            && Arc::ptr_eq(cached_set, &set)
        {
            return Ok(Arc::clone(signer));
        }
        let key = set
            .keys
            .iter()
            .find(|k| k.is_private() && k.is_signing_key())
            .ok_or_else(|| {
                PipelineError::internal("the id_token JWKS has no private signing key")
            })?;
        let signer =
            Arc::new(Signer::from_jwk(key).map_err(|e| PipelineError::internal(e.to_string()))?);
        if let Ok(mut guard) = self.signer.lock() {
            *guard = Some((set, Arc::clone(&signer)));
        }
        Ok(signer)
    }
}

fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[async_trait]
impl Mutator for IdToken {
    async fn mutate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        let mut claims = match &self.claims {
            Some(template) => {
                let text = template
                    .render(&session.template_data(req))
                    .map_err(|e| PipelineError::internal(e.to_string()))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => map,
                    _ => {
                        return Err(PipelineError::internal(
                            "id_token claims are not a JSON object",
                        ));
                    }
                }
            }
            None => Map::new(),
        };
        let signer = self.signer().await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let cache_key = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            signer.alg(),
            Value::Object(claims.clone()),
            session.subject,
            self.ttl.as_secs()
        );
        let reuse_until = |exp: u64| exp.saturating_sub(self.ttl.as_secs() / 10);
        let cached = self.cache.lock().ok().and_then(|c| {
            c.get(&cache_key)
                .filter(|(exp, _)| now < reuse_until(*exp))
                .map(|(_, t)| t.clone())
        });
        self.metrics.cache("id_token", cached.is_some());
        if let Some(token) = cached {
            session.set_header("Authorization", format!("Bearer {token}"));
            return Ok(());
        }
        let exp = now + self.ttl.as_secs();
        claims.insert("iss".into(), Value::from(self.issuer.clone()));
        claims.insert("sub".into(), Value::from(session.subject.clone()));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("nbf".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(exp));
        claims.insert("jti".into(), Value::from(random_uuid()));
        let token = signer
            .sign(&Value::Object(claims))
            .map_err(|e| PipelineError::internal(e.to_string()))?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.retain(|_, (e, _)| now < reuse_until(*e));
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
            }
            cache.insert(cache_key, (exp, token.clone()));
        }
        session.set_header("Authorization", format!("Bearer {token}"));
        Ok(())
    }

    fn jwks_url(&self) -> Option<&str> {
        Some(&self.jwks_url)
    }
}
