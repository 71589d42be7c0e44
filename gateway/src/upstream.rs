//! Where a granted request goes: the rule's `upstream` applied to the request, with
//! Oathkeeper's URL rules (path joined onto the upstream path, `strip_path` removing the first
//! occurrence of the segment, `preserve_host`).

use portcullis_rules::path::clean_path;

use crate::pipeline::Decision;
use crate::pipeline::error::PipelineError;
use crate::pipeline::session::RequestInfo;

/// A rule's upstream URL, parsed once when the rule set is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamBase {
    authority: String,
    /// `authority` as the upstream `Host` header value (built once, shared by every request).
    host_header: http::HeaderValue,
    addr: Option<std::net::SocketAddr>,
    tls: bool,
    sni: String,
    base_path: String,
}

impl UpstreamBase {
    /// Parses an absolute `http(s)://` upstream URL.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
        let host = url.host_str().ok_or("upstream url has no host")?;
        let port = url
            .port_or_known_default()
            .ok_or("upstream url has no port")?;
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            addr: authority.parse().ok(),
            host_header: http::HeaderValue::from_str(&authority)
                .map_err(|_| "upstream url host is not a valid Host header")?,
            authority,
            tls: url.scheme() == "https",
            sni: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            base_path: url.path().to_owned(),
        })
    }
}

/// The upstream request of a granted request. Small: the proxy keeps it in its per-request
/// context, which Pingora moves (copies) with the request's futures, so what a pass-through
/// request does not need is behind one optional box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The rule's parsed upstream (shared, not copied per request).
    pub upstream: std::sync::Arc<UpstreamBase>,
    /// Keep the client's `Host`.
    pub preserve_host: bool,
    /// The path sent upstream and the session headers; `None`: the client's path, unchanged, and
    /// no session headers.
    rewrite: Option<Box<Rewrite>>,
}

/// What a [`Target`] changes in the request besides `Host`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Rewrite {
    path_and_query: String,
    headers: Vec<(String, String)>,
}

impl UpstreamBase {
    /// `host:port` to connect to (and the `Host` header unless `preserve_host`).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// `authority` as a header value.
    pub fn host_header(&self) -> &http::HeaderValue {
        &self.host_header
    }

    /// The address when the upstream host is an IP literal (no resolution needed).
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.addr
    }

    /// Connect with TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Server name for TLS.
    pub fn sni(&self) -> &str {
        &self.sni
    }
}

impl Target {
    /// Applies the matched rule's upstream to the request.
    pub fn for_decision(decision: &Decision, req: &RequestInfo) -> Result<Self, PipelineError> {
        let Some(base) = decision.upstream.as_ref() else {
            return Err(PipelineError::internal(
                "the matched rule has no upstream URL",
            ));
        };
        let upstream = &decision.rule.upstream;
        Ok(Self {
            upstream: std::sync::Arc::clone(base),
            preserve_host: upstream.preserve_host,
            rewrite: Some(Box::new(Rewrite {
                path_and_query: upstream_path_and_query(
                    base,
                    upstream.strip_path.as_deref(),
                    &req.path,
                    req.query.as_deref(),
                ),
                headers: decision.session.header.clone(),
            })),
        })
    }

    /// Path and query sent upstream; `None`: the client's, unchanged.
    pub fn path_and_query(&self) -> Option<&str> {
        self.rewrite.as_ref().map(|r| r.path_and_query.as_str())
    }

    /// The upstream's `Host` value, unless `preserve_host` keeps the client's.
    pub fn upstream_host(&self) -> Option<http::HeaderValue> {
        (!self.preserve_host).then(|| self.upstream.host_header().clone())
    }

    /// Session headers to set (overwriting client values).
    pub fn headers(&self) -> &[(String, String)] {
        self.rewrite.as_ref().map_or(&[], |r| r.headers.as_slice())
    }

    /// The target of a pass-through rule (no session headers). `path` is the request's clean
    /// path; `verbatim` says that the client's path is that clean path, as sent, with nothing to
    /// encode (every byte [`path_byte_ok`]), so that an upstream without a base path or
    /// `strip_path` gets the client's path and query unchanged (`path_and_query: None`, nothing
    /// built per request).
    pub fn pass_through(
        rule: &portcullis_rules::Rule,
        base: &std::sync::Arc<UpstreamBase>,
        path: &str,
        verbatim: bool,
        query: Option<&str>,
    ) -> Self {
        let strip = rule.upstream.strip_path.as_deref();
        let unchanged = verbatim && strip.is_none() && matches!(base.base_path.as_str(), "" | "/");
        Self {
            upstream: std::sync::Arc::clone(base),
            preserve_host: rule.upstream.preserve_host,
            rewrite: (!unchanged).then(|| {
                Box::new(Rewrite {
                    path_and_query: upstream_path_and_query(base, strip, path, query),
                    headers: Vec::new(),
                })
            }),
        }
    }
}

/// Oathkeeper's upstream URL: the (clean) request path joined onto the upstream's path, then
/// `strip_path`, encoded, with the request's query.
fn upstream_path_and_query(
    base: &UpstreamBase,
    strip: Option<&str>,
    path: &str,
    query: Option<&str>,
) -> String {
    // `path` is already clean: with an empty or `/` base path the join is the path.
    let mut path = if matches!(base.base_path.as_str(), "" | "/") && path.starts_with('/') {
        path.to_owned()
    } else {
        join_path(&base.base_path, path)
    };
    if let Some(strip) = strip {
        path = strip_path(&path, strip);
    }
    let mut path_and_query = encode_path(path);
    if let Some(q) = query {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    path_and_query
}

/// Go's `path.Join(base, path)`.
fn join_path(base: &str, path: &str) -> String {
    let joined = clean_path(&format!("{base}/{path}"));
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

/// Oathkeeper's `strip_path`: removes the first occurrence of `/<strip>` anywhere in the path.
fn strip_path(path: &str, strip: &str) -> String {
    let needle = format!("/{}", strip.trim_matches('/'));
    if needle == "/" {
        return path.to_owned();
    }
    let stripped = path.replacen(&needle, "", 1);
    if stripped.is_empty() {
        "/".to_owned()
    } else {
        stripped
    }
}

/// Bytes a path goes on the wire with as they are (unreserved, sub-delims, `:`, `@`, `/`, `%`).
const PATH_BYTE_OK: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric();
        byte += 1;
    }
    let extra = b"/-._~!$&'()*+,;=:@%";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// Whether a path byte goes on the wire as it is.
pub fn path_byte_ok(byte: u8) -> bool {
    PATH_BYTE_OK[usize::from(byte)]
}

/// Re-encodes the characters a decoded path may contain that cannot go on the wire.
fn encode_path(path: String) -> String {
    if path.bytes().all(path_byte_ok) {
        return path;
    }
    let mut out = String::with_capacity(path.len() + 8);
    for byte in path.bytes() {
        if path_byte_ok(byte) {
            out.push(byte as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 15)] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_strip_like_oathkeeper() {
        assert_eq!(join_path("/", "/a/b"), "/a/b");
        assert_eq!(join_path("/foo/", "/api/users/1"), "/foo/api/users/1");
        assert_eq!(join_path("", "/x/"), "/x");
        assert_eq!(strip_path("/foo/api/users/1", "api"), "/foo/users/1");
        assert_eq!(strip_path("/api", "/api/"), "/");
        assert_eq!(strip_path("/a/b", ""), "/a/b");
        assert_eq!(encode_path("/a b/é".to_owned()), "/a%20b/%C3%A9");
        assert_eq!(encode_path("/plain/path".to_owned()), "/plain/path");
    }

    fn rule(upstream: serde_json::Value) -> Result<portcullis_rules::Rule, String> {
        serde_json::from_value(serde_json::json!({
            "id": "r",
            "match": {"url": "http://h/<.*>", "methods": ["GET"]},
            "upstream": upstream,
        }))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_pass_through_target_keeps_the_client_uri_only_when_nothing_changes() -> Result<(), String>
    {
        let plain = std::sync::Arc::new(UpstreamBase::parse("http://127.0.0.1:4460")?);
        let based = std::sync::Arc::new(UpstreamBase::parse("http://127.0.0.1:4460/base")?);
        let simple = rule(serde_json::json!({"url": "http://127.0.0.1:4460"}))?;
        let stripping =
            rule(serde_json::json!({"url": "http://127.0.0.1:4460", "strip_path": "/api"}))?;
        let keep = Target::pass_through(&simple, &plain, "/a/b", true, Some("q=1"));
        assert_eq!(keep.path_and_query(), None);
        assert!(!keep.preserve_host);
        // Not as sent (the path had to be cleaned): the clean path goes upstream.
        let cleaned = Target::pass_through(&simple, &plain, "/a/b", false, Some("q=1"));
        assert_eq!(cleaned.path_and_query(), Some("/a/b?q=1"));
        let joined = Target::pass_through(&simple, &based, "/a", true, None);
        assert_eq!(joined.path_and_query(), Some("/base/a"));
        let stripped = Target::pass_through(&stripping, &plain, "/api/x", true, None);
        assert_eq!(stripped.path_and_query(), Some("/x"));
        Ok(())
    }

    #[test]
    fn upstream_urls_are_parsed_once() -> Result<(), String> {
        let ip = UpstreamBase::parse("http://127.0.0.1:4460/base")?;
        assert_eq!(ip.authority, "127.0.0.1:4460");
        assert!(ip.addr.is_some());
        assert_eq!(ip.base_path, "/base");
        let named = UpstreamBase::parse("https://api.example")?;
        assert_eq!(
            (named.authority.as_str(), named.tls, named.addr),
            ("api.example:443", true, None)
        );
        let v6 = UpstreamBase::parse("http://[::1]:8080")?;
        assert_eq!(v6.authority, "[::1]:8080");
        assert_eq!(v6.sni, "::1");
        Ok(())
    }
}
