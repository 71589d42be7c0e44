//! The Pingora proxy: every request on the proxy port goes through the pipeline, then to the
//! matched rule's upstream.
//!
//! Phases: `request_filter` runs the pipeline (answering errors itself), `upstream_peer`
//! resolves the rule's upstream, `upstream_request_filter` rewrites path/Host and applies the
//! session headers, `logging` records the decision.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

use crate::pipeline::error::{ErrorResponse, PipelineError};
use crate::pipeline::session::RequestInfo;
use crate::pipeline::{Pipeline, Refusal};
use crate::upstream::Target;

const FORWARDED_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-method",
    "x-forwarded-uri",
    "forwarded",
];

/// The proxy service.
pub struct GatewayProxy {
    pipeline: Arc<Pipeline>,
    trust_forwarded_headers: bool,
}

impl GatewayProxy {
    /// A proxy over `pipeline`.
    pub fn new(pipeline: Arc<Pipeline>, trust_forwarded_headers: bool) -> Self {
        Self {
            pipeline,
            trust_forwarded_headers,
        }
    }
}

/// Per-request state.
#[derive(Default)]
pub struct RequestCtx {
    target: Option<Target>,
    rule_id: Option<String>,
    client_host: String,
    scheme: &'static str,
    refused: Option<u16>,
    decided_in: std::time::Duration,
}

fn request_info(session: &Session, trust_forwarded: bool) -> RequestInfo {
    let header = session.req_header();
    let forwarded_proto = header
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let scheme = match forwarded_proto.as_deref() {
        Some("https") if trust_forwarded => "https",
        _ => "http",
    };
    let host = header
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| header.uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let path =
        portcullis_rules::path::clean_path(&portcullis_rules::path::decode_path(header.uri.path()));
    RequestInfo {
        method: header.method.as_str().to_owned(),
        scheme: scheme.to_owned(),
        host,
        path,
        query: header.uri.query().map(str::to_owned),
        headers: header.headers.clone(),
        remote_addr: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip()),
        body: None,
    }
}

/// Largest body the proxy buffers for the `remote` authorizer (Pingora's retry buffer, which
/// replays it to the upstream afterwards).
const MAX_AUTHZ_BODY: usize = 64 * 1024;

/// Reads the whole request body into Pingora's retry buffer so that it can be shown to the
/// `remote` authorizer and still be sent upstream. Larger or unknown-length bodies are refused
/// (413) rather than authorized without their content.
async fn read_small_body(session: &mut Session) -> std::result::Result<Bytes, PipelineError> {
    let too_large =
        || PipelineError::with_status(413, "request body too large for the remote authorizer");
    let length = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match length {
        Some(n) if n <= MAX_AUTHZ_BODY => {}
        None if !session
            .req_header()
            .headers
            .contains_key(http::header::TRANSFER_ENCODING) =>
        {
            return Ok(Bytes::new());
        }
        _ => return Err(too_large()),
    }
    session.enable_retry_buffering();
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_AUTHZ_BODY {
                    return Err(too_large());
                }
            }
            Ok(None) => break,
            Err(_) => {
                return Err(PipelineError::with_status(
                    400,
                    "request body could not be read",
                ));
            }
        }
    }
    Ok(Bytes::from(body))
}

async fn respond(session: &mut Session, response: &ErrorResponse) -> Result<()> {
    let mut header = ResponseHeader::build(response.status, Some(response.headers.len() + 1))?;
    for (name, value) in &response.headers {
        header.insert_header(name.clone(), value.as_str())?;
    }
    header.insert_header("content-length", response.body.len().to_string())?;
    session
        .write_response_header(Box::new(header), response.body.is_empty())
        .await?;
    if !response.body.is_empty() {
        session
            .write_response_body(Some(Bytes::from(response.body.clone())), true)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let started = std::time::Instant::now();
        let req = request_info(session, self.trust_forwarded_headers);
        ctx.client_host = req.host.clone();
        ctx.scheme = if req.scheme == "https" {
            "https"
        } else {
            "http"
        };
        let mut req = req;
        let decided = match self.pipeline.match_request(&req) {
            Ok(matched) => {
                if matched.needs_body() {
                    match read_small_body(session).await {
                        Ok(body) => {
                            req.body = Some(body);
                            self.pipeline.run(matched, &req).await
                        }
                        Err(error) => Err(Refusal {
                            rule: Some(Arc::clone(matched.rule())),
                            rule_errors: None,
                            error,
                        }),
                    }
                } else {
                    self.pipeline.run(matched, &req).await
                }
            }
            Err(refusal) => Err(refusal),
        };
        ctx.decided_in = started.elapsed();
        let refusal = match decided {
            Ok(decision) => {
                ctx.rule_id = Some(decision.rule.id.clone());
                match Target::for_decision(&decision, &req) {
                    Ok(target) => {
                        ctx.target = Some(target);
                        return Ok(false);
                    }
                    Err(error) => Refusal {
                        rule: Some(decision.rule),
                        rule_errors: Some(decision.rule_errors),
                        error,
                    },
                }
            }
            Err(refusal) => refusal,
        };
        ctx.rule_id = refusal.rule.as_ref().map(|r| r.id.clone());
        ctx.refused = Some(refusal.error.status);
        tracing::info!(
            rule_id = ctx.rule_id.as_deref().unwrap_or(""),
            granted = false,
            status = refusal.error.status,
            reason = %refusal.error.reason,
            method = %req.method,
            path = %req.path,
            "access request denied"
        );
        let response = self.pipeline.error_response(&refusal, &req);
        self.pipeline.metrics().request(
            "proxy",
            ctx.rule_id.as_deref().unwrap_or(""),
            false,
            response.status,
            ctx.decided_in,
        );
        respond(session, &response).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let target = ctx
            .target
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(500), "no upstream selected"))?;
        let resolved = match target.addr {
            Some(addr) => Some(addr),
            None => tokio::net::lookup_host(target.authority.as_str())
                .await
                .ok()
                .and_then(|mut addrs| addrs.next()),
        };
        let addr = resolved.ok_or_else(|| {
            Error::explain(
                ErrorType::HTTPStatus(502),
                "upstream host cannot be resolved",
            )
        })?;
        let mut peer = HttpPeer::new(addr, target.tls, target.sni.clone());
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.total_connection_timeout = Some(Duration::from_secs(10));
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let Some(target) = ctx.target.as_ref() else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(500),
                "no upstream selected",
            ));
        };
        let uri = target
            .path_and_query
            .parse::<http::Uri>()
            .map_err(|_| Error::explain(ErrorType::HTTPStatus(500), "invalid upstream path"))?;
        upstream_request.set_uri(uri);
        if !target.preserve_host {
            upstream_request.insert_header("host", target.authority.as_str())?;
        }
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string());
        let previous_for = upstream_request
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !self.trust_forwarded_headers {
            for name in FORWARDED_HEADERS {
                upstream_request.remove_header(*name);
            }
        }
        let forwarded_for = match (previous_for, client_ip) {
            (Some(prev), Some(ip)) if self.trust_forwarded_headers => Some(format!("{prev}, {ip}")),
            (_, ip) => ip,
        };
        if let Some(value) = forwarded_for {
            upstream_request.insert_header("x-forwarded-for", value)?;
        }
        if !upstream_request.headers.contains_key("x-forwarded-host") {
            upstream_request.insert_header("x-forwarded-host", ctx.client_host.as_str())?;
        }
        if !upstream_request.headers.contains_key("x-forwarded-proto") {
            upstream_request.insert_header("x-forwarded-proto", ctx.scheme)?;
        }
        for (name, value) in &target.headers {
            upstream_request.insert_header(name.clone(), value.as_str())?;
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Self::CTX) {
        if ctx.refused.is_some() {
            return;
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        self.pipeline.metrics().request(
            "proxy",
            ctx.rule_id.as_deref().unwrap_or(""),
            true,
            status,
            ctx.decided_in,
        );
        match error {
            Some(e) => tracing::warn!(
                rule_id = ctx.rule_id.as_deref().unwrap_or(""),
                granted = true,
                status,
                error = %e,
                "upstream request failed"
            ),
            None => tracing::debug!(
                rule_id = ctx.rule_id.as_deref().unwrap_or(""),
                granted = true,
                status,
                "access request granted"
            ),
        }
    }
}
