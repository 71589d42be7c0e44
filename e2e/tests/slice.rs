//! The first slice, end to end over loopback: the real identity service (on SQLite, and on
//! PostgreSQL when it is reachable), the real gateway with Oathkeeper-format rules, and the demo
//! upstream, each as its own process.
//!
//! register → log in → whoami → protected route through the gateway (the upstream sees
//! `X-User-Id`) → 401 without a session → 404 for an unmatched URL, for an API client with a
//! session token and for a browser with the session cookie.

use portcullis_e2e::{Database, Stack, binaries};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

/// Creates an API flow of `kind` (`registration`, `login`), submits `body` to its action URL and
/// returns the 200 answer's JSON.
async fn api_flow(stack: &Stack, kind: &str, body: Value) -> Value {
    let http = reqwest::Client::new();
    let flow: Value = http
        .get(stack.identity_url(&format!("/self-service/{kind}/api")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {kind} flow: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{kind} flow json: {e}"));
    let action = flow["ui"]["action"]
        .as_str()
        .expect("ui.action")
        .to_string();
    let resp = http
        .post(&action)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("submit {kind}: {e}"));
    assert_eq!(resp.status(), 200, "{kind}");
    resp.json()
        .await
        .unwrap_or_else(|e| panic!("{kind} answer json: {e}"))
}

async fn api_register_and_login(stack: &Stack, email: &str) -> (String, String) {
    let body = api_flow(
        stack,
        "registration",
        json!({"method": "password", "traits": {"email": email}, "password": PASSWORD}),
    )
    .await;
    let identity_id = body["identity"]["id"]
        .as_str()
        .expect("identity.id")
        .to_string();
    assert!(
        body["session_token"].is_string(),
        "session hook gives a token: {body}"
    );

    let body = api_flow(
        stack,
        "login",
        json!({"method": "password", "identifier": email, "password": PASSWORD}),
    )
    .await;
    let token = body["session_token"]
        .as_str()
        .expect("session_token")
        .to_string();
    assert_eq!(body["session"]["identity"]["id"], identity_id.as_str());
    (identity_id, token)
}

async fn slice(db: Database) {
    let Some(stack) = Stack::start(&binaries!(), db).await else {
        return;
    };
    let http = reqwest::Client::new();
    let (identity_id, token) = api_register_and_login(&stack, "alice@example.com").await;

    let whoami = http
        .get(stack.identity_url("/sessions/whoami"))
        .header("X-Session-Token", &token)
        .send()
        .await
        .expect("whoami");
    assert_eq!(whoami.status(), 200);

    // The protected route with the token as a bearer: the upstream sees who it is.
    let resp = http
        .get(stack.gateway_url("/protected/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("protected call");
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.expect("echo json");
    assert_eq!(echo["headers"]["x-user-id"], identity_id.as_str(), "{echo}");
    assert_eq!(echo["path"], "/protected/hello");

    // No session, a wrong token: 401 in Oathkeeper's error shape; the upstream is not reached.
    for req in [
        http.get(stack.gateway_url("/protected/hello")),
        http.get(stack.gateway_url("/protected/hello"))
            .bearer_auth("ory_st_not-a-real-token"),
    ] {
        let resp = req.send().await.expect("unauthenticated call");
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.expect("error json");
        assert_eq!(body["error"]["code"], 401, "{body}");
    }

    // The anonymous route passes without a session; an unmatched URL is a 404.
    let resp = http
        .get(stack.gateway_url("/public/hello"))
        .send()
        .await
        .expect("public call");
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.expect("echo json");
    assert!(echo["headers"].get("x-user-id").is_none(), "{echo}");
    let resp = http
        .get(stack.gateway_url("/nowhere"))
        .send()
        .await
        .expect("unmatched call");
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("error json");
    assert_eq!(body["error"]["code"], 404, "{body}");

    // Logging out revokes the session at once: the same token is refused by the gateway.
    let resp = http
        .delete(stack.identity_url("/self-service/logout/api"))
        .json(&json!({"session_token": token}))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 204);
    let resp = http
        .get(stack.gateway_url("/protected/hello"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("call after logout");
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn api_client_journey_on_sqlite() {
    slice(Database::Sqlite).await;
}

#[tokio::test]
async fn api_client_journey_on_postgres() {
    slice(Database::Postgres).await;
}

/// A person in a browser: the browser registration flow sets the session cookie on identity's
/// host, and the same cookie opens the protected route on the gateway (cookies ignore ports).
#[tokio::test]
async fn browser_journey_with_session_cookie() {
    let Some(stack) = Stack::start(&binaries!(), Database::Sqlite).await else {
        return;
    };
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let resp = browser
        .get(stack.identity_url("/self-service/registration/browser"))
        .send()
        .await
        .expect("start browser registration");
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let flow_id = location
        .split("flow=")
        .nth(1)
        .expect("flow id in the UI redirect")
        .to_string();
    let flow: Value = browser
        .get(stack.identity_url(&format!("/self-service/registration/flows?id={flow_id}")))
        .send()
        .await
        .expect("fetch flow")
        .json()
        .await
        .expect("flow json");
    let csrf = flow["ui"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["attributes"]["name"] == "csrf_token")
        .and_then(|n| n["attributes"]["value"].as_str())
        .expect("csrf_token node")
        .to_string();
    let action = flow["ui"]["action"].as_str().expect("action").to_string();
    let resp = browser
        .post(&action)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("method", "password"),
            ("traits.email", "bob@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("submit browser registration");
    assert_eq!(resp.status(), 303, "browser form submit redirects");
    assert!(
        resp.cookies().any(|c| c.name() == "ory_kratos_session"),
        "session cookie set"
    );

    let resp = browser
        .get(stack.gateway_url("/protected/hello"))
        .send()
        .await
        .expect("protected call with cookie");
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.expect("echo json");
    let user = echo["headers"]["x-user-id"].as_str().unwrap_or_default();
    assert_eq!(user.len(), 36, "x-user-id is the identity's uuid: {echo}");
}
