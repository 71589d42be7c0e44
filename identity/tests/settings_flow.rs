//! The settings flow over loopback HTTP, against SQLite and PostgreSQL: profile and password
//! changes for API and browser clients, the privileged-session rule, and identity ownership.

mod support;

use serde_json::{Value, json};
use support::{Db, TestServer, api_client, browser_client};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "an entirely new passphrase";

async fn register(server: &TestServer, email: &str) -> String {
    support::api_register_token(&server.public, email).await
}

async fn login_status(server: &TestServer, identifier: &str, password: &str) -> u16 {
    let flow: Value = api_client()
        .get(server.url("/self-service/login/api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    api_client()
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "identifier": identifier, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn settings_flow(server: &TestServer, token: &str) -> Value {
    let response = api_client()
        .get(server.url("/self-service/settings/api"))
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn submit(flow: &Value, token: &str, body: Value) -> (u16, Value) {
    let response = api_client()
        .post(flow["ui"]["action"].as_str().unwrap())
        .header("X-Session-Token", token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn api_settings(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let token = register(&server, "sue@example.com").await;
    let unauthenticated = api_client()
        .get(server.url("/self-service/settings/api"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let flow = settings_flow(&server, &token).await;
    assert_eq!(flow["state"], "show_form");
    assert_eq!(flow["identity"]["traits"]["email"], "sue@example.com");
    let email_node = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.email")
        .unwrap();
    assert_eq!(email_node["attributes"]["value"], "sue@example.com");
    assert_eq!(email_node["group"], "profile");

    let (status, done) = submit(
        &flow,
        &token,
        json!({
            "method": "profile", "traits": {"email": "sue@example.com", "name": {"first": "Sue"}}
        }),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "success");
    assert_eq!(done["ui"]["messages"][0]["id"], 1050001);
    let whoami: Value = api_client()
        .get(server.url("/sessions/whoami"))
        .header("X-Session-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["identity"]["traits"]["name"]["first"], "Sue");

    let flow = settings_flow(&server, &token).await;
    let (status, failed) = submit(
        &flow,
        &token,
        json!({"method": "password", "password": "short"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(failed["identity"]["traits"]["email"], "sue@example.com");
    let (status, _) = submit(
        &flow,
        &token,
        json!({"method": "password", "password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        login_status(&server, "sue@example.com", PASSWORD).await,
        400
    );
    assert_eq!(
        login_status(&server, "sue@example.com", NEW_PASSWORD).await,
        200
    );

    // Changing the login identifier moves it.
    let flow = settings_flow(&server, &token).await;
    let (status, _) = submit(
        &flow,
        &token,
        json!({"method": "profile", "traits": {"email": "sue2@example.com"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        login_status(&server, "sue2@example.com", NEW_PASSWORD).await,
        200
    );

    // Someone else's flow is refused.
    let other = register(&server, "tom@example.com").await;
    let (status, body) = submit(
        &flow,
        &other,
        json!({"method": "profile", "traits": {"email": "x@example.com"}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    server.stop().await;
}
dual_db_test!(
    settings_profile_and_password_for_api_clients,
    super::api_settings
);

async fn privileged(db: Db) {
    let Some(server) = support::start(db, |c| {
        c.selfservice.flows.settings.privileged_session_max_age = "0s".to_owned();
    })
    .await
    else {
        return;
    };
    let token = register(&server, "una@example.com").await;
    let flow = settings_flow(&server, &token).await;
    let (status, body) = submit(
        &flow,
        &token,
        json!({"method": "password", "password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["id"], "session_refresh_required");
    assert!(
        body["redirect_browser_to"]
            .as_str()
            .unwrap()
            .contains("/self-service/login/browser?refresh=true")
    );
    // Non-identifier profile changes are still fine.
    let (status, _) = submit(
        &flow,
        &token,
        json!({"method": "profile", "traits": {"email": "una@example.com", "name": {"last": "U"}}}),
    )
    .await;
    assert_eq!(status, 200);
    server.stop().await;
}
dual_db_test!(
    password_change_needs_a_privileged_session,
    super::privileged
);

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn csrf_from_html(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

async fn browser_settings(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let browser = browser_client();
    let response = browser
        .get(server.url("/self-service/settings/browser"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(location(&response).contains("/self-service/login/browser?return_to="));

    // Sign up through the browser flow.
    let response = browser
        .get(server.url("/self-service/registration/browser"))
        .send()
        .await
        .unwrap();
    let ui = location(&response);
    let flow_id = ui.rsplit('=').next().unwrap().to_owned();
    let page = browser.get(&ui).send().await.unwrap().text().await.unwrap();
    let response = browser
        .post(server.url(&format!("/self-service/registration?flow={flow_id}")))
        .form(&[
            ("csrf_token", csrf_from_html(&page).as_str()),
            ("method", "password"),
            ("traits.email", "vic@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);

    let response = browser
        .get(server.url("/self-service/settings/browser"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let ui = location(&response);
    assert!(ui.starts_with(&server.url("/ui/settings?flow=")), "{ui}");
    let flow_id = ui.rsplit('=').next().unwrap().to_owned();
    let page = browser.get(&ui).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("value=\"vic@example.com\""), "{page}");
    let response = browser
        .post(server.url(&format!("/self-service/settings?flow={flow_id}")))
        .form(&[
            ("csrf_token", csrf_from_html(&page).as_str()),
            ("method", "profile"),
            ("traits.email", "vic@example.com"),
            ("traits.name.first", "Vic"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), ui);
    let page = browser.get(&ui).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Your changes have been saved!"), "{page}");
    let whoami: Value = browser
        .get(server.url("/sessions/whoami"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["identity"]["traits"]["name"]["first"], "Vic");

    // Without the CSRF token the submit is refused: the browser goes to the error page, which
    // explains why.
    let response = browser
        .post(server.url(&format!("/self-service/settings?flow={flow_id}")))
        .form(&[("method", "profile"), ("traits.email", "vic@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let error_page = location(&response);
    assert!(
        error_page.starts_with(&server.url("/ui/error?id=")),
        "{error_page}"
    );
    let page = browser
        .get(&error_page)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("security_csrf_violation"), "{page}");
    server.stop().await;
}
dual_db_test!(settings_through_the_builtin_ui, super::browser_settings);
