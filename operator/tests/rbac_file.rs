//! `operator/rbac.yaml` (copied into the chart's ClusterRole) grants exactly the permissions in
//! `portcullis_operator::rbac::PERMISSIONS`, which the mocked-API tests check the code against.

use anyhow::Result;
use portcullis_operator::rbac::PERMISSIONS;
use serde::Deserialize;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct PolicyRule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RulesFile {
    rules: Vec<PolicyRule>,
}

#[test]
fn rbac_yaml_matches_the_permissions_the_code_uses() -> Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rbac.yaml");
    let text = std::fs::read_to_string(path)?;
    let file: RulesFile = serde_saphyr::from_str(&text)?;
    let expected: Vec<PolicyRule> = PERMISSIONS
        .iter()
        .map(|p| PolicyRule {
            api_groups: vec![p.group.to_owned()],
            resources: p.resources.iter().map(|r| (*r).to_owned()).collect(),
            verbs: p.verbs.iter().map(|v| (*v).to_owned()).collect(),
        })
        .collect();
    assert_eq!(
        file.rules, expected,
        "operator/rbac.yaml differs from operator/src/rbac.rs PERMISSIONS; update the file (and the chart's ClusterRole)"
    );
    Ok(())
}
