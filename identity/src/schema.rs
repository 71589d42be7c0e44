//! Identity schemas: JSON Schemas for traits with the `ory.sh/kratos` extension. Loads them from
//! `file://` and `base64://` URLs, validates traits (errors land on the right UI node), extracts
//! password identifiers and addresses, and derives the trait input nodes of a flow.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::config::SchemaRef;
use crate::text::Message;

/// Why a schema could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("identity schema `{id}`: cannot read {url}: {reason}")]
    Load {
        id: String,
        url: String,
        reason: String,
    },
    #[error("identity schema `{id}` is invalid: {reason}")]
    Invalid { id: String, reason: String },
    #[error("identity.default_schema_id `{0}` names no configured schema")]
    NoDefault(String),
}

/// One trait field found in a schema, with what the `ory.sh/kratos` extension says about it.
#[derive(Debug, Clone)]
pub struct TraitField {
    /// Dotted path below `traits`, e.g. `email` or `name.first`.
    pub path: String,
    pub json_type: String,
    pub format: Option<String>,
    pub title: Option<String>,
    pub required: bool,
    pub pattern: Option<String>,
    pub password_identifier: bool,
    pub verification_via: Option<String>,
    pub recovery_via: Option<String>,
}

/// A loaded identity schema.
pub struct IdentitySchema {
    pub id: String,
    pub raw: Value,
    validator: jsonschema::Validator,
    pub fields: Vec<TraitField>,
}

/// A trait validation problem, tied to a node (`traits.email`) when it has one.
#[derive(Debug, Clone)]
pub struct TraitError {
    pub node: Option<String>,
    pub message: Message,
}

/// An address derived from a trait marked for verification or recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub via: String,
    pub value: String,
}

impl IdentitySchema {
    /// Compiles a schema document.
    pub fn new(id: &str, raw: Value) -> Result<Self, SchemaError> {
        let invalid = |reason: String| SchemaError::Invalid {
            id: id.to_owned(),
            reason,
        };
        let traits = raw
            .pointer("/properties/traits")
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("object"))
            .ok_or_else(|| invalid("`properties.traits` must be an object schema".to_owned()))?;
        let mut fields = Vec::new();
        collect_fields(traits, "", true, &mut fields);
        if fields.is_empty() {
            return Err(invalid("`properties.traits` has no properties".to_owned()));
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&raw)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            id: id.to_owned(),
            raw,
            validator,
            fields,
        })
    }

    /// Validates traits; an empty list means they are valid.
    pub fn validate(&self, traits: &Value) -> Vec<TraitError> {
        let document = json!({ "traits": traits });
        let mut out = Vec::new();
        for error in self.validator.iter_errors(&document) {
            let pointer = error.instance_path().as_str().to_owned();
            let mut node = pointer_to_node(&pointer);
            use jsonschema::error::ValidationErrorKind as K;
            let message = match error.kind() {
                K::Required { property } => {
                    let name = property.as_str().unwrap_or_default().to_owned();
                    node = Some(match node {
                        Some(parent) => format!("{parent}.{name}"),
                        None => format!("traits.{name}"),
                    });
                    if node.as_deref() == Some("traits.traits") {
                        node = None;
                    }
                    Message::missing_property(&name)
                }
                K::MinLength { limit } => Message::min_length(*limit),
                K::MaxLength { limit } => Message::max_length(*limit),
                K::Pattern { pattern } => Message::pattern(pattern),
                K::Format { format } if format == "email" => Message::invalid_email(),
                _ => Message::validation(&error.to_string()),
            };
            out.push(TraitError { node, message });
        }
        out
    }

    /// Normalised password identifiers (trimmed, lower-cased) from the marked traits.
    pub fn password_identifiers(&self, traits: &Value) -> Vec<String> {
        let mut out: Vec<String> = self
            .fields
            .iter()
            .filter(|f| f.password_identifier)
            .filter_map(|f| lookup(traits, &f.path))
            .filter_map(|v| v.as_str().map(normalize_identifier))
            .filter(|v| !v.is_empty())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Verifiable addresses (`verification.via`) derived from the traits.
    pub fn verifiable_addresses(&self, traits: &Value) -> Vec<Address> {
        self.addresses(traits, |f| f.verification_via.as_deref())
    }

    /// Recovery addresses (`recovery.via`) derived from the traits.
    pub fn recovery_addresses(&self, traits: &Value) -> Vec<Address> {
        self.addresses(traits, |f| f.recovery_via.as_deref())
    }

    fn addresses(&self, traits: &Value, via: impl Fn(&TraitField) -> Option<&str>) -> Vec<Address> {
        self.fields
            .iter()
            .filter_map(|f| {
                let via = via(f)?;
                let value = lookup(traits, &f.path)?.as_str()?;
                Some(Address {
                    via: via.to_owned(),
                    value: normalize_identifier(value),
                })
            })
            .collect()
    }

    /// Turns form strings into the JSON types the schema expects (`"3"` → 3 for integers).
    pub fn coerce_form_traits(&self, traits: &mut Value) {
        for field in &self.fields {
            let Some(slot) = lookup_mut(traits, &field.path) else {
                continue;
            };
            let Value::String(text) = slot else { continue };
            let replacement = match field.json_type.as_str() {
                "integer" => text.trim().parse::<i64>().ok().map(Value::from),
                "number" => text.trim().parse::<f64>().ok().map(Value::from),
                "boolean" => Some(Value::Bool(matches!(text.as_str(), "true" | "on" | "1"))),
                _ => None,
            };
            if let Some(value) = replacement {
                *slot = value;
            }
        }
    }
}

/// Trims and lower-cases an identifier, as Kratos does for emails and usernames.
pub fn normalize_identifier(value: &str) -> String {
    value.trim().to_lowercase()
}

fn collect_fields(schema: &Value, prefix: &str, parent_required: bool, out: &mut Vec<TraitField>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, prop) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let json_type = prop
            .get("type")
            .and_then(|t| match t {
                Value::String(s) => Some(s.clone()),
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|s| *s != "null")
                    .map(str::to_owned),
                _ => None,
            })
            .unwrap_or_else(|| "string".to_owned());
        let is_required = parent_required && required.contains(&name.as_str());
        if json_type == "object" {
            collect_fields(prop, &path, is_required, out);
            continue;
        }
        let ext = prop.get("ory.sh/kratos");
        let str_at = |p: &str| {
            ext.and_then(|e| e.pointer(p))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        out.push(TraitField {
            path,
            json_type,
            format: prop
                .get("format")
                .and_then(Value::as_str)
                .map(str::to_owned),
            title: prop.get("title").and_then(Value::as_str).map(str::to_owned),
            required: is_required,
            pattern: prop
                .get("pattern")
                .and_then(Value::as_str)
                .map(str::to_owned),
            password_identifier: ext
                .and_then(|e| e.pointer("/credentials/password/identifier"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            verification_via: str_at("/verification/via"),
            recovery_via: str_at("/recovery/via"),
        });
    }
}

/// `/traits/email` → `traits.email`; the root pointer maps to no node.
fn pointer_to_node(pointer: &str) -> Option<String> {
    let trimmed = pointer.trim_start_matches('/');
    if trimmed.is_empty() {
        return None;
    }
    Some(
        trimmed
            .split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// Reads a dotted path below a JSON object.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn lookup_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(value, |v, key| v.get_mut(key))
}

/// All configured schemas, one of them the default.
pub struct SchemaRegistry {
    schemas: HashMap<String, Arc<IdentitySchema>>,
    order: Vec<String>,
    default_id: String,
}

impl SchemaRegistry {
    /// Loads every schema named in the config; relative `file://` paths resolve against `base_dir`.
    pub fn load(
        refs: &[SchemaRef],
        default_id: &str,
        base_dir: &Path,
    ) -> Result<Self, SchemaError> {
        let mut schemas = HashMap::new();
        let mut order = Vec::new();
        for r in refs {
            let raw = fetch(r, base_dir)?;
            schemas.insert(r.id.clone(), Arc::new(IdentitySchema::new(&r.id, raw)?));
            order.push(r.id.clone());
        }
        if !schemas.contains_key(default_id) {
            return Err(SchemaError::NoDefault(default_id.to_owned()));
        }
        Ok(Self {
            schemas,
            order,
            default_id: default_id.to_owned(),
        })
    }

    /// Like [`SchemaRegistry::load`], but an empty or default-less set is allowed: schemas are
    /// still to come from the operator's stream.
    pub fn load_partial(
        refs: &[SchemaRef],
        default_id: &str,
        base_dir: &Path,
    ) -> Result<Self, SchemaError> {
        let mut out = Self {
            schemas: HashMap::new(),
            order: Vec::new(),
            default_id: default_id.to_owned(),
        };
        for r in refs {
            let raw = fetch(r, base_dir)?;
            out.insert(Arc::new(IdentitySchema::new(&r.id, raw)?));
        }
        Ok(out)
    }

    fn insert(&mut self, schema: Arc<IdentitySchema>) {
        if !self.schemas.contains_key(&schema.id) {
            self.order.push(schema.id.clone());
        }
        self.schemas.insert(schema.id.clone(), schema);
    }

    /// This registry plus the schemas of an `identity-schemas` snapshot (items
    /// `{"id", "default", "schema"}`); a snapshot item marked `default` becomes the default.
    /// Fails when an item is invalid or no default schema results.
    pub fn with_stream_items(&self, items: &[Value]) -> Result<Self, SchemaError> {
        let mut out = Self {
            schemas: self.schemas.clone(),
            order: self.order.clone(),
            default_id: self.default_id.clone(),
        };
        for item in items {
            let id =
                item.get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| SchemaError::Invalid {
                        id: "?".to_owned(),
                        reason: "stream item without an id".to_owned(),
                    })?;
            let raw = item.get("schema").cloned().unwrap_or(Value::Null);
            out.insert(Arc::new(IdentitySchema::new(id, raw)?));
            if item.get("default").and_then(Value::as_bool) == Some(true) {
                out.default_id = id.to_owned();
            }
        }
        if !out.schemas.contains_key(&out.default_id) {
            return Err(SchemaError::NoDefault(out.default_id));
        }
        Ok(out)
    }

    pub fn default_schema(&self) -> Option<Arc<IdentitySchema>> {
        self.get(&self.default_id)
    }

    pub fn default_id(&self) -> &str {
        &self.default_id
    }

    /// A schema by raw id or by its base64url (unpadded) encoding.
    pub fn get(&self, id: &str) -> Option<Arc<IdentitySchema>> {
        if let Some(s) = self.schemas.get(id) {
            return Some(s.clone());
        }
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id.trim_end_matches('='))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        self.schemas.get(&decoded).cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<IdentitySchema>> {
        self.order.iter().filter_map(|id| self.schemas.get(id))
    }
}

/// `<public base>/schemas/<base64url(id)>`, as Kratos builds `schema_url`.
pub fn schema_url(public_base: &str, id: &str) -> String {
    format!(
        "{}/schemas/{}",
        public_base.trim_end_matches('/'),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
    )
}

/// How long one fetch of an `http(s)://` schema may take.
const REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Fetch attempts per `http(s)://` schema before start-up fails (a schema server starting
/// beside us in a cluster gets a few seconds).
const REMOTE_ATTEMPTS: u32 = 5;
/// Largest schema document accepted from a remote URL.
const REMOTE_MAX_BYTES: usize = 1 << 20;

/// Fetches every `http://` / `https://` schema (as Kratos does at start-up) and returns the
/// refs with those URLs replaced by `base64://` of the fetched document, so that
/// [`SchemaRegistry::load`] stays synchronous. Other refs pass through untouched. A schema that
/// cannot be fetched (after retries), is too large or answers a non-2xx status fails start-up
/// with an error naming its id and URL.
pub async fn fetch_remote(refs: &[SchemaRef]) -> Result<Vec<SchemaRef>, SchemaError> {
    if !refs.iter().any(|r| is_remote(&r.url)) {
        return Ok(refs.to_vec());
    }
    let client = reqwest::Client::builder()
        .timeout(REMOTE_TIMEOUT)
        .build()
        .map_err(|e| SchemaError::Load {
            id: "?".to_owned(),
            url: "http(s)".to_owned(),
            reason: format!("HTTP client: {e}"),
        })?;
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        if !is_remote(&r.url) {
            out.push(r.clone());
            continue;
        }
        let body = fetch_with_retries(&client, r).await?;
        out.push(SchemaRef {
            id: r.id.clone(),
            url: format!(
                "base64://{}",
                base64::engine::general_purpose::STANDARD.encode(body)
            ),
        });
    }
    Ok(out)
}

fn is_remote(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

async fn fetch_with_retries(
    client: &reqwest::Client,
    r: &SchemaRef,
) -> Result<Vec<u8>, SchemaError> {
    let fail = |reason: String| SchemaError::Load {
        id: r.id.clone(),
        url: r.url.clone(),
        reason,
    };
    let mut delay = std::time::Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        let result = async {
            let response = client
                .get(&r.url)
                .header(
                    reqwest::header::ACCEPT,
                    "application/schema+json, application/json",
                )
                .send()
                .await
                .map_err(|e| (true, e.to_string()))?;
            let status = response.status();
            if !status.is_success() {
                // A server error may pass; a 4xx will not.
                return Err((status.is_server_error(), format!("answered {status}")));
            }
            if response
                .content_length()
                .is_some_and(|n| n > REMOTE_MAX_BYTES as u64)
            {
                return Err((false, format!("larger than {REMOTE_MAX_BYTES} bytes")));
            }
            let body = response.bytes().await.map_err(|e| (true, e.to_string()))?;
            if body.len() > REMOTE_MAX_BYTES {
                return Err((false, format!("larger than {REMOTE_MAX_BYTES} bytes")));
            }
            Ok(body.to_vec())
        }
        .await;
        match result {
            Ok(body) => return Ok(body),
            Err((retry, reason)) if retry && attempt < REMOTE_ATTEMPTS => {
                tracing::warn!(
                    schema = %r.id,
                    url = %r.url,
                    attempt,
                    "identity schema fetch failed, retrying: {reason}"
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err((_, reason)) => return Err(fail(reason)),
        }
    }
}

fn fetch(r: &SchemaRef, base_dir: &Path) -> Result<Value, SchemaError> {
    let fail = |reason: String| SchemaError::Load {
        id: r.id.clone(),
        url: r.url.clone(),
        reason,
    };
    let text = if let Some(encoded) = r.url.strip_prefix("base64://") {
        let engine_std = base64::engine::general_purpose::STANDARD;
        let engine_url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bytes = engine_std
            .decode(encoded)
            .or_else(|_| engine_url.decode(encoded.trim_end_matches('=')))
            .map_err(|e| fail(e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| fail(e.to_string()))?
    } else if is_remote(&r.url) {
        return Err(fail(
            "http(s) schema URLs are fetched by `fetch_remote` before loading".to_owned(),
        ));
    } else {
        let path = r.url.strip_prefix("file://").unwrap_or(&r.url);
        let path = Path::new(path);
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        };
        std::fs::read_to_string(&full).map_err(|e| fail(format!("{}: {e}", full.display())))?
    };
    serde_json::from_str(&text)
        .or_else(|_| serde_saphyr::from_str(&text))
        .map_err(|e| fail(format!("not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> IdentitySchema {
        IdentitySchema::new(
            "default",
            json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"traits": {"type": "object", "properties": {
                    "email": {"type": "string", "format": "email", "title": "E-Mail",
                        "ory.sh/kratos": {"credentials": {"password": {"identifier": true}},
                                          "verification": {"via": "email"}}},
                    "age": {"type": "integer"}
                }, "required": ["email"], "additionalProperties": false}}
            }),
        )
        .unwrap()
    }

    #[test]
    fn missing_required_trait_lands_on_its_node() {
        let errors = schema().validate(&json!({}));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].node.as_deref(), Some("traits.email"));
        assert_eq!(errors[0].message.id, 4000002);
    }

    #[test]
    fn bad_email_format_is_rejected() {
        let errors = schema().validate(&json!({"email": "not-an-email"}));
        assert_eq!(errors[0].node.as_deref(), Some("traits.email"));
    }

    #[test]
    fn identifiers_are_normalised() {
        let s = schema();
        let traits = json!({"email": " Alice@Example.COM "});
        assert_eq!(s.password_identifiers(&traits), vec!["alice@example.com"]);
        assert_eq!(s.verifiable_addresses(&traits)[0].via, "email");
    }

    #[test]
    fn form_strings_are_coerced() {
        let s = schema();
        let mut traits = json!({"email": "a@b.c", "age": "42"});
        s.coerce_form_traits(&mut traits);
        assert_eq!(traits["age"], json!(42));
    }
}
