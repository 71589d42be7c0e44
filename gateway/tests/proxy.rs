//! The real gateway binary proxying to a real upstream, with a real session-check server.

mod support;

use serde_json::Value;
use support::*;

fn rules(upstream: &str) -> String {
    format!(
        r#"
- id: public
  match:
    url: http://{{proxy}}/public/<.*>
    methods: [GET, POST]
  upstream:
    url: {upstream}
  authenticators: [{{handler: anonymous}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
- id: protected
  match:
    url: http://{{proxy}}/protected/<(?!admin).*>
    methods: [GET]
  upstream:
    url: {upstream}
    strip_path: /protected
  authenticators:
    - handler: cookie_session
    - handler: bearer_token
  authorizer: {{handler: allow}}
  mutators:
    - handler: header
      config:
        headers:
          X-User-Id: "{{{{ print .Subject }}}}"
          X-User-Email: "{{{{ .Extra.identity.traits.email }}}}"
- id: forbidden
  match:
    url: http://{{proxy}}/protected/admin<.*>
    methods: [GET]
  upstream:
    url: {upstream}
  authenticators: [{{handler: anonymous}}]
  authorizer: {{handler: deny}}
  mutators: [{{handler: noop}}]
- id: overlap-a
  match:
    url: http://{{proxy}}/overlap/<.*>
    methods: [GET]
  upstream:
    url: {upstream}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
- id: overlap-b
  match:
    url: http://{{proxy}}/overlap/<[a-z]+>
    methods: [GET]
  upstream:
    url: {upstream}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
- id: pass
  match:
    url: http://{{proxy}}/pass/<.*>
    methods: [GET]
  upstream:
    url: {upstream}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
- id: pass-preserve
  match:
    url: http://{{proxy}}/keep-host/<.*>
    methods: [GET]
  upstream:
    url: {upstream}
    preserve_host: true
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
- id: dead-upstream
  match:
    url: http://{{proxy}}/dead/<.*>
    methods: [GET]
  upstream:
    url: http://127.0.0.1:{dead_port}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
"#,
        dead_port = free_port()
    )
}

async fn start() -> Gateway {
    let whoami = start_whoami().await;
    let upstream = start_upstream().await;
    Gateway::start(&handlers_yaml(&whoami), &rules(&upstream)).await
}

async fn json(response: reqwest::Response) -> Value {
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("json body: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_route_is_proxied_with_path_and_query() {
    let gw = start().await;
    let response = client()
        .get(format!("{}/public/a/../hello?x=1", gw.proxy))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let echo = json(response).await;
    assert_eq!(echo["path"], "/public/hello");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_requests_get_the_upstream_host_and_fresh_forwarded_headers() {
    let gw = start().await;
    let proxy_host = gw.proxy.trim_start_matches("http://").to_owned();
    let upstream_host = {
        // The upstream's own authority, as the rule names it (Host unless preserve_host).
        let response = client()
            .get(format!("{}/pass/probe", gw.proxy))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        json(response).await["headers"]["host"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(upstream_host.starts_with("127.0.0.1:"), "{upstream_host}");
    assert_ne!(upstream_host, proxy_host);
    // One keep-alive connection: every request gets its own headers, spoofed ones replaced.
    let c = client();
    for i in 0..3 {
        let response = c
            .get(format!("{}/pass/a/../b{i}?x={i}", gw.proxy))
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-host", "evil.example")
            .header("forwarded", "for=6.6.6.6")
            .header("x-custom", "kept")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), 200);
        let echo = json(response).await;
        assert_eq!(echo["path"], format!("/pass/b{i}"));
        assert_eq!(echo["query"], format!("x={i}"));
        let headers = &echo["headers"];
        assert_eq!(headers["host"], upstream_host.as_str(), "{echo}");
        assert_eq!(headers["x-forwarded-host"], proxy_host.as_str(), "{echo}");
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{echo}");
        assert_eq!(headers["x-forwarded-proto"], "http", "{echo}");
        assert_eq!(headers["x-custom"], "kept", "{echo}");
        assert!(headers.get("forwarded").is_none(), "{echo}");
    }
    // preserve_host keeps the client's Host.
    let response = c
        .get(format!("{}/keep-host/x", gw.proxy))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let echo = json(response).await;
    assert_eq!(echo["headers"]["host"], proxy_host.as_str(), "{echo}");
    assert_eq!(
        echo["headers"]["x-forwarded-host"],
        proxy_host.as_str(),
        "{echo}"
    );
    // Each request is counted under its rule.
    let metrics = metrics_text(&gw.api).await;
    assert!(
        metrics.contains(
            "portcullis_gateway_requests_total{service=\"proxy\",rule=\"pass\",decision=\"allow\",status=\"200\"} 4\n"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_route_without_session_is_401() {
    let gw = start().await;
    let c = client();
    let response = c
        .get(format!("{}/protected/me", gw.proxy))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 401);
    let body = json(response).await;
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "Unauthorized");
    // A session the check rejects is a 401 too, and the chain does not fall through.
    let response = c
        .get(format!("{}/protected/me", gw.proxy))
        .header("cookie", "ory_kratos_session=forged")
        .header("authorization", format!("Bearer {GOOD_TOKEN}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_route_with_cookie_reaches_upstream_with_user_id() {
    let gw = start().await;
    let response = client()
        .get(format!("{}/protected/me", gw.proxy))
        .header("cookie", GOOD_COOKIE)
        .header("x-user-id", "spoofed")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let echo = json(response).await;
    assert_eq!(echo["headers"]["x-user-id"], USER_ID);
    assert_eq!(echo["headers"]["x-user-email"], "ada@example.com");
    assert_eq!(echo["path"], "/me", "strip_path removes /protected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_route_with_bearer_token_reaches_upstream_with_user_id() {
    let gw = start().await;
    let response = client()
        .get(format!("{}/protected/me", gw.proxy))
        .bearer_auth(GOOD_TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["headers"]["x-user-id"], USER_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_authorizer_is_403_and_unmatched_is_404() {
    let gw = start().await;
    let c = client();
    let response = c
        .get(format!("{}/protected/admin/panel", gw.proxy))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 403);
    assert_eq!(json(response).await["error"]["status"], "Forbidden");
    for url in [
        format!("{}/nowhere", gw.proxy),
        format!("{}/public/x", gw.proxy),
    ] {
        let method = if url.ends_with("/x") {
            reqwest::Method::DELETE
        } else {
            reqwest::Method::GET
        };
        let response = c
            .request(method, &url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), 404, "{url}");
        let body = json(response).await;
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(body["error"]["status"], "Not Found");
        assert_eq!(
            body["error"]["message"],
            "The requested resource could not be found"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rules_matching_is_a_500() {
    let gw = start().await;
    let response = client()
        .get(format!("{}/overlap/abc", gw.proxy))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 500);
    assert_eq!(json(response).await["error"]["code"], 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502() {
    let gw = start().await;
    let response = client()
        .get(format!("{}/dead/x", gw.proxy))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 502);
    // The request is counted in Pingora's logging phase, which runs after the response has been
    // sent: wait for the counter rather than reading it once.
    let wanted = "service=\"proxy\",rule=\"dead-upstream\",decision=\"allow\",status=\"502\"} 1";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = metrics_text(&gw.metrics).await;
        if metrics.contains(wanted) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 502 counted for dead-upstream:\n{metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_gateway_cleanly() {
    let mut gw = start().await;
    let status = gw.terminate();
    assert!(status.success(), "exit status {status}");
}
