//! The CEL `x-kubernetes-validations` of the generated CRDs, evaluated offline with `kube-cel`
//! exactly as the API server would on `kubectl apply`.

use anyhow::Result;
use kube::CustomResourceExt;
use kube_cel::{Validator, compile_schema, estimate_rule_cost};
use portcullis_crds::{IdentitySchema, Rule};
use serde_json::{Value, json};

fn open_api_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Result<Value> {
    let schema = serde_json::to_value(&crd.spec.versions[0].schema)?;
    Ok(schema["openAPIV3Schema"].clone())
}

fn rule_object(spec: Value) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Rule",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": spec,
    })
}

fn valid_spec() -> Value {
    json!({
        "match": {"url": "http://app.example/<.*>", "methods": ["GET", "POST"]},
        "upstream": {"url": "http://backend:8080", "preserveHost": true},
        "authenticators": [{"handler": "anonymous"}],
        "authorizer": {"handler": "allow"},
        "mutators": [{"handler": "header", "config": {"headers": {"X-User": "{{ print .Subject }}"}}}],
    })
}

/// The messages of every failing rule, or empty when the object passes.
fn failures(schema: &Value, object: &Value) -> Vec<String> {
    match Validator::new().validate(schema, object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect(),
    }
}

#[test]
fn all_cel_rules_compile_and_fit_the_cost_budget() -> Result<()> {
    for crd in [Rule::crd(), IdentitySchema::crd()] {
        let schema = open_api_schema(&crd)?;
        let compiled = compile_schema(&schema);
        let mut stack = vec![&compiled];
        let mut rules = 0;
        while let Some(node) = stack.pop() {
            assert!(
                !node.has_errors(),
                "CEL compile errors: {:?}",
                node.compilation_errors()
            );
            for result in node.validations.iter().flatten() {
                rules += 1;
                let warnings = estimate_rule_cost(&result.rule.rule, node);
                assert!(warnings.is_empty(), "{}: {warnings:?}", result.rule.rule);
            }
            stack.extend(node.properties.values());
            stack.extend(node.items.as_deref());
        }
        assert!(rules > 0, "{:?} has no CEL rules", crd.metadata.name);
    }
    Ok(())
}

#[test]
fn valid_rule_passes_cel() -> Result<()> {
    let schema = open_api_schema(&Rule::crd())?;
    assert_eq!(
        failures(&schema, &rule_object(valid_spec())),
        Vec::<String>::new()
    );
    Ok(())
}

#[test]
fn unknown_http_method_is_rejected() -> Result<()> {
    let schema = open_api_schema(&Rule::crd())?;
    let mut spec = valid_spec();
    spec["match"]["methods"] = json!(["GET", "FETCH"]);
    let failed = failures(&schema, &rule_object(spec));
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("match.methods may only contain"),
        "{failed:?}"
    );
    Ok(())
}

#[test]
fn lower_case_method_is_rejected() -> Result<()> {
    let schema = open_api_schema(&Rule::crd())?;
    let mut spec = valid_spec();
    spec["match"]["methods"] = json!(["get"]);
    assert_eq!(failures(&schema, &rule_object(spec)).len(), 1);
    Ok(())
}

#[test]
fn empty_match_url_is_rejected() -> Result<()> {
    let schema = open_api_schema(&Rule::crd())?;
    let mut spec = valid_spec();
    spec["match"]["url"] = json!("");
    let failed = failures(&schema, &rule_object(spec));
    assert!(
        failed
            .iter()
            .any(|f| f.contains("match.url must not be empty")),
        "{failed:?}"
    );
    Ok(())
}

#[test]
fn empty_handler_name_is_rejected_in_every_list() -> Result<()> {
    let schema = open_api_schema(&Rule::crd())?;
    for field in ["authenticators", "mutators", "errors"] {
        let mut spec = valid_spec();
        spec[field] = json!([{"handler": ""}]);
        let failed = failures(&schema, &rule_object(spec));
        assert!(
            failed
                .iter()
                .any(|f| f.contains("handler name must not be empty")),
            "{field}: {failed:?}"
        );
    }
    let mut spec = valid_spec();
    spec["authorizer"] = json!({"handler": ""});
    assert!(!failures(&schema, &rule_object(spec)).is_empty());
    Ok(())
}

#[test]
fn relative_upstream_url_is_rejected() -> Result<()> {
    let schema = open_api_schema(&Rule::crd())?;
    let mut spec = valid_spec();
    spec["upstream"]["url"] = json!("backend:8080/path");
    let failed = failures(&schema, &rule_object(spec));
    assert!(
        failed.iter().any(|f| f.contains("absolute http")),
        "{failed:?}"
    );
    Ok(())
}

#[test]
fn maester_style_rule_without_upstream_passes() -> Result<()> {
    let schema = open_api_schema(&Rule::crd())?;
    let spec = json!({
        "match": {"url": "http://app.example/<**>", "methods": ["GET"]},
        "configMapName": "oathkeeper-rules",
    });
    assert_eq!(failures(&schema, &rule_object(spec)), Vec::<String>::new());
    Ok(())
}

#[test]
fn identity_schema_empty_id_is_rejected() -> Result<()> {
    let schema = open_api_schema(&IdentitySchema::crd())?;
    let object = |spec: Value| {
        json!({"apiVersion": "portcullis.dev/v1alpha1", "kind": "IdentitySchema",
               "metadata": {"name": "s", "namespace": "default"}, "spec": spec})
    };
    let schema_doc = json!({"type": "object", "properties": {"traits": {"type": "object"}}});
    assert!(
        failures(
            &schema,
            &object(json!({"schema": schema_doc, "default": true}))
        )
        .is_empty()
    );
    assert!(
        failures(
            &schema,
            &object(json!({"schema": schema_doc, "id": "customer"}))
        )
        .is_empty()
    );
    let failed = failures(&schema, &object(json!({"schema": schema_doc, "id": ""})));
    assert!(
        failed.iter().any(|f| f.contains("id must not be empty")),
        "{failed:?}"
    );
    Ok(())
}
