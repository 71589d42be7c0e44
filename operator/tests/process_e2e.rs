//! Process end-to-end suite: the real `portcullis-operator` binary against the API server in
//! `KUBECONFIG`, with a stream subscriber standing in for a gateway. Skipped (with a printed
//! reason) when `KUBECONFIG` is unset; the kind suite runs it with a cluster.
//!
//! Journey: apply the CRDs, apply a Rule → Accepted=True and served; break its regex →
//! Accepted=False (InvalidPattern) and no longer served; fix it → served again; delete it →
//! gone; kill the operator → the subscriber keeps its last snapshot. Every wait is on a status
//! condition or on the subscriber's snapshot, never a sleep.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt};
use portcullis_crds::{IdentitySchema, Rule};
use portcullis_stream::{Snapshot, StreamToken, Subscriber, SubscriberConfig, TOPIC_RULES};
use serde_json::json;

const TOKEN: &str = "process-e2e-token";
const PATIENCE: Duration = Duration::from_secs(60);
const MANAGER: &str = "portcullis-e2e";

/// Kills the operator process when the test ends, however it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_loopback_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn apply_crds(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Rule::crd(), IdentitySchema::crd()] {
        let name = crd.metadata.name.clone().context("crd name")?;
        crds.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        tokio::time::timeout(
            PATIENCE,
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .context("CRD never established")??;
    }
    Ok(())
}

fn accepted_is(status: &'static str, reason: &'static str) -> impl Fn(Option<&Rule>) -> bool {
    move |rule: Option<&Rule>| {
        rule.is_some_and(|rule| {
            rule.status.as_ref().is_some_and(|s| {
                s.observed_generation == rule.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Accepted" && c.status == status && c.reason == reason)
            })
        })
    }
}

async fn wait_rule(
    rules: &Api<Rule>,
    name: &str,
    cond: impl Fn(Option<&Rule>) -> bool,
) -> Result<Rule> {
    tokio::time::timeout(PATIENCE, await_condition(rules.clone(), name, cond))
        .await
        .context("gave up waiting for the Rule status")??
        .context("rule deleted while waiting")
}

async fn wait_served(
    subscriber: &Subscriber,
    what: &str,
    cond: impl Fn(&Snapshot) -> bool,
) -> Result<()> {
    let mut rx = subscriber.watch();
    match tokio::time::timeout(PATIENCE, rx.wait_for(|s| s.as_deref().is_some_and(&cond))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => bail!("subscriber stopped waiting for {what}"),
        Err(_) => bail!("gave up waiting for {what}"),
    }
}

fn serves(snapshot: &Snapshot, id: &str) -> bool {
    snapshot.items.iter().any(|i| i["id"] == id)
}

fn rule_manifest(name: &str, url: &str) -> serde_json::Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Rule",
        "metadata": {"name": name},
        "spec": {
            "match": {"url": url, "methods": ["GET"]},
            "upstream": {"url": "http://127.0.0.1:4460"},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}],
        }
    })
}

#[tokio::test]
async fn operator_process_serves_validates_and_survives() -> Result<()> {
    if std::env::var_os("KUBECONFIG").is_none() {
        println!(
            "skipped: KUBECONFIG is unset; this suite needs a real API server (the kind suite provides one)"
        );
        return Ok(());
    }
    let client = Client::try_default().await?;
    apply_crds(&client).await?;

    let namespace = format!("portcullis-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &namespace,
            &PatchParams::apply(MANAGER),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            ),
        )
        .await?;

    let port = free_loopback_port()?;
    let operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_portcullis-operator"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--namespace", &namespace, "--lease-namespace", &namespace])
            .args(["--identity", "process-e2e", "--lease-seconds", "5"])
            .env("PORTCULLIS_STREAM_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start portcullis-operator")?,
    );

    let mut config = SubscriberConfig::new(
        format!("http://127.0.0.1:{port}/").parse()?,
        TOPIC_RULES,
        StreamToken::new(TOKEN).context("token")?,
    );
    config.min_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(500);
    let gateway = Subscriber::start_accepting_all(config);

    let rules: Api<Rule> = Api::namespaced(client.clone(), &namespace);
    let id = format!("shop.{namespace}");
    let apply = |manifest: serde_json::Value| {
        let rules = rules.clone();
        async move {
            rules
                .patch(
                    "shop",
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(manifest),
                )
                .await
        }
    };

    apply(rule_manifest("shop", "http://shop.example/<.*>")).await?;
    let rule = wait_rule(&rules, "shop", accepted_is("True", "Valid")).await?;
    assert_eq!(
        rule.status.and_then(|s| s.rule_id).as_deref(),
        Some(id.as_str())
    );
    wait_served(&gateway, "the applied rule", |s| serves(s, &id)).await?;

    apply(rule_manifest("shop", "http://shop.example/<[unclosed>")).await?;
    let rule = wait_rule(&rules, "shop", accepted_is("False", "InvalidPattern")).await?;
    let message = rule
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Accepted"))
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("spec.match.url"), "{message}");
    wait_served(&gateway, "the broken rule to be withdrawn", |s| {
        !serves(s, &id)
    })
    .await?;

    apply(rule_manifest("shop", "http://shop.example/fixed/<.*>")).await?;
    wait_rule(&rules, "shop", accepted_is("True", "Valid")).await?;
    wait_served(&gateway, "the fixed rule", |s| serves(s, &id)).await?;

    rules.delete("shop", &DeleteParams::default()).await?;
    wait_served(&gateway, "the deleted rule to disappear", |s| {
        !serves(s, &id)
    })
    .await?;

    // Put one back, then take the operator away: the subscriber keeps serving it.
    apply(rule_manifest("shop", "http://shop.example/<.*>")).await?;
    wait_served(&gateway, "the re-applied rule", |s| serves(s, &id)).await?;
    let before = gateway.served_version();
    drop(operator);
    let mut connection = gateway.connection();
    // Drop the borrow at once: holding a watch `Ref` would block the subscriber's writes.
    let disconnected = tokio::time::timeout(PATIENCE, async {
        connection.wait_for(|up| !*up).await.map(|_| ())
    })
    .await;
    assert!(
        matches!(disconnected, Ok(Ok(()))),
        "subscriber never noticed the operator exit"
    );
    assert_eq!(gateway.served_version(), before);
    assert!(gateway.snapshot().is_some_and(|s| serves(&s, &id)));

    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await?;
    Ok(())
}
