//! Browser self-service flows over loopback HTTP, against SQLite and PostgreSQL: the 303 to the
//! UI, the CSRF cookie and token (rejections with 403), the session cookie, the built-in HTML UI
//! and browser logout.

mod support;

use serde_json::{Value, json};
use support::{Db, TestServer, browser_client};

const PASSWORD: &str = "correct horse battery staple";

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

fn csrf_value(flow: &Value) -> String {
    flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "csrf_token")
        .and_then(|n| n["attributes"]["value"].as_str())
        .unwrap()
        .to_owned()
}

/// Creates a browser flow as an SPA would (Accept: application/json).
async fn spa_flow(client: &reqwest::Client, server: &TestServer, kind: &str) -> Value {
    let response = client
        .get(server.url(&format!("/self-service/{kind}/browser")))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        set_cookies(&response)
            .iter()
            .any(|c| c.starts_with("csrf_token_"))
            || kind == "login"
    );
    response.json().await.unwrap()
}

async fn csrf_rejection(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let browser = browser_client();
    let flow = spa_flow(&browser, &server, "registration").await;
    assert_eq!(flow["type"], "browser");
    let action = flow["ui"]["action"].as_str().unwrap();
    let body = |csrf: Option<&str>| {
        let mut b = json!({"method": "password", "password": PASSWORD, "traits": {"email": "g@example.com"}});
        if let Some(c) = csrf {
            b["csrf_token"] = json!(c);
        }
        b
    };
    // No token.
    let response = browser.post(action).json(&body(None)).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["id"], "security_csrf_violation");
    // A token that is not the cookie's.
    let forged = "A".repeat(88);
    let response = browser
        .post(action)
        .json(&body(Some(&forged)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // The right token but no cookie (another client).
    let response = support::api_client()
        .post(action)
        .json(&body(Some(&csrf_value(&flow))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // Fetching a browser flow without its cookie is refused too.
    let response = support::api_client()
        .get(server.url(&format!(
            "/self-service/registration/flows?id={}",
            flow["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // With cookie and token: a session cookie and the SPA's redirect instruction.
    let response = browser
        .post(action)
        .json(&body(Some(&csrf_value(&flow))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookies = set_cookies(&response);
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("ory_kratos_session="))
        .expect("session cookie");
    assert!(session_cookie.contains("HttpOnly"));
    assert!(session_cookie.contains("SameSite=Lax"));
    assert!(session_cookie.contains("Path=/"));
    assert!(
        !session_cookie.contains("Secure"),
        "plain http must not set Secure"
    );
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["continue_with"][0]["action"], "redirect_browser_to");
    assert!(result.get("session_token").is_none());
    let whoami = browser
        .get(server.url("/sessions/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    server.stop().await;
}
dual_db_test!(
    browser_flow_rejects_missing_or_wrong_csrf,
    super::csrf_rejection
);

fn hidden_csrf_from_html(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

async fn html_journey(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let browser = browser_client();
    // No Accept header: a browser. 303 to the built-in UI.
    let response = browser
        .get(server.url("/self-service/registration/browser"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let ui = location(&response);
    assert!(
        ui.starts_with(&server.url("/ui/registration?flow=")),
        "{ui}"
    );
    let flow_id = ui.rsplit('=').next().unwrap().to_owned();
    let page = browser.get(&ui).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<form"));
    assert!(page.contains("name=\"traits.email\""));
    assert!(page.contains("<label"));
    let csrf = hidden_csrf_from_html(&page);

    // A failing submit goes back to the UI, which shows the message.
    let response = browser
        .post(server.url(&format!("/self-service/registration?flow={flow_id}")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("method", "password"),
            ("traits.email", "hana@example.com"),
            ("password", "short"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), ui);
    let page = browser.get(&ui).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("at least 8 characters"), "{page}");
    assert!(page.contains("value=\"hana@example.com\""));

    let csrf = hidden_csrf_from_html(&page);
    let response = browser
        .post(server.url(&format!("/self-service/registration?flow={flow_id}")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("method", "password"),
            ("traits.email", "hana@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), server.url("/ui/welcome"));
    assert!(
        set_cookies(&response)
            .iter()
            .any(|c| c.starts_with("ory_kratos_session="))
    );

    let welcome = browser
        .get(server.url("/ui/welcome"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(welcome.contains("hana@example.com"), "{welcome}");
    assert!(welcome.contains("Sign out"));

    // Starting registration again while signed in goes to the return URL.
    let response = browser
        .get(server.url("/self-service/login/browser"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), server.url("/ui/welcome"));

    // Browser logout: logout URL, then follow it.
    let logout: Value = browser
        .get(server.url("/self-service/logout/browser"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logout_url = logout["logout_url"].as_str().unwrap();
    assert!(
        logout["logout_token"]
            .as_str()
            .unwrap()
            .starts_with("ory_lo_")
    );
    let response = browser.get(logout_url).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert!(
        set_cookies(&response)
            .iter()
            .any(|c| c.starts_with("ory_kratos_session=;"))
    );
    let whoami = browser
        .get(server.url("/sessions/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 401);

    // Log in again through the HTML login form.
    let response = browser
        .get(server.url("/self-service/login/browser"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let ui = location(&response);
    let flow_id = ui.rsplit('=').next().unwrap().to_owned();
    let page = browser.get(&ui).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_csrf_from_html(&page);
    let response = browser
        .post(server.url(&format!("/self-service/login?flow={flow_id}")))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("method", "password"),
            ("identifier", "hana@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let whoami: Value = browser
        .get(server.url("/sessions/whoami"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["identity"]["traits"]["email"], "hana@example.com");
    server.stop().await;
}
dual_db_test!(
    html_registration_login_logout_through_builtin_ui,
    super::html_journey
);

async fn return_to_allow_list(db: Db) {
    let Some(server) = support::start(db, |c| {
        c.selfservice.allowed_return_urls = vec!["https://app.example.com/".to_owned()];
    })
    .await
    else {
        return;
    };
    let browser = browser_client();
    // A browser is sent to the error UI; an SPA gets the error.
    let forbidden = browser
        .get(server.url("/self-service/login/browser?return_to=https://evil.example.net/"))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 303);
    assert!(location(&forbidden).starts_with(&server.url("/ui/error?id=")));
    let forbidden = browser
        .get(server.url("/self-service/login/browser?return_to=https://evil.example.net/"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 400);
    let body: Value = forbidden.json().await.unwrap();
    assert_eq!(body["error"]["id"], "self_service_flow_return_to_forbidden");
    let allowed = browser
        .get(server.url("/self-service/login/browser?return_to=https://app.example.com/dashboard"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let flow: Value = allowed.json().await.unwrap();
    assert_eq!(flow["return_to"], "https://app.example.com/dashboard");
    server.stop().await;
}
dual_db_test!(return_to_must_be_allow_listed, super::return_to_allow_list);

async fn health_version_schemas(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let client = support::api_client();
    for base in [&server.public, &server.admin] {
        for path in ["/health/alive", "/health/ready"] {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"], "ok");
        }
        let version: Value = client
            .get(format!("{base}/version"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(version["version"].as_str().unwrap().starts_with('v'));
    }
    let schemas: Value = client
        .get(server.url("/schemas"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schemas[0]["id"], "default");
    for id in ["default", "ZGVmYXVsdA"] {
        let response = client
            .get(server.url(&format!("/schemas/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = client
        .get(server.url("/schemas/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    server.stop().await;
}
dual_db_test!(
    health_version_and_schemas_answer,
    super::health_version_schemas
);
