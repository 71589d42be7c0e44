//! Error handler selection through the real proxy: rule-level `redirect` for browsers,
//! `json` for API clients, `www_authenticate` from the global fallback.

mod support;

use support::*;

const CONFIG: &str = r#"
authenticators:
  unauthorized: {enabled: true}
  anonymous: {enabled: true}
authorizers:
  allow: {enabled: true}
  deny: {enabled: true}
mutators:
  noop: {enabled: true}
errors:
  fallback: [www_authenticate, json]
  handlers:
    json: {enabled: true}
    redirect:
      enabled: true
      config:
        to: https://login.example/ui/login
    www_authenticate:
      enabled: true
      config:
        realm: portcullis
        when:
          - error: [unauthorized]
"#;

const RULES: &str = r#"
- id: browser
  match: {url: 'http://<[^/]+>/app/<.*>', methods: [GET]}
  upstream: {url: 'http://127.0.0.1:1'}
  authenticators: [{handler: unauthorized}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
  errors:
    - handler: redirect
      config:
        return_to_query_param: return_to
        when:
          - error: [unauthorized]
            request:
              header:
                accept: [text/html]
    - handler: json
      config:
        when:
          - request:
              header:
                accept: [application/json]
- id: fallback
  match: {url: 'http://<[^/]+>/plain/<.*>', methods: [GET]}
  upstream: {url: 'http://127.0.0.1:1'}
  authenticators: [{handler: unauthorized}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
- id: forbidden
  match: {url: 'http://<[^/]+>/denied', methods: [GET]}
  upstream: {url: 'http://127.0.0.1:1'}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: deny}
  mutators: [{handler: noop}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_handlers_are_selected_by_when() {
    let gw = Gateway::start(CONFIG, RULES).await;
    let c = client();
    let get = |path: &str, accept: &str| {
        c.get(format!("{}{path}", gw.proxy))
            .header("accept", accept)
            .send()
    };

    let browser = get("/app/settings?tab=2", "text/html,application/xhtml+xml")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(browser.status(), 302);
    let location = browser.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        location.starts_with("https://login.example/ui/login?return_to=http%3A%2F%2F127.0.0.1%3A"),
        "{location}"
    );
    assert!(
        location.ends_with("%2Fapp%2Fsettings%3Ftab%3D2"),
        "{location}"
    );

    let api = get("/app/settings", "application/json")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(api.status(), 401);
    assert_eq!(api.headers()["content-type"], "application/json");

    // No rule-level handler matches (`*/*`): the fallback's www_authenticate answers.
    let other = get("/app/settings", "image/png")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.status(), 401);
    assert_eq!(
        other.headers()["www-authenticate"],
        "Basic realm=portcullis"
    );

    let plain = get("/plain/x", "*/*")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plain.headers()["www-authenticate"],
        "Basic realm=portcullis"
    );

    // www_authenticate only answers `unauthorized`; a 403 falls through to json.
    let denied = get("/denied", "*/*")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(denied.status(), 403);
    assert_eq!(denied.headers()["content-type"], "application/json");
}

#[test]
fn disabled_fallback_handler_fails_start_up() {
    let (status, stderr) = serve_expecting_exit("errors:\n  fallback: [redirect]\n", "[]");
    assert!(!status.success());
    assert!(
        stderr.contains("errors.fallback") && stderr.contains("redirect"),
        "{stderr}"
    );
}
