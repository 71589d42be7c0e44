//! The Rule controller: every reconcile re-evaluates the full rule set from the caches,
//! publishes the valid rules on the `rules` stream, and (on the lease holder) writes this
//! object's status and an Event when its `Accepted` condition flips.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Action;
use portcullis_crds::{Rule, RuleSpec, RuleStatus};
use portcullis_stream::TOPIC_RULES;

use crate::context::{Context, Error};
use crate::evaluation::{Candidate, Evaluation, ObjectKey, Verdict};
use crate::status::{self, ACCEPTED, DesiredCondition, READY};

/// API group of Oathkeeper-Maester's Rule CRD (`--oathkeeper-compat`).
pub const OATHKEEPER_GROUP: &str = "oathkeeper.ory.sh";
/// How often a healthy object is re-checked even without changes.
const RESYNC: Duration = Duration::from_secs(600);

fn key_of(group: &str, meta: &ObjectMeta) -> Result<ObjectKey, Error> {
    Ok(ObjectKey {
        group: group.to_owned(),
        namespace: meta
            .namespace
            .clone()
            .ok_or(Error::MissingMetadata("namespace"))?,
        name: meta.name.clone().ok_or(Error::MissingMetadata("name"))?,
    })
}

fn created(meta: &ObjectMeta) -> Option<i64> {
    meta.creation_timestamp.as_ref().map(|t| t.0.as_second())
}

/// A Maester `Rule` as a Portcullis `Rule` (same spec), or `None` when its spec does not parse.
fn from_oathkeeper(obj: &DynamicObject) -> Option<Rule> {
    let spec: RuleSpec = match serde_json::from_value(obj.data.get("spec")?.clone()) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(name = ?obj.metadata.name, namespace = ?obj.metadata.namespace, error = %e, "skipping unreadable oathkeeper.ory.sh Rule");
            return None;
        }
    };
    let mut rule = Rule::new(obj.metadata.name.as_deref().unwrap_or_default(), spec);
    rule.metadata = obj.metadata.clone();
    Some(rule)
}

/// One rule object from either API group.
enum Source {
    Native(Arc<Rule>),
    Oathkeeper(Arc<DynamicObject>),
}

impl Source {
    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Native(rule) => &rule.metadata,
            Self::Oathkeeper(obj) => &obj.metadata,
        }
    }

    fn group(&self) -> &'static str {
        match self {
            Self::Native(_) => portcullis_crds::GROUP,
            Self::Oathkeeper(_) => OATHKEEPER_GROUP,
        }
    }

    fn candidate(&self) -> Option<Candidate> {
        let key = key_of(self.group(), self.meta()).ok()?;
        let rule = match self {
            Self::Native(rule) => rule.to_access_rule(),
            Self::Oathkeeper(obj) => from_oathkeeper(obj)?.to_access_rule(),
        };
        Some(Candidate {
            key,
            created: created(self.meta()),
            rule,
        })
    }
}

/// Every rule object in the caches. Waits for the caches' first sync so that a starting
/// operator never publishes a partial rule set.
async fn sources(ctx: &Context) -> Result<Vec<Source>, Error> {
    let mut sources = Vec::new();
    for store in &ctx.rules {
        store
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheStopped("rules.portcullis.dev"))?;
        sources.extend(store.state().into_iter().map(Source::Native));
    }
    for store in &ctx.oathkeeper_rules {
        store
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheStopped("rules.oathkeeper.ory.sh"))?;
        sources.extend(store.state().into_iter().map(Source::Oathkeeper));
    }
    Ok(sources)
}

/// Identifies the exact set of object revisions (order-independent).
fn fingerprint(sources: &[Source]) -> u64 {
    sources.iter().fold(sources.len() as u64, |acc, source| {
        let mut hasher = DefaultHasher::new();
        let meta = source.meta();
        (
            source.group(),
            &meta.namespace,
            &meta.name,
            &meta.uid,
            &meta.resource_version,
        )
            .hash(&mut hasher);
        acc.wrapping_add(hasher.finish())
    })
}

/// The last published evaluation and the object revisions it was computed from.
pub struct RuleSnapshotCache {
    fingerprint: u64,
    evaluation: Arc<Evaluation>,
    version: u64,
}

/// Evaluates every rule and publishes the accepted ones. Returns the evaluation and the
/// version now served. Serialized by a lock, so an older view of the caches can never be
/// published after a newer one; reused while no object changed, so the burst of reconciles
/// at start-up evaluates the rule set once.
pub async fn publish_rules(ctx: &Context) -> Result<(Arc<Evaluation>, u64), Error> {
    let mut cache = ctx.rule_snapshot.lock().await;
    let sources = sources(ctx).await?;
    let fingerprint = fingerprint(&sources);
    if let Some(cached) = cache.as_ref().filter(|c| c.fingerprint == fingerprint) {
        return Ok((cached.evaluation.clone(), cached.version));
    }
    let candidates = sources.iter().filter_map(Source::candidate).collect();
    let evaluation = Arc::new(ctx.evaluator.evaluate(candidates));
    let items = evaluation
        .served
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    let version = ctx.publisher.publish(TOPIC_RULES, items)?;
    *cache = Some(RuleSnapshotCache {
        fingerprint,
        evaluation: evaluation.clone(),
        version,
    });
    Ok((evaluation, version))
}

/// Reconciles one `rules.portcullis.dev` object.
pub async fn reconcile(obj: Arc<Rule>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled("rule");
    let (evaluation, version) = publish_rules(&ctx).await?;
    let key = key_of(portcullis_crds::GROUP, &obj.metadata)?;
    let Some(verdict) = evaluation.verdicts.get(&key) else {
        // Not in the cache yet (the event raced the store): look again shortly.
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    if ctx.leadership.is_leader() {
        write_status(&ctx, &obj, verdict, version).await?;
    }
    Ok(Action::requeue(RESYNC))
}

/// Reconciles one `rules.oathkeeper.ory.sh` object: served like a Portcullis Rule. Maester's CRD
/// has no status subresource; its status is `status.validation {valid, validationError}` on the
/// object itself, which the lease holder writes (a JSON merge patch of that field only, and only
/// when it changes) so `kubectl get rules.oathkeeper.ory.sh -o yaml` shows what Maester showed.
pub async fn reconcile_oathkeeper(
    obj: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled("oathkeeper_rule");
    let (evaluation, _) = publish_rules(&ctx).await?;
    let key = key_of(OATHKEEPER_GROUP, &obj.metadata)?;
    let Some(verdict) = evaluation.verdicts.get(&key) else {
        // Not in the cache yet, or a spec that does not even parse (logged by `from_oathkeeper`).
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    if !verdict.accepted {
        tracing::warn!(namespace = %key.namespace, name = %key.name, reason = verdict.reason.as_str(), message = %verdict.message, "oathkeeper.ory.sh Rule not served");
    }
    if ctx.leadership.is_leader() {
        write_oathkeeper_status(&ctx, &obj, &key, verdict).await?;
    }
    Ok(Action::requeue(RESYNC))
}

/// Maester's `status.validation` for `verdict`.
pub fn oathkeeper_validation(verdict: &Verdict) -> serde_json::Value {
    if verdict.accepted {
        serde_json::json!({"valid": true})
    } else {
        serde_json::json!({"valid": false, "validationError": verdict.message})
    }
}

async fn write_oathkeeper_status(
    ctx: &Context,
    obj: &DynamicObject,
    key: &ObjectKey,
    verdict: &Verdict,
) -> Result<(), Error> {
    let validation = oathkeeper_validation(verdict);
    let current = obj.data.get("status").and_then(|s| s.get("validation"));
    if current == Some(&validation) {
        return Ok(());
    }
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(OATHKEEPER_GROUP, "v1alpha1", "Rule"),
        "rules",
    );
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &key.namespace, &resource);
    // Merge patch: `validationError: null` clears an old error once the rule is valid.
    let mut patch_validation = validation;
    if verdict.accepted {
        patch_validation["validationError"] = serde_json::Value::Null;
    }
    let patch = serde_json::json!({"status": {"validation": patch_validation}});
    api.patch(
        &key.name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    let flipped = current
        .and_then(|c| c.get("valid"))
        .and_then(|v| v.as_bool())
        != Some(verdict.accepted);
    if flipped {
        let reason = if verdict.accepted {
            "Accepted"
        } else {
            "Rejected"
        };
        ctx.event(
            &obj.object_ref(&resource),
            !verdict.accepted,
            reason,
            &verdict.message,
        )
        .await;
    }
    Ok(())
}

/// Retry policy for failed reconciles of `Rule`s.
pub fn error_policy(obj: Arc<Rule>, error: &Error, ctx: Arc<Context>) -> Action {
    retry_later(obj.as_ref(), error, &ctx, "rule")
}

/// Retry policy for failed reconciles of `rules.oathkeeper.ory.sh` objects.
pub fn error_policy_oathkeeper(
    obj: Arc<DynamicObject>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    retry_later(obj.as_ref(), error, &ctx, "oathkeeper_rule")
}

/// Logs and counts a failed reconcile of `kind`; it is retried after a short delay.
pub fn retry_later<K: Resource>(obj: &K, error: &Error, ctx: &Context, kind: &str) -> Action {
    tracing::warn!(kind, name = ?obj.meta().name, namespace = ?obj.meta().namespace, error = %error, "reconcile failed");
    ctx.metrics.failed(kind);
    Action::requeue(Duration::from_secs(5))
}

/// The status this object should have for `verdict`, given its current status.
pub fn desired_status(obj: &Rule, verdict: &Verdict, version: u64, now: Timestamp) -> RuleStatus {
    let previous = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    // The version that first served this generation: stable while nothing about it changes,
    // so unrelated rule changes do not rewrite every status.
    let served_version = if verdict.accepted {
        let still_served = previous.observed_generation == generation
            && previous
                .conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True");
        if still_served {
            previous.served_version.or(i64::try_from(version).ok())
        } else {
            i64::try_from(version).ok()
        }
    } else {
        None
    };
    let ready = if verdict.accepted {
        DesiredCondition {
            type_: READY,
            status: true,
            reason: "Served".into(),
            message: format!(
                "served to gateways in rules snapshot version {}",
                served_version.unwrap_or_default()
            ),
        }
    } else {
        DesiredCondition {
            type_: READY,
            status: false,
            reason: "NotServed".into(),
            message: "not served to gateways; see the Accepted condition".into(),
        }
    };
    let accepted = DesiredCondition {
        type_: ACCEPTED,
        status: verdict.accepted,
        reason: verdict.reason.as_str().into(),
        message: verdict.message.clone(),
    };
    RuleStatus {
        observed_generation: generation,
        conditions: status::conditions(&[accepted, ready], &previous.conditions, generation, now),
        rule_id: Some(obj.rule_id()),
        served_version,
    }
}

async fn write_status(
    ctx: &Context,
    obj: &Rule,
    verdict: &Verdict,
    version: u64,
) -> Result<(), Error> {
    let next = desired_status(obj, verdict, version, Timestamp::now());
    let previous = obj.status.clone().unwrap_or_default();
    if obj.status.as_ref() == Some(&next) {
        return Ok(());
    }
    let namespace = obj
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let name = obj
        .metadata
        .name
        .as_deref()
        .ok_or(Error::MissingMetadata("name"))?;
    let api: Api<Rule> = Api::namespaced(ctx.client.clone(), namespace);
    status::apply_status(&api, name, &next).await?;
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
    Ok(())
}
