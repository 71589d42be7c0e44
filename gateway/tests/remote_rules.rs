//! `http://` and `inline://` access-rule repositories against real loopback servers: loaded at
//! start, polled (conditional GETs, unchanged content not recompiled), the last good rules kept
//! when the server fails or serves garbage, files and URLs served as one rule set, and not
//! ready until every URL repository has loaded once.

mod support;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use support::*;

const HANDLERS: &str = "authenticators:\n  anonymous: {enabled: true}\nauthorizers:\n  allow: {enabled: true}\n  deny: {enabled: true}\nmutators:\n  noop: {enabled: true}\nportcullis:\n  access_rules:\n    poll_interval: 200ms\n";

fn rule(id: &str, path: &str, authorizer: &str, upstream: &str) -> String {
    format!(
        "- id: {id}\n  match: {{url: 'http://<[^/]+>/{path}', methods: [GET]}}\n  upstream: {{url: '{upstream}'}}\n  authenticators: [{{handler: anonymous}}]\n  authorizer: {{handler: {authorizer}}}\n  mutators: [{{handler: noop}}]\n"
    )
}

fn json_rule(id: &str, path: &str, authorizer: &str, upstream: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "match": {"url": format!("http://<[^/]+>/{path}"), "methods": ["GET"]},
        "upstream": {"url": upstream},
        "authenticators": [{"handler": "anonymous"}],
        "authorizer": {"handler": authorizer},
        "mutators": [{"handler": "noop"}],
    })
}

/// What the rules server answers, and what it saw.
#[derive(Default)]
struct Served {
    body: String,
    content_type: &'static str,
    /// Send an `ETag` and honour `If-None-Match`.
    conditional: bool,
    /// Answer 503.
    down: bool,
    requests: usize,
    not_modified: usize,
    /// The last `Authorization` header received.
    authorization: Option<String>,
}

type Shared = Arc<Mutex<Served>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Served> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

async fn rules_document(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = lock(&state);
    s.requests += 1;
    s.authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if s.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let mut hasher = DefaultHasher::new();
    s.body.hash(&mut hasher);
    let etag = format!("\"{:x}\"", hasher.finish());
    if s.conditional {
        if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
        {
            s.not_modified += 1;
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
        }
        return (
            [
                (header::CONTENT_TYPE, s.content_type),
                (header::ETAG, &etag),
            ],
            s.body.clone(),
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, s.content_type)], s.body.clone()).into_response()
}

fn rules_app(state: Shared) -> axum::Router {
    axum::Router::new()
        .route("/rules", axum::routing::get(rules_document))
        .with_state(state)
}

/// A rules server on 127.0.0.1:0 serving `body`; returns its state and `/rules` URL.
async fn rules_server(
    body: String,
    content_type: &'static str,
    conditional: bool,
) -> (Shared, String) {
    let state = Arc::new(Mutex::new(Served {
        body,
        content_type,
        conditional,
        ..Served::default()
    }));
    let base = spawn_app(rules_app(Arc::clone(&state))).await;
    (state, format!("{base}/rules"))
}

async fn status(url: &str) -> u16 {
    client()
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The value of an unlabelled metric on the API port.
async fn metric(gw: &Gateway, name: &str) -> u64 {
    let text = match client().get(format!("{}/metrics", gw.api)).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return u64::MAX,
    };
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Waits until the rules server has answered `n` more requests than now.
async fn polls(state: &Shared, n: usize) {
    let start = lock(state).requests;
    eventually("polls of the rules server", || async {
        lock(state).requests >= start + n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_rules_load_at_start_and_changes_are_picked_up() {
    let upstream = start_upstream().await;
    let (served, url) = rules_server(
        rule("first", "a", "allow", &upstream),
        "application/yaml",
        false,
    )
    .await;
    let gw = Gateway::start_with_repositories(HANDLERS, "[]", &[&url]).await;
    let (a, b) = (format!("{}/a", gw.proxy), format!("{}/b", gw.proxy));
    let ready = format!("{}/health/ready", gw.api);
    eventually("the URL's rules", || async { status(&a).await == 200 }).await;
    assert_eq!(status(&ready).await, 200);
    assert_eq!(status(&b).await, 404);

    // The server now answers JSON: a changed authorizer and a new rule.
    let next = serde_json::json!([
        json_rule("first", "a", "deny", &upstream),
        json_rule("second", "b", "allow", &upstream)
    ]);
    {
        let mut s = lock(&served);
        s.body = next.to_string();
        s.content_type = "application/json";
    }
    eventually("the changed rules", || async { status(&b).await == 200 }).await;
    assert_eq!(status(&a).await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_content_is_not_recompiled() {
    let upstream = start_upstream().await;
    // One server answers conditional GETs with 304, the other always answers the full body.
    let (with_etag, url1) =
        rules_server(rule("one", "a", "allow", &upstream), "text/yaml", true).await;
    let (without, url2) =
        rules_server(rule("two", "b", "allow", &upstream), "text/plain", false).await;
    let gw = Gateway::start_with_repositories(HANDLERS, "[]", &[&url1, &url2]).await;
    let ready = format!("{}/health/ready", gw.api);
    eventually("both repositories", || async {
        status(&ready).await == 200
    })
    .await;
    assert_eq!(status(&format!("{}/b", gw.proxy)).await, 200);
    let reloads = metric(&gw, "portcullis_gateway_rule_reloads_total").await;

    polls(&with_etag, 3).await;
    polls(&without, 3).await;
    assert!(lock(&with_etag).not_modified >= 3, "no conditional GETs");
    assert_eq!(
        metric(&gw, "portcullis_gateway_rule_reloads_total").await,
        reloads,
        "unchanged content was compiled again"
    );
    assert_eq!(
        metric(&gw, "portcullis_gateway_rule_reload_errors_total").await,
        0
    );

    // A change behind the ETag is fetched and installed once.
    lock(&with_etag).body = rule("one", "c", "allow", &upstream);
    let c = format!("{}/c", gw.proxy);
    eventually("the changed rule", || async { status(&c).await == 200 }).await;
    polls(&with_etag, 2).await;
    assert_eq!(
        metric(&gw, "portcullis_gateway_rule_reloads_total").await,
        reloads + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fetches_and_invalid_content_keep_the_last_good_rules() {
    let upstream = start_upstream().await;
    let (served, url) = rules_server(rule("first", "a", "allow", &upstream), "", true).await;
    let gw = Gateway::start_with_repositories(HANDLERS, "[]", &[&url]).await;
    let a = format!("{}/a", gw.proxy);
    let ready = format!("{}/health/ready", gw.api);
    eventually("the URL's rules", || async { status(&a).await == 200 }).await;

    // The server fails: the rules stay, the gateway stays ready, the failures are counted.
    lock(&served).down = true;
    polls(&served, 3).await;
    assert_eq!(status(&a).await, 200);
    assert_eq!(status(&ready).await, 200);
    assert!(metric(&gw, "portcullis_gateway_rule_reload_errors_total").await >= 2);

    // Back up with a broken pattern, then with a disabled handler: both refused.
    let errors = metric(&gw, "portcullis_gateway_rule_reload_errors_total").await;
    {
        let mut s = lock(&served);
        s.down = false;
        s.body = "- id: broken\n  match: {url: 'http://x/<.*', methods: [GET]}\n  authenticators: [{handler: anonymous}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n".to_owned();
    }
    eventually("the refused document", || async {
        metric(&gw, "portcullis_gateway_rule_reload_errors_total").await > errors
    })
    .await;
    assert_eq!(status(&a).await, 200);
    lock(&served).body = "[not, a, rule]".to_owned();
    polls(&served, 2).await;
    assert_eq!(status(&a).await, 200);

    // Fixed content is installed.
    lock(&served).body = rule("fixed", "c", "allow", &upstream);
    let c = format!("{}/c", gw.proxy);
    eventually("the fixed rules", || async { status(&c).await == 200 }).await;
    assert_eq!(status(&a).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_urls_and_inline_documents_make_one_rule_set() {
    use base64::Engine as _;
    let upstream = start_upstream().await;
    let (served, url) = rules_server(rule("remote", "b", "allow", &upstream), "", false).await;
    let inline = format!(
        "inline://{}",
        base64::engine::general_purpose::STANDARD.encode(rule("inline", "c", "allow", &upstream))
    );
    let gw = Gateway::start_with_repositories(
        HANDLERS,
        &rule("file", "a", "allow", &upstream),
        &["file://{rules_file}", &url, &inline],
    )
    .await;
    let path = |p: &str| format!("{}/{p}", gw.proxy);
    eventually("the URL's rules", || async {
        status(&path("b")).await == 200
    })
    .await;
    assert_eq!(status(&path("a")).await, 200);
    assert_eq!(status(&path("c")).await, 200);
    let listed = client()
        .get(format!("{}/rules", gw.api))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json::<Vec<serde_json::Value>>()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ids: Vec<&str> = listed.iter().filter_map(|r| r["id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["file", "inline", "remote"]);

    // A file change keeps the URL's rules; a URL change keeps the file's.
    std::fs::write(
        gw.dir.path().join("rules.yml"),
        rule("file", "d", "allow", &upstream),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eventually("the file change", || async {
        status(&path("d")).await == 200
    })
    .await;
    assert_eq!(status(&path("b")).await, 200);
    lock(&served).body = rule("remote", "e", "deny", &upstream);
    eventually("the URL change", || async {
        status(&path("e")).await == 403
    })
    .await;
    assert_eq!(status(&path("d")).await, 200);
    assert_eq!(status(&path("c")).await, 200);
    assert_eq!(status(&path("b")).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_every_url_repository_has_loaded() {
    let upstream = start_upstream().await;
    // Nothing listens there yet; the URL carries credentials that must never be shown.
    let port = free_port();
    let url = format!("http://reader:s3cret@127.0.0.1:{port}/rules?token=abc123");
    let gw = Gateway::start_with_repositories(
        HANDLERS,
        &rule("file", "a", "allow", &upstream),
        &["file://{rules_file}", &url],
    )
    .await;
    let ready = format!("{}/health/ready", gw.api);
    let answer = client()
        .get(&ready)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status(), 503);
    let body = answer.text().await.unwrap_or_default();
    assert!(body.contains(&format!("127.0.0.1:{port}/rules")), "{body}");
    assert!(
        !body.contains("s3cret") && !body.contains("abc123"),
        "{body}"
    );
    // The file's rules serve meanwhile; the URL's rule is not there (404, fail closed).
    assert_eq!(status(&format!("{}/a", gw.proxy)).await, 200);
    let b = format!("{}/b", gw.proxy);
    assert_eq!(status(&b).await, 404);

    let state = Arc::new(Mutex::new(Served {
        body: rule("remote", "b", "allow", &upstream),
        content_type: "application/yaml",
        ..Served::default()
    }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("bind {port}: {e}"));
    let app = rules_app(Arc::clone(&state));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    eventually("readiness", || async { status(&ready).await == 200 }).await;
    assert_eq!(status(&b).await, 200);
    // The URL's user info went as HTTP Basic authentication.
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("reader:s3cret");
    assert_eq!(
        lock(&state).authorization.as_deref(),
        Some(format!("Basic {basic}").as_str())
    );
}

#[test]
fn unsupported_repository_schemes_fail_start_up() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = write_files_with_repositories(
        &dir,
        (free_port(), free_port(), free_port()),
        HANDLERS,
        "[]",
        &["s3://bucket/rules.json?secret=x"],
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-gateway"))
        .args(["serve", "-c"])
        .arg(&config)
        .output()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("access_rules.repositories") && stderr.contains("s3://"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret=x"), "{stderr}");
}
