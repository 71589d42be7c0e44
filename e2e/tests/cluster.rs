//! Process end-to-end suite against a real Kubernetes API server: the operator, gateways and
//! identity run as processes on loopback, the operator watches the API server in `KUBECONFIG`,
//! the identity service stores on PostgreSQL. Skipped (with the reason printed) when `KUBECONFIG`
//! is unset; the kind suite and the pre-release run provide a cluster.
//!
//! Every wait is on an object's status condition or on an HTTP answer that shows the change,
//! polled until a deadline — never a fixed sleep.
//!
//! 1. `rules_and_schemas_reach_gateway_and_identity`: apply the CRDs and a Rule → Accepted and
//!    Ready, the gateway proxies it; update it → the gateway applies the change; break its regex
//!    → Accepted=False/InvalidPattern and the old URL stops matching (404); fix it → served;
//!    delete it → 404; an IdentitySchema → registration validates against it; stop the operator
//!    → the gateway keeps serving its last rules.
//! 2. `rule_change_propagation_1000_rules_3_gateways`: the propagation figure — time from
//!    the API server accepting a Rule change to the first gateway decision that uses it, with
//!    1 000 Rules and 3 gateways subscribed. Prints p50/p99/max and writes them as JSON to
//!    `$CARGO_TARGET_TMPDIR/propagation-cluster.json`. Correctness (every change reaches every
//!    gateway) is asserted; the figures are reported, not asserted (they are benchmarks).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt};
use portcullis_crds::{IdentitySchema, Rule};
use portcullis_e2e::{Database, Proc, Stack, StackOptions, StreamEnv, binaries, free_port};
use serde_json::{Value, json};
use support::{publish_report, report, rule_spec, wait_all_gateways, wait_decision};

mod support;

const TOKEN: &str = "cluster-e2e-stream-token";
const PATIENCE: Duration = Duration::from_secs(90);
const MANAGER: &str = "portcullis-e2e";

/// The API server, a fresh namespace and an operator watching it.
struct Cluster {
    client: Client,
    namespace: String,
    operator: Proc,
    operator_port: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `None` (reason printed) without `KUBECONFIG`.
    async fn start(suffix: &str) -> Result<Option<Cluster>> {
        if std::env::var_os("KUBECONFIG").is_none() {
            println!(
                "skipped: KUBECONFIG is unset; this suite needs a real API server (the kind suite provides one)"
            );
            return Ok(None);
        }
        let client = Client::try_default().await?;
        apply_crds(&client).await?;
        let namespace = format!("pc-e2e-{}-{suffix}", std::process::id());
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
        let dir = tempfile::tempdir()?;
        let operator_port = free_port();
        let mut cmd = std::process::Command::new(binaries!().operator);
        cmd.args(["--listen", &format!("127.0.0.1:{operator_port}")])
            .args(["--namespace", &namespace, "--lease-namespace", &namespace])
            .args([
                "--identity",
                &format!("e2e-{suffix}"),
                "--lease-seconds",
                "5",
            ])
            .env("PORTCULLIS_STREAM_TOKEN", TOKEN)
            .env("LOG_LEVEL", "info");
        let mut operator = Proc::spawn("operator", cmd, dir.path());
        operator
            .wait_ready(&format!("http://127.0.0.1:{operator_port}/readyz"))
            .await;
        Ok(Some(Cluster {
            client,
            namespace,
            operator,
            operator_port,
            _dir: dir,
        }))
    }

    fn stream(&self) -> StreamEnv {
        StreamEnv {
            url: format!("http://127.0.0.1:{}/", self.operator_port),
            token: TOKEN.to_owned(),
        }
    }

    fn rules(&self) -> Api<Rule> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn apply_rule(&self, name: &str, manifest: Value) -> Result<Rule> {
        Ok(self
            .rules()
            .patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(manifest),
            )
            .await?)
    }

    async fn delete_namespace(&self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if let Err(e) = namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await
        {
            eprintln!("could not delete namespace {}: {e}", self.namespace);
        }
    }
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

/// A Rule CR named `name` with [`rule_spec`].
fn rule_manifest(name: &str, prefix: &str, upstream: u16, tag: &str) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Rule",
        "metadata": {"name": name},
        "spec": rule_spec(prefix, upstream, tag),
    })
}

/// Whether the object's status, for its current generation, has condition `type_` = `status`
/// (and `reason`, when given).
fn condition_is(
    status: Option<&Value>,
    generation: Option<i64>,
    type_: &str,
    want: &str,
    reason: Option<&str>,
) -> bool {
    let Some(status) = status else { return false };
    status["observedGeneration"].as_i64() == generation
        && status["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == type_ && c["status"] == want && reason.is_none_or(|r| c["reason"] == r)
            })
        })
}

fn rule_condition(
    type_: &'static str,
    want: &'static str,
    reason: Option<&'static str>,
) -> impl Fn(Option<&Rule>) -> bool {
    move |rule: Option<&Rule>| {
        rule.is_some_and(|rule| {
            let status = rule
                .status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok());
            condition_is(
                status.as_ref(),
                rule.metadata.generation,
                type_,
                want,
                reason,
            )
        })
    }
}

async fn wait_rule(
    cluster: &Cluster,
    name: &str,
    cond: impl Fn(Option<&Rule>) -> bool,
) -> Result<Rule> {
    tokio::time::timeout(PATIENCE, await_condition(cluster.rules(), name, cond))
        .await
        .with_context(|| format!("gave up waiting for the status of Rule {name}"))??
        .context("rule deleted while waiting")
}

/// Polls GET `url` until `check(status, body)` holds; returns the last body.
async fn wait_http(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    check: impl Fn(u16, &Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + PATIENCE;
    let mut last = (0, Value::Null);
    while Instant::now() < deadline {
        if let Ok(resp) = http.get(url).send().await {
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if check(status, &body) {
                return Ok(body);
            }
            last = (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "gave up waiting for {what} at {url}; last answer {} {}",
        last.0,
        last.1
    )
}

fn tag_of(body: &Value) -> Option<&str> {
    body["headers"]["x-rule-tag"].as_str()
}

#[tokio::test]
async fn rules_and_schemas_reach_gateway_and_identity() -> Result<()> {
    let Some(mut cluster) = Cluster::start("journey").await? else {
        return Ok(());
    };
    let options = StackOptions {
        stream: Some(cluster.stream()),
        ..StackOptions::default()
    };
    let Some(stack) = Stack::start_with(&binaries!(), Database::Postgres, options).await else {
        cluster.delete_namespace().await;
        return Ok(());
    };
    let http = reqwest::Client::new();
    let shop = stack.gateway_url("/shop/item");
    let upstream = stack.upstream;

    // Apply: accepted, ready, enforced.
    cluster
        .apply_rule("shop", rule_manifest("shop", "shop", upstream, "v1"))
        .await?;
    let rule = wait_rule(
        &cluster,
        "shop",
        rule_condition("Accepted", "True", Some("Valid")),
    )
    .await?;
    let id = format!("shop.{}", cluster.namespace);
    ensure!(rule.status.as_ref().and_then(|s| s.rule_id.as_deref()) == Some(id.as_str()));
    wait_rule(&cluster, "shop", rule_condition("Ready", "True", None)).await?;
    wait_http(&http, &shop, "the applied rule", |s, b| {
        s == 200 && tag_of(b) == Some("v1")
    })
    .await?;

    // Update: the gateway applies the new mutator config.
    cluster
        .apply_rule("shop", rule_manifest("shop", "shop", upstream, "v2"))
        .await?;
    wait_http(&http, &shop, "the updated rule", |s, b| {
        s == 200 && tag_of(b) == Some("v2")
    })
    .await?;

    // Break it: reported on the status, withdrawn from the gateways, the URL stops matching.
    let mut broken = rule_manifest("shop", "shop", upstream, "v3");
    broken["spec"]["match"]["url"] = json!("http://127.0.0.1:<[0-9]+>/shop/<[unclosed>");
    cluster.apply_rule("shop", broken).await?;
    let rule = wait_rule(
        &cluster,
        "shop",
        rule_condition("Accepted", "False", Some("InvalidPattern")),
    )
    .await?;
    let message = rule
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Accepted"))
        .map(|c| c.message)
        .unwrap_or_default();
    ensure!(message.contains("spec.match.url"), "{message}");
    wait_http(&http, &shop, "the broken rule to stop matching", |s, _| {
        s == 404
    })
    .await?;

    // A valid neighbour applied meanwhile is served: one bad Rule never blocks the others.
    cluster
        .apply_rule("other", rule_manifest("other", "other", upstream, "o1"))
        .await?;
    wait_http(
        &http,
        &stack.gateway_url("/other/x"),
        "a neighbour rule",
        |s, b| s == 200 && tag_of(b) == Some("o1"),
    )
    .await?;

    // Fix, then delete.
    cluster
        .apply_rule("shop", rule_manifest("shop", "shop", upstream, "v4"))
        .await?;
    wait_rule(
        &cluster,
        "shop",
        rule_condition("Accepted", "True", Some("Valid")),
    )
    .await?;
    wait_http(&http, &shop, "the fixed rule", |s, b| {
        s == 200 && tag_of(b) == Some("v4")
    })
    .await?;
    cluster
        .rules()
        .delete("shop", &DeleteParams::default())
        .await?;
    wait_http(&http, &shop, "the deleted rule to stop matching", |s, _| {
        s == 404
    })
    .await?;

    // An IdentitySchema becomes the identity service's default: registration validates with it.
    let schemas: Api<IdentitySchema> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let schema_id = format!("e2e-customer-{}", cluster.namespace);
    schemas
        .patch(
            "customer",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "portcullis.dev/v1alpha1",
                "kind": "IdentitySchema",
                "metadata": {"name": "customer"},
                "spec": {"id": schema_id, "default": true, "schema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"traits": {"type": "object", "properties": {
                        "email": {"type": "string", "format": "email",
                            "ory.sh/kratos": {"credentials": {"password": {"identifier": true}}}},
                        "loyalty_id": {"type": "string", "minLength": 3}
                    }, "required": ["email", "loyalty_id"]}}
                }},
            })),
        )
        .await?;
    tokio::time::timeout(
        PATIENCE,
        await_condition(schemas.clone(), "customer", |s: Option<&IdentitySchema>| {
            s.is_some_and(|s| {
                let status = s
                    .status
                    .as_ref()
                    .and_then(|st| serde_json::to_value(st).ok());
                condition_is(
                    status.as_ref(),
                    s.metadata.generation,
                    "Accepted",
                    "True",
                    None,
                )
            })
        }),
    )
    .await
    .context("IdentitySchema never accepted")??;
    wait_http(
        &http,
        &stack.identity_url(&format!("/schemas/{schema_id}")),
        "the streamed schema on identity",
        |s, _| s == 200,
    )
    .await?;
    // The default switches to it: a registration without the new required trait is refused on
    // that trait's node, one with it succeeds.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let refused = register(&stack, &http, json!({"email": "no-loyalty@example.com"})).await?;
        if refused.0 == 400 && refused.1.to_string().contains("loyalty_id") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the streamed schema never became the default: {} {}",
            refused.0,
            refused.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = register(
        &stack,
        &http,
        json!({"email": "loyal@example.com", "loyalty_id": "L-1234"}),
    )
    .await?;
    ensure!(
        status == 200,
        "registration with the streamed schema: {status} {body}"
    );
    ensure!(
        body["identity"]["schema_id"] == schema_id.as_str(),
        "{body}"
    );

    // Stop the operator: the gateway keeps its last rules.
    let other = stack.gateway_url("/other/x");
    ensure!(
        cluster.operator.terminate(),
        "operator did not stop cleanly"
    );
    let (status, body) = get_json(&http, &other).await?;
    ensure!(
        status == 200 && tag_of(&body) == Some("o1"),
        "{status} {body}"
    );
    let ready = http
        .get(format!(
            "http://127.0.0.1:{}/health/ready",
            stack.gateway_api
        ))
        .send()
        .await?;
    ensure!(
        ready.status().is_success(),
        "gateway not ready after the operator left"
    );

    cluster.delete_namespace().await;
    Ok(())
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<(u16, Value)> {
    let resp = http.get(url).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// Registers through the API flow; returns the submit's status and body.
async fn register(stack: &Stack, http: &reqwest::Client, traits: Value) -> Result<(u16, Value)> {
    let (_, flow) = get_json(http, &stack.identity_url("/self-service/registration/api")).await?;
    let id = flow["id"].as_str().context("flow id")?;
    let resp = http
        .post(stack.identity_url(&format!("/self-service/registration?flow={id}")))
        .json(&json!({"method": "password", "password": "a long and unusual passphrase 9481", "traits": traits}))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn rule_change_propagation_1000_rules_3_gateways() -> Result<()> {
    const RULES: usize = 1000;
    const CHANGES: usize = 30;
    let Some(cluster) = Cluster::start("propagation").await? else {
        return Ok(());
    };
    let options = StackOptions {
        stream: Some(cluster.stream()),
        ..StackOptions::default()
    };
    let Some(stack) = Stack::start_with(&binaries!(), Database::Sqlite, options).await else {
        cluster.delete_namespace().await;
        return Ok(());
    };
    let upstream = stack.upstream;

    // 1 000 Rules, applied 16 at a time.
    let names: Vec<String> = (0..RULES).map(|i| format!("r{i:04}")).collect();
    for chunk in names.chunks(16) {
        let applies = chunk
            .iter()
            .map(|name| cluster.apply_rule(name, rule_manifest(name, name, upstream, "t0")));
        for result in futures::future::join_all(applies).await {
            result?;
        }
    }
    let gateways = [stack.add_gateway().await, stack.add_gateway().await];
    let apis = [
        format!("http://127.0.0.1:{}", stack.gateway_api),
        gateways[0].api_url(""),
        gateways[1].api_url(""),
    ];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .build()?;
    // Every gateway serves all 1 000 (the last one applied answers).
    let last = &names[RULES - 1];
    for api in &apis {
        wait_decision(&http, api, last, "t0", Instant::now() + PATIENCE).await?;
    }

    let target = &names[RULES / 2];
    let mut first = Vec::with_capacity(CHANGES);
    let mut all = Vec::with_capacity(CHANGES);
    for round in 1..=CHANGES {
        let tag = format!("t{round}");
        cluster
            .apply_rule(target, rule_manifest(target, target, upstream, &tag))
            .await?;
        // The API server has accepted the change: the clock starts.
        let accepted = Instant::now();
        let (to_first, to_all) =
            wait_all_gateways(&http, &apis, target, &tag, accepted, PATIENCE).await?;
        first.push(to_first);
        all.push(to_all);
    }
    publish_report(
        "propagation (API server accepted → gateway decision)",
        &report(RULES, apis.len(), first, all),
        "propagation-cluster.json",
    )?;
    cluster.delete_namespace().await;
    Ok(())
}
