//! The request as the pipeline sees it and the `AuthenticationSession` handlers build up.
//!
//! [`RequestInfo`] is built once per request by the proxy or `/decisions`; the session carries
//! subject, extra data and the headers mutators set, and renders itself as template data with
//! Go's field names (`.Subject`, `.Extra`, `.Header`, `.MatchContext`).

use http::HeaderMap;
use serde_json::{Map, Value, json};

/// What the pipeline knows about a request.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// Method, as sent.
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Host with port, as sent.
    pub host: String,
    /// Decoded, cleaned path.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// The client's address, when known.
    pub remote_addr: Option<std::net::IpAddr>,
    /// The request body, when it was read (the `/decisions` path).
    pub body: Option<bytes::Bytes>,
}

impl RequestInfo {
    /// The string rules are matched against.
    pub fn match_url(&self) -> String {
        portcullis_rules::path::match_url(&self.scheme, &self.host, &self.path)
    }

    /// First value of a header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A cookie from the `Cookie` header(s).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookie_names_values()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// All `name=value` pairs of the `Cookie` header(s).
    pub fn cookie_names_values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                Some((name.trim(), value.trim()))
            })
    }

    /// A query parameter (decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// The state handlers build up for one request.
#[derive(Clone, Debug, Default)]
pub struct AuthenticationSession {
    /// Who the request is for.
    pub subject: String,
    /// Extra data from the authenticator (e.g. the Kratos session).
    pub extra: Map<String, Value>,
    /// Headers to set upstream / return from `/decisions` (last write wins, case-insensitive).
    pub header: Vec<(String, String)>,
    /// `MatchContext.RegexpCaptureGroups`.
    pub capture_groups: Vec<String>,
}

impl AuthenticationSession {
    /// Sets a header, replacing any value of the same name.
    pub fn set_header(&mut self, name: &str, value: String) {
        self.header.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.header.push((name.to_owned(), value));
    }

    /// Template data with Go's field names.
    pub fn template_data(&self, req: &RequestInfo) -> Value {
        let mut session_headers = Map::new();
        for (name, value) in &self.header {
            session_headers.insert(name.clone(), json!([value]));
        }
        json!({
            "Subject": self.subject,
            "Extra": self.extra,
            "Header": session_headers,
            "MatchContext": {
                "RegexpCaptureGroups": self.capture_groups,
                "Method": req.method,
                "Header": headers_json(&req.headers),
                "URL": {
                    "Scheme": req.scheme,
                    "Host": req.host,
                    "Path": req.path,
                    "RawQuery": req.query.clone().unwrap_or_default(),
                },
            },
        })
    }
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| Value::String(v.to_owned()))
            .collect();
        map.insert(canonical_header_name(name.as_str()), Value::Array(values));
    }
    Value::Object(map)
}

/// Go's canonical MIME header key (`x-user-id` → `X-User-Id`).
pub fn canonical_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// Reads a GJSON-style path (`identity.id`, `items.0.name`, `@this`) from a JSON document.
pub fn gjson_get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    if path == "@this" || path.is_empty() {
        return Some(doc);
    }
    path.split('.').try_fold(doc, |current, key| match current {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gjson_paths() {
        let doc = json!({"identity": {"id": "u1"}, "list": [{"a": 1}]});
        assert_eq!(gjson_get(&doc, "identity.id"), Some(&json!("u1")));
        assert_eq!(gjson_get(&doc, "list.0.a"), Some(&json!(1)));
        assert_eq!(gjson_get(&doc, "@this"), Some(&doc));
        assert_eq!(gjson_get(&doc, "nope.x"), None);
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_header_name("x-user-id"), "X-User-Id");
        assert_eq!(canonical_header_name("ACCEPT"), "Accept");
    }

    #[test]
    fn cookies_are_split() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            http::HeaderValue::from_static("a=1; ory_kratos_session=xyz"),
        );
        let req = RequestInfo {
            method: "GET".into(),
            scheme: "http".into(),
            host: "h".into(),
            path: "/".into(),
            query: Some("x=1&token=t%20k".into()),
            headers,
            remote_addr: None,
            body: None,
        };
        assert_eq!(req.cookie("ory_kratos_session"), Some("xyz"));
        assert_eq!(req.cookie("b"), None);
        assert_eq!(req.query_param("token").as_deref(), Some("t k"));
    }
}
