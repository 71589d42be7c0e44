//! Rule reconcile against a mocked Kubernetes API (tower-test behind a real `kube::Client`):
//! status by server-side apply, Events, what is published on the stream, and that every API
//! call the code makes is covered by the committed RBAC rules.

mod support;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use portcullis_operator::leader::{LeaseConfig, release, try_acquire};
use portcullis_operator::rbac;
use portcullis_operator::rule_controller::reconcile;
use portcullis_stream::TOPIC_RULES;
use serde_json::Value;
use support::{FakeApi, Recorded, context, rule};

fn served_ids(ctx: &portcullis_operator::Context) -> Vec<String> {
    ctx.publisher
        .current(TOPIC_RULES)
        .map(|s| {
            s.items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn condition<'a>(patch: &'a Recorded, type_: &str) -> Option<&'a Value> {
    patch.body["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn assert_covered_by_rbac(api: &FakeApi) {
    for request in api.requests() {
        let (group, resource, verb) = request.rbac();
        assert!(
            rbac::allows(&group, &resource, &verb),
            "{} {} needs {verb} on {group}/{resource}, which operator/rbac.yaml does not grant",
            request.method,
            request.path
        );
    }
}

#[tokio::test]
async fn valid_rule_is_accepted_by_server_side_apply_and_published() -> Result<()> {
    let api = FakeApi::default();
    let api_rule = rule("api", 100, "http://shop.example/api/<.*>");
    let ctx = context(&api, std::slice::from_ref(&api_rule), true);

    reconcile(Arc::new(api_rule), ctx.clone()).await?;

    let patches = api.status_patches();
    assert_eq!(patches.len(), 1);
    let patch = &patches[0];
    assert_eq!(
        patch.path,
        "/apis/portcullis.dev/v1alpha1/namespaces/shop/rules/api/status"
    );
    assert!(
        patch.query.contains("fieldManager=portcullis-operator"),
        "{}",
        patch.query
    );
    assert!(patch.query.contains("force=true"), "{}", patch.query);
    assert_eq!(patch.content_type, "application/apply-patch+yaml");
    assert_eq!(patch.body["apiVersion"], "portcullis.dev/v1alpha1");
    assert_eq!(patch.body["kind"], "Rule");
    assert_eq!(patch.body["status"]["ruleId"], "api.shop");
    assert_eq!(patch.body["status"]["observedGeneration"], 1);
    let accepted = condition(patch, "Accepted").context("Accepted condition")?;
    assert_eq!(accepted["status"], "True");
    assert_eq!(accepted["reason"], "Valid");
    assert!(accepted["lastTransitionTime"].is_string());
    let ready = condition(patch, "Ready").context("Ready condition")?;
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["reason"], "Served");

    let events = api.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].body["reason"], "Accepted");
    assert_eq!(events[0].body["type"], "Normal");

    assert_eq!(served_ids(&ctx), ["api.shop"]);
    assert_covered_by_rbac(&api);
    Ok(())
}

#[tokio::test]
async fn invalid_regex_is_rejected_naming_the_field_and_not_published() -> Result<()> {
    let api = FakeApi::default();
    let bad = rule("broken", 100, "http://shop.example/<[unclosed>");
    let good = rule("fine", 200, "http://shop.example/ok/<.*>");
    let ctx = context(&api, &[bad.clone(), good.clone()], true);

    reconcile(Arc::new(bad), ctx.clone()).await?;
    reconcile(Arc::new(good), ctx.clone()).await?;

    let patches = api.status_patches();
    assert_eq!(patches.len(), 2);
    let broken = patches
        .iter()
        .find(|p| p.path.ends_with("/rules/broken/status"))
        .context("broken patch")?;
    let accepted = condition(broken, "Accepted").context("Accepted")?;
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "InvalidPattern");
    let message = accepted["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("spec.match.url"), "{message}");
    assert_eq!(
        condition(broken, "Ready").context("Ready")?["status"],
        "False"
    );

    let fine = patches
        .iter()
        .find(|p| p.path.ends_with("/rules/fine/status"))
        .context("fine patch")?;
    assert_eq!(
        condition(fine, "Accepted").context("Accepted")?["status"],
        "True"
    );

    let rejected = api
        .events()
        .into_iter()
        .find(|e| e.body["reason"] == "Rejected")
        .context("Rejected event")?;
    assert_eq!(rejected.body["type"], "Warning");

    assert_eq!(served_ids(&ctx), ["fine.shop"]);
    assert_covered_by_rbac(&api);
    Ok(())
}

#[tokio::test]
async fn same_url_is_reported_on_both_rules_and_the_older_is_served() -> Result<()> {
    let api = FakeApi::default();
    let older = rule("older", 100, "http://shop.example/<.*>");
    let newer = rule("newer", 200, "http://shop.example/<.*>");
    let ctx = context(&api, &[older.clone(), newer.clone()], true);
    reconcile(Arc::new(older), ctx.clone()).await?;
    reconcile(Arc::new(newer), ctx.clone()).await?;

    let patches = api.status_patches();
    let newer = patches
        .iter()
        .find(|p| p.path.ends_with("/rules/newer/status"))
        .context("newer")?;
    let accepted = condition(newer, "Accepted").context("Accepted")?;
    assert_eq!(accepted["reason"], "Conflict");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap_or_default()
            .contains("older.shop")
    );
    let older = patches
        .iter()
        .find(|p| p.path.ends_with("/rules/older/status"))
        .context("older")?;
    let accepted = condition(older, "Accepted").context("Accepted")?;
    assert_eq!(accepted["status"], "True");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap_or_default()
            .contains("newer.shop")
    );
    assert_eq!(served_ids(&ctx), ["older.shop"]);
    Ok(())
}

#[tokio::test]
async fn reconcile_is_idempotent_and_keeps_transition_time() -> Result<()> {
    let api = FakeApi::default();
    let mut api_rule = rule("api", 100, "http://shop.example/api/<.*>");
    let ctx = context(&api, std::slice::from_ref(&api_rule), true);
    reconcile(Arc::new(api_rule.clone()), ctx.clone()).await?;
    let first = api.status_patches().pop().context("first patch")?;

    // The API server now holds that status; reconciling again writes nothing.
    api_rule.status = Some(serde_json::from_value(first.body["status"].clone())?);
    reconcile(Arc::new(api_rule), ctx.clone()).await?;
    assert_eq!(api.status_patches().len(), 1);
    assert_eq!(api.events().len(), 1);
    Ok(())
}

#[tokio::test]
async fn non_leader_publishes_but_writes_no_status() -> Result<()> {
    let api = FakeApi::default();
    let api_rule = rule("api", 100, "http://shop.example/api/<.*>");
    let ctx = context(&api, std::slice::from_ref(&api_rule), false);
    reconcile(Arc::new(api_rule), ctx.clone()).await?;
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    assert_eq!(served_ids(&ctx), ["api.shop"]);
    Ok(())
}

#[tokio::test]
async fn lease_is_created_renewed_and_respected() -> Result<()> {
    let api = FakeApi::default();
    let client = api.client();
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, "portcullis");
    let config = |identity: &str| LeaseConfig {
        namespace: "portcullis".into(),
        name: "portcullis-operator".into(),
        identity: identity.into(),
        duration: std::time::Duration::from_secs(15),
    };
    assert!(
        try_acquire(&leases, &config("a")).await?,
        "free lease is acquired"
    );
    assert!(try_acquire(&leases, &config("a")).await?, "holder renews");
    assert!(
        !try_acquire(&leases, &config("b")).await?,
        "fresh lease of another holder is respected"
    );

    // Expire it: the other replica takes over.
    if let Ok(mut leases) = api.leases.lock()
        && let Some(lease) = leases.get_mut("portcullis-operator")
    {
        lease["spec"]["renewTime"] = Value::from("2020-01-01T00:00:00.000000Z");
    }
    assert!(
        try_acquire(&leases, &config("b")).await?,
        "expired lease is taken over"
    );
    let holder = api.leases.lock().ok().and_then(|l| {
        l.get("portcullis-operator")?["spec"]["holderIdentity"]
            .as_str()
            .map(str::to_owned)
    });
    assert_eq!(holder.as_deref(), Some("b"));

    // A stopping holder gives the lease up; the other replica takes it at once, not after
    // the lease would have expired. A non-holder's release changes nothing.
    assert!(
        !release(&leases, &config("a")).await?,
        "a non-holder cannot release"
    );
    assert!(release(&leases, &config("b")).await?, "holder releases");
    assert!(
        try_acquire(&leases, &config("a")).await?,
        "a released lease is taken over before it expires"
    );
    assert_covered_by_rbac(&api);
    Ok(())
}
