//! The `jwt` authenticator: a signed JWT (RS*, PS*, ES*) checked against JWKS keys, issuer,
//! audience, time claims and scopes, as Oathkeeper does.
//!
//! Verified tokens are cached (by SHA-256 of the token) until their `exp`, bounded in size, so
//! repeated requests with the same token do not pay for the signature again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use portcullis_rules::handlers::JwtConfig;
use serde_json::{Map, Value};

use super::authn::{Authenticator, AuthnError};
use super::error::PipelineError;
use super::session::{AuthenticationSession, RequestInfo};
use super::session_check::extract_token;
use crate::config::parse_duration;
use crate::jose;
use crate::jwks::JwksCache;

const CACHE_LIMIT: usize = 10_000;

/// Verified tokens by SHA-256: (exp, subject, claims).
type VerifiedCache = HashMap<[u8; 32], (u64, String, Map<String, Value>)>;

/// A configured `jwt` authenticator.
pub struct Jwt {
    config: JwtConfig,
    allowed: Vec<String>,
    ttl: Duration,
    jwks: Arc<JwksCache>,
    metrics: Arc<crate::metrics::Metrics>,
    verified: Mutex<VerifiedCache>,
}

impl Jwt {
    /// Builds from the merged config.
    pub fn new(config: &Value, deps: &super::Deps) -> Result<Self, String> {
        let config: JwtConfig =
            serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        if config.jwks_urls.is_empty() {
            return Err("jwks_urls is required".to_owned());
        }
        let strategy = config.scope_strategy.as_deref().unwrap_or("none");
        if !matches!(strategy, "none" | "exact" | "hierarchic" | "wildcard") {
            return Err(format!("unknown scope_strategy {strategy:?}"));
        }
        if strategy == "none" && !config.required_scope.is_empty() {
            return Err("required_scope needs a scope_strategy other than none".to_owned());
        }
        let allowed = if config.allowed_algorithms.is_empty() {
            vec!["RS256".to_owned()]
        } else {
            config.allowed_algorithms.clone()
        };
        let ttl = match config.jwks_ttl.as_deref() {
            Some(d) => {
                parse_duration(d).ok_or_else(|| format!("jwks_ttl: {d:?} is not a duration"))?
            }
            None => Duration::from_secs(30),
        };
        Ok(Self {
            config,
            allowed,
            ttl,
            jwks: Arc::clone(&deps.jwks),
            metrics: Arc::clone(&deps.metrics),
            verified: Mutex::new(HashMap::new()),
        })
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<(), String> {
        let number = |name: &str| claims.get(name).and_then(Value::as_f64);
        if let Some(exp) = number("exp")
            && (now as f64) >= exp
        {
            return Err("token is expired".to_owned());
        }
        if let Some(nbf) = number("nbf")
            && (now as f64) < nbf
        {
            return Err("token is not valid yet".to_owned());
        }
        if let Some(iat) = number("iat")
            && (now as f64) < iat
        {
            return Err("token was issued in the future".to_owned());
        }
        if !self.config.trusted_issuers.is_empty() {
            let iss = claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !self.config.trusted_issuers.iter().any(|t| t == iss) {
                return Err("token issuer is not trusted".to_owned());
            }
        }
        if !self.config.target_audience.is_empty() {
            let aud: Vec<&str> = match claims.get("aud") {
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
                return Err("token audience does not match".to_owned());
            }
        }
        let granted = scopes(claims);
        let strategy = self.config.scope_strategy.as_deref().unwrap_or("none");
        for required in &self.config.required_scope {
            if !granted.iter().any(|g| scope_matches(strategy, g, required)) {
                return Err(format!("token lacks scope {required:?}"));
            }
        }
        Ok(())
    }

    async fn verify(&self, token: &str) -> Result<(String, Map<String, Value>, u64), String> {
        let decoded = jose::decode(token).map_err(|e| e.to_string())?;
        let alg = decoded.alg();
        if !self.allowed.iter().any(|a| a == alg) {
            return Err(format!("signing algorithm {alg:?} is not allowed"));
        }
        let kid = decoded.kid().ok_or("token has no kid header")?;
        let key = self
            .jwks
            .find_key(&self.config.jwks_urls, kid, self.ttl)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no signing key with kid {kid:?}"))?;
        decoded.verify(&key).map_err(|e| e.to_string())?;
        let Value::Object(mut claims) = decoded.claims else {
            return Err("claims are not an object".to_owned());
        };
        let now = unix_now();
        self.check_claims(&claims, now)?;
        let granted = scopes(&claims);
        if !granted.is_empty() {
            claims.insert("scp".to_owned(), Value::from(granted));
        }
        let subject = match claims.get("sub") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("sub is not a string".to_owned()),
        };
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .map(|e| e as u64)
            .unwrap_or(now + 60);
        Ok((subject, claims, exp))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Scopes from `scp`, `scope` or `scopes` (space-separated string or list).
fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    for name in ["scp", "scope", "scopes"] {
        match claims.get(name) {
            Some(Value::String(s)) => return s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(items)) => {
                return items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
            }
            _ => {}
        }
    }
    Vec::new()
}

/// Ory's scope strategies.
pub fn scope_matches(strategy: &str, granted: &str, required: &str) -> bool {
    match strategy {
        "exact" => granted == required,
        "hierarchic" => {
            granted == required
                || required
                    .strip_prefix(granted)
                    .is_some_and(|rest| rest.starts_with('.'))
        }
        "wildcard" => {
            let (g, r): (Vec<&str>, Vec<&str>) =
                (granted.split('.').collect(), required.split('.').collect());
            g.len() == r.len() && g.iter().zip(&r).all(|(g, r)| *g == "*" || g == r)
        }
        _ => false,
    }
}

#[async_trait]
impl Authenticator for Jwt {
    async fn authenticate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), AuthnError> {
        let token = extract_token(req, self.config.token_from.as_ref())
            .ok_or(AuthnError::NotResponsible)?;
        if token.split('.').count() != 3 {
            return Err(AuthnError::NotResponsible);
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        let now = unix_now();
        let cached = self.verified.lock().ok().and_then(|cache| {
            cache
                .get(&key)
                .filter(|(exp, _, claims)| now < *exp && self.check_claims(claims, now).is_ok())
                .map(|(_, s, c)| (s.clone(), c.clone()))
        });
        self.metrics.cache("jwt", cached.is_some());
        let (subject, claims) = match cached {
            Some(hit) => hit,
            None => {
                let (subject, claims, exp) = self
                    .verify(&token)
                    .await
                    .map_err(|reason| AuthnError::Failed(PipelineError::unauthorized(reason)))?;
                if let Ok(mut cache) = self.verified.lock() {
                    if cache.len() >= CACHE_LIMIT {
                        cache.retain(|_, (e, _, _)| now < *e);
                        if cache.len() >= CACHE_LIMIT {
                            cache.clear();
                        }
                    }
                    cache.insert(key, (exp, subject.clone(), claims.clone()));
                }
                (subject, claims)
            }
        };
        session.subject = subject;
        session.extra = claims;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_strategies() {
        let cases = [
            ("exact", "read", "read", true),
            ("exact", "read", "read.all", false),
            ("hierarchic", "read", "read.all", true),
            ("hierarchic", "read", "reader", false),
            ("wildcard", "read.*", "read.all", true),
            ("wildcard", "read.*", "write.all", false),
            ("none", "read", "read", false),
        ];
        for (strategy, granted, required, expected) in cases {
            assert_eq!(
                scope_matches(strategy, granted, required),
                expected,
                "{strategy} {granted} {required}"
            );
        }
    }
}
