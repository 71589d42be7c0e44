//! Error handlers (`json`, `redirect`, `www_authenticate`) and their `when` conditions.
//!
//! Selection follows Oathkeeper: the rule's `errors[]` whose `when` matches (two matching is a
//! 500), else the first handler of `errors.fallback` whose global `when` matches, else a 500.
//! `when` entries are OR-ed; inside one entry the error names and request conditions are
//! AND-ed. Request conditions: `header.accept` / `header.content_type` MIME lists (handler side
//! may use `*/*` and `type/*`; a missing header counts as `application/octet-stream`) and the
//! client address (`remote_ip.match` or the schema's `cidr` spelling, both accepted).

use std::net::IpAddr;

use portcullis_rules::handlers::{RedirectErrorConfig, WwwAuthenticateConfig};
use serde::Deserialize;
use serde_json::Value;

use super::error::{ErrorResponse, PipelineError, json_response};
use super::session::RequestInfo;

/// One configured error handler with its conditions.
#[derive(Clone, Debug)]
pub struct ErrorHandlerEntry {
    kind: Kind,
    when: Vec<When>,
}

#[derive(Clone, Debug)]
enum Kind {
    Json {
        verbose: bool,
    },
    Redirect {
        to: String,
        code: u16,
        return_to: Option<String>,
    },
    WwwAuthenticate {
        realm: String,
    },
}

#[derive(Clone, Debug, Default)]
struct When {
    errors: Vec<String>,
    accept: Vec<String>,
    content_type: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
    respect_forwarded_for: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WhenSpec {
    #[serde(default)]
    error: Vec<String>,
    #[serde(default)]
    request: RequestSpec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    #[serde(default)]
    header: HeaderSpec,
    #[serde(default)]
    cidr: Vec<String>,
    #[serde(default)]
    remote_ip: RemoteIpSpec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HeaderSpec {
    #[serde(default)]
    accept: Vec<String>,
    #[serde(default)]
    content_type: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RemoteIpSpec {
    #[serde(default, rename = "match")]
    matches: Vec<String>,
    #[serde(default)]
    respect_forwarded_for_header: bool,
}

fn parse_network(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?} is not a CIDR"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("{text:?} is not a CIDR"))?,
        None => max,
    };
    Ok((addr, bits))
}

fn in_network(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn parse_when(value: Option<&Value>) -> Result<Vec<When>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let specs: Vec<WhenSpec> =
        serde_json::from_value(value.clone()).map_err(|e| format!("when: {e}"))?;
    specs
        .into_iter()
        .map(|spec| {
            let networks = spec
                .request
                .cidr
                .iter()
                .chain(&spec.request.remote_ip.matches)
                .map(|c| parse_network(c))
                .collect::<Result<_, _>>()?;
            Ok(When {
                errors: spec.error,
                accept: spec.request.header.accept,
                content_type: spec.request.header.content_type,
                networks,
                respect_forwarded_for: spec.request.remote_ip.respect_forwarded_for_header,
            })
        })
        .collect()
}

impl ErrorHandlerEntry {
    /// Builds a handler from its merged config.
    pub fn build(name: &str, config: &Value) -> Result<Self, String> {
        let when = parse_when(config.get("when"))?;
        let kind = match name {
            "json" => Kind::Json {
                verbose: config
                    .get("verbose")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            },
            "redirect" => {
                let c: RedirectErrorConfig =
                    serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
                let to = c.to.ok_or("to is required")?;
                if let Some(p) = &c.return_to_query_param
                    && !p
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ",._~-".contains(ch))
                {
                    return Err(format!(
                        "return_to_query_param {p:?} has invalid characters"
                    ));
                }
                Kind::Redirect {
                    to,
                    code: if c.code == Some(301) { 301 } else { 302 },
                    return_to: c.return_to_query_param.filter(|p| !p.is_empty()),
                }
            }
            "www_authenticate" => {
                let c: WwwAuthenticateConfig =
                    serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
                Kind::WwwAuthenticate {
                    realm: c.realm.unwrap_or_else(|| "Please authenticate.".to_owned()),
                }
            }
            other => return Err(format!("unknown error handler {other:?}")),
        };
        Ok(Self { kind, when })
    }

    /// Whether the handler is responsible for `error` on `req` (no `when`: always).
    pub fn matches(&self, error: &PipelineError, req: &RequestInfo) -> bool {
        self.when.is_empty() || self.when.iter().any(|w| w.matches(error, req))
    }

    /// The response this handler writes.
    pub fn respond(&self, error: &PipelineError, req: &RequestInfo) -> ErrorResponse {
        match &self.kind {
            Kind::Json { verbose } => json_response(error, *verbose),
            Kind::Redirect {
                to,
                code,
                return_to,
            } => {
                let mut location = to.clone();
                if let Some(param) = return_to {
                    let original = original_url(req);
                    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair(param, &original)
                        .finish();
                    location.push(if location.contains('?') { '&' } else { '?' });
                    location.push_str(&encoded);
                }
                ErrorResponse {
                    status: *code,
                    headers: vec![("Location".to_owned(), location)],
                    body: Vec::new(),
                }
            }
            Kind::WwwAuthenticate { realm } => ErrorResponse {
                status: 401,
                headers: vec![
                    (
                        "WWW-Authenticate".to_owned(),
                        format!("Basic realm={realm}"),
                    ),
                    (
                        "Content-Type".to_owned(),
                        "text/plain; charset=utf-8".to_owned(),
                    ),
                ],
                body: b"Unauthorized\n".to_vec(),
            },
        }
    }
}

fn original_url(req: &RequestInfo) -> String {
    let mut url = format!("{}://{}{}", req.scheme, req.host, req.path);
    if let Some(q) = &req.query {
        url.push('?');
        url.push_str(q);
    }
    url
}

fn mime_list(header: Option<&str>) -> Vec<String> {
    match header {
        None | Some("") => vec!["application/octet-stream".to_owned()],
        Some(v) => v
            .split(',')
            .map(|m| {
                m.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|m| !m.is_empty())
            .collect(),
    }
}

fn mime_matches(wanted: &str, given: &str) -> bool {
    let wanted = wanted.to_ascii_lowercase();
    if wanted == "*/*" || wanted == given {
        return true;
    }
    match (wanted.split_once('/'), given.split_once('/')) {
        (Some((wt, "*")), Some((gt, _))) => wt == gt,
        _ => false,
    }
}

impl When {
    fn matches(&self, error: &PipelineError, req: &RequestInfo) -> bool {
        if !self.errors.is_empty() && !self.errors.contains(&error.kind_name()) {
            return false;
        }
        let mime_ok = |wanted: &[String], header: &str| {
            wanted.is_empty() || {
                let given = mime_list(req.header(header));
                wanted
                    .iter()
                    .any(|w| given.iter().any(|g| mime_matches(w, g)))
            }
        };
        if !mime_ok(&self.accept, "accept") || !mime_ok(&self.content_type, "content-type") {
            return false;
        }
        if !self.networks.is_empty() {
            let mut candidates: Vec<IpAddr> = req.remote_addr.into_iter().collect();
            if self.respect_forwarded_for
                && let Some(xff) = req.header("x-forwarded-for")
            {
                candidates.extend(
                    xff.split(',')
                        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok()),
                );
            }
            if !candidates
                .iter()
                .any(|ip| self.networks.iter().any(|n| in_network(*ip, *n)))
            {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(accept: Option<&str>, ip: &str) -> RequestInfo {
        let mut headers = http::HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(
                "accept",
                http::HeaderValue::from_str(a).unwrap_or(http::HeaderValue::from_static("")),
            );
        }
        RequestInfo {
            method: "GET".into(),
            scheme: "https".into(),
            host: "app.example".into(),
            path: "/account".into(),
            query: Some("tab=1".into()),
            headers,
            remote_addr: ip.parse().ok(),
            body: None,
        }
    }

    #[test]
    fn when_conditions() -> Result<(), String> {
        let handler = ErrorHandlerEntry::build(
            "redirect",
            &json!({"to": "https://login.example/", "when": [
                {"error": ["unauthorized", "forbidden"], "request": {"header": {"accept": ["text/*"]}}},
                {"error": ["not_found"], "request": {"cidr": ["10.0.0.0/8"]}}
            ]}),
        )?;
        let unauthorized = PipelineError::unauthorized("x");
        let cases = [
            (
                &unauthorized,
                Some("text/html,application/xhtml+xml"),
                "1.2.3.4",
                true,
            ),
            (&unauthorized, Some("application/json"), "1.2.3.4", false),
            (&unauthorized, None, "1.2.3.4", false),
            (
                &PipelineError::internal("x"),
                Some("text/html"),
                "1.2.3.4",
                false,
            ),
            (&PipelineError::not_found("x"), None, "10.1.2.3", true),
            (&PipelineError::not_found("x"), None, "11.1.2.3", false),
        ];
        for (error, accept, ip, expected) in cases {
            assert_eq!(
                handler.matches(error, &req(accept, ip)),
                expected,
                "{error:?} {accept:?} {ip}"
            );
        }
        Ok(())
    }

    #[test]
    fn redirect_and_www_authenticate_responses() -> Result<(), String> {
        let r = ErrorHandlerEntry::build(
            "redirect",
            &json!({"to": "https://login.example/ui?x=1", "return_to_query_param": "return_to", "code": 301}),
        )?
        .respond(&PipelineError::unauthorized("x"), &req(None, "1.1.1.1"));
        assert_eq!(r.status, 301);
        assert_eq!(
            r.headers[0].1,
            "https://login.example/ui?x=1&return_to=https%3A%2F%2Fapp.example%2Faccount%3Ftab%3D1"
        );
        let w = ErrorHandlerEntry::build("www_authenticate", &json!({}))?
            .respond(&PipelineError::unauthorized("x"), &req(None, "1.1.1.1"));
        assert_eq!(w.status, 401);
        assert_eq!(w.headers[0].1, "Basic realm=Please authenticate.");
        assert!(
            ErrorHandlerEntry::build("redirect", &json!({"to": "/x", "when": [{"bogus": 1}]}))
                .is_err()
        );
        Ok(())
    }
}
