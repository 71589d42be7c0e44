//! Ory-style environment overrides for `oathkeeper.yml`: the key path upper-cased with `_`
//! (`SERVE_PROXY_PORT`, `ACCESS_RULES_REPOSITORIES=a,b`, `AUTHENTICATORS_JWT_ENABLED`) and handler
//! config keys, nested ones included
//! (`AUTHENTICATORS_COOKIE_SESSION_CONFIG_CHECK_SESSION_URL`,
//! `AUTHENTICATORS_OAUTH2_INTROSPECTION_CONFIG_PRE_AUTHORIZATION_CLIENT_ID`,
//! `MUTATORS_HYDRATOR_CONFIG_API_AUTH_BASIC_USERNAME`). Since `_` both separates and appears
//! inside key names, the nested objects of Oathkeeper's handler configs are listed in
//! [`NESTED_OBJECTS`]; what follows the last object name is one key.

use std::collections::BTreeMap;

use portcullis_rules::handlers::HandlerKind;
use serde_json::{Map, Value};

use crate::config::{KINDS, KNOWN, split_list};

/// Env overrides for the keys we know (Ory's rule: key path upper-cased, `.` → `_`).
pub fn apply(doc: &mut Value, env: impl IntoIterator<Item = (String, String)>) {
    let mut paths: Vec<String> = KNOWN
        .iter()
        .filter(|k| !k.contains('*') && !k.ends_with(".config"))
        .map(|k| (*k).to_owned())
        .collect();
    for kind in KINDS {
        let section = if kind == HandlerKind::ErrorHandler {
            "errors.handlers"
        } else {
            kind.section()
        };
        for name in kind.known_names() {
            paths.push(format!("{section}.{name}.enabled"));
        }
    }
    let by_env: BTreeMap<String, String> = paths
        .into_iter()
        .map(|p| (p.replace('.', "_").to_ascii_uppercase(), p))
        .collect();
    let mut config_prefixes: Vec<(String, String)> = Vec::new();
    for kind in KINDS {
        let section = if kind == HandlerKind::ErrorHandler {
            "errors.handlers"
        } else {
            kind.section()
        };
        for name in kind.known_names() {
            let path = format!("{section}.{name}.config");
            config_prefixes.push((
                format!("{}_", path.replace('.', "_").to_ascii_uppercase()),
                path,
            ));
        }
    }
    for (key, value) in env {
        // `<SECTION>_<HANDLER>_CONFIG_<KEY>`: one top-level config key, e.g.
        // AUTHENTICATORS_COOKIE_SESSION_CONFIG_CHECK_SESSION_URL.
        if let Some((prefix, path)) = config_prefixes
            .iter()
            .find(|(p, _)| key.starts_with(p.as_str()))
        {
            let field = nested_path(&key[prefix.len()..].to_ascii_lowercase());
            if !field.is_empty() {
                set(doc, &format!("{path}.{field}"), env_value(&field, &value));
            }
            continue;
        }
        let Some(path) = by_env.get(&key) else {
            continue;
        };
        let value = if path == "access_rules.repositories" || path == "errors.fallback" {
            Value::Array(split_list(&value).into_iter().map(Value::String).collect())
        } else {
            Value::String(value)
        };
        set(doc, path, value);
    }
}

/// Config keys whose env value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "jwks_urls",
    "trusted_issuers",
    "target_audience",
    "required_scope",
    "allowed_algorithms",
    "only",
    "forward_http_headers",
    "forward_response_headers_to_upstream",
    "pre_authorization.scope",
];

/// The objects inside Oathkeeper's handler configs, as dotted paths below `config`.
const NESTED_OBJECTS: &[&str] = &[
    "token_from",
    "pre_authorization",
    "cache",
    "retry",
    "api",
    "api.auth",
    "api.auth.basic",
    "api.retry",
];

/// `pre_authorization_client_id` → `pre_authorization.client_id`: descends through the known
/// nested objects, the rest is the key.
fn nested_path(field: &str) -> String {
    let mut object = String::new();
    let mut rest = field;
    loop {
        let child = NESTED_OBJECTS.iter().find_map(|path| {
            let name = match path.strip_prefix(object.as_str()) {
                Some(tail) if object.is_empty() => tail,
                Some(tail) => tail.strip_prefix('.')?,
                None => return None,
            };
            if name.contains('.') {
                return None;
            }
            let after = rest.strip_prefix(name)?.strip_prefix('_')?;
            (!after.is_empty()).then_some((*path, after))
        });
        match child {
            Some((path, after)) => {
                object = path.to_owned();
                rest = after;
            }
            None if object.is_empty() => return rest.to_owned(),
            None => return format!("{object}.{rest}"),
        }
    }
}

/// An env value for a handler config key (dotted below `config`): JSON objects/arrays as JSON,
/// known list keys split on commas, `true`/`false` as booleans, everything else as a string.
fn env_value(field: &str, value: &str) -> Value {
    let trimmed = value.trim();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(v) = serde_json::from_str(trimmed)
    {
        return v;
    }
    if LIST_KEYS.contains(&field) {
        return Value::Array(split_list(value).into_iter().map(Value::String).collect());
    }
    match trimmed {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(value.to_owned()),
    }
}

fn set(doc: &mut Value, dotted: &str, value: Value) {
    let mut current = doc;
    let keys: Vec<&str> = dotted.split('.').collect();
    for (i, key) in keys.iter().enumerate() {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Some(map) = current.as_object_mut() else {
            return;
        };
        if i + 1 == keys.len() {
            map.insert((*key).to_owned(), value);
            return;
        }
        current = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_overrides_file_values() {
        let mut doc = json!({"serve": {"proxy": {"port": 1}}});
        apply(
            &mut doc,
            [
                ("SERVE_PROXY_PORT".to_owned(), "7".to_owned()),
                (
                    "ACCESS_RULES_REPOSITORIES".to_owned(),
                    "a.yml,b.json".to_owned(),
                ),
                ("AUTHENTICATORS_NOOP_ENABLED".to_owned(), "true".to_owned()),
                (
                    "AUTHENTICATORS_COOKIE_SESSION_CONFIG_CHECK_SESSION_URL".to_owned(),
                    "http://id:4433/sessions/whoami".to_owned(),
                ),
                (
                    "AUTHENTICATORS_JWT_CONFIG_JWKS_URLS".to_owned(),
                    "file:///a,file:///b".to_owned(),
                ),
                (
                    "AUTHENTICATORS_COOKIE_SESSION_CONFIG_PRESERVE_PATH".to_owned(),
                    "true".to_owned(),
                ),
                ("UNRELATED".to_owned(), "x".to_owned()),
            ],
        );
        assert_eq!(doc["serve"]["proxy"]["port"], json!("7"));
        assert_eq!(
            doc["access_rules"]["repositories"],
            json!(["a.yml", "b.json"])
        );
        assert_eq!(doc["authenticators"]["noop"]["enabled"], json!("true"));
        let cookie = &doc["authenticators"]["cookie_session"]["config"];
        assert_eq!(
            cookie["check_session_url"],
            json!("http://id:4433/sessions/whoami")
        );
        assert_eq!(cookie["preserve_path"], json!(true));
        assert_eq!(
            doc["authenticators"]["jwt"]["config"]["jwks_urls"],
            json!(["file:///a", "file:///b"])
        );
    }

    #[test]
    fn nested_config_keys() {
        let mut doc = json!({"authenticators": {"oauth2_introspection": {"config": {
            "introspection_url": "http://hydra/introspect",
            "pre_authorization": {"enabled": true, "token_url": "http://hydra/token"}
        }}}});
        let env = [
            (
                "AUTHENTICATORS_OAUTH2_INTROSPECTION_CONFIG_PRE_AUTHORIZATION_CLIENT_ID",
                "gateway",
            ),
            (
                "AUTHENTICATORS_OAUTH2_INTROSPECTION_CONFIG_PRE_AUTHORIZATION_SCOPE",
                "a,b",
            ),
            (
                "AUTHENTICATORS_OAUTH2_INTROSPECTION_CONFIG_CACHE_TTL",
                "30s",
            ),
            ("AUTHENTICATORS_JWT_CONFIG_TOKEN_FROM_QUERY_PARAMETER", "t"),
            ("MUTATORS_HYDRATOR_CONFIG_API_AUTH_BASIC_USERNAME", "u"),
            ("MUTATORS_HYDRATOR_CONFIG_API_RETRY_GIVE_UP_AFTER", "2s"),
            ("MUTATORS_HYDRATOR_CONFIG_API_URL", "http://h"),
            (
                "AUTHORIZERS_REMOTE_JSON_CONFIG_FORWARD_RESPONSE_HEADERS_TO_UPSTREAM",
                "X-A",
            ),
        ];
        apply(
            &mut doc,
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let intro = &doc["authenticators"]["oauth2_introspection"]["config"];
        assert_eq!(intro["introspection_url"], json!("http://hydra/introspect"));
        assert_eq!(
            intro["pre_authorization"],
            json!({"enabled": true, "token_url": "http://hydra/token", "client_id": "gateway", "scope": ["a", "b"]})
        );
        assert_eq!(intro["cache"]["ttl"], json!("30s"));
        assert_eq!(
            doc["authenticators"]["jwt"]["config"]["token_from"],
            json!({"query_parameter": "t"})
        );
        let hydrator = &doc["mutators"]["hydrator"]["config"]["api"];
        assert_eq!(hydrator["auth"]["basic"]["username"], json!("u"));
        assert_eq!(hydrator["retry"]["give_up_after"], json!("2s"));
        assert_eq!(hydrator["url"], json!("http://h"));
        assert_eq!(
            doc["authorizers"]["remote_json"]["config"]["forward_response_headers_to_upstream"],
            json!(["X-A"])
        );
    }
}
