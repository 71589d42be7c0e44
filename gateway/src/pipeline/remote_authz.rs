//! `remote` and `remote_json` authorizers: ask an HTTP endpoint whether to allow the request.
//!
//! `remote` posts the original request body (the proxy buffers bodies up to 64 KiB for it and
//! replays them upstream; larger ones are a 413) with its `Content-Type`; `remote_json` posts the rendered `payload`
//! template as JSON. `Authorization` is forwarded, `headers` are templated (empty values are
//! skipped). 200 allows, 403 denies, anything else (or no answer) is a 500. Unlike Oathkeeper,
//! calls have a timeout and are not retried into multi-second latencies.

use std::time::Duration;

use async_trait::async_trait;
use portcullis_rules::handlers::RemoteAuthorizerConfig;
use portcullis_rules::template::Template;
use serde_json::Value;

use super::authz::Authorizer;
use super::error::PipelineError;
use super::session::{AuthenticationSession, RequestInfo};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A configured `remote` or `remote_json` authorizer.
pub struct RemoteAuthorizer {
    url: url::Url,
    payload: Option<Template>,
    headers: Vec<(String, Template)>,
    forward_response_headers: Vec<String>,
    client: reqwest::Client,
}

impl RemoteAuthorizer {
    /// Builds from the merged config; `json` selects `remote_json`.
    pub fn new(json: bool, config: &Value, client: reqwest::Client) -> Result<Self, String> {
        let c: RemoteAuthorizerConfig =
            serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        let remote = c.remote.ok_or("remote is required")?;
        let url = url::Url::parse(&remote).map_err(|e| format!("remote: {e}"))?;
        let payload = match (json, c.payload) {
            (true, Some(p)) => Some(Template::parse(&p).map_err(|e| e.to_string())?),
            (true, None) => return Err("payload is required".to_owned()),
            (false, _) => None,
        };
        let headers = c
            .headers
            .into_iter()
            .map(|(name, source)| Ok((name, Template::parse(&source).map_err(|e| e.to_string())?)))
            .collect::<Result<_, String>>()?;
        Ok(Self {
            url,
            payload,
            headers,
            forward_response_headers: c.forward_response_headers_to_upstream,
            client,
        })
    }
}

#[async_trait]
impl Authorizer for RemoteAuthorizer {
    async fn authorize(
        &self,
        req: &RequestInfo,
        session: &mut AuthenticationSession,
    ) -> Result<(), PipelineError> {
        let data = session.template_data(req);
        let mut call = self.client.post(self.url.clone()).timeout(TIMEOUT);
        match &self.payload {
            Some(template) => {
                let body = template
                    .render(&data)
                    .map_err(|e| PipelineError::internal(e.to_string()))?;
                serde_json::from_str::<Value>(&body).map_err(|e| {
                    PipelineError::internal(format!("payload is not valid JSON: {e}"))
                })?;
                call = call.header("content-type", "application/json").body(body);
            }
            None => {
                if let Some(ct) = req.header("content-type") {
                    call = call.header("content-type", ct);
                }
                call = call.body(req.body.clone().unwrap_or_default());
            }
        }
        if let Some(auth) = req.headers.get("authorization") {
            call = call.header("authorization", auth.as_bytes());
        }
        for (name, template) in &self.headers {
            let value = template
                .render(&data)
                .map_err(|e| PipelineError::internal(e.to_string()))?;
            if !value.is_empty() {
                call = call.header(name.as_str(), value);
            }
        }
        let response = call.send().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "remote authorizer unreachable");
            PipelineError::internal("remote authorizer is unreachable")
        })?;
        match response.status().as_u16() {
            200 => {
                for name in &self.forward_response_headers {
                    if let Some(value) = response
                        .headers()
                        .get(name.as_str())
                        .and_then(|v| v.to_str().ok())
                    {
                        session.set_header(name, value.to_owned());
                    }
                }
                Ok(())
            }
            403 => Err(PipelineError::forbidden(
                "remote authorizer denied the request",
            )),
            status => Err(PipelineError::internal(format!(
                "remote authorizer answered {status}"
            ))),
        }
    }
}
