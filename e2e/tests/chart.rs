//! Invariants of the Helm chart `charts/portcullis`, checked over the parsed output of
//! `helm template` for every values file in `charts/portcullis/ci/` (plus test data here):
//! workloads carry probes, resources and a restrictive securityContext; no Secret value leaks
//! into a ConfigMap; the operator's RBAC equals `operator/rbac.yaml`; the rendered CRDs equal
//! the generated ones in `charts/portcullis/files/crds/`.
//!
//! `helm` comes from PATH or from the cache `charts/test.sh` fills (`target/tools/bin/helm`,
//! or `$PORTCULLIS_TOOLS_DIR/bin/helm`). Without it the tests print why and pass, unless `CI`
//! is set: then a missing helm is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use serde_json::Value;

#[path = "chart/rendered.rs"]
mod rendered;

use rendered::{
    chart_dir, containers, helm, kind, name, parse_documents, pod_spec, render, repo_root,
    test_data, values_files,
};

/// Problems with one container's resources and securityContext (the pod's context counts for
/// `runAsNonRoot`).
fn container_problems(object: &str, pod: &Value, c: &Value) -> Vec<String> {
    let who = format!("{object} container {}", c["name"].as_str().unwrap_or("?"));
    let mut problems = Vec::new();
    let resources = &c["resources"];
    if resources["requests"]["memory"].is_null() || resources["requests"]["cpu"].is_null() {
        problems.push(format!("{who}: no cpu/memory requests"));
    }
    if resources["limits"]["memory"].is_null() {
        problems.push(format!("{who}: no memory limit"));
    }
    let sc = &c["securityContext"];
    let non_root = sc["runAsNonRoot"]
        .as_bool()
        .or(pod["securityContext"]["runAsNonRoot"].as_bool());
    if non_root != Some(true) {
        problems.push(format!("{who}: runAsNonRoot is not true"));
    }
    if sc["allowPrivilegeEscalation"] != Value::Bool(false) {
        problems.push(format!("{who}: allowPrivilegeEscalation is not false"));
    }
    if sc["privileged"] == Value::Bool(true) {
        problems.push(format!("{who}: privileged"));
    }
    if sc["readOnlyRootFilesystem"] != Value::Bool(true) {
        problems.push(format!("{who}: readOnlyRootFilesystem is not true"));
    }
    let drops_all = sc["capabilities"]["drop"]
        .as_array()
        .is_some_and(|d| d.iter().any(|c| c == "ALL"));
    if !drops_all {
        problems.push(format!("{who}: capabilities.drop lacks ALL"));
    }
    // Pod Security "restricted" also wants a seccomp profile on the container or the pod.
    let seccomp = sc["seccompProfile"]["type"]
        .as_str()
        .or(pod["securityContext"]["seccompProfile"]["type"].as_str());
    if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
        problems.push(format!(
            "{who}: no RuntimeDefault/Localhost seccomp profile"
        ));
    }
    if sc["capabilities"]["add"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        problems.push(format!("{who}: adds capabilities"));
    }
    problems
}

#[test]
fn every_workload_has_probes_resources_and_a_restrictive_security_context() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let mut problems = Vec::new();
    let mut deployments = 0;
    for values in values_files()? {
        for doc in render(&helm, &values, &[])? {
            let Some(pod) = pod_spec(&doc) else { continue };
            let object = format!("{} ({})", name(&doc), values.display());
            if kind(&doc) == "Deployment" {
                deployments += 1;
            }
            for c in containers(pod, "containers") {
                if matches!(kind(&doc), "Deployment" | "StatefulSet") {
                    for probe in ["livenessProbe", "readinessProbe"] {
                        if c[probe].is_null() {
                            problems.push(format!("{object}: container has no {probe}"));
                        }
                    }
                }
                problems.extend(container_problems(&object, pod, &c));
            }
            for c in containers(pod, "initContainers") {
                problems.extend(container_problems(&object, pod, &c));
            }
            if pod["hostNetwork"] == Value::Bool(true) || pod["hostPID"] == Value::Bool(true) {
                problems.push(format!("{object}: uses host namespaces"));
            }
        }
    }
    ensure!(
        deployments >= 3,
        "expected gateway, identity and operator Deployments"
    );
    ensure!(
        problems.is_empty(),
        "workload problems:\n{}",
        problems.join("\n")
    );
    Ok(())
}

/// Every decoded value of every Secret in the render (length ≥ 8, so that short words such as
/// `true` cannot match by accident).
fn secret_values(docs: &[Value]) -> Result<Vec<(String, String)>> {
    let mut values = Vec::new();
    for doc in docs.iter().filter(|d| kind(d) == "Secret") {
        for (key, v) in doc["data"].as_object().into_iter().flatten() {
            let encoded = v
                .as_str()
                .with_context(|| format!("{} {key}: not a string", name(doc)))?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .with_context(|| format!("{} {key}: not base64", name(doc)))?;
            values.push((
                format!("{} {key}", name(doc)),
                String::from_utf8_lossy(&raw).into_owned(),
            ));
        }
        for (key, v) in doc["stringData"].as_object().into_iter().flatten() {
            values.push((
                format!("{} {key}", name(doc)),
                v.as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    Ok(values.into_iter().filter(|(_, v)| v.len() >= 8).collect())
}

#[test]
fn no_secret_value_appears_in_a_config_map() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let mut leaks = Vec::new();
    let mut checked = 0;
    for values in values_files()? {
        let docs = render(&helm, &values, &[])?;
        let secrets = secret_values(&docs)?;
        checked += secrets.len();
        for cm in docs.iter().filter(|d| kind(d) == "ConfigMap") {
            let text = serde_json::to_string(&cm["data"])?;
            for (origin, secret) in &secrets {
                // Compare on the JSON-escaped form too, as the ConfigMap text is JSON here.
                let escaped = serde_json::to_string(secret)?;
                let escaped = escaped.trim_matches('"');
                if text.contains(secret.as_str()) || text.contains(escaped) {
                    leaks.push(format!(
                        "{origin} appears in {} ({})",
                        name(cm),
                        values.display()
                    ));
                }
            }
        }
    }
    ensure!(checked > 0, "no Secret values rendered at all");
    ensure!(
        leaks.is_empty(),
        "secrets in ConfigMaps:\n{}",
        leaks.join("\n")
    );
    Ok(())
}

#[test]
fn secrets_put_in_the_config_values_are_stripped_from_the_config_map() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let docs = render(&helm, &test_data("secrets-in-config.yaml"), &[])?;
    let config = docs
        .iter()
        .find(|d| kind(d) == "ConfigMap" && d["data"]["kratos.yml"].is_string())
        .context("no identity ConfigMap")?;
    let text = config["data"]["kratos.yml"].as_str().unwrap_or_default();
    ensure!(!text.contains("dsn:"), "kratos.yml keeps a dsn:\n{text}");
    ensure!(
        !text.contains("do-not-leak"),
        "kratos.yml keeps a secret:\n{text}"
    );
    Ok(())
}

/// RBAC rules as a set of (apiGroup, resource, verb) triples.
fn rule_triples(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    for rule in rules.as_array().into_iter().flatten() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// The rules of every Role and ClusterRole in `docs`; a document with a top-level `rules` list
/// and no `kind` (the form of `operator/rbac.yaml`) counts too.
fn rbac_triples(docs: &[Value]) -> BTreeSet<(String, String, String)> {
    docs.iter()
        .filter(|d| matches!(kind(d), "ClusterRole" | "Role" | ""))
        .flat_map(|d| rule_triples(&d["rules"]))
        .collect()
}

#[test]
fn operator_rbac_equals_operator_rbac_yaml() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let committed = repo_root().join("operator/rbac.yaml");
    if !committed.is_file() {
        eprintln!("skipping: {} does not exist yet", committed.display());
        return Ok(());
    }
    let text = std::fs::read_to_string(&committed)?;
    let expected = rbac_triples(&parse_documents(&text)?);
    ensure!(
        !expected.is_empty(),
        "{} has no Role/ClusterRole rules",
        committed.display()
    );
    let compat = expected
        .iter()
        .any(|(group, _, _)| group == "oathkeeper.ory.sh");
    let set = format!("operator.oathkeeperCompat={compat}");
    let rendered: Vec<Value> = render(&helm, &chart_dir().join("ci/default.yaml"), &[&set])?
        .into_iter()
        .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/component"] == "operator")
        .collect();
    let actual = rbac_triples(&rendered);
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "chart RBAC differs from operator/rbac.yaml\n  missing in chart: {missing:?}\n  only in chart: {extra:?}"
    );
    Ok(())
}

/// A CRD without what the chart adds on top of the generated file (its labels and the keep
/// annotation), so the two can be compared.
fn without_chart_metadata(mut crd: Value, chart_labels: &BTreeMap<String, Value>) -> Value {
    let meta = &mut crd["metadata"];
    for field in ["labels", "annotations"] {
        if let Some(map) = meta[field].as_object_mut() {
            map.retain(|k, v| k != "helm.sh/resource-policy" && chart_labels.get(k) != Some(v));
        }
        if meta[field].as_object().is_some_and(|m| m.is_empty())
            && let Some(m) = meta.as_object_mut()
        {
            m.remove(field);
        }
    }
    crd
}

#[test]
fn rendered_crds_equal_the_generated_ones() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let dir = chart_dir().join("files/crds");
    let mut generated = BTreeMap::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                for crd in parse_documents(&std::fs::read_to_string(&path)?)? {
                    let crd_name = crd["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    generated.insert(crd_name, crd);
                }
            }
        }
    }
    if generated.is_empty() {
        eprintln!("skipping: no generated CRDs in {} yet", dir.display());
        return Ok(());
    }
    let docs = render(&helm, &chart_dir().join("ci/default.yaml"), &[])?;
    let deployment = docs
        .iter()
        .find(|d| kind(d) == "Deployment")
        .context("no Deployment rendered")?;
    let chart_labels: BTreeMap<String, Value> = deployment["metadata"]["labels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut rendered = BTreeMap::new();
    for crd in docs
        .into_iter()
        .filter(|d| kind(d) == "CustomResourceDefinition")
    {
        ensure!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep",
            "{} lacks helm.sh/resource-policy: keep",
            name(&crd)
        );
        let crd_name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        rendered.insert(crd_name, without_chart_metadata(crd, &chart_labels));
    }
    ensure!(
        rendered.keys().eq(generated.keys()),
        "rendered CRDs {:?} != generated {:?}",
        rendered.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>()
    );
    for (crd_name, crd) in &generated {
        ensure!(
            rendered.get(crd_name) == Some(crd),
            "CRD {crd_name} differs from {}",
            dir.display()
        );
    }
    let off = render(
        &helm,
        &chart_dir().join("ci/default.yaml"),
        &["crds.enabled=false"],
    )?;
    ensure!(
        !off.iter().any(|d| kind(d) == "CustomResourceDefinition"),
        "crds.enabled=false still renders CRDs"
    );
    Ok(())
}

#[test]
fn generated_secrets_are_release_objects_kept_on_uninstall() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let docs = render(&helm, &chart_dir().join("ci/default.yaml"), &[])?;
    let secrets: Vec<&Value> = docs.iter().filter(|d| kind(d) == "Secret").collect();
    ensure!(
        secrets.len() >= 3,
        "expected identity, signing-key and stream-token Secrets"
    );
    for secret in secrets {
        let annotations = &secret["metadata"]["annotations"];
        ensure!(
            annotations["helm.sh/hook"].is_null(),
            "{} is a hook",
            name(secret)
        );
        ensure!(
            annotations["helm.sh/resource-policy"] == "keep",
            "{} is not kept",
            name(secret)
        );
    }
    let existing = render(&helm, &chart_dir().join("ci/existing-secrets.yaml"), &[])?;
    let generated: Vec<String> = existing
        .iter()
        .filter(|d| kind(d) == "Secret")
        .map(name)
        .collect();
    ensure!(
        generated.is_empty(),
        "existing secrets configured, yet rendered {generated:?}"
    );
    Ok(())
}

#[test]
fn migration_job_is_a_pre_install_hook_only_for_an_external_database() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let hook_jobs = |docs: &[Value]| -> usize {
        docs.iter()
            .filter(|d| kind(d) == "Job")
            .filter(|d| d["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade")
            .count()
    };
    let external = render(&helm, &chart_dir().join("ci/production.yaml"), &[])?;
    ensure!(
        hook_jobs(&external) == 1,
        "external database: expected one migration hook Job"
    );
    let bundled = render(&helm, &chart_dir().join("ci/bundled-postgres.yaml"), &[])?;
    ensure!(
        hook_jobs(&bundled) == 0,
        "bundled database: the hook would run before it exists"
    );
    let identity = bundled
        .iter()
        .find(|d| kind(d) == "Deployment" && d["metadata"]["name"] == "portcullis-identity")
        .context("no identity Deployment")?;
    let init = &identity["spec"]["template"]["spec"]["initContainers"][0]["args"];
    ensure!(
        *init == serde_json::json!(["migrate", "sql", "-e", "--yes"]),
        "no migrate initContainer"
    );
    Ok(())
}

#[test]
fn values_schema_rejects_unknown_keys() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    let result = render(
        &helm,
        &chart_dir().join("ci/default.yaml"),
        &["gateway.replicas=3"],
    );
    ensure!(
        result.is_err(),
        "a misspelt key (gateway.replicas) was accepted"
    );
    Ok(())
}

/// The handler sections of the gateway config the chart renders, as the gateway reads them.
fn gateway_config(docs: &[Value]) -> Result<Value> {
    let text = docs
        .iter()
        .find_map(|d| d["data"]["oathkeeper.yml"].as_str())
        .context("no gateway ConfigMap with oathkeeper.yml")?;
    Ok(serde_saphyr::from_str(text)?)
}

#[test]
fn rendered_gateway_config_passes_the_gateways_handler_checks() -> Result<()> {
    use portcullis_rules::handlers::{HandlerKind, check_merged_config};
    let Some(helm) = helm()? else { return Ok(()) };
    let kinds = [
        (HandlerKind::Authenticator, "authenticators"),
        (HandlerKind::Authorizer, "authorizers"),
        (HandlerKind::Mutator, "mutators"),
    ];
    let mut problems = Vec::new();
    for values in values_files()? {
        let config = gateway_config(&render(&helm, &values, &[])?)?;
        let mut sections: Vec<(HandlerKind, &Value)> =
            kinds.iter().map(|(k, s)| (*k, &config[*s])).collect();
        sections.push((HandlerKind::ErrorHandler, &config["errors"]["handlers"]));
        for (kind, section) in sections {
            for (name, handler) in section.as_object().into_iter().flatten() {
                let at = format!("{} {}.{name}", values.display(), kind.section());
                if !kind.known_names().contains(&name.as_str()) {
                    problems.push(format!("{at}: unknown handler"));
                } else if handler["enabled"] == Value::Bool(true) {
                    let handler_config = handler.get("config").cloned().unwrap_or(Value::Null);
                    if let Err(e) = check_merged_config(kind, name, &handler_config) {
                        problems.push(format!("{at}: {e}"));
                    }
                }
            }
        }
    }
    ensure!(
        problems.is_empty(),
        "gateway config problems:\n{}",
        problems.join("\n")
    );
    Ok(())
}

/// A `portcullis.dev` Rule object as the Oathkeeper rule the operator serves (id
/// `<name>.<namespace>`, Maester's field names mapped to Oathkeeper's).
fn oathkeeper_rule(object: &Value) -> Value {
    let spec = &object["spec"];
    let id = format!(
        "{}.{}",
        object["metadata"]["name"].as_str().unwrap_or_default(),
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
    );
    serde_json::json!({
        "id": id,
        "match": spec["match"],
        "upstream": {
            "url": spec["upstream"]["url"],
            "strip_path": spec["upstream"]["stripPath"],
            "preserve_host": spec["upstream"]["preserveHost"].as_bool().unwrap_or(false),
        },
        "authenticators": spec["authenticators"],
        "authorizer": spec["authorizer"],
        "mutators": spec["mutators"],
    })
}

#[test]
fn kind_suite_rules_are_valid_and_route_its_journeys() -> Result<()> {
    use portcullis_rules::{MatchingStrategy, RuleSet, parse_rules};
    let path = repo_root().join("e2e/kind/journeys.yaml");
    let objects = parse_documents(&std::fs::read_to_string(&path)?)?;
    let rules: Vec<Value> = objects
        .iter()
        .filter(|o| kind(o) == "Rule")
        .map(oathkeeper_rule)
        .collect();
    ensure!(rules.len() == 2, "expected the identity and echo Rules");
    let parsed = parse_rules(&serde_json::to_vec(&rules)?, "e2e/kind/journeys.yaml")?;
    let set = RuleSet::compile(parsed, MatchingStrategy::default())?;
    let gateway = "http://127.0.0.1:4455";
    for (method, path, rule) in [
        ("GET", "/echo/hostname", "echo.e2e"),
        (
            "GET",
            "/.ory/kratos/public/self-service/registration/api",
            "identity-public.portcullis",
        ),
        (
            "POST",
            "/.ory/kratos/public/self-service/login",
            "identity-public.portcullis",
        ),
        (
            "GET",
            "/.ory/kratos/public/schemas",
            "identity-public.portcullis",
        ),
    ] {
        let found = set
            .find(method, &format!("{gateway}{path}"))
            .map_err(|e| anyhow::anyhow!("{method} {path}: {e}"))?;
        ensure!(
            found.rule.id == rule,
            "{method} {path} matched {}",
            found.rule.id
        );
    }
    ensure!(
        set.find("GET", &format!("{gateway}/elsewhere")).is_err(),
        "an unrelated path matched a rule"
    );
    Ok(())
}

/// Bytes in a size such as `64MB`, `64MiB`, `512Mi` or `1Gi`.
fn bytes(size: &str) -> Option<u64> {
    let digits: String = size.chars().take_while(char::is_ascii_digit).collect();
    let unit = match size[digits.len()..].trim() {
        "" | "B" => 1,
        "KB" | "k" => 1_000,
        "MB" | "M" => 1_000_000,
        "GB" | "G" => 1_000_000_000,
        "KiB" | "Ki" => 1 << 10,
        "MiB" | "Mi" => 1 << 20,
        "GiB" | "Gi" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok().map(|n| n * unit)
}

#[test]
fn identity_argon2_budget_fits_its_memory_limit() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    for values in values_files()? {
        let docs = render(&helm, &values, &[])?;
        let Some(text) = docs.iter().find_map(|d| d["data"]["kratos.yml"].as_str()) else {
            continue;
        };
        let config: Value = serde_saphyr::from_str(text)?;
        let argon2 = &config["hashers"]["argon2"];
        let memory = argon2["memory"].as_str().and_then(bytes);
        let concurrency = argon2["concurrency"].as_u64();
        let (Some(memory), Some(concurrency)) = (memory, concurrency) else {
            bail!(
                "{}: kratos.yml lacks hashers.argon2.memory/concurrency",
                values.display()
            );
        };
        let identity = docs
            .iter()
            .find(|d| kind(d) == "Deployment" && d["metadata"]["name"] == "portcullis-identity")
            .context("no identity Deployment")?;
        let limit =
            identity["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
                .as_str()
                .and_then(bytes)
                .context("identity has no memory limit")?;
        ensure!(
            memory * concurrency <= limit / 2,
            "{}: argon2 {memory} B × {concurrency} leaves too little of the {limit} B limit",
            values.display()
        );
    }
    Ok(())
}

/// Decoded data of the Secret named `secret` in the render.
fn secret_data(docs: &[Value], secret: &str) -> Result<BTreeMap<String, String>> {
    let doc = docs
        .iter()
        .find(|d| kind(d) == "Secret" && d["metadata"]["name"] == secret)
        .with_context(|| format!("no Secret {secret}"))?;
    let mut out = BTreeMap::new();
    for (key, v) in doc["data"].as_object().into_iter().flatten() {
        let raw =
            base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default())?;
        out.insert(key.clone(), String::from_utf8(raw)?);
    }
    Ok(out)
}

#[test]
fn rendered_configs_load_in_the_real_gateway_and_identity_without_warnings() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    for values in [
        chart_dir().join("ci/default.yaml"),
        chart_dir().join("ci/production.yaml"),
    ] {
        let docs = render(&helm, &values, &[])?;
        let gateway = gateway_config(&docs)?;
        let parsed = portcullis_gateway::config::GatewayConfig::from_value(
            &gateway,
            "oathkeeper.yml",
            Path::new("/etc/portcullis"),
        )
        .map_err(|e| {
            anyhow::anyhow!("{}: gateway rejects oathkeeper.yml: {e}", values.display())
        })?;
        ensure!(
            parsed.warnings.is_empty(),
            "{}: gateway ignores keys: {:?}",
            values.display(),
            parsed.warnings
        );

        // The identity reads kratos.yml plus the env the Deployment sets from the Secret.
        let text = docs
            .iter()
            .find_map(|d| d["data"]["kratos.yml"].as_str())
            .context("no kratos.yml")?;
        let secrets = secret_data(&docs, "portcullis-identity")?;
        let env = |key: &str| -> Option<String> {
            let secret_key = match key {
                "DSN" => "dsn",
                "SECRETS_COOKIE" => "secretsCookie",
                "SECRETS_CIPHER" => "secretsCipher",
                "SECRETS_DEFAULT" => "secretsDefault",
                _ => return None,
            };
            secrets.get(secret_key).cloned()
        };
        let (_, warnings) = portcullis_identity::config::Config::from_str_with_env(
            text,
            PathBuf::from("/etc/portcullis"),
            &env,
        )
        .map_err(|e| anyhow::anyhow!("{}: identity rejects kratos.yml: {e}", values.display()))?;
        ensure!(
            warnings.is_empty(),
            "{}: identity ignores keys: {warnings:?}",
            values.display()
        );
    }
    Ok(())
}

#[test]
fn generated_signing_keys_load_in_the_real_gateway() -> Result<()> {
    let Some(helm) = helm()? else { return Ok(()) };
    // Helm's genPrivateKey: "ecdsa" writes SEC1 `EC PRIVATE KEY` (P-256), "rsa" PKCS#1.
    for (values, alg) in [
        ("ci/default.yaml", "ES256"),
        ("ci/bundled-postgres.yaml", "RS256"),
    ] {
        let docs = render(&helm, &chart_dir().join(values), &[])?;
        let pem = docs
            .iter()
            .filter(|d| kind(d) == "Secret")
            .find_map(|d| d["data"]["signing-key.pem"].as_str())
            .with_context(|| format!("{values}: no generated signing-key.pem"))?;
        let pem = base64::engine::general_purpose::STANDARD.decode(pem)?;
        let set = portcullis_gateway::jwks::parse_key_set(&pem)
            .map_err(|e| anyhow::anyhow!("{values}: gateway rejects the signing key: {e}"))?;
        let key = set.keys.first().context("no key")?;
        let signer = portcullis_gateway::jose::Signer::from_jwk(key)?;
        ensure!(
            signer.alg() == alg,
            "{values}: {} instead of {alg}",
            signer.alg()
        );
        let token = signer.sign(&serde_json::json!({"sub": "u"}))?;
        let public = key.public().context("no public key")?;
        portcullis_gateway::jose::decode(&token)?.verify(&public)?;
    }
    Ok(())
}
