//! The optional session cache of `cookie_session` / `bearer_token` against a loopback session
//! endpoint that counts its calls: hits skip the call, misses and refusals never get cached,
//! entries end at `ttl` or at the session's `expires_at`, credentials never share an entry.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use support::*;

/// Calls per credential (cookie value or bearer token).
type Calls = Arc<Mutex<HashMap<String, usize>>>;

/// Session endpoint: `ory_kratos_session=<user>` or `Bearer <user>` is a session of `<user>`,
/// except `bad` (401). `short` sessions expire 1.5 s from now, `past` ones a minute ago.
async fn counting_whoami(State(calls): State<Calls>, request: Request) -> Response {
    let headers = request.headers();
    let credential = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("ory_kratos_session="))
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .unwrap_or_default()
        .to_owned();
    *calls
        .lock()
        .unwrap_or_else(|e| panic!("{e}"))
        .entry(credential.clone())
        .or_default() += 1;
    if credential.is_empty() || credential == "bad" {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401}})),
        )
            .into_response();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let expires_at = match credential.as_str() {
        "short" => now + 1.5,
        "past" => now - 60.0,
        _ => now + 3600.0,
    };
    Json(json!({
        "id": format!("session-of-{credential}"),
        "active": true,
        "expires_at": rfc3339(expires_at),
        "identity": {"id": credential, "traits": {"email": format!("{credential}@example.com")}},
    }))
    .into_response()
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, proleptic Gregorian).
fn rfc3339(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let millis = ((unix - unix.floor()) * 1000.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

struct Setup {
    gw: Gateway,
    calls: Calls,
}

impl Setup {
    /// A gateway whose `cookie_session` and `bearer_token` use `cache` (YAML flow mapping, or
    /// empty for no cache key at all).
    async fn start(cache: &str) -> Setup {
        let calls: Calls = Arc::default();
        let app = axum::Router::new()
            .route("/sessions/whoami", axum::routing::any(counting_whoami))
            .with_state(Arc::clone(&calls));
        let whoami = format!("{}/sessions/whoami", spawn_app(app).await);
        let cache = if cache.is_empty() {
            String::new()
        } else {
            format!("\n      cache: {cache}")
        };
        let config = format!(
            r#"
authenticators:
  cookie_session:
    enabled: true
    config:
      check_session_url: {whoami}
      preserve_path: true
      subject_from: identity.id
      extra_from: identity.traits{cache}
  bearer_token:
    enabled: true
    config:
      check_session_url: {whoami}
      preserve_path: true
      subject_from: identity.id
      extra_from: identity.traits{cache}
authorizers:
  allow: {{enabled: true}}
mutators:
  header:
    enabled: true
    config:
      headers: {{X-User: '{{{{ print .Subject }}}}', X-Email: '{{{{ print .Extra.email }}}}'}}
"#
        );
        let rules = r#"
- id: cookie
  match: {url: 'http://app.example/cookie', methods: [GET]}
  authenticators: [{handler: cookie_session}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
- id: bearer
  match: {url: 'http://app.example/bearer', methods: [GET]}
  authenticators: [{handler: bearer_token}]
  authorizer: {handler: allow}
  mutators: [{handler: header}]
"#;
        let gw = Gateway::start(&config, rules).await;
        Setup { gw, calls }
    }

    /// Asks `/decisions` with the cookie `ory_kratos_session=<credential>`: status and X-User.
    async fn with_cookie(&self, credential: &str) -> (u16, String) {
        self.decide(
            "cookie",
            "cookie",
            format!("ory_kratos_session={credential}"),
        )
        .await
    }

    /// Asks `/decisions` with `Authorization: Bearer <credential>`: status and X-User.
    async fn with_bearer(&self, credential: &str) -> (u16, String) {
        self.decide("bearer", "authorization", format!("Bearer {credential}"))
            .await
    }

    async fn decide(&self, path: &str, header: &str, value: String) -> (u16, String) {
        let response = client()
            .get(format!("{}/decisions/{path}", self.gw.api))
            .header("x-forwarded-host", "app.example")
            .header(header, value)
            .send()
            .await
            .unwrap_or_else(|e| panic!("decisions: {e}"));
        let user = response
            .headers()
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (response.status().as_u16(), user)
    }

    fn calls(&self, credential: &str) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(|e| panic!("{e}"))
            .get(credential)
            .copied()
            .unwrap_or(0)
    }

    async fn metric(&self, result: &str) -> u64 {
        let text = metrics_text(&self.gw.metrics).await;
        let wanted = format!(
            "portcullis_gateway_cache_requests_total{{cache=\"session\",result=\"{result}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&wanted))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cache_every_request_is_checked() {
    let s = Setup::start("").await;
    for _ in 0..3 {
        assert_eq!(s.with_cookie("ada").await, (200, "ada".to_owned()));
    }
    assert_eq!(s.calls("ada"), 3);
    assert_eq!(s.metric("hit").await + s.metric("miss").await, 0);

    let s = Setup::start("{enabled: false, ttl: 1h}").await;
    for _ in 0..3 {
        assert_eq!(s.with_bearer("ada").await, (200, "ada".to_owned()));
    }
    assert_eq!(s.calls("ada"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_session_skips_the_check_and_keeps_subject_and_extra() {
    let s = Setup::start("{enabled: true, ttl: 1h}").await;
    for _ in 0..5 {
        let response = client()
            .get(format!("{}/decisions/cookie", s.gw.api))
            .header("x-forwarded-host", "app.example")
            .header("cookie", "ory_kratos_session=ada")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-user"], "ada");
        assert_eq!(response.headers()["x-email"], "ada@example.com");
    }
    assert_eq!(s.calls("ada"), 1);
    assert_eq!(s.metric("miss").await, 1);
    assert_eq!(s.metric("hit").await, 4);
    for _ in 0..3 {
        assert_eq!(s.with_bearer("ada").await, (200, "ada".to_owned()));
    }
    // The bearer rule has its own authenticator and cache: one more check, then hits.
    assert_eq!(s.calls("ada"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_never_cached() {
    let s = Setup::start("{enabled: true, ttl: 1h}").await;
    for _ in 0..3 {
        assert_eq!(s.with_cookie("bad").await.0, 401);
        assert_eq!(s.with_bearer("bad").await.0, 401);
    }
    assert_eq!(s.calls("bad"), 6);
    assert_eq!(s.metric("hit").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_credentials_never_share_an_entry() {
    let s = Setup::start("{enabled: true, ttl: 1h}").await;
    for user in ["ada", "bob", "ada", "bob", "eve"] {
        assert_eq!(s.with_cookie(user).await, (200, user.to_owned()));
        assert_eq!(s.with_bearer(user).await, (200, user.to_owned()));
    }
    assert_eq!((s.calls("ada"), s.calls("bob"), s.calls("eve")), (2, 2, 2));
    // A cached good session does not vouch for a bad credential sent next.
    assert_eq!(s.with_cookie("bad").await.0, 401);
    assert_eq!(s.with_bearer("bad").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_end_after_the_ttl() {
    let s = Setup::start("{enabled: true, ttl: 300ms}").await;
    assert_eq!(s.with_cookie("ada").await, (200, "ada".to_owned()));
    assert_eq!(s.calls("ada"), 1);
    // Within the ttl the check is skipped; once it passes, the next request checks again.
    eventually(
        "the entry to expire and the session to be checked again",
        || async {
            assert_eq!(s.with_cookie("ada").await, (200, "ada".to_owned()));
            s.calls("ada") >= 2
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_end_at_the_session_expiry_before_the_ttl() {
    let s = Setup::start("{enabled: true, ttl: 1h, max_entries: 100}").await;
    // A session that already expired (by its expires_at) is checked every time.
    for _ in 0..3 {
        assert_eq!(s.with_cookie("past").await.0, 200);
    }
    assert_eq!(s.calls("past"), 3);
    // A session expiring in 1.5 s is re-checked long before the hour-long ttl.
    assert_eq!(s.with_cookie("short").await.0, 200);
    eventually("the entry to end at expires_at", || async {
        assert_eq!(s.with_cookie("short").await.0, 200);
        s.calls("short") >= 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_stays_bounded() {
    let s = Setup::start("{enabled: true, ttl: 1h, max_entries: 2}").await;
    for user in ["u1", "u2", "u3", "u1", "u2", "u3"] {
        assert_eq!(s.with_bearer(user).await, (200, user.to_owned()));
    }
    // With room for two sessions, three alternating ones cannot all stay cached.
    let total = s.calls("u1") + s.calls("u2") + s.calls("u3");
    assert!(total > 3, "{total} checks for 6 requests of 3 sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_cache_config_is_rejected() {
    let (status, stderr) = serve_expecting_exit(
        "authenticators:\n  cookie_session:\n    enabled: true\n    config:\n      check_session_url: http://127.0.0.1:9/sessions/whoami\n      cache: {enabled: true, ttl: soon}\nauthorizers:\n  allow: {enabled: true}\nmutators:\n  noop: {enabled: true}\n",
        "- id: r\n  match: {url: 'http://app.example/x', methods: [GET]}\n  authenticators: [{handler: cookie_session}]\n  authorizer: {handler: allow}\n  mutators: [{handler: noop}]\n",
    );
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("cache.ttl"), "{stderr}");
}
