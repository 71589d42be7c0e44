//! Ory-style environment overrides for `oathkeeper.yml`: the key path upper-cased with `_`
//! (`SERVE_PROXY_PORT`, `ACCESS_RULES_REPOSITORIES=a,b`, `AUTHENTICATORS_JWT_ENABLED`) and one
//! top-level handler config key (`AUTHENTICATORS_COOKIE_SESSION_CONFIG_CHECK_SESSION_URL`).

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
            let field = key[prefix.len()..].to_ascii_lowercase();
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
];

/// An env value for a handler config key: JSON objects/arrays as JSON, known list keys split on
/// commas, `true`/`false` as booleans, everything else as a string.
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
}
