//! `cookie_session` and `bearer_token`: ask a session endpoint (Kratos' `/sessions/whoami`)
//! whether the request's cookie or token is a valid session.
//!
//! The check request follows Oathkeeper: the request's method (or `force_method`), the request's
//! path unless `preserve_path`, only the session cookie/`Authorization` plus the listed headers
//! are forwarded. Status mapping: 200 → subject/extra from the body, 429 → 429, other → 401,
//! transport error → 403. Unlike Oathkeeper the call has a timeout. Credentials are never logged.

use std::time::Duration;

use async_trait::async_trait;
use portcullis_rules::handlers::{SessionCheckConfig, TokenFrom};
use serde_json::Value;

use super::authn::{Authenticator, AuthnError};
use super::error::PipelineError;
use super::session::{AuthenticationSession, RequestInfo, gjson_get};

const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
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
}

impl SessionCheck {
    /// Builds from the merged config.
    pub fn new(bearer: bool, config: &Value, client: reqwest::Client) -> Result<Self, String> {
        let config: SessionCheckConfig =
            serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let url = config
            .check_session_url
            .as_deref()
            .ok_or("check_session_url is required")?;
        let url = url::Url::parse(url).map_err(|e| format!("check_session_url: {e}"))?;
        Ok(Self {
            bearer,
            url,
            config,
            client,
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
            bearer_token = Some(token);
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
        let mut check = self
            .client
            .request(method, self.check_url(req))
            .timeout(CHECK_TIMEOUT);
        for name in forward
            .iter()
            .copied()
            .chain(self.config.forward_http_headers.iter().map(String::as_str))
        {
            for value in req.headers.get_all(name) {
                check = check.header(name, value.as_bytes());
            }
        }
        if let Some(token) = bearer_token {
            check = check.header("authorization", format!("Bearer {token}"));
        }
        if self.config.preserve_host {
            check = check.header("x-forwarded-host", req.host.as_str());
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
        let subject_from = self
            .config
            .subject_from
            .as_deref()
            .unwrap_or(if self.bearer { "sub" } else { "subject" });
        session.subject = match gjson_get(&body, subject_from) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(AuthnError::Failed(PipelineError::forbidden(
                    "session subject is not a string",
                )));
            }
        };
        let extra_from = self.config.extra_from.as_deref().unwrap_or("extra");
        session.extra = match gjson_get(&body, extra_from) {
            None | Some(Value::Null) => Default::default(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => {
                return Err(AuthnError::Failed(PipelineError::forbidden(
                    "session extra is not an object",
                )));
            }
        };
        Ok(())
    }
}
