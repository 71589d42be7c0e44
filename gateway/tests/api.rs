//! The API port: health, rules, version and `/decisions` against the real binary.

mod support;

use serde_json::Value;
use support::*;

fn rules() -> String {
    r#"
- id: api-public
  match:
    url: http://app.example/public/<.*>
    methods: [GET]
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators:
    - handler: header
      config:
        headers:
          X-User-Id: "{{ print .Subject }}"
          X-Item: "{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}"
- id: api-protected
  match:
    url: https://app.example/me
    methods: [GET]
  authenticators: [{handler: bearer_token}]
  authorizer: {handler: allow}
  mutators:
    - handler: header
      config:
        headers:
          X-User-Id: "{{ .Extra.identity.id }}"
- id: api-denied
  match:
    url: http://app.example/admin
    methods: [GET]
  authenticators: [{handler: anonymous}]
  authorizer: {handler: deny}
  mutators: [{handler: noop}]
"#
    .to_owned()
}

async fn start() -> Gateway {
    let whoami = start_whoami().await;
    Gateway::start(&handlers_yaml(&whoami), &rules()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_version_and_rules_endpoints() {
    let gw = start().await;
    let c = client();
    let get = |path: &str| c.get(format!("{}{path}", gw.api)).send();
    // Readiness also waits for the gateway's own probe of its proxy port, which may finish a
    // moment after the port first answered the start-up wait.
    let ready = format!("{}/health/ready", gw.api);
    eventually("readiness", || async {
        c.get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    })
    .await;
    let version: Value = get("/version")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert!(version["version"].is_string());
    let rules: Value = get("/rules")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(rules.as_array().map(Vec::len), Some(3));
    assert_eq!(rules[0]["match"]["url"], "http://app.example/public/<.*>");
    let one = get("/rules/api-denied")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(one.status(), 200);
    let one: Value = one.json().await.unwrap_or_default();
    assert_eq!(one["authorizer"]["handler"], "deny");
    let missing = get("/rules/nope").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_allow_with_mutated_headers() {
    let gw = start().await;
    let response = client()
        .get(format!("{}/decisions", gw.api))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "app.example")
        .header("x-forwarded-uri", "/public/widgets?page=2")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-user-id"], "anonymous");
    assert_eq!(response.headers()["x-item"], "widgets");

    // Path form without X-Forwarded-Uri, plus a session check with a bearer token.
    let response = client()
        .get(format!("{}/decisions/me", gw.api))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example")
        .bearer_auth(GOOD_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-user-id"], USER_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_deny_unauthenticated_and_unmatched() {
    let gw = start().await;
    let c = client();
    let ask = |uri: &str, proto: &str| {
        c.get(format!("{}/decisions", gw.api))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", proto)
            .header("x-forwarded-host", "app.example")
            .header("x-forwarded-uri", uri)
            .send()
    };
    assert_eq!(
        ask("/admin", "http")
            .await
            .map(|r| r.status().as_u16())
            .ok(),
        Some(403)
    );
    assert_eq!(
        ask("/me", "https").await.map(|r| r.status().as_u16()).ok(),
        Some(401)
    );
    assert_eq!(
        ask("/me", "http").await.map(|r| r.status().as_u16()).ok(),
        Some(404)
    );
    let metrics = metrics_text(&gw.api).await;
    assert!(
        metrics.contains(
            "portcullis_gateway_requests_total{service=\"decisions\",rule=\"api-denied\",decision=\"deny\",status=\"403\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_gateway_rules 3"), "{metrics}");
}
