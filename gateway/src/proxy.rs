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

use crate::config::{GatewayConfig, ProxyTimeouts};
use crate::metrics::{RuleCounters, Service};
use crate::pipeline::error::{ErrorResponse, PipelineError, json_response};
use crate::pipeline::session::RequestInfo;
use crate::pipeline::{Matched, Pipeline, Refusal};
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

/// Per-request state. Pingora moves it with the request's futures, so it is kept small.
#[derive(Default)]
pub struct RequestCtx {
    target: Option<Target>,
    /// The matched rule's counters (and id); `None` before a rule is found or when none is.
    counters: Option<Arc<RuleCounters>>,
    scheme: Scheme,
    /// The pipeline refused the request and answered it itself (counted then).
    refused: bool,
    /// The upstream headers (`Host`, `X-Forwarded-*`) were set in the client's request header
    /// itself, so Pingora's copy of it for the upstream already has them.
    headers_applied: bool,
    /// Time the decision took, in nanoseconds (saturating: 4 s is past the last bucket).
    decided_nanos: u32,
}

impl RequestCtx {
    fn rule_id(&self) -> &str {
        self.counters.as_ref().map(|c| c.id()).unwrap_or("")
    }

    fn decided(&mut self, started: std::time::Instant) {
        self.decided_nanos = u32::try_from(started.elapsed().as_nanos()).unwrap_or(u32::MAX);
    }

    fn decided_in(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::from(self.decided_nanos))
    }
}

/// The request's scheme as the gateway sees it (see [`GatewayProxy::scheme`]).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
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
/// `host` and the clean `path` are the ones the rule was looked up with.
fn request_info(session: &Session, scheme: Scheme, host: &str, path: &str) -> RequestInfo {
    let header = session.req_header();
    RequestInfo {
        method: header.method.as_str().to_owned(),
        scheme: scheme.as_str().to_owned(),
        host: host.to_owned(),
        path: path.to_owned(),
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

/// Whether the path goes upstream as the client sent it: `clean_path(decode_path(path)) ==
/// path` (rooted, no `%`, no empty, `.` or `..` segment, no trailing slash except `/` itself)
/// and nothing in it to encode ([`crate::upstream::path_byte_ok`]). One pass over the bytes.
fn path_is_clean(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes == b"/" {
        return true;
    }
    if bytes.first() != Some(&b'/') || bytes.last() == Some(&b'/') {
        return false;
    }
    // One pass: each segment starts after a `/`; none may be empty, `.` or `..`.
    let mut segment_start = 1;
    for (i, &byte) in bytes.iter().enumerate().skip(1) {
        match byte {
            b'%' => return false,
            byte if !crate::upstream::path_byte_ok(byte) => return false,
            b'/' => {
                if matches!(&bytes[segment_start..i], b"" | b"." | b"..") {
                    return false;
                }
                segment_start = i + 1;
            }
            _ => {}
        }
    }
    !matches!(&bytes[segment_start..], b"" | b"." | b"..")
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

static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");

/// Whether `name` is one of [`FORWARDED_HEADERS`] (one comparison by length and bytes, not a
/// scan of the list: it runs for every header of every request).
fn is_forwarded_header(name: &str) -> bool {
    matches!(
        name,
        "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-forwarded-port"
            | "x-forwarded-method"
            | "x-forwarded-uri"
            | "forwarded"
    )
}

/// What the upstream request learns about the client connection.
struct Forwarded {
    /// `serve.proxy.trust_forwarded_headers`: extend the client's `X-Forwarded-*` instead of
    /// replacing them.
    trusted: bool,
    client_ip: Option<std::net::IpAddr>,
    /// The request URI's authority, the client's host when it sent no `Host` (HTTP/1.0).
    uri_authority: Option<http::uri::Authority>,
    scheme: &'static str,
}

/// The request target as [`RequestHeader::raw_path`] renders it from the URI alone.
fn uri_target(uri: &http::Uri) -> &[u8] {
    uri.path_and_query()
        .map(|p| p.as_str().as_bytes())
        .or_else(|| uri.authority().map(|a| a.as_str().as_bytes()))
        .unwrap_or_default()
}

/// Edits the header map of `req` in place (and sets `uri`, when given).
///
/// Pingora's `RequestHeader` only offers `insert_header`/`remove_header`, which parse every name
/// again, copy custom names and keep a second, case-preserving map in step: about 1 400
/// instructions for each header a pass-through request gets (`Host`, `X-Forwarded-*`). Here the
/// request is taken apart into `http::request::Parts`, its `HeaderMap` edited directly with
/// prebuilt names, and the request put together again without the case map. Header names then
/// reach the upstream in lower case, apart from the well-known ones Pingora writes titled (`Host`,
/// `Content-Type`, `Content-Length`, ...), as Envoy sends them on HTTP/1 and every HTTP/2 hop
/// does; names are case-insensitive (RFC 9110 §5.1), and Oathkeeper itself forwards Go's
/// canonical forms, not the client's spelling. A request target the URI does not reproduce
/// (absolute-form, not UTF-8) is kept as it was, and so is HTTP/2's end-of-stream flag.
fn edit_headers(
    req: &mut RequestHeader,
    uri: Option<http::Uri>,
    edit: impl FnOnce(&mut http::HeaderMap) -> Result<()>,
) -> Result<()> {
    let raw = match uri {
        None if !req.raw_path_is_utf8() || req.raw_path() != uri_target(&req.uri) => {
            Some(req.raw_path().to_vec())
        }
        _ => None,
    };
    let send_end_stream = req.send_end_stream();
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(req, placeholder));
    if let Some(uri) = uri {
        parts.uri = uri;
    }
    let edited = edit(&mut parts.headers);
    let mut rebuilt = RequestHeader::from(parts);
    if let Some(raw) = raw {
        rebuilt.set_raw_path(&raw)?;
    }
    if let Some(end_stream) = send_end_stream {
        rebuilt.set_send_end_stream(end_stream);
    }
    *req = rebuilt;
    edited
}

/// The upstream request's headers: the upstream's `Host` (unless `preserve_host`), the client's
/// forwarded headers removed unless trusted, `X-Forwarded-For/Host/Proto`, then the session
/// headers the mutators set (overwriting client values).
fn rewrite_headers(
    headers: &mut http::HeaderMap,
    upstream_host: Option<http::HeaderValue>,
    forwarded: &Forwarded,
    session_headers: &[(String, String)],
) -> Result<()> {
    // One growth of the (cloned, full) map for everything added below; a failure here only
    // means the inserts grow it themselves.
    let _ = headers.try_reserve(4 + session_headers.len());
    // The client's `Host` (shared, not copied) for `X-Forwarded-Host`: the value the upstream's
    // `Host` replaces, read in the same lookup.
    let client_host = match upstream_host {
        Some(host) => headers.insert(http::header::HOST, host),
        None => headers.get(http::header::HOST).cloned(),
    };
    let trusted = forwarded.trusted;
    // One pass over the (few) header names instead of a lookup per forwarded header.
    if !trusted
        && headers
            .keys()
            .any(|name| is_forwarded_header(name.as_str()))
    {
        for name in FORWARDED_HEADERS {
            headers.remove(*name);
        }
    }
    let previous_for = if trusted {
        headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok())
    } else {
        None
    };
    let forwarded_for = match (previous_for, forwarded.client_ip) {
        (Some(prev), Some(ip)) => Some(
            http::HeaderValue::try_from(format!("{prev}, {ip}")).map_err(|_| {
                Error::explain(ErrorType::HTTPStatus(500), "invalid X-Forwarded-For value")
            })?,
        ),
        (_, Some(ip)) => Some(client_ip_value(ip)),
        (_, None) => None,
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    // Untrusted forwarded headers were removed above: no lookup needed then.
    if !trusted || !headers.contains_key(&X_FORWARDED_HOST) {
        let client_host = client_host
            .or_else(|| {
                forwarded
                    .uri_authority
                    .as_ref()
                    .and_then(|authority| http::HeaderValue::from_str(authority.as_str()).ok())
            })
            .unwrap_or_else(|| http::HeaderValue::from_static(""));
        headers.insert(X_FORWARDED_HOST.clone(), client_host);
    }
    if !trusted || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            http::HeaderValue::from_static(forwarded.scheme),
        );
    }
    for (name, value) in session_headers {
        let invalid = || {
            Error::explain(
                ErrorType::HTTPStatus(500),
                format!("mutator header {name:?} is not a valid header"),
            )
        };
        let header_name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let header_value = http::HeaderValue::from_str(value).map_err(|_| invalid())?;
        headers.insert(header_name, header_value);
    }
    Ok(())
}

/// How [`GatewayProxy::lookup`] found the request's rule.
enum Lookup {
    /// A pass-through rule (its counters): the request goes upstream as it is.
    PassThrough(Arc<RuleCounters>, Target),
    /// Any other rule, whose handlers run ([`Pipeline::run`]), or a refusal (no rule, several,
    /// or a rule that could not be evaluated); with the request as the pipeline sees it, built
    /// from the host and clean path the rule was looked up with.
    Pipeline(std::result::Result<Matched, Refusal>, Box<RequestInfo>),
}

thread_local! {
    /// The match URL of the request being looked up on this thread (a reused buffer).
    static MATCH_URL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Capacity above which the match-URL buffer is given back after a request.
const MATCH_URL_KEPT: usize = 4096;

impl GatewayProxy {
    /// `https` when trusted `X-Forwarded-Proto` says so, or the proxy port serves TLS.
    fn scheme(&self, header: &RequestHeader) -> Scheme {
        // Untrusted, the client's `X-Forwarded-Proto` is never read: no lookup.
        let forwarded = if self.trust_forwarded_headers {
            header
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        } else {
            None
        };
        match forwarded {
            Some(proto) if proto.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(_) => Scheme::Http,
            None if self.tls => Scheme::Https,
            None => Scheme::Http,
        }
    }

    /// Finds the request's rule. A pass-through rule is answered here, from the request header
    /// as Pingora parsed it, with the match URL in a reused buffer: nothing is copied from the
    /// request. Any other rule is handed on with its own copy of the URL and of the request.
    fn lookup(&self, session: &Session, scheme: Scheme) -> Lookup {
        let header = session.req_header();
        let raw_path = header.uri.path();
        let verbatim = path_is_clean(raw_path);
        let cleaned;
        let path = if verbatim {
            raw_path
        } else {
            cleaned =
                portcullis_rules::path::clean_path(&portcullis_rules::path::decode_path(raw_path));
            cleaned.as_str()
        };
        let host = client_host(header);
        MATCH_URL.with_borrow_mut(|url| {
            url.clear();
            portcullis_rules::path::push_match_url(url, scheme.as_str(), host, path);
            let pipeline = |outcome| {
                let req = request_info(session, scheme, host, path);
                Lookup::Pipeline(outcome, Box::new(req))
            };
            let lookup = match self.pipeline.find(header.method.as_str(), url) {
                Err(refusal) => pipeline(Err(refusal)),
                Ok(found) => match found.pass_through() {
                    Some(pass) => Lookup::PassThrough(
                        Arc::clone(pass.counters),
                        Target::pass_through(
                            pass.rule,
                            pass.upstream,
                            path,
                            verbatim && header.uri.authority().is_none(),
                            header.uri.query(),
                        ),
                    ),
                    None => pipeline(Ok(found.into_matched(url.clone()))),
                },
            };
            // One very long URL does not keep its buffer for the life of the thread.
            if url.capacity() > MATCH_URL_KEPT {
                *url = String::new();
            }
            lookup
        })
    }

    /// Runs the pipeline, reading the body first for handlers that need it.
    async fn decide(
        &self,
        session: &mut Session,
        req: &mut RequestInfo,
        matched: Matched,
    ) -> std::result::Result<crate::pipeline::Decision, Refusal> {
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

    /// The rest of [`ProxyHttp::request_filter`] for a rule that is not a pass-through, or a
    /// refusal: runs the handlers, then sets the upstream target or answers the error.
    async fn run_pipeline(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        matched: std::result::Result<Matched, Refusal>,
        mut req: Box<RequestInfo>,
        started: std::time::Instant,
    ) -> Result<bool> {
        let decided = match matched {
            Ok(matched) => self.decide(session, &mut req, matched).await,
            Err(refusal) => Err(refusal),
        };
        ctx.decided(started);
        let refusal = match decided {
            Ok(decision) => match Target::for_decision(&decision, &req) {
                Ok(target) => {
                    ctx.counters = Some(decision.counters);
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
        let metrics = self.pipeline.metrics();
        let counters = metrics.counters(refusal.rule.as_ref().map_or("", |r| r.id.as_str()));
        ctx.refused = true;
        tracing::info!(
            rule_id = counters.id(),
            granted = false,
            status = refusal.error.status,
            reason = %refusal.error.reason,
            method = %req.method,
            path = %req.path,
            "access request denied"
        );
        metrics.record(
            &counters,
            Service::Proxy,
            false,
            response.status,
            ctx.decided_in(),
        );
        ctx.counters = Some(counters);
        respond(session, &response).await?;
        Ok(true)
    }

    /// Sets a pass-through request's upstream headers (`Host`, `X-Forwarded-*`) in the client's
    /// request header itself, when that is the same as setting them in the upstream copy: an
    /// HTTP/1 request in origin form, whose `Host` Pingora leaves as it is. Pingora then copies
    /// the finished header for the upstream (also for a retry), without the case map that a
    /// header edit drops, and nothing is edited twice. Only pass-through rules: session headers,
    /// which a rule could name `Content-Length` or `Connection`, never touch the client's header,
    /// which Pingora reads for the client connection's framing. Returns whether it did.
    fn apply_upstream_headers(
        &self,
        session: &mut Session,
        target: &Target,
        scheme: Scheme,
    ) -> Result<bool> {
        let header = session.req_header();
        if header.version == http::Version::HTTP_2 || header.uri.authority().is_some() {
            return Ok(false);
        }
        let forwarded = self.forwarded(session, scheme);
        edit_headers(session.req_header_mut(), None, |headers| {
            rewrite_headers(headers, target.upstream_host(), &forwarded, &[])
        })?;
        Ok(true)
    }

    /// What the upstream request learns about the client connection of `session`.
    fn forwarded(&self, session: &Session, scheme: Scheme) -> Forwarded {
        Forwarded {
            trusted: self.trust_forwarded_headers,
            client_ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            uri_authority: session.req_header().uri.authority().cloned(),
            scheme: scheme.as_str(),
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

/// The client IP as an `X-Forwarded-For` value. Successive requests on a thread mostly come from
/// the same client (keep-alive connections, a load balancer in front), so the last value made on
/// the thread is kept and shared instead of formatting the address for every request.
fn client_ip_value(ip: std::net::IpAddr) -> http::HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(std::net::IpAddr, http::HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some((cached, value)) = last.as_ref()
            && *cached == ip
        {
            return value.clone();
        }
        let text = match ip {
            std::net::IpAddr::V4(v4) => ipv4_text(v4),
            ip => ip.to_string(),
        };
        // An address's text is always a valid header value.
        let value = http::HeaderValue::from_maybe_shared(Bytes::from(text))
            .unwrap_or_else(|_| http::HeaderValue::from_static(""));
        *last = Some((ip, value.clone()));
        value
    })
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

/// The first address of an upstream `host:port`; 502 when it cannot be resolved.
async fn resolve(authority: &str) -> Result<std::net::SocketAddr> {
    tokio::net::lookup_host(authority)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            Error::explain(
                ErrorType::HTTPStatus(502),
                "upstream host cannot be resolved",
            )
        })
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
        let (matched, req) = match self.lookup(session, ctx.scheme) {
            Lookup::PassThrough(counters, target) => {
                ctx.decided(started);
                ctx.counters = Some(counters);
                ctx.headers_applied = self.apply_upstream_headers(session, &target, ctx.scheme)?;
                ctx.target = Some(target);
                self.apply_timeouts(session);
                return Ok(false);
            }
            Lookup::Pipeline(matched, req) => (matched, req),
        };
        // Boxed: the handlers' futures are large, and this phase's own future is allocated and
        // moved for every request, pass-through ones included.
        Box::pin(self.run_pipeline(session, ctx, matched, req, started)).await
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
        let addr = match upstream.addr() {
            Some(addr) => addr,
            // Boxed: the resolver's future would otherwise make this phase's future (allocated
            // and moved for every request) larger for IP upstreams too.
            None => Box::pin(resolve(upstream.authority())).await?,
        };
        // SNI only matters for TLS: plain upstreams skip the allocation.
        let sni = if upstream.tls() {
            upstream.sni().to_owned()
        } else {
            String::new()
        };
        // Built in its box (one copy of the large peer, not two).
        let mut peer = Box::new(HttpPeer::new(addr, upstream.tls(), sni));
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.total_connection_timeout = Some(Duration::from_secs(10));
        // `timeout.write` bounds each wait for the upstream's answer (expiry: 504).
        peer.options.read_timeout = self.timeouts.write;
        peer.options.idle_timeout = self.timeouts.idle;
        Ok(peer)
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
        // Pass-through paths are usually unchanged: keep the parsed URI then. The target is
        // read, not taken: Pingora calls this filter again when it retries the request.
        let uri = match target.path_and_query() {
            None => None,
            Some(wanted)
                if upstream_request.uri.authority().is_none()
                    && upstream_request
                        .uri
                        .path_and_query()
                        .is_some_and(|p| p.as_str() == wanted) =>
            {
                None
            }
            Some(wanted) => Some(
                http::Uri::from_maybe_shared(Bytes::copy_from_slice(wanted.as_bytes())).map_err(
                    |_| Error::explain(ErrorType::HTTPStatus(500), "invalid upstream path"),
                )?,
            ),
        };
        if ctx.headers_applied {
            if let Some(uri) = uri {
                upstream_request.set_uri(uri);
            }
            return Ok(());
        }
        let forwarded = self.forwarded(session, ctx.scheme);
        edit_headers(upstream_request, uri, |headers| {
            rewrite_headers(
                headers,
                target.upstream_host(),
                &forwarded,
                target.headers(),
            )
        })
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
        if ctx.refused {
            return;
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        if let Some(counters) = &ctx.counters {
            self.pipeline.metrics().record(
                counters,
                Service::Proxy,
                true,
                status,
                ctx.decided_in(),
            );
        }
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

    fn forwarded(trusted: bool) -> Forwarded {
        Forwarded {
            trusted,
            client_ip: Some(std::net::IpAddr::from([10, 1, 2, 3])),
            uri_authority: None,
            scheme: "https",
        }
    }

    #[test]
    fn untrusted_forwarded_headers_are_replaced_and_session_headers_set() -> Result<()> {
        let mut req = RequestHeader::build("GET", b"/a?b=c", None)?;
        req.insert_header("Host", "public.example:4455")?;
        req.insert_header("X-Forwarded-For", "6.6.6.6")?;
        req.insert_header("Forwarded", "for=6.6.6.6")?;
        req.insert_header("X-User-Id", "spoofed")?;
        let session = vec![("X-User-Id".to_owned(), "alice".to_owned())];
        edit_headers(&mut req, None, |headers| {
            rewrite_headers(
                headers,
                Some(http::HeaderValue::from_static("10.0.0.9:80")),
                &forwarded(false),
                &session,
            )
        })?;
        let get = |name: &str| {
            let values: Vec<&str> = req
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            values.join(",")
        };
        assert_eq!(get("host"), "10.0.0.9:80");
        assert_eq!(get("x-forwarded-for"), "10.1.2.3");
        assert_eq!(get("x-forwarded-host"), "public.example:4455");
        assert_eq!(get("x-forwarded-proto"), "https");
        assert_eq!(get("forwarded"), "");
        assert_eq!(get("x-user-id"), "alice");
        assert_eq!(req.raw_path(), b"/a?b=c");
        // Written for HTTP/1 without the case map: lower case, well-known names titled.
        let mut wire = bytes::BytesMut::new();
        req.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8_lossy(&wire);
        assert!(wire.contains("Host: 10.0.0.9:80\r\n"), "{wire}");
        assert!(wire.contains("x-user-id: alice\r\n"), "{wire}");
        Ok(())
    }

    #[test]
    fn trusted_forwarded_headers_are_extended() -> Result<()> {
        let mut req = RequestHeader::build("GET", b"/", None)?;
        req.insert_header("X-Forwarded-For", "1.1.1.1")?;
        req.insert_header("X-Forwarded-Host", "edge.example")?;
        req.insert_header("X-Forwarded-Proto", "http")?;
        edit_headers(&mut req, None, |headers| {
            rewrite_headers(headers, None, &forwarded(true), &[])
        })?;
        let get = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(get("x-forwarded-for"), Some("1.1.1.1, 10.1.2.3"));
        assert_eq!(get("x-forwarded-host"), Some("edge.example"));
        assert_eq!(get("x-forwarded-proto"), Some("http"));
        Ok(())
    }

    #[test]
    fn editing_headers_keeps_a_target_the_uri_does_not_reproduce() -> Result<()> {
        // Absolute-form: kept verbatim unless a new URI is set.
        let mut req = RequestHeader::build("GET", b"http://h.example/p?q", None)?;
        edit_headers(&mut req, None, |_| Ok(()))?;
        assert_eq!(req.raw_path(), b"http://h.example/p?q");
        edit_headers(&mut req, Some(http::Uri::from_static("/new")), |_| Ok(()))?;
        assert_eq!(req.raw_path(), b"/new");
        // HTTP/2's end-of-stream flag survives.
        let mut h2 = RequestHeader::build("GET", b"/", None)?;
        h2.set_version(http::Version::HTTP_2);
        h2.set_send_end_stream(false);
        edit_headers(&mut h2, None, |_| Ok(()))?;
        assert_eq!(h2.send_end_stream(), Some(false));
        // A failed edit still leaves the request in place.
        let mut req = RequestHeader::build("GET", b"/keep", None)?;
        req.insert_header("X-A", "1")?;
        let failed = edit_headers(&mut req, None, |headers| {
            rewrite_headers(
                headers,
                None,
                &forwarded(false),
                &[("bad name".to_owned(), "v".to_owned())],
            )
        });
        assert!(failed.is_err());
        assert_eq!(req.raw_path(), b"/keep");
        assert_eq!(
            req.headers.get("x-a").and_then(|v| v.to_str().ok()),
            Some("1")
        );
        Ok(())
    }

    #[test]
    fn forwarded_host_is_the_clients_host() -> Result<()> {
        // preserve_host: the client's Host stays and is forwarded too.
        let mut req = RequestHeader::build("GET", b"/", None)?;
        req.insert_header("Host", "public.example")?;
        edit_headers(&mut req, None, |headers| {
            rewrite_headers(headers, None, &forwarded(false), &[])
        })?;
        let get = |req: &RequestHeader, name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(get(&req, "host").as_deref(), Some("public.example"));
        assert_eq!(
            get(&req, "x-forwarded-host").as_deref(),
            Some("public.example")
        );
        // No Host (HTTP/1.0): the request URI's authority, else empty.
        let mut req = RequestHeader::build("GET", b"/", None)?;
        let with_authority = Forwarded {
            uri_authority: Some(http::uri::Authority::from_static("h.example:8080")),
            ..forwarded(false)
        };
        edit_headers(&mut req, None, |headers| {
            rewrite_headers(
                headers,
                Some(http::HeaderValue::from_static("up:80")),
                &with_authority,
                &[],
            )
        })?;
        assert_eq!(get(&req, "host").as_deref(), Some("up:80"));
        assert_eq!(
            get(&req, "x-forwarded-host").as_deref(),
            Some("h.example:8080")
        );
        let mut req = RequestHeader::build("GET", b"/", None)?;
        edit_headers(&mut req, None, |headers| {
            rewrite_headers(headers, None, &forwarded(false), &[])
        })?;
        assert_eq!(get(&req, "x-forwarded-host").as_deref(), Some(""));
        Ok(())
    }

    #[test]
    fn forwarded_header_names_are_recognised() {
        for name in FORWARDED_HEADERS {
            assert!(is_forwarded_header(name), "{name}");
        }
        for name in [
            "x-forwarded",
            "x-forwarded-fo",
            "forwarded-for",
            "host",
            "x-user-id",
        ] {
            assert!(!is_forwarded_header(name), "{name}");
        }
    }

    #[test]
    fn client_ip_values_follow_the_address() {
        for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.1", "::1", "2001:db8::7"] {
            let addr: std::net::IpAddr = ip.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(client_ip_value(addr).to_str().ok(), Some(ip));
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
            ("/.", false),
            ("/..", false),
            ("/a/.", false),
            ("/a/..", false),
            ("/.a/..b/a.", true),
            ("/a//b", false),
            ("a/b", false),
            ("/%", false),
            ("/a b", false),
            ("/a\"b", false),
            ("/caf\u{e9}", false),
            ("/a:b@c!$&'()*+,;=-._~", true),
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
