//! Kratos' self-service error flow over loopback HTTP, against SQLite and PostgreSQL: browsers
//! whose flow step ends in an error (CSRF, unknown or tampered flow ids, a forbidden return_to, no
//! session on logout) are sent to the error UI with `?id=`; the stored error is served by
//! `GET /self-service/errors?id=` on both ports and shown by `/ui/error`; JSON requests and API
//! flows still get the JSON error; expired flows still get a new flow.

mod support;

use serde_json::{Value, json};
use support::{Db, TestServer, api_client, browser_client};

const PASSWORD: &str = "correct horse battery staple";

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Starts a browser flow as a browser does (no Accept); returns its id.
async fn browser_flow(client: &reqwest::Client, server: &TestServer, kind: &str) -> String {
    let response = client
        .get(server.url(&format!("/self-service/{kind}/browser")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let ui = location(&response);
    ui.rsplit('=').next().unwrap().to_owned()
}

/// The error id of a redirect to the built-in error UI.
fn error_id(server: &TestServer, response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 303);
    let to = location(response);
    let prefix = server.url("/ui/error?id=");
    assert!(to.starts_with(&prefix), "{to}");
    to[prefix.len()..].to_owned()
}

async fn fetch_error(url: String) -> (u16, Value) {
    let response = api_client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn csrf_of(flow: &Value) -> String {
    flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "csrf_token")
        .and_then(|n| n["attributes"]["value"].as_str())
        .unwrap()
        .to_owned()
}

/// A browser flow fetched as an SPA does (the browser's cookies, JSON).
async fn spa_flow(client: &reqwest::Client, server: &TestServer, kind: &str) -> Value {
    let response = client
        .get(server.url(&format!("/self-service/{kind}/browser")))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Registers (and so signs in) `email` in the browser `client`.
async fn sign_up(client: &reqwest::Client, server: &TestServer, email: &str) {
    let flow = spa_flow(client, server, "registration").await;
    let response = client
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(
            &json!({"method": "password", "password": PASSWORD, "csrf_token": csrf_of(&flow),
                      "traits": {"email": email}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn settings_of_someone_else(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let browser = browser_client();
    sign_up(&browser, &server, "first@example.com").await;
    let settings = spa_flow(&browser, &server, "settings").await;
    let submit = settings["ui"]["action"].as_str().unwrap().to_owned();
    let csrf = csrf_of(&settings);
    // Signed out, the settings form sends the browser to sign in.
    let logout: Value = browser
        .get(server.url("/self-service/logout/browser"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = browser
        .get(logout["logout_url"].as_str().unwrap())
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let form = [
        ("method", "profile"),
        ("csrf_token", csrf.as_str()),
        ("traits.email", "first@example.com"),
    ];
    let response = browser.post(&submit).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert!(
        location(&response).starts_with(&server.url("/self-service/login/browser")),
        "{}",
        location(&response)
    );
    // Signed in as someone else, the first identity's settings flow is refused.
    sign_up(&browser, &server, "second@example.com").await;
    let response = browser.post(&submit).form(&form).send().await.unwrap();
    let id = error_id(&server, &response);
    let (_, body) = fetch_error(server.url(&format!("/self-service/errors?id={id}"))).await;
    assert_eq!(body["error"]["id"], "security_identity_mismatch", "{body}");
    assert_eq!(body["error"]["code"], 403);
    // As JSON: the 403 itself.
    let response = browser
        .post(&submit)
        .header("Accept", "application/json")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    server.stop().await;
}

async fn csrf_violation(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let browser = browser_client();
    let flow = browser_flow(&browser, &server, "registration").await;
    let forged = "A".repeat(88);
    let form = [
        ("method", "password"),
        ("csrf_token", forged.as_str()),
        ("traits.email", "mallory@example.com"),
        ("password", PASSWORD),
    ];
    let submit = server.url(&format!("/self-service/registration?flow={flow}"));
    let response = browser.post(&submit).form(&form).send().await.unwrap();
    let id = error_id(&server, &response);

    let (status, body) = fetch_error(server.url(&format!("/self-service/errors?id={id}"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.as_str());
    let error = &body["error"];
    assert_eq!(error["id"], "security_csrf_violation");
    assert_eq!(error["code"], 403);
    assert_eq!(error["status"], "Forbidden");
    assert_eq!(error["message"], "The requested action was forbidden");
    assert!(
        error["reason"].as_str().unwrap().contains("CSRF"),
        "{error}"
    );
    assert!(body["created_at"].is_string() && body["updated_at"].is_string());
    // Nothing the browser sent is kept.
    let text = body.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains(&forged) && !text.contains("mallory"));
    // The admin API serves it too, with and without the /admin prefix.
    for path in ["/admin/self-service/errors", "/self-service/errors"] {
        let (status, admin) = fetch_error(server.admin_url(&format!("{path}?id={id}"))).await;
        assert_eq!((status, &admin), (200, &body), "{path}");
    }
    // The error page shows it.
    let page = browser
        .get(server.url(&format!("/ui/error?id={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Cross-Site-Request-Forgery"), "{page}");
    assert!(page.contains("security_csrf_violation"), "{page}");
    assert!(!page.contains("not known"), "{page}");

    // The same submit from an SPA (JSON) is a 403 with the error, no redirect.
    let response = browser
        .post(&submit)
        .header("Accept", "application/json")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["id"], "security_csrf_violation");
    server.stop().await;
}

async fn unknown_and_tampered_flows(db: Db) {
    let Some(server) = support::start(db, |c| {
        c.selfservice.flows.recovery.enabled = true;
        c.secrets.default = vec!["a-test-secret-of-enough-length".to_owned()];
    })
    .await
    else {
        return;
    };
    let browser = browser_client();
    let real = browser_flow(&browser, &server, "login").await;
    let last = if real.ends_with('0') { "1" } else { "0" };
    let tampered = format!("{}{last}", &real[..real.len() - 1]);
    let cases = [
        ("login", format!("flow={}", uuid::Uuid::new_v4()), 404),
        ("login", "flow=not-a-uuid".to_owned(), 400),
        ("login", String::new(), 400),
        ("login", format!("flow={tampered}"), 404),
        // A registration submit with a login flow's id.
        ("registration", format!("flow={real}"), 404),
    ];
    for (kind, query, code) in &cases {
        let response = browser
            .post(server.url(&format!("/self-service/{kind}?{query}")))
            .form(&[("method", "password"), ("identifier", "x@example.com")])
            .send()
            .await
            .unwrap();
        let id = error_id(&server, &response);
        let (status, body) =
            fetch_error(server.url(&format!("/self-service/errors?id={id}"))).await;
        assert_eq!(
            (status, body["error"]["code"].as_u64()),
            (200, Some(*code)),
            "{query}: {body}"
        );
        // JSON clients get the error itself.
        let response = browser
            .post(server.url(&format!("/self-service/{kind}?{query}")))
            .json(&json!({"method": "password", "identifier": "x@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(u64::from(response.status().as_u16()), *code, "{query}");
    }
    // A mailed recovery link whose flow id was tampered with, opened in the browser.
    let response = browser
        .get(server.url(&format!(
            "/self-service/recovery?flow={}&code=123456",
            uuid::Uuid::new_v4()
        )))
        .send()
        .await
        .unwrap();
    let id = error_id(&server, &response);
    let (_, body) = fetch_error(server.url(&format!("/self-service/errors?id={id}"))).await;
    assert_eq!(body["error"]["code"], 404);
    // An API flow answers JSON even to a form post without Accept.
    let api: Value = api_client()
        .get(server.url("/self-service/login/api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = api_client()
        .post(api["ui"]["action"].as_str().unwrap())
        .header("Cookie", "some=cookie")
        .form(&[("method", "password"), ("identifier", "x@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

async fn expired_flows_restart(db: Db) {
    let Some(server) = support::start(db, |c| {
        c.selfservice.flows.login.lifespan = "1ms".to_owned();
    })
    .await
    else {
        return;
    };
    let browser = browser_client();
    let flow = browser_flow(&browser, &server, "login").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let response = browser
        .post(server.url(&format!("/self-service/login?flow={flow}")))
        .form(&[("method", "password"), ("identifier", "x@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let to = location(&response);
    assert!(to.starts_with(&server.url("/ui/login?flow=")), "{to}");
    assert!(!to.ends_with(&flow), "a new flow: {to}");
    server.stop().await;
}

async fn error_lookups(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    for id in [
        uuid::Uuid::new_v4().to_string(),
        "garbage".to_owned(),
        String::new(),
    ] {
        let (status, body) =
            fetch_error(server.url(&format!("/self-service/errors?id={id}"))).await;
        assert_eq!(status, 404, "{id}");
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(body["error"]["status"], "Not Found");
        assert_eq!(
            body["error"]["message"],
            "The requested resource could not be found"
        );
    }
    let (status, body) = fetch_error(server.url("/self-service/errors?id=stub:500")).await;
    assert_eq!((status, body["error"]["code"].as_u64()), (200, Some(500)));
    assert_eq!(body["id"], "stub:500");
    let page = browser_client()
        .get(server.url(&format!("/ui/error?id={}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("not known"), "{page}");
    server.stop().await;
}

async fn browser_endpoints_forward(db: Db) {
    let Some(server) = support::start(db, |c| {
        c.selfservice.flows.error.ui_url = Some("https://accounts.example/error".to_owned());
    })
    .await
    else {
        return;
    };
    let browser = browser_client();
    let error_of = |response: &reqwest::Response| {
        assert_eq!(response.status(), 303);
        let to = location(response);
        let prefix = "https://accounts.example/error?id=";
        assert!(to.starts_with(prefix), "{to}");
        to[prefix.len()..].to_owned()
    };
    // Browser logout without a session.
    let response = browser
        .get(server.url("/self-service/logout/browser"))
        .send()
        .await
        .unwrap();
    let id = error_of(&response);
    let (_, body) = fetch_error(server.url(&format!("/self-service/errors?id={id}"))).await;
    assert_eq!(body["error"]["code"], 401);
    // A return_to that is not allowed.
    let response = browser
        .get(server.url("/self-service/login/browser?return_to=https://evil.example/"))
        .send()
        .await
        .unwrap();
    let id = error_of(&response);
    let (_, body) = fetch_error(server.url(&format!("/self-service/errors?id={id}"))).await;
    assert_eq!(body["error"]["id"], "self_service_flow_return_to_forbidden");
    // As JSON: the error itself.
    let response = browser
        .get(server.url("/self-service/login/browser?return_to=https://evil.example/"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

dual_db_test!(
    csrf_violation_on_a_browser_form_goes_to_the_error_ui,
    super::csrf_violation
);
dual_db_test!(
    unknown_and_tampered_flow_ids_go_to_the_error_ui,
    super::unknown_and_tampered_flows
);
dual_db_test!(
    expired_browser_flows_get_a_new_flow,
    super::expired_flows_restart
);
dual_db_test!(
    unknown_error_ids_are_404_and_stubs_work,
    super::error_lookups
);
dual_db_test!(
    browser_endpoints_forward_errors_to_the_configured_error_ui,
    super::browser_endpoints_forward
);
dual_db_test!(
    a_settings_flow_of_another_identity_goes_to_the_error_ui,
    super::settings_of_someone_else
);
