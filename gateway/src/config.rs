//! The gateway configuration: Oathkeeper's `oathkeeper.yml` keys, with Ory-style env overrides.
//!
//! The file is read leniently like Oathkeeper's (YAML or JSON). Every key we do not implement
//! produces exactly one warning naming it; nothing is ignored silently. Environment variables
//! override file values: the key path upper-cased with `_` (`SERVE_PROXY_PORT`, `LOG_LEVEL`,
//! `ACCESS_RULES_REPOSITORIES=a,b`, `AUTHENTICATORS_JWT_ENABLED`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use portcullis_rules::MatchingStrategy;
use portcullis_rules::handlers::HandlerKind;
use serde_json::{Map, Value};

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {error}")]
    Read {
        /// The config file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not valid YAML/JSON.
    #[error("{path}: not valid YAML or JSON: {message}")]
    Syntax {
        /// The config file.
        path: String,
        /// The parser's first line.
        message: String,
    },
    /// A key has a wrong value.
    #[error("{path}: key {key}: {message}")]
    Invalid {
        /// The config file (or `environment`).
        path: String,
        /// The key path.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A listener address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// Host to bind (empty: all interfaces, as Oathkeeper).
    pub host: String,
    /// Port.
    pub port: u16,
    /// `tls.cert` and `tls.key`: serve HTTPS (both set) or plain HTTP (neither).
    pub tls: Option<TlsPem>,
}

/// A listener's certificate chain and private key, PEM, read from `tls.{cert,key}.path` or
/// decoded from `tls.{cert,key}.base64` when the configuration is loaded.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsPem {
    /// Certificate chain (leaf first).
    pub cert: Vec<u8>,
    /// Private key.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field("cert", &format_args!("{} bytes", self.cert.len()))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// `serve.proxy.timeout.{read,write,idle}` (Go durations). Unset means no timeout, as
/// Oathkeeper's proxy transport has none towards upstreams: every timeout set here arms a
/// Pingora timer per read, a measurable cost per request (see `docs/benchmarks.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyTimeouts {
    /// Each wait for the client's request (header of a kept-alive request, body).
    pub read: Option<std::time::Duration>,
    /// Each wait for the upstream's response (Oathkeeper's write timeout bounds the whole
    /// response, upstream time included). Expiry answers 504.
    pub write: Option<std::time::Duration>,
    /// Keep-alive idle time of client connections and of pooled upstream connections.
    pub idle: Option<std::time::Duration>,
}

impl Listen {
    /// `host:port`, with `0.0.0.0` for an empty host.
    pub fn addr(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Global `enabled` + `config` of one handler.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HandlerSettings {
    /// `<kind>.<id>.enabled`.
    pub enabled: bool,
    /// `<kind>.<id>.config` (an object, possibly empty).
    pub config: Value,
}

/// The parsed gateway configuration.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// `serve.proxy`.
    pub proxy: Listen,
    /// `serve.proxy.trust_forwarded_headers`.
    pub trust_forwarded_headers: bool,
    /// `serve.proxy.timeout`.
    pub proxy_timeouts: ProxyTimeouts,
    /// `serve.api`.
    pub api: Listen,
    /// `serve.prometheus` (default port 9000).
    pub prometheus: Listen,
    /// `serve.prometheus.metrics_path` (default `/metrics`).
    pub prometheus_path: String,
    /// `access_rules.repositories`: local paths resolved, URLs checked, inline content decoded.
    pub repositories: Vec<Repository>,
    /// `portcullis.access_rules.poll_interval` (a Portcullis key, Oathkeeper has none): how
    /// often `http(s)://` repositories are fetched again. Default 30 s.
    pub repository_poll_interval: std::time::Duration,
    /// `access_rules.matching_strategy`.
    pub matching_strategy: MatchingStrategy,
    /// Handler settings by kind and id.
    pub handlers: BTreeMap<(KindKey, String), HandlerSettings>,
    /// `errors.fallback`.
    pub error_fallback: Vec<String>,
    /// `log.level`.
    pub log_level: Option<String>,
    /// `log.format`.
    pub log_format: Option<String>,
    /// One line per unknown or unsupported key, to be logged once logging is up.
    pub warnings: Vec<String>,
}

/// One entry of `access_rules.repositories`.
#[derive(Clone, PartialEq, Eq)]
pub enum Repository {
    /// A rule file or a directory of them (`file://` or a plain path); watched.
    Path(PathBuf),
    /// An `http://` or `https://` URL; fetched at start and polled.
    Remote(url::Url),
    /// `inline://<base64>`: the document itself, decoded.
    Inline(Vec<u8>),
}

impl Repository {
    /// How logs and errors name the repository: a URL without its password and query (they
    /// may carry credentials or signatures), inline content by its size only.
    pub fn describe(&self) -> String {
        match self {
            Self::Path(path) => path.display().to_string(),
            Self::Remote(url) => redacted_url(url),
            Self::Inline(bytes) => format!("inline://({} bytes)", bytes.len()),
        }
    }
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `url` without user info and with the query replaced by `?…`.
fn redacted_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    let had_query = shown.query().is_some();
    shown.set_query(None);
    shown.set_fragment(None);
    let mut text = shown.to_string();
    if had_query {
        text.push_str("?…");
    }
    text
}

/// Default of `portcullis.access_rules.poll_interval`.
pub const DEFAULT_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Orderable stand-in for [`HandlerKind`] in map keys.
pub type KindKey = u8;

/// The map key of a handler kind.
pub fn kind_key(kind: HandlerKind) -> KindKey {
    match kind {
        HandlerKind::Authenticator => 0,
        HandlerKind::Authorizer => 1,
        HandlerKind::Mutator => 2,
        HandlerKind::ErrorHandler => 3,
    }
}

pub(crate) const KINDS: [HandlerKind; 4] = [
    HandlerKind::Authenticator,
    HandlerKind::Authorizer,
    HandlerKind::Mutator,
    HandlerKind::ErrorHandler,
];

impl GatewayConfig {
    /// Reads `path`, applies `env` overrides (pass `std::env::vars()`).
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| ConfigError::Read {
            path: name.clone(),
            error,
        })?;
        let mut doc: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) => serde_saphyr::from_slice(&bytes).map_err(|e| ConfigError::Syntax {
                    path: name.clone(),
                    message: e.to_string().lines().next().unwrap_or_default().to_owned(),
                })?,
            }
        };
        if doc.is_null() {
            doc = Value::Object(Map::new());
        }
        if !doc.is_object() {
            return Err(ConfigError::Syntax {
                path: name,
                message: "expected a mapping at the top level".to_owned(),
            });
        }
        crate::env_overrides::apply(&mut doc, env);
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_value(&doc, &name, &base_dir)
    }

    /// Builds the config from an already parsed document.
    pub fn from_value(doc: &Value, name: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: name.to_owned(),
            key: key.to_owned(),
            message,
        };
        let mut warnings = Vec::new();
        check_known_keys(doc, &mut warnings);

        let get = |p: &str| lookup(doc, p);
        let port = |key: &str, default: u16| -> Result<u16, ConfigError> {
            match get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| invalid(key, format!("{n} is not a port"))),
                Some(Value::String(s)) => s
                    .parse()
                    .map_err(|_| invalid(key, format!("{s:?} is not a port"))),
                Some(other) => Err(invalid(key, format!("{other} is not a port"))),
            }
        };
        let string = |key: &str| -> Option<String> {
            get(key).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let proxy = Listen {
            host: string("serve.proxy.host").unwrap_or_default(),
            port: port("serve.proxy.port", 4455)?,
            tls: tls_pem(doc, "serve.proxy", base_dir).map_err(|(k, m)| invalid(&k, m))?,
        };
        let api = Listen {
            host: string("serve.api.host").unwrap_or_default(),
            port: port("serve.api.port", 4456)?,
            tls: tls_pem(doc, "serve.api", base_dir).map_err(|(k, m)| invalid(&k, m))?,
        };
        let prometheus = Listen {
            host: string("serve.prometheus.host").unwrap_or_default(),
            port: port("serve.prometheus.port", 9000)?,
            tls: None,
        };
        let mut proxy_timeouts = ProxyTimeouts::default();
        for (name, slot) in [
            ("read", &mut proxy_timeouts.read),
            ("write", &mut proxy_timeouts.write),
            ("idle", &mut proxy_timeouts.idle),
        ] {
            let key = format!("serve.proxy.timeout.{name}");
            if let Some(text) = string(&key) {
                *slot = Some(
                    parse_duration(&text)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| invalid(&key, format!("{text:?} is not a duration")))?,
                );
            }
        }
        let prometheus_path =
            string("serve.prometheus.metrics_path").unwrap_or_else(|| "/metrics".to_owned());
        let trust_forwarded_headers = truthy(get("serve.proxy.trust_forwarded_headers"));
        let matching_strategy = string("access_rules.matching_strategy")
            .unwrap_or_default()
            .parse()
            .map_err(|e| invalid("access_rules.matching_strategy", e))?;
        let repositories = match get("access_rules.repositories") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => split_list(s),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(invalid(
                        "access_rules.repositories",
                        format!("{other} is not a string"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(invalid(
                    "access_rules.repositories",
                    format!("{other} is not a list"),
                ));
            }
        }
        .into_iter()
        .map(|url| {
            resolve_repository(&url, base_dir).map_err(|m| invalid("access_rules.repositories", m))
        })
        .collect::<Result<Vec<_>, _>>()?;
        let poll_key = "portcullis.access_rules.poll_interval";
        let repository_poll_interval = match string(poll_key) {
            None => DEFAULT_POLL_INTERVAL,
            Some(text) => parse_duration(&text)
                .filter(|d| *d >= std::time::Duration::from_millis(100))
                .ok_or_else(|| {
                    invalid(
                        poll_key,
                        format!("{text:?} is not a duration of at least 100ms"),
                    )
                })?,
        };

        let mut handlers = BTreeMap::new();
        for kind in KINDS {
            let section = if kind == HandlerKind::ErrorHandler {
                "errors.handlers"
            } else {
                kind.section()
            };
            for name in kind.known_names() {
                let key = format!("{section}.{name}");
                let enabled = match get(&format!("{key}.enabled")) {
                    None | Some(Value::Null) => {
                        kind == HandlerKind::ErrorHandler && *name == "json"
                    }
                    Some(v) => truthy(Some(v)),
                };
                let config = match get(&format!("{key}.config")) {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(v @ Value::Object(_)) => v.clone(),
                    Some(other) => {
                        return Err(invalid(
                            &format!("{key}.config"),
                            format!("{other} is not an object"),
                        ));
                    }
                };
                if enabled {
                    portcullis_rules::handlers::check_config(kind, name, &config)
                        .map_err(|m| invalid(&format!("{key}.config"), m))?;
                }
                handlers.insert(
                    (kind_key(kind), (*name).to_owned()),
                    HandlerSettings { enabled, config },
                );
            }
        }
        let error_fallback = match get("errors.fallback") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => split_list(s),
            _ => vec!["json".to_owned()],
        };
        for name in &error_fallback {
            if !HandlerKind::ErrorHandler
                .known_names()
                .contains(&name.as_str())
            {
                return Err(invalid(
                    "errors.fallback",
                    format!("unknown error handler {name:?}"),
                ));
            }
        }
        Ok(Self {
            proxy,
            trust_forwarded_headers,
            proxy_timeouts,
            api,
            prometheus,
            prometheus_path,
            repositories,
            repository_poll_interval,
            matching_strategy,
            handlers,
            error_fallback,
            log_level: string("log.level"),
            log_format: string("log.format"),
            warnings,
        })
    }

    /// Global settings of a handler (disabled, empty config when not configured).
    pub fn handler(&self, kind: HandlerKind, name: &str) -> HandlerSettings {
        self.handlers
            .get(&(kind_key(kind), name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

/// Parses a Go duration such as `30s`, `1m30s`, `500ms` or `1h`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
        _ => false,
    }
}

pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `file://` URLs and plain paths (relative ones are tried against the working directory first,
/// then against the config file's directory), `http(s)://` URLs and `inline://<base64>`.
fn resolve_repository(url: &str, base_dir: &Path) -> Result<Repository, String> {
    use base64::Engine as _;
    let path = if let Some(rest) = url.strip_prefix("file://") {
        rest
    } else if let Some(encoded) = url.strip_prefix("inline://") {
        let cleaned: String = encoded.split_whitespace().collect();
        return base64::engine::general_purpose::STANDARD
            .decode(cleaned.as_bytes())
            .map(Repository::Inline)
            .map_err(|_| "inline:// repository: not valid base64 (standard, padded)".to_owned());
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let parsed = url::Url::parse(url).map_err(|e| {
            // The error never echoes the URL, which may hold credentials.
            format!("a repository URL is not valid: {e}")
        })?;
        if !parsed.has_host() {
            return Err(format!(
                "repository {}: the URL has no host",
                redacted_url(&parsed)
            ));
        }
        return Ok(Repository::Remote(parsed));
    } else if let Some((scheme, _)) = url.split_once("://") {
        return Err(format!(
            "repository scheme {scheme}:// is not supported (file://, http://, https://, inline:// and plain paths are)"
        ));
    } else {
        url
    };
    let path = PathBuf::from(path);
    if path.is_relative() && !path.exists() && base_dir.join(&path).exists() {
        return Ok(Repository::Path(base_dir.join(path)));
    }
    Ok(Repository::Path(path))
}

/// `<listener>.tls.{cert,key}.{path,base64}`: both or neither; `Err((key, message))`. Relative
/// paths are tried against the working directory, then the config file's directory.
fn tls_pem(
    doc: &Value,
    listener: &str,
    base_dir: &Path,
) -> Result<Option<TlsPem>, (String, String)> {
    use base64::Engine as _;
    let read = |what: &str| -> Result<Option<Vec<u8>>, (String, String)> {
        let path_key = format!("{listener}.tls.{what}.path");
        let base64_key = format!("{listener}.tls.{what}.base64");
        let text = |key: &str| {
            lookup(doc, key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        if let Some(path) = text(&path_key) {
            let path = PathBuf::from(path);
            let path = if path.is_relative() && !path.exists() && base_dir.join(&path).exists() {
                base_dir.join(path)
            } else {
                path
            };
            return std::fs::read(&path)
                .map(Some)
                .map_err(|e| (path_key, format!("{}: {e}", path.display())));
        }
        if let Some(encoded) = text(&base64_key) {
            let cleaned: String = encoded.split_whitespace().collect();
            return base64::engine::general_purpose::STANDARD
                .decode(cleaned.as_bytes())
                .map(Some)
                .map_err(|_| (base64_key, "not valid base64".to_owned()));
        }
        Ok(None)
    };
    match (read("cert")?, read("key")?) {
        (Some(cert), Some(key)) => Ok(Some(TlsPem { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err((
            format!("{listener}.tls.key"),
            "a certificate is configured without its key (path or base64)".to_owned(),
        )),
        (None, Some(_)) => Err((
            format!("{listener}.tls.cert"),
            "a key is configured without its certificate (path or base64)".to_owned(),
        )),
    }
}

fn lookup<'a>(doc: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(doc, |v, key| v.get(key))
}

/// Known key tree: `*` matches any key; a leaf `""` accepts anything below it.
pub(crate) const KNOWN: &[&str] = &[
    "serve.proxy.host",
    "serve.proxy.port",
    "serve.proxy.trust_forwarded_headers",
    "serve.proxy.timeout.read",
    "serve.proxy.timeout.write",
    "serve.proxy.timeout.idle",
    "serve.proxy.tls.cert.path",
    "serve.proxy.tls.cert.base64",
    "serve.proxy.tls.key.path",
    "serve.proxy.tls.key.base64",
    "serve.api.host",
    "serve.api.port",
    "serve.api.tls.cert.path",
    "serve.api.tls.cert.base64",
    "serve.api.tls.key.path",
    "serve.api.tls.key.base64",
    "serve.prometheus.host",
    "serve.prometheus.port",
    "serve.prometheus.metrics_path",
    "access_rules.repositories",
    "access_rules.matching_strategy",
    "portcullis.access_rules.poll_interval",
    "authenticators.*.enabled",
    "authenticators.*.config",
    "authorizers.*.enabled",
    "authorizers.*.config",
    "mutators.*.enabled",
    "mutators.*.config",
    "errors.fallback",
    "errors.handlers.*.enabled",
    "errors.handlers.*.config",
    "log.level",
    "log.format",
    "version",
];

fn check_known_keys(doc: &Value, warnings: &mut Vec<String>) {
    fn walk(value: &Value, prefix: &str, warnings: &mut Vec<String>) {
        let Some(map) = value.as_object() else { return };
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if KNOWN.iter().any(|k| pattern_eq(k, &path)) {
                continue;
            }
            if KNOWN.iter().any(|k| pattern_prefix(k, &path)) && child.is_object() {
                walk(child, &path, warnings);
            } else {
                warnings.push(format!(
                    "config key {path:?} is not supported by portcullis-gateway and is ignored"
                ));
            }
        }
    }
    walk(doc, "", warnings);
}

fn pattern_eq(pattern: &str, path: &str) -> bool {
    let (p, k): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), path.split('.').collect());
    p.len() == k.len() && p.iter().zip(&k).all(|(a, b)| *a == "*" || a == b)
}

fn pattern_prefix(pattern: &str, path: &str) -> bool {
    let (p, k): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), path.split('.').collect());
    p.len() > k.len() && p.iter().zip(&k).all(|(a, b)| *a == "*" || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_oathkeepers() -> Result<(), ConfigError> {
        let c = GatewayConfig::from_value(&json!({}), "t", Path::new("."))?;
        assert_eq!(c.proxy.port, 4455);
        assert_eq!(c.api.port, 4456);
        assert_eq!(c.matching_strategy, MatchingStrategy::Regexp);
        assert!(c.handler(HandlerKind::ErrorHandler, "json").enabled);
        assert!(!c.handler(HandlerKind::Authenticator, "noop").enabled);
        assert_eq!(c.error_fallback, vec!["json"]);
        Ok(())
    }

    #[test]
    fn unknown_keys_warn_once_each() -> Result<(), ConfigError> {
        let doc = json!({
            "serve": {"proxy": {"port": 1, "cors": {"enabled": true}}, "prometheus": {"port": 9, "hide_request_paths": true}},
            "tracing": {"provider": "jaeger"},
            "authenticators": {"noop": {"enabled": true}}
        });
        let c = GatewayConfig::from_value(&doc, "t", Path::new("."))?;
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
        assert!(c.warnings.iter().any(|w| w.contains("serve.proxy.cors")));
        Ok(())
    }

    #[test]
    fn proxy_timeouts_and_tls_keys() -> Result<(), Box<dyn std::error::Error>> {
        use base64::Engine as _;
        use std::time::Duration;
        let c = GatewayConfig::from_value(&json!({}), "t", Path::new("."))?;
        assert_eq!(c.proxy_timeouts, ProxyTimeouts::default());
        assert!(c.proxy.tls.is_none() && c.api.tls.is_none());

        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("cert.pem"), "CERT")?;
        let key64 = base64::engine::general_purpose::STANDARD.encode("KEY");
        let doc = json!({"serve": {
            "proxy": {
                "timeout": {"read": "1s", "write": "250ms", "idle": "1m"},
                "tls": {"cert": {"path": "cert.pem"}, "key": {"base64": key64}}
            },
            "api": {"tls": {"cert": {"path": "cert.pem"}}}
        }});
        let err = GatewayConfig::from_value(&doc, "gw.yml", dir.path()).err();
        assert!(err.is_some_and(|e| e.to_string().contains("serve.api.tls.key")));
        let mut doc = doc;
        doc["serve"]["api"] = json!({});
        let c = GatewayConfig::from_value(&doc, "gw.yml", dir.path())?;
        assert_eq!(c.proxy_timeouts.read, Some(Duration::from_secs(1)));
        assert_eq!(c.proxy_timeouts.write, Some(Duration::from_millis(250)));
        assert_eq!(c.proxy_timeouts.idle, Some(Duration::from_secs(60)));
        let tls = c.proxy.tls.ok_or("no tls")?;
        assert_eq!(
            (tls.cert.as_slice(), tls.key.as_slice()),
            (&b"CERT"[..], &b"KEY"[..])
        );
        assert!(!format!("{tls:?}").contains("KEY"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        doc["serve"]["proxy"]["timeout"]["write"] = json!("soon");
        let err = GatewayConfig::from_value(&doc, "gw.yml", dir.path()).err();
        assert!(err.is_some_and(|e| e.to_string().contains("serve.proxy.timeout.write")));
        Ok(())
    }

    #[test]
    fn repositories_by_scheme_and_poll_interval() -> Result<(), Box<dyn std::error::Error>> {
        use base64::Engine as _;
        let inline = base64::engine::general_purpose::STANDARD.encode("[]");
        let doc = json!({
            "access_rules": {"repositories": [
                "rules.yml",
                "file:///etc/rules",
                "https://reader:pw@rules.example/r.json?sig=abc",
                format!("inline://{inline}"),
            ]},
            "portcullis": {"access_rules": {"poll_interval": "5s"}},
        });
        let c = GatewayConfig::from_value(&doc, "t", Path::new("."))?;
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            c.repository_poll_interval,
            std::time::Duration::from_secs(5)
        );
        let [
            Repository::Path(a),
            Repository::Path(b),
            remote,
            Repository::Inline(doc),
        ] = c.repositories.as_slice()
        else {
            return Err(format!("{:?}", c.repositories).into());
        };
        assert_eq!(
            (a.to_str(), b.to_str()),
            (Some("rules.yml"), Some("/etc/rules"))
        );
        assert_eq!(doc.as_slice(), b"[]");
        assert!(matches!(remote, Repository::Remote(u) if u.password() == Some("pw")));
        assert_eq!(remote.describe(), "https://rules.example/r.json?…");

        let c = GatewayConfig::from_value(&json!({}), "t", Path::new("."))?;
        assert_eq!(c.repository_poll_interval, DEFAULT_POLL_INTERVAL);
        for (repository, key) in [
            ("s3://bucket/key", "access_rules.repositories"),
            ("inline://not base64!", "access_rules.repositories"),
            ("http://", "access_rules.repositories"),
        ] {
            let doc = json!({"access_rules": {"repositories": [repository]}});
            let err = GatewayConfig::from_value(&doc, "t", Path::new(".")).err();
            assert!(
                err.is_some_and(|e| e.to_string().contains(key)),
                "{repository}"
            );
        }
        let doc = json!({"portcullis": {"access_rules": {"poll_interval": "10"}}});
        let err = GatewayConfig::from_value(&doc, "t", Path::new(".")).err();
        assert!(err.is_some_and(|e| e.to_string().contains("poll_interval")));
        Ok(())
    }

    #[test]
    fn go_durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let doc = json!({"serve": {"api": {"port": "nope"}}});
        let err = GatewayConfig::from_value(&doc, "gw.yml", Path::new(".")).err();
        assert!(err.is_some_and(|e| e.to_string().contains("serve.api.port")));
        let doc =
            json!({"authenticators": {"anonymous": {"enabled": true, "config": {"subjec": "x"}}}});
        assert!(GatewayConfig::from_value(&doc, "gw.yml", Path::new(".")).is_err());
    }
}
