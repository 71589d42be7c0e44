//! `cookie_session` and `bearer_token`: ask a session endpoint (Kratos' `/sessions/whoami`)
//! whether the request's cookie or token is a valid session.
//!
//! The check request follows Oathkeeper: the request's method (or `force_method`), the request's
//! path unless `preserve_path`, only the session cookie/`Authorization` plus the listed headers
//! are forwarded. Status mapping: 200 → subject/extra from the body, 429 → 429, other → 401,
//! transport error → 403. Unlike Oathkeeper the call has a timeout. Credentials are never logged.
//!
//! Optional cache (`cache: {enabled, ttl, max_entries}`, off by default, a Portcullis extension):
//! a 200 answer is remembered under the SHA-256 of everything the check request carries (method,
//! URL, forwarded headers, token), for at most `ttl` (default 10 s) and never past the session's
//! `expires_at`. Other answers are never cached. A session revoked at the identity service stays
//! accepted by this gateway until its entry expires: that is the price of the cache, and why it is
//! off by default. Entries live per rule and are dropped when the rule set is reloaded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use portcullis_rules::handlers::{SessionCacheConfig, SessionCheckConfig, TokenFrom};
use serde_json::{Map, Value};

use super::authn::{Authenticator, AuthnError};
use super::error::PipelineError;
use super::session::{AuthenticationSession, RequestInfo, gjson_get};
use crate::config::parse_duration;
use crate::metrics::Metrics;

const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);
const DEFAULT_CACHE_ENTRIES: usize = 10_000;
const RATE_LIMIT_HEADERS: &[&str] = &[
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-type",
];

/// A configured `cookie_session` or `bearer_token` authenticator.
pub struct SessionCheck {
    bearer: bool,
    url: url::Url,
    config: SessionCheckConfig,
    client: reqwest::Client,
    cache: Option<SessionCache>,
    metrics: Arc<Metrics>,
}

/// What a successful check established.
#[derive(Clone)]
struct Checked {
    subject: String,
    extra: Map<String, Value>,
}

/// Successful checks by SHA-256 of the check request, each with its deadline.
struct SessionCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<[u8; 32], (Instant, Checked)>>,
}

impl SessionCache {
    fn new(config: &SessionCacheConfig) -> Result<Option<Self>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let ttl = match config.ttl.as_deref() {
            Some(t) => {
                parse_duration(t).ok_or_else(|| format!("cache.ttl: {t:?} is not a duration"))?
            }
            None => DEFAULT_CACHE_TTL,
        };
        let max_entries = config.max_entries.unwrap_or(DEFAULT_CACHE_ENTRIES);
        if max_entries == 0 || ttl.is_zero() {
            return Ok(None);
        }
        Ok(Some(Self {
            ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }))
    }

    fn get(&self, key: &[u8; 32]) -> Option<Checked> {
        let now = Instant::now();
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(until, _)| now < *until)
            .map(|(_, checked)| checked.clone())
    }

    /// Remembers `checked` for `ttl`, shortened to the session's `expires_at` when the answer
    /// has one; an answer whose `expires_at` is unreadable or past is not cached.
    fn put(&self, key: [u8; 32], checked: &Checked, answer: &Value) {
        let lifetime = match answer.get("expires_at") {
            None | Some(Value::Null) => self.ttl,
            Some(expires_at) => match expires_at_unix(expires_at).map(seconds_until) {
                Some(Some(left)) => left.min(self.ttl),
                _ => return,
            },
        };
        let now = Instant::now();
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.max_entries {
            entries.retain(|_, (until, _)| now < *until);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(key, (now + lifetime, checked.clone()));
    }
}

/// `expires_at` as Unix seconds: an RFC 3339 string (Kratos) or a number.
fn expires_at_unix(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => rfc3339_unix(s),
        _ => None,
    }
}

/// Time left until `unix` seconds, `None` when it is not in the future.
fn seconds_until(unix: f64) -> Option<Duration> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    (unix > now).then(|| Duration::from_secs_f64(unix - now))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into Unix seconds.
fn rfc3339_unix(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &after_dot[..digits]).parse().ok()?;
        rest = &after_dot[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) =>
        {
            let digit = |c: &u8| i64::from(c - b'0');
            let total = (digit(h1) * 10 + digit(h2)) * 3600 + (digit(m1) * 10 + digit(m2)) * 60;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    // Days from 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds as f64 + fraction)
}

impl SessionCheck {
    /// Builds from the merged config.
    pub fn new(bearer: bool, config: &Value, deps: &super::Deps) -> Result<Self, String> {
        let config: SessionCheckConfig =
            serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let url = config
            .check_session_url
            .as_deref()
            .ok_or("check_session_url is required")?;
        let url = url::Url::parse(url).map_err(|e| format!("check_session_url: {e}"))?;
        let cache = match &config.cache {
            Some(c) => SessionCache::new(c)?,
            None => None,
        };
        Ok(Self {
            bearer,
            url,
            config,
            client: deps.client.clone(),
            cache,
            metrics: Arc::clone(&deps.metrics),
        })
    }

    fn token(&self, req: &RequestInfo) -> Option<String> {
        extract_token(req, self.config.token_from.as_ref())
    }

    fn check_url(&self, req: &RequestInfo) -> url::Url {
        let mut url = self.url.clone();
        if !self.config.preserve_path {
            url.set_path(&req.path);
        }
        if !self.config.preserve_query.unwrap_or(true) {
            url.set_query(req.query.as_deref());
        }
        url
    }
}

/// Reads a token per `token_from` (default: `Authorization: Bearer <token>`).
pub fn extract_token(req: &RequestInfo, from: Option<&TokenFrom>) -> Option<String> {
    let bearer = |value: &str| {
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    };
    match from {
        Some(TokenFrom {
            header: Some(h), ..
        }) if h.eq_ignore_ascii_case("authorization") => req.header(h).and_then(bearer),
        Some(TokenFrom {
            header: Some(h), ..
        }) => req.header(h).map(str::to_owned),
        Some(TokenFrom {
            query_parameter: Some(q),
            ..
        }) => req.query_param(q),
        Some(TokenFrom {
            cookie: Some(c), ..
        }) => req.cookie(c).map(str::to_owned),
        _ => req.header("authorization").and_then(bearer),
    }
    .filter(|t| !t.is_empty())
}

#[async_trait]
impl Authenticator for SessionCheck {
    async fn authenticate(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), AuthnError> {
        let mut forward: Vec<&str> = Vec::new();
        let mut bearer_token = None;
        if self.bearer {
            let token = self.token(req).ok_or(AuthnError::NotResponsible)?;
            if let Some(prefix) = &self.config.prefix
                && !token.starts_with(prefix.as_str())
            {
                return Err(AuthnError::NotResponsible);
            }
            bearer_token = Some(format!("Bearer {token}"));
        } else {
            let responsible = if self.config.only.is_empty() {
                req.headers.contains_key(http::header::COOKIE)
            } else {
                self.config.only.iter().any(|c| req.cookie(c).is_some())
            };
            if !responsible {
                return Err(AuthnError::NotResponsible);
            }
            forward.push("cookie");
        }
        let method = self
            .config
            .force_method
            .as_deref()
            .unwrap_or(&req.method)
            .parse::<reqwest::Method>()
            .map_err(|_| AuthnError::Failed(PipelineError::internal("invalid check method")))?;
        let url = self.check_url(req);
        // Everything the check request carries besides the fixed `additional_headers`.
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        for name in forward
            .iter()
            .copied()
            .chain(self.config.forward_http_headers.iter().map(String::as_str))
        {
            for value in req.headers.get_all(name) {
                headers.push((name, value.as_bytes()));
            }
        }
        if let Some(token) = &bearer_token {
            headers.push(("authorization", token.as_bytes()));
        }
        if self.config.preserve_host {
            headers.push(("x-forwarded-host", req.host.as_bytes()));
        }
        let key = self
            .cache
            .as_ref()
            .map(|_| cache_key(method.as_str(), url.as_str(), &headers));
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            let hit = cache.get(key);
            self.metrics.cache("session", hit.is_some());
            if let Some(checked) = hit {
                session.subject = checked.subject;
                session.extra = checked.extra;
                return Ok(());
            }
        }
        let mut check = self.client.request(method, url).timeout(CHECK_TIMEOUT);
        for (name, value) in headers {
            check = check.header(name, value);
        }
        for (name, value) in &self.config.additional_headers {
            check = check.header(name.as_str(), value.as_str());
        }
        let response = check.send().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "session check failed");
            AuthnError::Failed(PipelineError::forbidden("session check is unreachable"))
        })?;
        match response.status().as_u16() {
            200 => {}
            429 => {
                let headers = RATE_LIMIT_HEADERS
                    .iter()
                    .filter_map(|h| {
                        let v = response.headers().get(*h)?.to_str().ok()?;
                        Some(((*h).to_owned(), v.to_owned()))
                    })
                    .collect();
                return Err(AuthnError::Failed(PipelineError::too_many_requests(
                    headers,
                )));
            }
            status => {
                return Err(AuthnError::Failed(PipelineError::unauthorized(format!(
                    "session check answered {status}"
                ))));
            }
        }
        let body: Value = response.json().await.map_err(|_| {
            AuthnError::Failed(PipelineError::unauthorized(
                "session check answered no JSON",
            ))
        })?;
        let checked = self.read_answer(&body)?;
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            cache.put(key, &checked, &body);
        }
        session.subject = checked.subject;
        session.extra = checked.extra;
        Ok(())
    }
}

impl SessionCheck {
    /// Subject and extra from a 200 answer, per `subject_from` / `extra_from`.
    fn read_answer(&self, body: &Value) -> Result<Checked, AuthnError> {
        let subject_from = self
            .config
            .subject_from
            .as_deref()
            .unwrap_or(if self.bearer { "sub" } else { "subject" });
        let subject = match gjson_get(body, subject_from) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(AuthnError::Failed(PipelineError::forbidden(
                    "session subject is not a string",
                )));
            }
        };
        let extra_from = self.config.extra_from.as_deref().unwrap_or("extra");
        let extra = match gjson_get(body, extra_from) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => {
                return Err(AuthnError::Failed(PipelineError::forbidden(
                    "session extra is not an object",
                )));
            }
        };
        Ok(Checked { subject, extra })
    }
}

/// SHA-256 over the check request's method, URL and headers, each part length-prefixed so
/// that no two different requests share a key.
fn cache_key(method: &str, url: &str, headers: &[(&str, &[u8])]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut part = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    part(method.as_bytes());
    part(url.as_bytes());
    for (name, value) in headers {
        part(name.as_bytes());
        part(value);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps() {
        let cases = [
            ("1970-01-01T00:00:00Z", Some(0.0)),
            ("2026-11-23T14:30:00Z", Some(1_795_444_200.0)),
            ("2026-11-23T15:30:00+01:00", Some(1_795_444_200.0)),
            ("2026-11-23T14:30:00.250Z", Some(1_795_444_200.25)),
            ("2000-02-29T12:00:00-00:30", Some(951_827_400.0)),
            ("2026-11-23 14:30:00Z", Some(1_795_444_200.0)),
            ("2026-11-23T14:30:00", None),
            ("2026-13-23T14:30:00Z", None),
            ("2026-11-23T14:30:00.Z", None),
            ("2026-11-23T14:30:00+0100", None),
            ("not a date at all....", None),
        ];
        for (text, expected) in cases {
            assert_eq!(rfc3339_unix(text), expected, "{text}");
        }
    }

    #[test]
    fn cache_keys_separate_parts() {
        let a = cache_key("GET", "http://x/", &[("cookie", b"a=1")]);
        let b = cache_key("GET", "http://x/", &[("cookie", b"a=2")]);
        let c = cache_key("GET", "http://x/", &[("cookiea", b"=1")]);
        let d = cache_key("GET", "http://x/", &[("cookie", b"a=1")]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, d);
    }
}
