//! The Rule controller: every reconcile re-evaluates the full rule set from the caches,
//! publishes the valid rules on the `rules` stream, and (on the lease holder) writes this
//! object's status and an Event when its `Accepted` condition flips.

use std::sync::Arc;
use std::time::Duration;

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

fn key_of(
    group: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Result<ObjectKey, Error> {
    Ok(ObjectKey {
        group: group.to_owned(),
        namespace: meta
            .namespace
            .clone()
            .ok_or(Error::MissingMetadata("namespace"))?,
        name: meta.name.clone().ok_or(Error::MissingMetadata("name"))?,
    })
}

fn created(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<i64> {
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

/// Every rule object in the caches, as evaluation candidates. Waits for the caches' first sync
/// so that a starting operator never publishes a partial rule set.
async fn candidates(ctx: &Context) -> Result<Vec<Candidate>, Error> {
    let mut candidates = Vec::new();
    for store in &ctx.rules {
        store
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheStopped("rules.portcullis.dev"))?;
        for rule in store.state() {
            let Ok(key) = key_of(portcullis_crds::GROUP, &rule.metadata) else {
                continue;
            };
            candidates.push(Candidate {
                key,
                created: created(&rule.metadata),
                rule: rule.to_access_rule(),
            });
        }
    }
    for store in &ctx.oathkeeper_rules {
        store
            .wait_until_ready()
            .await
            .map_err(|_| Error::CacheStopped("rules.oathkeeper.ory.sh"))?;
        for obj in store.state() {
            let (Ok(key), Some(rule)) = (
                key_of(OATHKEEPER_GROUP, &obj.metadata),
                from_oathkeeper(&obj),
            ) else {
                continue;
            };
            candidates.push(Candidate {
                key,
                created: created(&obj.metadata),
                rule: rule.to_access_rule(),
            });
        }
    }
    Ok(candidates)
}

/// Evaluates every rule and publishes the accepted ones. Returns the evaluation and the
/// version now served.
pub async fn publish_rules(ctx: &Context) -> Result<(Evaluation, u64), Error> {
    let evaluation = ctx.evaluator.evaluate(candidates(ctx).await?);
    let items = evaluation
        .served
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    let version = ctx.publisher.publish(TOPIC_RULES, items)?;
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

/// Reconciles one `rules.oathkeeper.ory.sh` object: served like a Portcullis Rule; Maester's
/// CRD has no status subresource, so the verdict goes to the log and Events only.
pub async fn reconcile_oathkeeper(
    obj: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    ctx.metrics.reconciled("oathkeeper_rule");
    let (evaluation, _) = publish_rules(&ctx).await?;
    let key = key_of(OATHKEEPER_GROUP, &obj.metadata)?;
    if let Some(verdict) = evaluation.verdicts.get(&key).filter(|v| !v.accepted) {
        tracing::warn!(namespace = %key.namespace, name = %key.name, reason = verdict.reason.as_str(), message = %verdict.message, "oathkeeper.ory.sh Rule not served");
    }
    Ok(Action::requeue(RESYNC))
}

/// Retry policy for failed reconciles.
pub fn error_policy<K>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource,
{
    tracing::warn!(name = ?obj.meta().name, namespace = ?obj.meta().namespace, error = %error, "reconcile failed");
    ctx.metrics.failed("rule");
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
