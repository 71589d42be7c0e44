//! The `IdentitySchema` custom resource (`identityschemas.portcullis.dev/v1alpha1`): a Kratos
//! identity JSON Schema that the operator streams to identity replicas.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::free_form_object;

/// Spec of an `IdentitySchema`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "portcullis.dev",
    version = "v1alpha1",
    kind = "IdentitySchema",
    plural = "identityschemas",
    singular = "identityschema",
    namespaced,
    status = "IdentitySchemaStatus",
    shortname = "idschema",
    category = "portcullis",
    derive = "PartialEq",
    doc = "A Kratos identity JSON Schema served to Portcullis identity replicas.",
    printcolumn = r#"{"name":"SchemaID","type":"string","jsonPath":".status.schemaId"}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySchemaSpec {
    /// The identity JSON Schema (with the `ory.sh/kratos` extension on traits).
    #[schemars(schema_with = "free_form_object")]
    pub schema: serde_json::Value,
    /// Whether this is the default schema for new identities.
    #[serde(default)]
    pub default: bool,
    /// Explicit schema id; `<namespace>/<name>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("id must not be empty when set"))]
    #[schemars(length(max = 253))]
    pub id: Option<String>,
}

/// Observed state of an `IdentitySchema`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySchemaStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted` and `Ready` conditions.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The id identity replicas serve this schema under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<String>,
    /// Version of the `identity-schemas` snapshot that contains this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_version: Option<i64>,
}

impl IdentitySchema {
    /// The schema id identity replicas see: `spec.id`, or `<namespace>/<name>`.
    pub fn schema_id(&self) -> String {
        if let Some(id) = self.spec.id.as_deref().filter(|id| !id.is_empty()) {
            return id.to_owned();
        }
        let name = self.metadata.name.as_deref().unwrap_or_default();
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        format!("{namespace}/{name}")
    }
}
