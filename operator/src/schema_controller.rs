//! The IdentitySchema controller: validates every schema object, publishes the accepted ones
//! on the `identity-schemas` stream (`{"id", "default", "schema"}` items, sorted by id), and
//! writes status on the lease holder.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::Action;
use portcullis_crds::{IdentitySchema, IdentitySchemaStatus};
use portcullis_stream::TOPIC_IDENTITY_SCHEMAS;
use serde_json::{Value, json};

use crate::context::{Context, Error};
use crate::status::{self, ACCEPTED, DesiredCondition, READY};

/// The outcome for one schema object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaVerdict {
    /// Served or not.
    pub accepted: bool,
    /// `Valid`, `InvalidJSONSchema`, `Conflict` or `MultipleDefaults`.
    pub reason: &'static str,
    /// Detail.
    pub message: String,
}

/// Verdicts keyed by `(namespace, name)` and the items to serve.
#[derive(Debug, Default)]
pub struct SchemaEvaluation {
    /// One verdict per object.
    pub verdicts: HashMap<(String, String), SchemaVerdict>,
    /// Served items, sorted by schema id.
    pub served: Vec<Value>,
}

fn shape_error(schema: &Value) -> Option<String> {
    let Some(object) = schema.as_object() else {
        return Some("spec.schema must be a JSON object".into());
    };
    if let Some(kind) = object.get("type").filter(|t| t.as_str() != Some("object")) {
        return Some(format!("spec.schema.type must be \"object\", not {kind}"));
    }
    match object.get("properties").and_then(|p| p.get("traits")) {
        Some(traits) if traits.is_object() => None,
        Some(_) => Some("spec.schema.properties.traits must be an object".into()),
        None => Some("spec.schema.properties.traits is required (Kratos identity traits)".into()),
    }
}

/// Evaluates all schema objects: shape, unique ids, at most one default (the oldest wins).
pub fn evaluate_schemas(mut schemas: Vec<Arc<IdentitySchema>>) -> SchemaEvaluation {
    schemas.sort_by_key(|s| {
        (
            s.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            s.metadata.namespace.clone(),
            s.metadata.name.clone(),
        )
    });
    let mut evaluation = SchemaEvaluation::default();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut default_owner: Option<String> = None;
    let mut served = BTreeMap::new();
    for schema in schemas {
        let key = (
            schema.metadata.namespace.clone().unwrap_or_default(),
            schema.metadata.name.clone().unwrap_or_default(),
        );
        let id = schema.schema_id();
        let verdict = if let Some(message) = shape_error(&schema.spec.schema) {
            SchemaVerdict {
                accepted: false,
                reason: "InvalidJSONSchema",
                message,
            }
        } else if let Some(owner) = ids.get(&id) {
            SchemaVerdict {
                accepted: false,
                reason: "Conflict",
                message: format!("schema id {id:?} is already served for {owner}"),
            }
        } else if let (true, Some(owner)) = (schema.spec.default, &default_owner) {
            SchemaVerdict {
                accepted: false,
                reason: "MultipleDefaults",
                message: format!("{owner} is already the default schema"),
            }
        } else {
            ids.insert(id.clone(), format!("{}/{}", key.0, key.1));
            if schema.spec.default {
                default_owner = Some(format!("{}/{}", key.0, key.1));
            }
            served.insert(
                id.clone(),
                json!({"id": id, "default": schema.spec.default, "schema": schema.spec.schema}),
            );
            SchemaVerdict {
                accepted: true,
                reason: "Valid",
                message: format!("schema is valid and served to identity replicas as {id:?}"),
            }
        };
        evaluation.verdicts.insert(key, verdict);
    }
    evaluation.served = served.into_values().collect();
    evaluation
}

/// Evaluates every schema object and publishes the accepted ones.
pub async fn publish_schemas(ctx: &Context) -> Result<(SchemaEvaluation, u64), Error> {
    let _ordered = ctx.schema_publish.lock().await;
    let mut all = Vec::new();
    for store in &ctx.schemas {
        store
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheStopped("identityschemas.portcullis.dev"))?;
        all.extend(store.state());
    }
    let evaluation = evaluate_schemas(all);
    let version = ctx
        .publisher
        .publish(TOPIC_IDENTITY_SCHEMAS, evaluation.served.clone())?;
    Ok((evaluation, version))
}

/// Retry policy for failed reconciles of `IdentitySchema`s.
pub fn error_policy(obj: Arc<IdentitySchema>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::rule_controller::retry_later(obj.as_ref(), error, &ctx, "identity_schema")
}

/// Reconciles one IdentitySchema.
pub async fn reconcile(obj: Arc<IdentitySchema>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled("identity_schema");
    let (evaluation, version) = publish_schemas(&ctx).await?;
    let namespace = obj
        .metadata
        .namespace
        .clone()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let name = obj
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingMetadata("name"))?;
    let Some(verdict) = evaluation.verdicts.get(&(namespace.clone(), name.clone())) else {
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    if ctx.leadership.is_leader() {
        let previous = obj.status.clone().unwrap_or_default();
        let generation = obj.metadata.generation;
        let desired = [
            DesiredCondition {
                type_: ACCEPTED,
                status: verdict.accepted,
                reason: verdict.reason.into(),
                message: verdict.message.clone(),
            },
            DesiredCondition {
                type_: READY,
                status: verdict.accepted,
                reason: if verdict.accepted {
                    "Served"
                } else {
                    "NotServed"
                }
                .into(),
                message: if verdict.accepted {
                    "served to identity replicas"
                } else {
                    "not served; see the Accepted condition"
                }
                .into(),
            },
        ];
        let served_version = verdict.accepted.then(|| {
            let unchanged = previous.observed_generation == generation;
            previous
                .served_version
                .filter(|_| unchanged)
                .or(i64::try_from(version).ok())
        });
        let next = IdentitySchemaStatus {
            observed_generation: generation,
            conditions: status::conditions(
                &desired,
                &previous.conditions,
                generation,
                Timestamp::now(),
            ),
            schema_id: Some(obj.schema_id()),
            served_version: served_version.flatten(),
        };
        if obj.status.as_ref() != Some(&next) {
            let api: Api<IdentitySchema> = Api::namespaced(ctx.client.clone(), &namespace);
            status::apply_status(&api, &name, &next).await?;
            if status::transitioned(ACCEPTED, &previous.conditions, &next.conditions) {
                let reason = if verdict.accepted {
                    "Accepted"
                } else {
                    "Rejected"
                };
                ctx.event(
                    &obj.object_ref(&()),
                    !verdict.accepted,
                    reason,
                    &verdict.message,
                )
                .await;
            }
        }
    }
    Ok(Action::requeue(Duration::from_secs(600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use portcullis_crds::IdentitySchemaSpec;

    fn schema(name: &str, created: i64, default: bool, schema: Value) -> Arc<IdentitySchema> {
        let mut s = IdentitySchema::new(
            name,
            IdentitySchemaSpec {
                schema,
                default,
                id: None,
            },
        );
        s.metadata.namespace = Some("auth".into());
        s.metadata.creation_timestamp = Timestamp::from_second(created).ok().map(Time);
        Arc::new(s)
    }

    fn person() -> Value {
        json!({"type": "object", "properties": {"traits": {"type": "object"}}})
    }

    #[test]
    fn valid_schemas_are_served_and_second_default_is_refused() {
        let evaluation = evaluate_schemas(vec![
            schema("b", 2, true, person()),
            schema("a", 1, true, person()),
            schema("c", 3, false, person()),
        ]);
        assert_eq!(evaluation.served.len(), 2);
        assert_eq!(evaluation.served[0]["id"], "auth/a");
        assert_eq!(evaluation.served[0]["default"], true);
        let b = &evaluation.verdicts[&("auth".to_owned(), "b".to_owned())];
        assert_eq!(b.reason, "MultipleDefaults");
        assert!(b.message.contains("auth/a"));
    }

    #[test]
    fn schema_without_traits_is_invalid() {
        let evaluation = evaluate_schemas(vec![schema("x", 1, false, json!({"type": "object"}))]);
        let x = &evaluation.verdicts[&("auth".to_owned(), "x".to_owned())];
        assert_eq!(x.reason, "InvalidJSONSchema");
        assert!(evaluation.served.is_empty());
    }
}
