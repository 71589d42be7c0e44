//! The Pingora proxy: every request on the proxy port goes through the pipeline, then to the
//! matched rule's upstream.
//!
//! Phases: `request_filter` runs the pipeline (answering errors itself), `upstream_peer`
//! resolves the rule's upstream, `upstream_request_filter` rewrites path/Host and applies the
//! session headers, `fail_to_proxy` answers upstream failures (502, timeouts 504) with
//! Oathkeeper's JSON error body, `logging` records the decision.
//!
//! This is the hot path: a pass-through request must cost little more than a bare Pingora
//! proxy (`bench/floor`), so nothing here allocates or formats without need
//! (`gateway/benches/profile.sh` counts the instructions per request).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};
use portcullis_rules::Rule;

use crate::config::{GatewayConfig, ProxyTimeouts};
use crate::pipeline::error::{ErrorResponse, PipelineError, json_response};
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
    /// The proxy port serves HTTPS.
    tls: bool,
    timeouts: ProxyTimeouts,
}

impl GatewayProxy {
    /// A proxy over `pipeline` with the `serve.proxy` settings of `config`.
    pub fn new(pipeline: Arc<Pipeline>, config: &GatewayConfig) -> Self {
        Self {
            pipeline,
            trust_forwarded_headers: config.trust_forwarded_headers,
            tls: config.proxy.tls.is_some(),
            timeouts: config.proxy_timeouts,
        }
    }
}

/// Per-request state.
#[derive(Default)]
pub struct RequestCtx {
    target: Option<Target>,
    rule: Option<Arc<Rule>>,
    scheme: &'static str,
    refused: Option<u16>,
    decided_in: std::time::Duration,
}

impl RequestCtx {
    fn rule_id(&self) -> &str {
        self.rule.as_ref().map(|r| r.id.as_str()).unwrap_or("")
    }
}

/// The client's `Host` (or the request URI's authority).
fn client_host(header: &RequestHeader) -> &str {
    header
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| header.uri.authority().map(|a| a.as_str()))
        .unwrap_or_default()
}

/// The request as the pipeline sees it, without its headers: matching does not read them, a
/// pass-through rule never does, so they are copied in only when needed ([`load_headers`]).
fn request_info(session: &Session, scheme: &'static str) -> RequestInfo {
    let header = session.req_header();
    let raw_path = header.uri.path();
    // Most paths need neither decoding nor cleaning; only allocate for those that do.
    let path = if path_is_clean(raw_path) {
        raw_path.to_owned()
    } else {
        portcullis_rules::path::clean_path(&portcullis_rules::path::decode_path(raw_path))
    };
    RequestInfo {
        method: header.method.as_str().to_owned(),
        scheme: scheme.to_owned(),
        host: client_host(header).to_owned(),
        path,
        query: header.uri.query().map(str::to_owned),
        headers: http::HeaderMap::new(),
        remote_addr: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip()),
        body: None,
    }
}

/// Copies the request headers into `req` (for handlers and error handlers).
fn load_headers(session: &Session, req: &mut RequestInfo) {
    req.headers = session.req_header().headers.clone();
}

/// Whether `clean_path(decode_path(path)) == path`: rooted, no `%`, no empty, `.` or `..`
/// segment, no trailing slash (except `/` itself).
fn path_is_clean(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    if !path.starts_with('/') || path.ends_with('/') || path.contains('%') {
        return false;
    }
    path[1..]
        .split('/')
        .all(|segment| !matches!(segment, "" | "." | ".."))
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

impl GatewayProxy {
    /// `https` when trusted `X-Forwarded-Proto` says so, or the proxy port serves TLS.
    fn scheme(&self, header: &RequestHeader) -> &'static str {
        let forwarded = header
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty());
        match forwarded {
            Some(proto) if self.trust_forwarded_headers && proto.eq_ignore_ascii_case("https") => {
                "https"
            }
            Some(_) if self.trust_forwarded_headers => "http",
            _ if self.tls => "https",
            _ => "http",
        }
    }

    /// Runs the pipeline, reading the body first for handlers that need it.
    async fn decide(
        &self,
        session: &mut Session,
        req: &mut RequestInfo,
    ) -> std::result::Result<crate::pipeline::Decision, Refusal> {
        let matched = self.pipeline.match_request(req)?;
        if matched.is_pass_through() {
            return self.pipeline.run(matched, req).await;
        }
        load_headers(session, req);
        if !matched.needs_body() {
            return self.pipeline.run(matched, req).await;
        }
        match read_small_body(session).await {
            Ok(body) => {
                req.body = Some(body);
                self.pipeline.run(matched, req).await
            }
            Err(error) => Err(Refusal {
                rule: Some(Arc::clone(matched.rule())),
                rule_errors: None,
                error,
            }),
        }
    }

    /// `serve.proxy.timeout.{read,idle}` on the client connection (only when configured: each
    /// timer costs every request).
    fn apply_timeouts(&self, session: &mut Session) {
        if let Some(read) = self.timeouts.read {
            session.set_read_timeout(Some(read));
        }
        if let Some(idle) = self.timeouts.idle {
            let idle = idle.as_secs().max(1);
            // Only where keep-alive is on (Pingora turns it off while shutting down).
            if session
                .get_keepalive()
                .is_some_and(|current| current != idle)
            {
                session.set_keepalive(Some(idle));
            }
        }
    }
}

/// Dotted-quad text of an IPv4 address, without the formatting machinery (`to_string` costs
/// more than the rest of the header work on a pass-through request).
fn ipv4_text(ip: std::net::Ipv4Addr) -> String {
    let mut out = String::with_capacity(15);
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

/// The status for an error that stopped proxying: the error's own HTTP status, 504 for an
/// upstream that timed out, 502 for any other upstream failure; 0 (no answer) when the client
/// connection is gone, 400 for other client errors, else 500 (Pingora's rules otherwise).
fn failure_status(e: &Error) -> u16 {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(code) => *code,
        etype => match e.esource() {
            ErrorSource::Upstream => match etype {
                ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => 504,
                _ => 502,
            },
            ErrorSource::Downstream => match etype {
                WriteError | ReadError | ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let started = std::time::Instant::now();
        ctx.scheme = self.scheme(session.req_header());
        let mut req = request_info(session, ctx.scheme);
        let decided = self.decide(session, &mut req).await;
        ctx.decided_in = started.elapsed();
        let refusal = match decided {
            Ok(decision) => match Target::for_decision(&decision, &req) {
                Ok(target) => {
                    ctx.rule = Some(decision.rule);
                    ctx.target = Some(target);
                    self.apply_timeouts(session);
                    return Ok(false);
                }
                Err(error) => Refusal {
                    rule: Some(decision.rule),
                    rule_errors: Some(decision.rule_errors),
                    error,
                },
            },
            Err(refusal) => refusal,
        };
        // Error handlers select by `Accept`/`Content-Type` (and redirect on them).
        if req.headers.is_empty() {
            load_headers(session, &mut req);
        }
        let response = self.pipeline.error_response(&refusal, &req);
        ctx.rule = refusal.rule.clone();
        ctx.refused = Some(refusal.error.status);
        tracing::info!(
            rule_id = ctx.rule_id(),
            granted = false,
            status = refusal.error.status,
            reason = %refusal.error.reason,
            method = %req.method,
            path = %req.path,
            "access request denied"
        );
        self.pipeline.metrics().request(
            "proxy",
            ctx.rule_id(),
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
        let upstream = &target.upstream;
        let resolved = match upstream.addr() {
            Some(addr) => Some(addr),
            None => tokio::net::lookup_host(upstream.authority())
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
        // SNI only matters for TLS: plain upstreams skip the allocation.
        let sni = if upstream.tls() {
            upstream.sni().to_owned()
        } else {
            String::new()
        };
        let mut peer = HttpPeer::new(addr, upstream.tls(), sni);
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.total_connection_timeout = Some(Duration::from_secs(10));
        // `timeout.write` bounds each wait for the upstream's answer (expiry: 504).
        peer.options.read_timeout = self.timeouts.write;
        peer.options.idle_timeout = self.timeouts.idle;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let Some(target) = ctx.target.as_mut() else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(500),
                "no upstream selected",
            ));
        };
        // Pass-through paths are usually unchanged: keep the parsed URI then.
        let unchanged = upstream_request.uri.authority().is_none()
            && upstream_request
                .uri
                .path_and_query()
                .is_some_and(|p| p.as_str() == target.path_and_query);
        if !unchanged {
            let uri = http::Uri::from_maybe_shared(Bytes::from(std::mem::take(
                &mut target.path_and_query,
            )))
            .map_err(|_| Error::explain(ErrorType::HTTPStatus(500), "invalid upstream path"))?;
            upstream_request.set_uri(uri);
        }
        // Header values are shared (`Bytes`), not copied: the upstream's Host is built once per
        // rule, X-Forwarded-Host is the client's Host value.
        if !target.preserve_host {
            upstream_request.insert_header("host", target.upstream.host_header().clone())?;
        }
        // One pass over the (few) header names instead of a lookup per forwarded header.
        if !self.trust_forwarded_headers
            && upstream_request
                .headers
                .keys()
                .any(|name| FORWARDED_HEADERS.contains(&name.as_str()))
        {
            for name in FORWARDED_HEADERS {
                upstream_request.remove_header(*name);
            }
        }
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let previous_for = if self.trust_forwarded_headers {
            upstream_request
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
        } else {
            None
        };
        let forwarded_for = match (previous_for, client_ip) {
            (Some(prev), Some(ip)) => Some(format!("{prev}, {ip}")),
            (_, Some(std::net::IpAddr::V4(ip))) => Some(ipv4_text(ip)),
            (_, Some(ip)) => Some(ip.to_string()),
            (_, None) => None,
        };
        if let Some(value) = forwarded_for {
            upstream_request.insert_header("x-forwarded-for", value)?;
        }
        // Untrusted forwarded headers were removed above: no lookup needed then.
        let trusted = self.trust_forwarded_headers;
        if !trusted || !upstream_request.headers.contains_key("x-forwarded-host") {
            let client = session.req_header();
            let host = match client.headers.get(http::header::HOST) {
                Some(value) => value.clone(),
                None => http::HeaderValue::from_str(client_host(client))
                    .unwrap_or_else(|_| http::HeaderValue::from_static("")),
            };
            upstream_request.insert_header("x-forwarded-host", host)?;
        }
        if !trusted || !upstream_request.headers.contains_key("x-forwarded-proto") {
            upstream_request.insert_header(
                "x-forwarded-proto",
                http::HeaderValue::from_static(ctx.scheme),
            )?;
        }
        for (name, value) in std::mem::take(&mut target.headers) {
            upstream_request.insert_header(name, value)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let status = failure_status(e);
        if status > 0 && session.response_written().is_none() {
            let error = PipelineError::with_status(status, e.to_string());
            if let Err(write_error) = respond(session, &json_response(&error, false)).await {
                tracing::debug!(error = %write_error, "error response not delivered");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Self::CTX) {
        if ctx.refused.is_some() {
            return;
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        self.pipeline
            .metrics()
            .request("proxy", ctx.rule_id(), true, status, ctx.decided_in);
        match error {
            Some(e) => tracing::warn!(
                rule_id = ctx.rule_id(),
                granted = true,
                status,
                error = %e,
                "upstream request failed"
            ),
            None => tracing::debug!(
                rule_id = ctx.rule_id(),
                granted = true,
                status,
                "access request granted"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.100.9.99",
        ] {
            let addr: std::net::Ipv4Addr = ip.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ipv4_text(addr), addr.to_string());
        }
    }

    #[test]
    fn clean_paths_are_recognised() {
        for (path, clean) in [
            ("/", true),
            ("/a/b", true),
            ("/a/b/", false),
            ("//a", false),
            ("/a/./b", false),
            ("/a/../b", false),
            ("/a%20b", false),
            ("", false),
        ] {
            assert_eq!(path_is_clean(path), clean, "{path:?}");
            if clean {
                let cleaned =
                    portcullis_rules::path::clean_path(&portcullis_rules::path::decode_path(path));
                assert_eq!(cleaned, path);
            }
        }
    }
}
