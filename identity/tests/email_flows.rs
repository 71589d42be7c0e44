//! Verification and recovery with the `code` and `link` methods over loopback HTTP, with mail
//! delivered over real SMTP to the test sink; each against SQLite and PostgreSQL.

mod support;

use portcullis_smtp_sink::SmtpSink;
use serde_json::{Value, json};
use support::mail::{
    PASSWORD, WAIT, admin_create_identity, code_of, link_of, start_with_mail, ui_message_ids,
};
use support::{Db, TestServer, api_client, browser_client};

async fn api_flow(server: &TestServer, kind: &str) -> Value {
    let response = api_client()
        .get(server.url(&format!("/self-service/{kind}/api")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn post(flow: &Value, body: Value) -> (u16, Value) {
    let action = flow["ui"]["action"].as_str().unwrap();
    let response = api_client().post(action).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
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

async fn verification_after_registration(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    let flow = api_flow(&server, "registration").await;
    let (status, body) = post(
        &flow,
        json!({"method": "password", "password": PASSWORD, "traits": {"email": "Ada@Example.com"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let shown = body["continue_with"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "show_verification_ui")
        .cloned()
        .expect("show_verification_ui");
    assert_eq!(shown["flow"]["verifiable_address"], "ada@example.com");
    assert_eq!(
        body["identity"]["verifiable_addresses"][0]["status"], "sent",
        "{body}"
    );
    let flow_id = shown["flow"]["id"].as_str().unwrap();
    let response = api_client()
        .get(server.url(&format!("/self-service/verification/flows?id={flow_id}")))
        .send()
        .await
        .unwrap();
    let verification: Value = response.json().await.unwrap();
    assert_eq!(verification["state"], "sent_email");
    assert_eq!(ui_message_ids(&verification), vec![1080003]);

    let mail = sink.wait_for("ada@example.com", WAIT).await.unwrap();
    assert!(mail.subject.contains("verify"), "{}", mail.subject);
    let code = code_of(&mail);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (status, failed) = post(&verification, json!({"method": "code", "code": wrong})).await;
    assert_eq!(status, 400);
    assert_eq!(ui_message_ids(&failed), vec![4070006]);

    let (status, passed) = post(&verification, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 200, "{passed}");
    assert_eq!(passed["state"], "passed_challenge");
    assert_eq!(ui_message_ids(&passed), vec![1080002]);

    let id = body["identity"]["id"].as_str().unwrap();
    let identity: Value = api_client()
        .get(server.admin_url(&format!("/admin/identities/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let address = &identity["verifiable_addresses"][0];
    assert_eq!(address["verified"], true);
    assert_eq!(address["status"], "completed");
    assert!(address["verified_at"].is_string());

    // The code is spent: a replay on the finished flow is refused.
    let (status, _) = post(&verification, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 400);
    server.stop().await;
}

async fn recovery_by_code(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    admin_create_identity(&server, "grace@example.com").await;
    let flow = api_flow(&server, "recovery").await;
    assert_eq!(flow["state"], "choose_method");
    let (status, sent) = post(
        &flow,
        json!({"method": "code", "email": "grace@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["state"], "sent_email");
    assert_eq!(ui_message_ids(&sent), vec![1060003]);
    let mail = sink.wait_for("grace@example.com", WAIT).await.unwrap();
    let code = code_of(&mail);

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (status, failed) = post(&sent, json!({"method": "code", "code": wrong})).await;
    assert_eq!(status, 400);
    assert_eq!(ui_message_ids(&failed), vec![4060006]);

    let (status, done) = post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "passed_challenge");
    let actions: Vec<&str> = done["continue_with"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["action"].as_str())
        .collect();
    assert_eq!(actions, vec!["set_ory_session_token", "show_settings_ui"]);
    let token = done["continue_with"][0]["ory_session_token"]
        .as_str()
        .unwrap();
    let settings_id = done["continue_with"][1]["flow"]["id"].as_str().unwrap();

    let whoami: Value = api_client()
        .get(server.url("/sessions/whoami"))
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        whoami["authentication_methods"][0]["method"],
        "code_recovery"
    );

    // The session is privileged: the new password is accepted at once.
    let response = api_client()
        .post(server.url(&format!("/self-service/settings?flow={settings_id}")))
        .header("X-Session-Token", token)
        .json(&json!({"method": "password", "password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let login = api_flow(&server, "login").await;
    let (status, _) = post(
        &login,
        json!({"method": "password", "identifier": "grace@example.com", "password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(status, 200);
    server.stop().await;
}

async fn recovery_does_not_reveal_unknown_addresses(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |c| {
        c.selfservice.flows.recovery.notify_unknown_recipients = true;
    })
    .await
    else {
        return;
    };
    admin_create_identity(&server, "known@example.com").await;
    let mut answers = Vec::new();
    for email in ["known@example.com", "nobody@example.com"] {
        let flow = api_flow(&server, "recovery").await;
        let (status, sent) = post(&flow, json!({"method": "code", "email": email})).await;
        let nodes: Vec<Value> = sent["ui"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| json!([n["attributes"]["name"], n["attributes"]["type"]]))
            .collect();
        answers.push((status, sent["state"].clone(), ui_message_ids(&sent), nodes));
    }
    assert_eq!(answers[0], answers[1]);
    let notice = sink.wait_for("nobody@example.com", WAIT).await.unwrap();
    assert_eq!(notice.subject, "Account access attempted");
    assert!(support::mail::digits(&notice.body, 6).is_none());
    server.stop().await;
}

async fn recovery_attempts_are_limited(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    admin_create_identity(&server, "limit@example.com").await;
    let flow = api_flow(&server, "recovery").await;
    let (_, sent) = post(
        &flow,
        json!({"method": "code", "email": "limit@example.com"}),
    )
    .await;
    let code = code_of(&sink.wait_for("limit@example.com", WAIT).await.unwrap());
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        let (status, failed) = post(&sent, json!({"method": "code", "code": wrong})).await;
        assert_eq!(status, 400);
        assert_eq!(ui_message_ids(&failed), vec![4060006]);
    }
    let (status, blocked) = post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 400);
    assert_eq!(ui_message_ids(&blocked), vec![4000001]);
    // The flow is invalidated: even the right code now meets an expired flow.
    let (status, expired) = post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 410, "{expired}");
    server.stop().await;
}

async fn browser_recovery_ends_in_settings(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    admin_create_identity(&server, "lin@example.com").await;
    let browser = browser_client();
    let response = browser
        .get(server.url("/self-service/recovery/browser"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let ui = location(&response);
    assert!(ui.contains("/ui/recovery?flow="), "{ui}");
    let flow_id = ui.split("flow=").nth(1).unwrap();
    let flow: Value = browser
        .get(server.url(&format!("/self-service/recovery/flows?id={flow_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let action = flow["ui"]["action"].as_str().unwrap().to_owned();
    let response = browser
        .post(&action)
        .form(&[
            ("csrf_token", csrf_of(&flow).as_str()),
            ("method", "code"),
            ("email", "lin@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let code = code_of(&sink.wait_for("lin@example.com", WAIT).await.unwrap());
    let response = browser
        .post(&action)
        .form(&[
            ("csrf_token", csrf_of(&flow).as_str()),
            ("method", "code"),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(location(&response).contains("/ui/settings?flow="));
    let whoami = browser
        .get(server.url("/sessions/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    // Without the CSRF token the form is refused: the browser goes to the error page.
    let again = browser
        .post(&action)
        .form(&[("method", "code"), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303);
    let error_page = location(&again);
    assert!(
        error_page.starts_with(&server.url("/ui/error?id=")),
        "{error_page}"
    );
    let id = error_page.rsplit('=').next().unwrap();
    let error: Value = api_client()
        .get(server.url(&format!("/self-service/errors?id={id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error["error"]["id"], "security_csrf_violation");
    server.stop().await;
}

/// Someone's browser recovery flow, opened by another browser through its bare link: the other
/// browser goes to the flow's page but is never handed the flow's CSRF token (which the flow's
/// creator knows), so no one can plant a CSRF token of theirs in a victim's browser.
async fn foreign_flow_link_plants_no_csrf_cookie(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    let attacker = browser_client();
    let response = attacker
        .get(server.url("/self-service/recovery/browser"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let flow_id = location(&response)
        .split("flow=")
        .nth(1)
        .unwrap()
        .to_owned();
    let victim = browser_client();
    let opened = victim
        .get(server.url(&format!("/self-service/recovery?flow={flow_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 303);
    assert!(location(&opened).contains("/ui/recovery?flow="));
    let planted = opened
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("csrf_token_"));
    assert!(
        !planted,
        "a browser flow's CSRF token was handed to another browser"
    );
    // And the victim's browser cannot read the flow either.
    let fetched = victim
        .get(server.url(&format!("/self-service/recovery/flows?id={flow_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 403);
    server.stop().await;
}

async fn admin_recovery_code_and_link(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    let id = admin_create_identity(&server, "admin-made@example.com").await;
    let response = api_client()
        .post(server.admin_url("/admin/recovery/link"))
        .json(&json!({"identity_id": id, "expires_in": "15m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let link = body["recovery_link"].as_str().unwrap();
    assert!(link.contains("token="));
    let browser = browser_client();
    let response = browser.get(link).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert!(location(&response).contains("/ui/settings?flow="));
    // Single use.
    let replay = browser_client().get(link).send().await.unwrap();
    assert!(!location(&replay).contains("/ui/settings"));

    let response = api_client()
        .post(server.admin_url("/admin/recovery/code"))
        .json(&json!({"identity_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let code = body["recovery_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    let browser = browser_client();
    let opened = browser
        .get(body["recovery_link"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 303);
    let flow_id = location(&opened).split("flow=").nth(1).unwrap().to_owned();
    let flow: Value = browser
        .get(server.url(&format!("/self-service/recovery/flows?id={flow_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(flow["state"], "sent_email");
    let response = browser
        .post(flow["ui"]["action"].as_str().unwrap())
        .form(&[
            ("csrf_token", csrf_of(&flow).as_str()),
            ("method", "code"),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(location(&response).contains("/ui/settings?flow="));

    let unknown = api_client()
        .post(server.admin_url("/admin/recovery/code"))
        .json(&json!({"identity_id": uuid::Uuid::new_v4()}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    server.stop().await;
}

async fn verification_by_link(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |c| {
        c.selfservice.flows.verification.method = "link".to_owned();
    })
    .await
    else {
        return;
    };
    admin_create_identity(&server, "linked@example.com").await;
    let flow = api_flow(&server, "verification").await;
    let (status, sent) = post(
        &flow,
        json!({"method": "link", "email": "linked@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(ui_message_ids(&sent), vec![1080001]);
    let link = link_of(&sink.wait_for("linked@example.com", WAIT).await.unwrap());
    assert!(link.contains("token="), "{link}");
    let response = api_client().get(&link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let passed: Value = response.json().await.unwrap();
    assert_eq!(passed["state"], "passed_challenge");
    server.stop().await;
}

async fn expired_codes_and_tampered_flow_ids(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |c| {
        c.selfservice.methods.code.config.lifespan = "1ms".to_owned();
    })
    .await
    else {
        return;
    };
    admin_create_identity(&server, "late@example.com").await;
    let flow = api_flow(&server, "verification").await;
    let (status, sent) = post(
        &flow,
        json!({"method": "code", "email": "late@example.com"}),
    )
    .await;
    assert_eq!(status, 200);
    let code = code_of(&sink.wait_for("late@example.com", WAIT).await.unwrap());
    let (status, failed) = post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 400, "an expired code is refused");
    assert_eq!(ui_message_ids(&failed), vec![4070006]);

    // Verification answers alike for an address nobody owns.
    let flow = api_flow(&server, "verification").await;
    let (status, unknown) =
        post(&flow, json!({"method": "code", "email": "who@example.com"})).await;
    assert_eq!((status, ui_message_ids(&unknown)), (200, vec![1080003]));

    for query in [
        format!("flow={}", uuid::Uuid::new_v4()),
        "flow=not-a-uuid".to_owned(),
        format!("flow={}", flow["id"].as_str().unwrap().replace('a', "b")),
    ] {
        let response = api_client()
            .post(server.url(&format!("/self-service/recovery?{query}")))
            .json(&json!({"method": "code", "email": "late@example.com"}))
            .send()
            .await
            .unwrap();
        assert!(
            [400, 404].contains(&response.status().as_u16()),
            "{query}: {}",
            response.status()
        );
    }
    // A verification flow id is not a recovery flow.
    let response = api_client()
        .post(server.url(&format!(
            "/self-service/recovery?flow={}",
            flow["id"].as_str().unwrap()
        )))
        .json(&json!({"method": "code", "email": "late@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    server.stop().await;
}

async fn recovery_disabled_by_default(db: Db) {
    let Some(server) = support::start(db, |_| {}).await else {
        return;
    };
    let response = api_client()
        .get(server.url("/self-service/recovery/api"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["id"], "self_service_flow_disabled");
    server.stop().await;
}

async fn recovery_by_link(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |c| {
        c.selfservice.flows.recovery.method = "link".to_owned();
    })
    .await
    else {
        return;
    };
    admin_create_identity(&server, "clicker@example.com").await;
    let flow = api_flow(&server, "recovery").await;
    assert!(
        flow["ui"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["group"] == "link")
    );
    let (status, sent) = post(
        &flow,
        json!({"method": "link", "email": "clicker@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(ui_message_ids(&sent), vec![1060002]);
    let mail = sink.wait_for("clicker@example.com", WAIT).await.unwrap();
    assert_eq!(mail.subject, "Recover access to your account");
    let link = link_of(&mail);
    let response = api_client().get(&link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let done: Value = response.json().await.unwrap();
    assert_eq!(done["state"], "passed_challenge");
    assert_eq!(done["continue_with"][0]["action"], "set_ory_session_token");
    // The link works once.
    let again = api_client().get(&link).send().await.unwrap();
    assert_eq!(again.status(), 400);
    server.stop().await;
}

async fn mails_per_address_are_limited(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    admin_create_identity(&server, "bombed@example.com").await;
    let mut answers = Vec::new();
    for _ in 0..7 {
        let flow = api_flow(&server, "recovery").await;
        let (status, sent) = post(
            &flow,
            json!({"method": "code", "email": "bombed@example.com"}),
        )
        .await;
        answers.push((status, ui_message_ids(&sent)));
    }
    assert!(
        answers.iter().all(|a| *a == (200, vec![1060003])),
        "{answers:?}"
    );
    for _ in 0..5 {
        sink.wait_for("bombed@example.com", WAIT).await.unwrap();
    }
    support::mail::wait_for_status(&server, "bombed@example.com", "sent").await;
    let queued = support::mail::courier_messages(&server, "?recipient=bombed@example.com").await;
    assert_eq!(queued.len(), 5, "five mails per address and window");
    server.stop().await;
}

dual_db_test!(
    verification_after_registration_by_mailed_code,
    super::verification_after_registration
);
dual_db_test!(
    recovery_by_code_ends_in_a_privileged_session,
    super::recovery_by_code
);
dual_db_test!(
    recovery_answers_the_same_for_unknown_addresses,
    super::recovery_does_not_reveal_unknown_addresses
);
dual_db_test!(
    recovery_code_attempts_are_limited_per_flow,
    super::recovery_attempts_are_limited
);
dual_db_test!(
    browser_recovery_redirects_to_settings_with_a_session_cookie,
    super::browser_recovery_ends_in_settings
);
dual_db_test!(
    admin_recovery_code_and_link_work_once,
    super::admin_recovery_code_and_link
);
dual_db_test!(verification_by_mailed_link, super::verification_by_link);
dual_db_test!(
    expired_codes_and_tampered_flow_ids_are_refused,
    super::expired_codes_and_tampered_flow_ids
);
dual_db_test!(
    recovery_is_off_unless_enabled,
    super::recovery_disabled_by_default
);
dual_db_test!(recovery_by_mailed_link, super::recovery_by_link);
dual_db_test!(
    recovery_mails_per_address_are_limited,
    super::mails_per_address_are_limited
);
dual_db_test!(
    a_foreign_flow_link_plants_no_csrf_cookie,
    super::foreign_flow_link_plants_no_csrf_cookie
);
