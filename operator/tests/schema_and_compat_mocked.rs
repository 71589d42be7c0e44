//! IdentitySchema reconcile and `--oathkeeper-compat` Rule reconcile against the mocked API.

mod support;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use portcullis_crds::{IdentitySchema, IdentitySchemaSpec};
use portcullis_stream::{TOPIC_IDENTITY_SCHEMAS, TOPIC_RULES};
use serde_json::json;
use support::{FakeApi, context, rule, synced_dynamic_store, synced_store};

#[tokio::test]
async fn identity_schema_is_published_with_its_id() -> Result<()> {
    let api = FakeApi::default();
    let ctx = {
        let mut schema = IdentitySchema::new(
            "person",
            IdentitySchemaSpec {
                schema: json!({"type": "object", "properties": {"traits": {"type": "object"}}}),
                default: true,
                id: Some("default".into()),
            },
        );
        schema.metadata.namespace = Some("auth".into());
        let ctx = context(&api, &[], false);
        let mut inner = Arc::try_unwrap(ctx).map_err(|_| anyhow::anyhow!("context shared"))?;
        inner.schemas = vec![synced_store(std::slice::from_ref(&schema))];
        let ctx = Arc::new(inner);
        portcullis_operator::schema_controller::reconcile(Arc::new(schema), ctx.clone()).await?;
        ctx
    };
    let snapshot = ctx
        .publisher
        .current(TOPIC_IDENTITY_SCHEMAS)
        .context("published")?;
    assert_eq!(
        snapshot.items,
        [json!({"id": "default", "default": true,
        "schema": {"type": "object", "properties": {"traits": {"type": "object"}}}})]
    );
    Ok(())
}

#[tokio::test]
async fn oathkeeper_rule_is_served_alongside_portcullis_rules() -> Result<()> {
    let api = FakeApi::default();
    let native = rule("native", 100, "http://shop.example/native/<.*>");
    let ctx = context(&api, std::slice::from_ref(&native), false);
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("oathkeeper.ory.sh", "v1alpha1", "Rule"),
        "rules",
    );
    let mut legacy = DynamicObject::new("legacy", &resource).within("shop");
    legacy.data = json!({"spec": {
        "match": {"url": "http://shop.example/legacy/<.*>", "methods": ["GET"]},
        "authenticators": [{"handler": "anonymous"}],
        "authorizer": {"handler": "allow"},
        "configMapName": "oathkeeper-rules",
    }});
    let mut inner = Arc::try_unwrap(ctx).map_err(|_| anyhow::anyhow!("context shared"))?;
    inner.oathkeeper_rules = vec![synced_dynamic_store(
        std::slice::from_ref(&legacy),
        &resource,
    )];
    let ctx = Arc::new(inner);

    portcullis_operator::rule_controller::reconcile_oathkeeper(Arc::new(legacy), ctx.clone())
        .await?;
    let snapshot = ctx.publisher.current(TOPIC_RULES).context("published")?;
    let ids: Vec<_> = snapshot
        .items
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, ["legacy.shop", "native.shop"]);
    // Maester's CRD has no status subresource: nothing goes to a /status path.
    assert!(api.status_patches().is_empty());
    Ok(())
}

/// A Maester Rule in the shop namespace, known to the fake API, and a leader context serving it.
fn maester_rule(
    api: &FakeApi,
    url: &str,
) -> Result<(DynamicObject, Arc<portcullis_operator::Context>)> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("oathkeeper.ory.sh", "v1alpha1", "Rule"),
        "rules",
    );
    let mut legacy = DynamicObject::new("legacy", &resource).within("shop");
    legacy.data = json!({"spec": {
        "match": {"url": url, "methods": ["GET"]},
        "authenticators": [{"handler": "anonymous"}],
        "authorizer": {"handler": "allow"},
    }});
    api.know_object(MAESTER_PATH, serde_json::to_value(&legacy)?);
    let ctx = context(api, &[], true);
    let mut inner = Arc::try_unwrap(ctx).map_err(|_| anyhow::anyhow!("context shared"))?;
    inner.oathkeeper_rules = vec![synced_dynamic_store(
        std::slice::from_ref(&legacy),
        &resource,
    )];
    Ok((legacy, Arc::new(inner)))
}

const MAESTER_PATH: &str = "/apis/oathkeeper.ory.sh/v1alpha1/namespaces/shop/rules/legacy";

#[tokio::test]
async fn maester_rule_gets_maesters_validation_status() -> Result<()> {
    let api = FakeApi::default();
    let (legacy, ctx) = maester_rule(&api, "http://shop.example/legacy/<.*>")?;
    portcullis_operator::rule_controller::reconcile_oathkeeper(Arc::new(legacy), ctx.clone())
        .await?;
    let stored = api.object(MAESTER_PATH).context("object")?;
    assert_eq!(stored["status"]["validation"], json!({"valid": true}));
    let patches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path == MAESTER_PATH)
        .collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].content_type, "application/merge-patch+json");
    // Only the status field is patched, never the user's spec.
    assert!(patches[0].body.get("spec").is_none(), "{}", patches[0].body);
    for request in api.requests() {
        let (group, resource, verb) = request.rbac();
        assert!(
            portcullis_operator::rbac::allows(&group, &resource, &verb),
            "{verb} on {group}/{resource} is not in operator/rbac.yaml"
        );
    }

    // Reconciling the object as the API now holds it writes nothing more.
    let current: DynamicObject = serde_json::from_value(stored)?;
    portcullis_operator::rule_controller::reconcile_oathkeeper(Arc::new(current), ctx.clone())
        .await?;
    let patch_count = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == MAESTER_PATH)
        .count();
    assert_eq!(patch_count, 1, "an unchanged verdict is not rewritten");
    Ok(())
}

#[tokio::test]
async fn invalid_maester_rule_reports_the_error_like_maester() -> Result<()> {
    let api = FakeApi::default();
    let (legacy, ctx) = maester_rule(&api, "http://shop.example/<[unclosed>")?;
    portcullis_operator::rule_controller::reconcile_oathkeeper(Arc::new(legacy), ctx.clone())
        .await?;
    let stored = api.object(MAESTER_PATH).context("object")?;
    assert_eq!(stored["status"]["validation"]["valid"], false);
    let error = stored["status"]["validation"]["validationError"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("spec.match.url"), "{error}");
    assert!(
        ctx.publisher
            .current(TOPIC_RULES)
            .is_none_or(|s| s.items.is_empty()),
        "an invalid rule is never served"
    );
    assert_eq!(api.events().len(), 1, "a rejection is an Event too");
    Ok(())
}

#[tokio::test]
async fn deleted_rule_disappears_on_republish() -> Result<()> {
    let api = FakeApi::default();
    let kept = rule("kept", 100, "http://shop.example/kept/<.*>");
    let gone = rule("gone", 100, "http://shop.example/gone/<.*>");
    let ctx = context(&api, &[kept.clone(), gone], false);
    portcullis_operator::rule_controller::publish_rules(&ctx).await?;
    assert_eq!(
        ctx.publisher
            .current(TOPIC_RULES)
            .context("v1")?
            .items
            .len(),
        2
    );

    let mut inner = Arc::try_unwrap(ctx).map_err(|_| anyhow::anyhow!("context shared"))?;
    inner.rules = vec![synced_store(std::slice::from_ref(&kept))];
    portcullis_operator::rule_controller::publish_rules(&inner).await?;
    let snapshot = inner.publisher.current(TOPIC_RULES).context("v2")?;
    let ids: Vec<_> = snapshot
        .items
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, ["kept.shop"]);
    Ok(())
}
