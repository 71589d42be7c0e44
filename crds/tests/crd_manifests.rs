//! The committed CRD YAML matches the Rust types, and its shape is what users and the chart
//! depend on (names, printer columns, status subresource, bounded sizes).

use std::path::PathBuf;

use anyhow::{Context, Result};
use kube::CustomResourceExt;
use portcullis_crds::{IdentitySchema, Rule, rendered_crds};

const REGENERATE: &str = "run `cargo run -p portcullis-crds --bin crdgen` to regenerate";

#[test]
fn committed_crd_yaml_is_up_to_date() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in [
        root.join("yaml"),
        root.join("../charts/portcullis/files/crds"),
    ] {
        for (file, expected) in rendered_crds()? {
            let path = dir.join(&file);
            let committed = std::fs::read_to_string(&path)
                .with_context(|| format!("{} is missing; {REGENERATE}", path.display()))?;
            assert!(
                committed == expected,
                "{} is stale; {REGENERATE}",
                path.display()
            );
        }
    }
    Ok(())
}

#[test]
fn rule_crd_names_avoid_clashing_with_maester() {
    let crd = Rule::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("rules.portcullis.dev"));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["pcrule".to_owned()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["portcullis".to_owned()])
    );
}

#[test]
fn rule_crd_has_status_subresource_and_printer_columns() {
    let crd = Rule::crd();
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<(String, i32)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.priority.unwrap_or(0)))
        .collect();
    let expected = [
        ("URL", 0),
        ("Methods", 1),
        ("Upstream", 1),
        ("Accepted", 0),
        ("Ready", 0),
        ("Age", 0),
    ];
    let expected: Vec<(String, i32)> = expected
        .iter()
        .map(|(n, p)| ((*n).to_owned(), *p))
        .collect();
    assert_eq!(columns, expected);
}

#[test]
fn identity_schema_crd_has_status_and_short_name() {
    let crd = IdentitySchema::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("identityschemas.portcullis.dev")
    );
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec!["idschema".to_owned()])
    );
    let version = &crd.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
}

/// Every string and list in a spec that CEL could touch carries an upper bound, so the API
/// server's CEL cost estimate stays within budget.
#[test]
fn every_spec_string_and_list_is_bounded() -> Result<()> {
    fn walk(path: &str, node: &serde_json::Value, unbounded: &mut Vec<String>) {
        if node.get("x-kubernetes-preserve-unknown-fields") == Some(&serde_json::Value::Bool(true))
        {
            return;
        }
        match node.get("type").and_then(|t| t.as_str()) {
            Some("string") if node.get("maxLength").is_none() => unbounded.push(path.to_owned()),
            Some("array") if node.get("maxItems").is_none() => unbounded.push(path.to_owned()),
            _ => {}
        }
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (name, child) in props {
                walk(&format!("{path}.{name}"), child, unbounded);
            }
        }
        if let Some(items) = node.get("items") {
            walk(&format!("{path}[]"), items, unbounded);
        }
    }
    for crd in [Rule::crd(), IdentitySchema::crd()] {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema)?;
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        let mut unbounded = Vec::new();
        walk("spec", spec, &mut unbounded);
        assert!(unbounded.is_empty(), "unbounded fields: {unbounded:?}");
    }
    Ok(())
}

#[test]
fn handler_config_is_free_form() -> Result<()> {
    let crd = Rule::crd();
    let schema = serde_json::to_value(&crd.spec.versions[0].schema)?;
    let config = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["authorizer"]["properties"]
        ["config"];
    assert_eq!(config["type"], "object");
    assert_eq!(config["x-kubernetes-preserve-unknown-fields"], true);
    Ok(())
}
