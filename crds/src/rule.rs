//! The `Rule` custom resource (`rules.portcullis.dev/v1alpha1`): one Oathkeeper access rule
//! per object, with Oathkeeper-Maester's spec field names so existing manifests apply unchanged.
//!
//! The schema carries the cheap invariants (bounded sizes, HTTP methods, non-empty URL and
//! handler names) as CEL so `kubectl apply` rejects them at once; everything that needs the
//! gateway's parser (pattern compiles, handler known) is checked by the operator and reported
//! in `status`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::free_form_object;

/// HTTP methods a rule may list (Oathkeeper matches on these, upper case).
pub const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// Spec of a `Rule`: the Oathkeeper access rule minus its `id`, which is `<name>.<namespace>`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "portcullis.dev",
    version = "v1alpha1",
    kind = "Rule",
    plural = "rules",
    singular = "rule",
    namespaced,
    status = "RuleStatus",
    shortname = "pcrule",
    category = "portcullis",
    derive = "PartialEq",
    doc = "An Oathkeeper access rule served to Portcullis gateways.",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.match.url"}"#,
    printcolumn = r#"{"name":"Methods","type":"string","jsonPath":".spec.match.methods","priority":1}"#,
    printcolumn = r#"{"name":"Upstream","type":"string","jsonPath":".spec.upstream.url","priority":1}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RuleSpec {
    /// Which requests the rule applies to.
    #[serde(rename = "match")]
    pub matcher: RuleMatch,
    /// Where allowed requests are forwarded. Optional: decision-API-only rules have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
    /// Authenticators tried in order; the first that applies wins. Default `[unauthorized]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub authenticators: Option<Vec<Handler>>,
    /// The authorizer. Default `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<Handler>,
    /// Mutators applied in order. Default `[noop]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub mutators: Option<Vec<Handler>>,
    /// Error handlers. Default: none (the gateway's global error handling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub errors: Option<Vec<Handler>>,
    /// Accepted for Oathkeeper-Maester compatibility and ignored: Portcullis streams rules to
    /// gateways instead of writing ConfigMaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub config_map_name: Option<String>,
}

/// `spec.match`: the URL pattern (glob or regexp with `<...>` delimiters) and methods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RuleMatch {
    /// URL pattern, `scheme://host/path` with `<...>` delimited regexp or glob parts.
    #[x_kube(validation = Rule::new("size(self) > 0").message("match.url must not be empty"))]
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// HTTP methods the rule applies to.
    #[x_kube(
        validation = Rule::new("self.all(m, m in ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'])")
            .message("match.methods may only contain GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT, TRACE"),
        merge_strategy = ListMerge::Set
    )]
    #[schemars(length(min = 1, max = 9), inner(length(max = 16)))]
    pub methods: Vec<String>,
}

/// `spec.upstream`: where the gateway proxies an allowed request.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    /// Absolute `http(s)://host[:port][/path]` URL of the upstream.
    #[x_kube(
        validation = Rule::new("self.matches('^https?://[^/?#]+')")
            .message("upstream.url must be an absolute http:// or https:// URL")
    )]
    #[schemars(length(min = 3, max = 2048))]
    pub url: String,
    /// Path prefix removed before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub strip_path: Option<String>,
    /// Keep the client's Host header instead of the upstream's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_host: Option<bool>,
}

/// One pipeline handler: its registered name and a free-form config merged over the
/// gateway's global config for that handler.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Handler {
    /// Handler name, e.g. `cookie_session`, `allow`, `id_token`, `json`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("handler name must not be empty"))]
    #[schemars(length(min = 1, max = 64))]
    pub handler: String,
    /// Handler config (any JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<serde_json::Value>,
}

/// Observed state of a `Rule`, written by the operator with server-side apply.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted` (valid and not conflicting) and `Ready` (in the served snapshot).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The id gateways serve this rule under: `<name>.<namespace>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// Version of the `rules` snapshot that contains this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_version: Option<i64>,
}

impl Rule {
    /// The rule id gateways see: `<name>.<namespace>`, as Oathkeeper-Maester names it.
    pub fn rule_id(&self) -> String {
        let name = self.metadata.name.as_deref().unwrap_or_default();
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        format!("{name}.{namespace}")
    }
}
