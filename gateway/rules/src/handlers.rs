//! Handler names and the shape of each handler's `config`, shared by gateway and operator.
//!
//! Oathkeeper validates handler config against a JSON schema with `additionalProperties: false`;
//! these serde types do the same (`deny_unknown_fields`). Rule-level config is only a fragment
//! (it is deep-merged over the global config), so required keys are `Option` here and checked on
//! the merged config by [`check_merged_config`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::Template;

/// The four pipeline stages a handler can belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandlerKind {
    /// `authenticators[]`
    Authenticator,
    /// `authorizer`
    Authorizer,
    /// `mutators[]`
    Mutator,
    /// `errors[]`
    ErrorHandler,
}

impl HandlerKind {
    /// Oathkeeper's handler ids for this stage.
    pub fn known_names(self) -> &'static [&'static str] {
        match self {
            Self::Authenticator => &[
                "noop",
                "anonymous",
                "unauthorized",
                "cookie_session",
                "bearer_token",
                "jwt",
                "oauth2_introspection",
                "oauth2_client_credentials",
            ],
            Self::Authorizer => &[
                "allow",
                "deny",
                "remote",
                "remote_json",
                "keto_engine_acp_ory",
            ],
            Self::Mutator => &["noop", "header", "cookie", "id_token", "hydrator"],
            Self::ErrorHandler => &["json", "redirect", "www_authenticate"],
        }
    }

    /// The config section name in `oathkeeper.yml` (`authenticators`, ..., `errors`).
    pub fn section(self) -> &'static str {
        match self {
            Self::Authenticator => "authenticators",
            Self::Authorizer => "authorizers",
            Self::Mutator => "mutators",
            Self::ErrorHandler => "errors",
        }
    }
}

/// Where a token is read from (`token_from`); at most one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFrom {
    /// A request header (the bearer split applies if it is `Authorization`).
    pub header: Option<String>,
    /// A query parameter.
    pub query_parameter: Option<String>,
    /// A cookie.
    pub cookie: Option<String>,
}

/// `anonymous` authenticator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousConfig {
    /// Subject given to anonymous requests (default `anonymous`).
    pub subject: Option<String>,
}

/// `cookie_session` and `bearer_token` authenticators (a session-check endpoint such as
/// Kratos' `/sessions/whoami`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCheckConfig {
    /// URL of the session check (required after merge).
    pub check_session_url: Option<String>,
    /// `cookie_session`: only responsible when one of these cookies is present.
    #[serde(default)]
    pub only: Vec<String>,
    /// Keep the path of `check_session_url` (false: the request's path replaces it).
    #[serde(default)]
    pub preserve_path: bool,
    /// Keep the query of `check_session_url` (default true).
    pub preserve_query: Option<bool>,
    /// Send `X-Forwarded-Host` with the original host.
    #[serde(default)]
    pub preserve_host: bool,
    /// Method for the check (default: the request's method).
    pub force_method: Option<String>,
    /// Further request headers forwarded to the check.
    #[serde(default)]
    pub forward_http_headers: Vec<String>,
    /// Headers set on the check request.
    #[serde(default)]
    pub additional_headers: BTreeMap<String, String>,
    /// GJSON path of the subject in the response.
    pub subject_from: Option<String>,
    /// GJSON path of the extra data in the response.
    pub extra_from: Option<String>,
    /// `bearer_token`: where the token comes from.
    pub token_from: Option<TokenFrom>,
    /// `bearer_token`: only responsible for tokens with this prefix.
    pub prefix: Option<String>,
    /// Cache of successful checks (a Portcullis extension, off by default).
    pub cache: Option<SessionCacheConfig>,
}

/// `cookie_session` / `bearer_token` `cache`: remember a 200 answer for the same credentials.
/// A revoked session stays accepted until its entry expires, hence off by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCacheConfig {
    /// Turns the cache on.
    #[serde(default)]
    pub enabled: bool,
    /// Longest lifetime of an entry (Go duration, default `10s`); never past the session's
    /// `expires_at`.
    pub ttl: Option<String>,
    /// Most entries kept per rule (default 10 000).
    pub max_entries: Option<usize>,
}

/// `jwt` authenticator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// JWKS locations (`http(s)://`, `file://`).
    #[serde(default)]
    pub jwks_urls: Vec<String>,
    /// Accepted `alg` values (default `RS256`).
    #[serde(default)]
    pub allowed_algorithms: Vec<String>,
    /// Accepted `iss` values (empty: any).
    #[serde(default)]
    pub trusted_issuers: Vec<String>,
    /// Every one of these must be in `aud`.
    #[serde(default)]
    pub target_audience: Vec<String>,
    /// Scopes the token must carry.
    #[serde(default)]
    pub required_scope: Vec<String>,
    /// `hierarchic`, `exact`, `wildcard` or `none`.
    pub scope_strategy: Option<String>,
    /// Where the token comes from.
    pub token_from: Option<TokenFrom>,
    /// How long a JWKS refresh may block a request (Go duration).
    pub jwks_max_wait: Option<String>,
    /// How long fetched keys are used (Go duration).
    pub jwks_ttl: Option<String>,
}

/// `oauth2_introspection` authenticator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// RFC 7662 endpoint (required after merge).
    pub introspection_url: Option<String>,
    /// Scopes the token must carry.
    #[serde(default)]
    pub required_scope: Vec<String>,
    /// Every one of these must be in `aud`.
    #[serde(default)]
    pub target_audience: Vec<String>,
    /// Accepted `iss` values (empty: any).
    #[serde(default)]
    pub trusted_issuers: Vec<String>,
    /// `hierarchic`, `exact`, `wildcard` or `none`.
    pub scope_strategy: Option<String>,
    /// Only responsible for tokens with this prefix.
    pub prefix: Option<String>,
    /// Where the token comes from.
    pub token_from: Option<TokenFrom>,
    /// Send `X-Forwarded-Host` with the original host.
    #[serde(default)]
    pub preserve_host: bool,
    /// Headers set on the introspection request.
    #[serde(default)]
    pub introspection_request_headers: BTreeMap<String, String>,
    /// Client-credentials token for the introspection call.
    pub pre_authorization: Option<Value>,
    /// Retry settings (accepted).
    pub retry: Option<Value>,
    /// Result cache: `{enabled, ttl, max_cost}`.
    pub cache: Option<Value>,
}

/// `oauth2_client_credentials` authenticator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsConfig {
    /// OAuth2 token endpoint (required after merge).
    pub token_url: Option<String>,
    /// Scopes requested with the grant.
    #[serde(default)]
    pub required_scope: Vec<String>,
    /// Retry settings (accepted).
    pub retry: Option<Value>,
    /// Token cache: `{enabled, ttl, max_tokens}`.
    pub cache: Option<Value>,
}

/// `header` mutator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMutatorConfig {
    /// Header name → template.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `cookie` mutator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieMutatorConfig {
    /// Cookie name → template.
    #[serde(default)]
    pub cookies: BTreeMap<String, String>,
}

/// `id_token` mutator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdTokenConfig {
    /// `iss` of the issued tokens (required after merge).
    pub issuer_url: Option<String>,
    /// JWKS holding the private signing key (required after merge).
    pub jwks_url: Option<String>,
    /// Token lifetime as a Go duration (default `15m`).
    pub ttl: Option<String>,
    /// Template producing a JSON object of extra claims.
    pub claims: Option<String>,
}

/// `remote` and `remote_json` authorizers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteAuthorizerConfig {
    /// Endpoint URL (required after merge).
    pub remote: Option<String>,
    /// `remote_json`: JSON payload template (required after merge).
    pub payload: Option<String>,
    /// Header name → template, set on the call.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Response headers copied into the upstream request.
    #[serde(default)]
    pub forward_response_headers_to_upstream: Vec<String>,
    /// Retry settings (accepted).
    pub retry: Option<Value>,
}

/// `json` error handler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonErrorConfig {
    /// Expose specific messages instead of the generic ones.
    #[serde(default)]
    pub verbose: bool,
    /// When the handler is responsible.
    #[serde(default)]
    pub when: Vec<Value>,
}

/// `redirect` error handler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectErrorConfig {
    /// Redirect target (required after merge).
    pub to: Option<String>,
    /// 301 or 302 (default 302).
    pub code: Option<u16>,
    /// Name of the query parameter carrying the original URL.
    pub return_to_query_param: Option<String>,
    /// When the handler is responsible.
    #[serde(default)]
    pub when: Vec<Value>,
}

/// `www_authenticate` error handler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WwwAuthenticateConfig {
    /// Realm (default `Please authenticate.`).
    pub realm: Option<String>,
    /// When the handler is responsible.
    #[serde(default)]
    pub when: Vec<Value>,
}

fn shape<T: serde::de::DeserializeOwned>(config: &Value) -> Result<T, String> {
    T::deserialize(config).map_err(|e| e.to_string())
}

fn templates<'a>(values: impl Iterator<Item = &'a String>) -> Result<(), String> {
    for source in values {
        Template::parse(source).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Checks the shape of a (possibly partial) handler config: known keys, right types, templates
/// that parse. Handlers without a typed config accept any object.
pub fn check_config(kind: HandlerKind, name: &str, config: &Value) -> Result<(), String> {
    if !config.is_object() && !config.is_null() {
        return Err("config must be an object".to_owned());
    }
    let config = if config.is_null() {
        &Value::Object(Default::default())
    } else {
        config
    };
    use HandlerKind as K;
    match (kind, name) {
        (K::Authenticator, "noop" | "unauthorized")
        | (K::Authorizer, "allow" | "deny")
        | (K::Mutator, "noop")
            if config.as_object().is_some_and(|o| !o.is_empty()) =>
        {
            return Err(format!("handler {name:?} takes no config"));
        }
        (K::Authenticator, "anonymous") => {
            shape::<AnonymousConfig>(config)?;
        }
        (K::Authenticator, "cookie_session" | "bearer_token") => {
            shape::<SessionCheckConfig>(config)?;
        }
        (K::Authenticator, "jwt") => {
            shape::<JwtConfig>(config)?;
        }
        (K::Authenticator, "oauth2_introspection") => {
            shape::<IntrospectionConfig>(config)?;
        }
        (K::Authenticator, "oauth2_client_credentials") => {
            shape::<ClientCredentialsConfig>(config)?;
        }
        (K::Mutator, "header") => {
            templates(shape::<HeaderMutatorConfig>(config)?.headers.values())?
        }
        (K::Mutator, "id_token") => {
            let c = shape::<IdTokenConfig>(config)?;
            templates(c.claims.iter())?;
        }
        (K::Mutator, "cookie") => {
            templates(shape::<CookieMutatorConfig>(config)?.cookies.values())?
        }
        (K::Authorizer, "remote" | "remote_json") => {
            let c = shape::<RemoteAuthorizerConfig>(config)?;
            templates(c.headers.values().chain(c.payload.iter()))?;
        }
        (K::ErrorHandler, "json") => {
            shape::<JsonErrorConfig>(config)?;
        }
        (K::ErrorHandler, "redirect") => {
            shape::<RedirectErrorConfig>(config)?;
        }
        (K::ErrorHandler, "www_authenticate") => {
            shape::<WwwAuthenticateConfig>(config)?;
        }
        _ => {}
    }
    Ok(())
}

/// Checks a merged (global + rule) config: its shape and the keys Oathkeeper requires.
pub fn check_merged_config(kind: HandlerKind, name: &str, config: &Value) -> Result<(), String> {
    check_config(kind, name, config)?;
    let missing = |key: &str| Err(format!("required config key {key:?} is missing"));
    use HandlerKind as K;
    match (kind, name) {
        (K::Authenticator, "cookie_session" | "bearer_token") => {
            let c = shape::<SessionCheckConfig>(config)?;
            match c.check_session_url {
                None => return missing("check_session_url"),
                Some(u) => {
                    url::Url::parse(&u).map_err(|e| format!("check_session_url: {e}"))?;
                }
            }
        }
        (K::Authenticator, "jwt") if shape::<JwtConfig>(config)?.jwks_urls.is_empty() => {
            return missing("jwks_urls");
        }
        (K::Authenticator, "oauth2_introspection")
            if shape::<IntrospectionConfig>(config)?
                .introspection_url
                .is_none() =>
        {
            return missing("introspection_url");
        }
        (K::Authenticator, "oauth2_client_credentials")
            if shape::<ClientCredentialsConfig>(config)?
                .token_url
                .is_none() =>
        {
            return missing("token_url");
        }
        (K::Mutator, "id_token") => {
            let c = shape::<IdTokenConfig>(config)?;
            if c.issuer_url.is_none() {
                return missing("issuer_url");
            }
            if c.jwks_url.is_none() {
                return missing("jwks_url");
            }
        }
        (K::Authorizer, "remote" | "remote_json") => {
            let c = shape::<RemoteAuthorizerConfig>(config)?;
            if c.remote.is_none() {
                return missing("remote");
            }
            if name == "remote_json" && c.payload.is_none() {
                return missing("payload");
            }
        }
        (K::ErrorHandler, "redirect") if shape::<RedirectErrorConfig>(config)?.to.is_none() => {
            return missing("to");
        }
        _ => {}
    }
    Ok(())
}

/// Deep-merges `over` onto `base`: objects merge recursively, everything else replaces.
pub fn merge_config(base: &Value, over: Option<&Value>) -> Value {
    match (base, over) {
        (_, None) | (_, Some(Value::Null)) => base.clone(),
        (Value::Object(b), Some(Value::Object(o))) => {
            let mut merged = b.clone();
            for (key, value) in o {
                let next = match merged.get(key) {
                    Some(existing) => merge_config(existing, Some(value)),
                    None => value.clone(),
                };
                merged.insert(key.clone(), next);
            }
            Value::Object(merged)
        }
        (_, Some(o)) => o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_deep_for_objects_and_replaces_lists() {
        let base = json!({"a": {"x": 1, "y": [1, 2]}, "b": 1});
        let over = json!({"a": {"y": [3]}, "c": 2});
        assert_eq!(
            merge_config(&base, Some(&over)),
            json!({"a": {"x": 1, "y": [3]}, "b": 1, "c": 2})
        );
    }

    #[test]
    fn config_shapes_are_checked() {
        use HandlerKind as K;
        let cases = [
            (
                K::Authenticator,
                "cookie_session",
                json!({"check_session_url": "http://x"}),
                true,
            ),
            (
                K::Authenticator,
                "cookie_session",
                json!({"bogus": 1}),
                false,
            ),
            (K::Authenticator, "anonymous", json!({"subject": 1}), false),
            (
                K::Mutator,
                "header",
                json!({"headers": {"X-User": "{{ print .Subject }}"}}),
                true,
            ),
            (
                K::Mutator,
                "header",
                json!({"headers": {"X-User": "{{ .Subject"}}),
                false,
            ),
            (K::Authorizer, "allow", json!({}), true),
            (K::Authorizer, "allow", json!({"x": 1}), false),
            (
                K::Authenticator,
                "oauth2_client_credentials",
                json!({"token_url": "http://idp/token", "cache": {"enabled": true}}),
                true,
            ),
            (
                K::Authenticator,
                "oauth2_introspection",
                json!({"anything": 1}),
                false,
            ),
            (K::ErrorHandler, "json", json!("nope"), false),
        ];
        for (kind, name, config, ok) in cases {
            assert_eq!(
                check_config(kind, name, &config).is_ok(),
                ok,
                "{name} {config}"
            );
        }
    }

    #[test]
    fn merged_config_requires_keys() {
        use HandlerKind as K;
        assert!(check_merged_config(K::Authenticator, "bearer_token", &json!({})).is_err());
        assert!(
            check_merged_config(K::Authorizer, "remote_json", &json!({"remote": "x"})).is_err()
        );
        assert!(check_merged_config(K::ErrorHandler, "redirect", &json!({"to": "/x"})).is_ok());
    }
}
