//! The `id_token` mutator through the real proxy, verified with the keys the gateway
//! publishes at `/.well-known/jwks.json`.

mod support;

use portcullis_gateway::jose::{self, JwkSet, generate_es256};
use serde_json::{Value, json};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_gets_a_verifiable_cached_id_token() {
    let whoami = start_whoami().await;
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key = generate_es256("gw-es-1").unwrap_or_else(|e| panic!("{e}"));
    let jwks_path = dir.path().join("signing.jwks.json");
    std::fs::write(
        &jwks_path,
        serde_json::to_vec(&JwkSet { keys: vec![key] }).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = format!(
        "{}\n  id_token:\n    enabled: true\n    config:\n      issuer_url: https://gateway.example/\n      jwks_url: file://{}\n      ttl: 10m\n",
        handlers_yaml(&whoami),
        jwks_path.display()
    );
    let rules = format!(
        r#"
- id: token
  match: {{url: 'http://{{proxy}}/api/<.*>', methods: [GET]}}
  upstream: {{url: '{upstream}'}}
  authenticators: [{{handler: bearer_token}}]
  authorizer: {{handler: allow}}
  mutators:
    - handler: id_token
      config:
        claims: '{{"aud": ["orders"], "email": "{{{{ print .Extra.identity.traits.email }}}}"}}'
"#
    );
    let gw = Gateway::start(&config, &rules).await;
    let c = client();
    let call = || {
        c.get(format!("{}/api/orders", gw.proxy))
            .bearer_auth(GOOD_TOKEN)
            .send()
    };
    let echo: Value = call()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let auth = echo["headers"]["authorization"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token = auth
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("no bearer: {echo}"));

    let published: JwkSet = c
        .get(format!("{}/.well-known/jwks.json", gw.api))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(published.keys.len(), 1);
    assert!(
        !published.keys[0].is_private(),
        "private key material must not be published"
    );
    let decoded = jose::decode(token).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decoded.alg(), "ES256");
    let kid = decoded.kid().unwrap_or_default().to_owned();
    let public = published
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} not published"));
    decoded.verify(public).unwrap_or_else(|e| panic!("{e}"));
    let claims = &decoded.claims;
    assert_eq!(claims["iss"], "https://gateway.example/");
    assert_eq!(claims["sub"], USER_ID);
    assert_eq!(claims["aud"], json!(["orders"]));
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(
        claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0),
        600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 36));

    // The same session gets the cached token.
    let again: Value = call()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(again["headers"]["authorization"], auth.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_signing_key_fails_closed_with_500() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let jwks_path = dir.path().join("public-only.json");
    let key = generate_es256("k").unwrap_or_else(|e| panic!("{e}"));
    let public = JwkSet {
        keys: key.public().into_iter().collect(),
    };
    std::fs::write(&jwks_path, serde_json::to_vec(&public).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = format!(
        "authenticators:\n  anonymous: {{enabled: true}}\nauthorizers:\n  allow: {{enabled: true}}\nmutators:\n  id_token:\n    enabled: true\n    config:\n      issuer_url: https://gw/\n      jwks_url: file://{}\n",
        jwks_path.display()
    );
    let rules = "- id: t\n  match: {url: 'http://app.example/<.*>', methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: id_token}]\n";
    let gw = Gateway::start(&config, rules).await;
    let status = client()
        .get(format!("{}/decisions/x", gw.api))
        .header("x-forwarded-host", "app.example")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(status, 500);
}
