//! Kratos-style environment overrides (`SERVE_PUBLIC_PORT`, `SECRETS_COOKIE=a,b`, `DSN`) and the
//! one-warning-per-key report of config keys this service does not implement.

use serde_json::{Map, Value};

/// How an environment value is turned into a config value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
}

use Kind::{Bool, Int, List, Str};

/// Every scalar key the service reads. The env name is the path upper-cased with `.` → `_`.
const KEYS: &[(&str, Kind)] = &[
    ("dsn", Str),
    ("serve.public.base_url", Str),
    ("serve.public.host", Str),
    ("serve.public.port", Int),
    ("serve.admin.base_url", Str),
    ("serve.admin.host", Str),
    ("serve.admin.port", Int),
    ("identity.default_schema_id", Str),
    ("selfservice.default_browser_return_url", Str),
    ("selfservice.allowed_return_urls", List),
    ("selfservice.methods.password.enabled", Bool),
    (
        "selfservice.methods.password.config.min_password_length",
        Int,
    ),
    (
        "selfservice.methods.password.config.identifier_similarity_check_enabled",
        Bool,
    ),
    (
        "selfservice.methods.password.config.haveibeenpwned_enabled",
        Bool,
    ),
    (
        "selfservice.methods.password.config.haveibeenpwned_host",
        Str,
    ),
    ("selfservice.methods.password.config.max_breaches", Int),
    (
        "selfservice.methods.password.config.ignore_network_errors",
        Bool,
    ),
    ("selfservice.methods.profile.enabled", Bool),
    ("selfservice.flows.registration.enabled", Bool),
    ("selfservice.flows.registration.ui_url", Str),
    ("selfservice.flows.registration.lifespan", Str),
    ("selfservice.flows.registration.style", Str),
    (
        "selfservice.flows.registration.after.default_browser_return_url",
        Str,
    ),
    (
        "selfservice.flows.registration.after.password.default_browser_return_url",
        Str,
    ),
    ("selfservice.flows.login.ui_url", Str),
    ("selfservice.flows.login.lifespan", Str),
    (
        "selfservice.flows.login.after.default_browser_return_url",
        Str,
    ),
    (
        "selfservice.flows.login.after.password.default_browser_return_url",
        Str,
    ),
    (
        "selfservice.flows.logout.after.default_browser_return_url",
        Str,
    ),
    ("selfservice.flows.error.ui_url", Str),
    ("secrets.default", List),
    ("secrets.cookie", List),
    ("secrets.cipher", List),
    ("hashers.algorithm", Str),
    ("hashers.argon2.memory", Str),
    ("hashers.argon2.iterations", Int),
    ("hashers.argon2.parallelism", Int),
    ("hashers.argon2.salt_length", Int),
    ("hashers.argon2.key_length", Int),
    ("hashers.argon2.expected_duration", Str),
    ("hashers.argon2.expected_deviation", Str),
    ("hashers.argon2.dedicated_memory", Str),
    ("hashers.argon2.concurrency", Int),
    ("session.lifespan", Str),
    ("session.cookie.name", Str),
    ("session.cookie.domain", Str),
    ("session.cookie.path", Str),
    ("session.cookie.same_site", Str),
    ("session.cookie.secure", Bool),
    ("session.cookie.persistent", Bool),
    ("cookies.domain", Str),
    ("cookies.path", Str),
    ("cookies.same_site", Str),
    ("cookies.secure", Bool),
    ("log.level", Str),
    ("log.format", Str),
    ("log.leak_sensitive_values", Bool),
    ("portcullis.ui.template_override_path", Str),
    ("portcullis.whoami_cache.enabled", Bool),
    ("portcullis.whoami_cache.max_entries", Int),
    ("portcullis.whoami_cache.max_age", Str),
    ("selfservice.methods.code.enabled", Bool),
    ("selfservice.methods.code.config.lifespan", Str),
    ("selfservice.methods.link.enabled", Bool),
    ("selfservice.methods.link.config.lifespan", Str),
    ("selfservice.flows.recovery.enabled", Bool),
    ("selfservice.flows.recovery.ui_url", Str),
    ("selfservice.flows.recovery.lifespan", Str),
    ("selfservice.flows.recovery.use", Str),
    ("selfservice.flows.recovery.notify_unknown_recipients", Bool),
    (
        "selfservice.flows.recovery.after.default_browser_return_url",
        Str,
    ),
    ("selfservice.flows.verification.enabled", Bool),
    ("selfservice.flows.verification.ui_url", Str),
    ("selfservice.flows.verification.lifespan", Str),
    ("selfservice.flows.verification.use", Str),
    (
        "selfservice.flows.verification.notify_unknown_recipients",
        Bool,
    ),
    (
        "selfservice.flows.verification.after.default_browser_return_url",
        Str,
    ),
    ("selfservice.methods.totp.enabled", Bool),
    ("selfservice.methods.totp.config.issuer", Str),
    ("selfservice.methods.lookup_secret.enabled", Bool),
    ("selfservice.flows.settings.required_aal", Str),
    ("session.whoami.required_aal", Str),
    ("courier.delivery_strategy", Str),
    ("courier.smtp.connection_uri", Str),
    ("courier.smtp.from_address", Str),
    ("courier.smtp.from_name", Str),
    ("courier.smtp.local_name", Str),
    ("courier.template_override_path", Str),
    ("courier.message_retries", Int),
    ("courier.worker.pull_count", Int),
    ("courier.worker.pull_wait", Str),
    ("courier.worker.retry_backoff", Str),
];

/// Keys read as whole subtrees (lists of objects) rather than scalars.
const SUBTREES: &[&str] = &[
    "identity.schemas",
    "selfservice.flows.registration.after.hooks",
    "selfservice.flows.registration.after.password.hooks",
    "selfservice.flows.login.after.hooks",
    "selfservice.flows.login.after.password.hooks",
];

/// Informational keys accepted without a warning.
const SILENT: &[&str] = &["version"];

/// Applies environment overrides, Kratos style, to the parsed config tree.
pub fn apply_env(root: &mut Value, env: &dyn Fn(&str) -> Option<String>) {
    for (path, kind) in KEYS {
        let name = path.to_ascii_uppercase().replace('.', "_");
        if let Some(raw) = env(&name) {
            set_path(root, path, convert(&raw, *kind));
        }
    }
    if let Some(raw) = env("IDENTITY_SCHEMAS")
        && let Ok(list @ Value::Array(_)) = serde_json::from_str::<Value>(&raw)
    {
        set_path(root, "identity.schemas", list);
    }
    for index in 0..32 {
        for field in ["ID", "URL"] {
            let name = format!("IDENTITY_SCHEMAS_{index}_{field}");
            if let Some(raw) = env(&name) {
                set_schema_field(root, index, &field.to_ascii_lowercase(), raw);
            }
        }
    }
}

fn convert(raw: &str, kind: Kind) -> Value {
    match kind {
        Str => Value::String(raw.to_owned()),
        Int => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
        List => {
            let trimmed = raw.trim();
            if trimmed.starts_with('[')
                && let Ok(list @ Value::Array(_)) = serde_json::from_str::<Value>(trimmed)
            {
                return list;
            }
            Value::Array(
                trimmed
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            )
        }
    }
}

fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut node = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return;
        }
        node = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn set_schema_field(root: &mut Value, index: usize, field: &str, raw: String) {
    if root
        .pointer("/identity/schemas")
        .is_none_or(|v| !v.is_array())
    {
        set_path(root, "identity.schemas", Value::Array(Vec::new()));
    }
    let Some(Value::Array(list)) = root.pointer_mut("/identity/schemas") else {
        return;
    };
    while list.len() <= index {
        list.push(Value::Object(Map::new()));
    }
    if let Value::Object(entry) = &mut list[index] {
        entry.insert(field.to_owned(), Value::String(raw));
    }
}

/// Lists the config keys present in the file that this service does not read, one per key.
pub fn unsupported_keys(root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(map) = root {
        walk(map, "", &mut out);
    }
    out
}

fn walk(map: &Map<String, Value>, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if SILENT.contains(&path.as_str())
            || SUBTREES.contains(&path.as_str())
            || KEYS.iter().any(|(k, _)| *k == path)
        {
            continue;
        }
        let is_prefix = KEYS
            .iter()
            .map(|(k, _)| *k)
            .chain(SUBTREES.iter().copied())
            .any(|k| k.starts_with(&path) && k.as_bytes().get(path.len()) == Some(&b'.'));
        match value {
            Value::Object(inner) if is_prefix => walk(inner, &path, out),
            _ => out.push(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_overrides_follow_kratos_naming() {
        let mut root = json!({"serve": {"public": {"port": 4433}}});
        let env = |name: &str| match name {
            "SERVE_PUBLIC_PORT" => Some("5000".to_owned()),
            "SECRETS_COOKIE" => Some("aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb".to_owned()),
            "DSN" => Some("memory".to_owned()),
            "IDENTITY_SCHEMAS_0_URL" => Some("file://x.json".to_owned()),
            _ => None,
        };
        apply_env(&mut root, &env);
        assert_eq!(root["serve"]["public"]["port"], json!(5000));
        assert_eq!(
            root["secrets"]["cookie"],
            json!(["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"])
        );
        assert_eq!(root["dsn"], json!("memory"));
        assert_eq!(
            root["identity"]["schemas"][0]["url"],
            json!("file://x.json")
        );
    }

    #[test]
    fn unsupported_keys_are_reported_once_each() {
        let root = json!({
            "version": "v1",
            "dsn": "memory",
            "courier": {"smtp": {"connection_uri": "smtp://x"}, "channels": []},
            "serve": {"public": {"port": 1, "cors": {"enabled": true}}},
            "identity": {"schemas": [{"id": "a", "url": "b"}]}
        });
        assert_eq!(
            unsupported_keys(&root),
            vec![
                "courier.channels".to_owned(),
                "serve.public.cors".to_owned()
            ]
        );
    }
}
