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
    // Maester's CRD has no status subresource: nothing is written.
    assert!(api.status_patches().is_empty());
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
