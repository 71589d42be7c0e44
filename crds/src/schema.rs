//! Schema fragments shared by the CRDs (the parts schemars cannot derive).

use schemars::{Schema, SchemaGenerator, json_schema};

/// A JSON object whose keys the API server keeps as given (`x-kubernetes-preserve-unknown-fields`).
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
