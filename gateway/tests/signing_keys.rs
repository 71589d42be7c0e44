//! `id_token` signing keys from PEM files (what Helm, Terraform and OpenSSL generate), through
//! the real gateway: the upstream's token verifies against `/.well-known/jwks.json`, and a bad
//! PEM fails start-up naming the file. Fixtures in `tests/data/keys/` are test-only keys.

mod support;

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_gateway::jose::{self, Jwk, JwkSet};
use serde_json::Value;
use support::*;

fn key_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/keys")
        .join(name)
}

fn config(whoami: &str, key: &Path) -> String {
    format!(
        "{}\n  id_token:\n    enabled: true\n    config:\n      issuer_url: https://gateway.example/\n      jwks_url: file://{}\n      ttl: 60s\n",
        handlers_yaml(whoami),
        key.display()
    )
}

/// RFC 7638 thumbprint of a public JWK, computed independently of the gateway.
fn thumbprint(key: &Jwk) -> String {
    let canonical = match key.kty.as_str() {
        "EC" => serde_json::json!({"crv": key.crv, "kty": "EC", "x": key.x, "y": key.y}),
        _ => serde_json::json!({"e": key.e, "kty": "RSA", "n": key.n}),
    };
    // serde_json's map is ordered by key, which is what RFC 7638 asks for.
    let text = serde_json::to_string(&canonical).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

/// Starts the gateway with `pem` as the id_token key, sends one request through an id_token
/// rule and verifies the upstream's token against the published key.
async fn token_verifies_with_published_key(pem: &str, expected_alg: &str) {
    let whoami = start_whoami().await;
    let upstream = start_upstream().await;
    let rules = format!(
        r#"
- id: token
  match: {{url: 'http://{{proxy}}/api/<.*>', methods: [GET]}}
  upstream: {{url: '{upstream}'}}
  authenticators: [{{handler: bearer_token}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: id_token}}]
"#
    );
    let gw = Gateway::start(&config(&whoami, &key_file(pem)), &rules).await;
    let c = client();
    let echo: Value = c
        .get(format!("{}/api/orders", gw.proxy))
        .bearer_auth(GOOD_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{pem}: {e}"))
        .json()
        .await
        .unwrap_or_default();
    let token = echo["headers"]["authorization"]
        .as_str()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("{pem}: no bearer: {echo}"))
        .to_owned();
    let text = c
        .get(format!("{}/.well-known/jwks.json", gw.api))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{pem}: {e}"))
        .text()
        .await
        .unwrap_or_default();
    for private in ["\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\""] {
        assert!(
            !text.contains(private),
            "{pem}: private member published: {text}"
        );
    }
    let published: JwkSet =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{pem}: {e}: {text}"));
    assert_eq!(published.keys.len(), 1, "{pem}: {text}");
    let key = &published.keys[0];
    assert!(!key.is_private(), "{pem}");
    assert_eq!(key.alg.as_deref(), Some(expected_alg), "{pem}");
    assert_eq!(key.use_.as_deref(), Some("sig"), "{pem}");

    let decoded = jose::decode(&token).unwrap_or_else(|e| panic!("{pem}: {e}"));
    assert_eq!(decoded.alg(), expected_alg, "{pem}");
    let kid = decoded.kid().unwrap_or_else(|| panic!("{pem}: no kid"));
    assert_eq!(
        kid,
        thumbprint(key),
        "{pem}: kid is not the RFC 7638 thumbprint"
    );
    let public = published
        .find(kid)
        .unwrap_or_else(|| panic!("{pem}: kid {kid} not published"));
    decoded
        .verify(public)
        .unwrap_or_else(|e| panic!("{pem}: {e}"));
    assert_eq!(decoded.claims["sub"], USER_ID, "{pem}");
    assert_eq!(decoded.claims["iss"], "https://gateway.example/", "{pem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec1_ec_pem_signs_es256() {
    token_verifies_with_published_key("ec-p256-sec1.pem", "ES256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs8_ec_pem_signs_es256() {
    token_verifies_with_published_key("ec-p256-pkcs8.pem", "ES256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs1_rsa_pem_signs_rs256() {
    token_verifies_with_published_key("rsa-2048-pkcs1.pem", "RS256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs8_rsa_pem_signs_rs256() {
    token_verifies_with_published_key("rsa-2048-pkcs8.pem", "RS256").await;
}

#[test]
fn the_same_key_in_every_pem_form_has_the_same_kid() {
    let kid = |name: &str| {
        let bytes = std::fs::read(key_file(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        portcullis_gateway::pem_key::private_key_from_pem(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .kid
    };
    assert_eq!(kid("ec-p256-sec1.pem"), kid("ec-p256-pkcs8.pem"));
    assert_eq!(kid("rsa-2048-pkcs1.pem"), kid("rsa-2048-pkcs8.pem"));
}

/// Runs `serve` with `pem_text` as the id_token key; expects a start-up failure naming the file
/// and containing `reason`, without echoing the key material.
fn start_up_fails(pem_text: &str, reason: &str) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("signing-key.pem");
    std::fs::write(&path, pem_text).unwrap_or_else(|e| panic!("{e}"));
    let rules = "- id: t\n  match: {url: 'http://app.example/<.*>', methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: id_token}]\n";
    let (status, stderr) = serve_expecting_exit(&config("http://127.0.0.1:1/", &path), rules);
    assert!(!status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("portcullis-gateway:"))
        .unwrap_or_default();
    assert!(
        line.contains(&path.display().to_string())
            && line.contains("jwks_url")
            && line.contains(reason),
        "{stderr}"
    );
    for body_line in pem_text.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!stderr.contains(body_line), "key material in {stderr}");
    }
}

#[test]
fn garbage_pem_fails_start_up_naming_the_file() {
    start_up_fails(
        "-----BEGIN EC PRIVATE KEY-----\nZ2FyYmFnZS1ub3QtYS1rZXktYXQtYWxs\n-----END EC PRIVATE KEY-----\n",
        "not a valid SEC1",
    );
    start_up_fails(
        "-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZS1ub3QtYS1rZXktYXQtYWxs\n-----END PRIVATE KEY-----\n",
        "neither a P-256/P-384 EC nor an RSA PKCS#8 key",
    );
    start_up_fails(
        "-----BEGIN RSA PRIVATE KEY-----\nnot base64 at all!\n-----END RSA PRIVATE KEY-----\n",
        "not valid base64",
    );
}

#[test]
fn unsupported_pem_fails_start_up_naming_the_file() {
    let no_public = std::fs::read_to_string(key_file("ec-p256-sec1-no-public.pem"))
        .unwrap_or_else(|e| panic!("{e}"));
    start_up_fails(&no_public, "no public key");
    start_up_fails(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "not a supported private key",
    );
}
