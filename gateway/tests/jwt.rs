//! The `jwt` authenticator against a real JWKS server and a `file://` JWKS, with real RS256 and
//! ES256 signatures.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use portcullis_gateway::jose::{JwkSet, Signer, generate_es256};
use serde_json::{Value, json};
use support::*;

fn rsa_key() -> portcullis_gateway::jose::Jwk {
    let set: JwkSet = serde_json::from_str(include_str!("fixtures/rsa-private.jwks.json"))
        .unwrap_or_else(|e| panic!("fixture: {e}"));
    set.keys[0].clone()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn public_set(keys: &[&portcullis_gateway::jose::Jwk]) -> JwkSet {
    JwkSet {
        keys: keys.iter().filter_map(|k| k.public()).collect(),
    }
}

type Keys = Arc<Mutex<JwkSet>>;

async fn jwks(State(keys): State<Keys>) -> Json<Value> {
    let set = keys.lock().map(|k| k.clone()).unwrap_or_default();
    Json(serde_json::to_value(set).unwrap_or_default())
}

async fn start_jwks(keys: Keys) -> String {
    let app = axum::Router::new()
        .route("/.well-known/jwks.json", axum::routing::get(jwks))
        .with_state(keys);
    format!("{}/.well-known/jwks.json", spawn_app(app).await)
}

fn config(jwks_urls: &[String]) -> String {
    let urls = serde_json::to_string(jwks_urls).unwrap_or_default();
    format!(
        r#"
authenticators:
  jwt:
    enabled: true
    config:
      jwks_urls: {urls}
      trusted_issuers: [https://issuer.example]
      target_audience: [portcullis]
      allowed_algorithms: [RS256, ES256]
authorizers:
  allow: {{enabled: true}}
mutators:
  header:
    enabled: true
    config:
      headers:
        X-User-Id: "{{{{ print .Subject }}}}"
        X-Scope: "{{{{ printIndex .Extra.scp 0 }}}}"
"#
    )
}

const RULES: &str = r#"
- id: api
  match: {url: 'http://api.example/<.*>', methods: [GET]}
  authenticators: [{handler: jwt}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
- id: scoped
  match: {url: 'http://api.example/admin', methods: [POST]}
  authenticators:
    - handler: jwt
      config: {required_scope: [admin.write], scope_strategy: hierarchic}
  authorizer: {handler: allow}
  mutators: [{handler: header}]
"#;

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": "https://issuer.example", "aud": ["portcullis", "other"],
           "iat": now(), "exp": now() + 300, "scope": "read admin"})
}

async fn decide(gw: &Gateway, method: &str, path: &str, token: &str) -> reqwest::Response {
    client()
        .request(
            method.parse().unwrap_or(reqwest::Method::GET),
            format!("{}/decisions{path}", gw.api),
        )
        .header("x-forwarded-host", "api.example")
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_pass_and_every_broken_one_is_401() {
    let rsa = rsa_key();
    let ec = generate_es256("ec-1").unwrap_or_else(|e| panic!("{e}"));
    let keys: Keys = Arc::new(Mutex::new(public_set(&[&rsa, &ec])));
    let url = start_jwks(Arc::clone(&keys)).await;
    let gw = Gateway::start(&config(&[url]), RULES).await;
    let rs = Signer::from_jwk(&rsa).unwrap_or_else(|e| panic!("{e}"));
    let es = Signer::from_jwk(&ec).unwrap_or_else(|e| panic!("{e}"));
    let sign = |s: &Signer, c: Value| s.sign(&c).unwrap_or_else(|e| panic!("{e}"));

    let ok = decide(&gw, "GET", "/x", &sign(&rs, claims("alice"))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-user-id"], "alice");
    assert_eq!(ok.headers()["x-scope"], "read");
    let ok = decide(&gw, "GET", "/x", &sign(&es, claims("bob"))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-user-id"], "bob");

    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 10);
    let mut wrong_iss = claims("alice");
    wrong_iss["iss"] = json!("https://evil.example");
    let mut wrong_aud = claims("alice");
    wrong_aud["aud"] = json!("other");
    let mut future = claims("alice");
    future["nbf"] = json!(now() + 100);
    let impostor = generate_es256("ec-1").unwrap_or_else(|e| panic!("{e}"));
    let mut cases = vec![
        ("expired", sign(&rs, expired)),
        ("untrusted issuer", sign(&rs, wrong_iss)),
        ("wrong audience", sign(&rs, wrong_aud)),
        ("not yet valid", sign(&rs, future)),
        (
            "forged signature",
            sign(
                &Signer::from_jwk(&impostor).unwrap_or_else(|e| panic!("{e}")),
                claims("mallory"),
            ),
        ),
        ("garbage", "a.b.c".to_owned()),
        ("not a JWT", "opaque-token".to_owned()),
    ];
    let mut unknown_kid = generate_es256("nobody").unwrap_or_else(|e| panic!("{e}"));
    unknown_kid.alg = Some("ES256".into());
    cases.push((
        "unknown kid",
        sign(
            &Signer::from_jwk(&unknown_kid).unwrap_or_else(|e| panic!("{e}")),
            claims("x"),
        ),
    ));
    for (what, token) in cases {
        let response = decide(&gw, "GET", "/x", &token).await;
        assert_eq!(response.status(), 401, "{what}");
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(body["error"]["code"], 401, "{what}");
    }

    // Scopes: `admin` grants `admin.write` hierarchically; a token without it is refused.
    assert_eq!(
        decide(&gw, "POST", "/admin", &sign(&rs, claims("alice")))
            .await
            .status(),
        200
    );
    let mut no_admin = claims("alice");
    no_admin["scope"] = json!("read");
    assert_eq!(
        decide(&gw, "POST", "/admin", &sign(&rs, no_admin))
            .await
            .status(),
        401
    );

    // Key rotation: a new kid published by the JWKS server is picked up on first use.
    let rotated = generate_es256("ec-2").unwrap_or_else(|e| panic!("{e}"));
    if let Ok(mut k) = keys.lock() {
        *k = public_set(&[&rsa, &rotated]);
    }
    let signer = Signer::from_jwk(&rotated).unwrap_or_else(|e| panic!("{e}"));
    let fresh = sign(&signer, claims("carol"));
    support::eventually("the rotated key", || async {
        decide(&gw, "GET", "/x", &fresh).await.status() == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_jwks_works_and_unreachable_jwks_is_401() {
    let rsa = rsa_key();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&public_set(&[&rsa])).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let gw = Gateway::start(&config(&[format!("file://{}", path.display())]), RULES).await;
    let token = Signer::from_jwk(&rsa)
        .and_then(|s| s.sign(&claims("dave")))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = decide(&gw, "GET", "/x", &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-user-id"], "dave");

    let dead = format!("http://127.0.0.1:{}/jwks.json", free_port());
    let gw = Gateway::start(&config(&[dead]), RULES).await;
    assert_eq!(decide(&gw, "GET", "/x", &token).await.status(), 401);
}
