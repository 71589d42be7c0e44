//! TOTP over loopback HTTP, against SQLite and PostgreSQL: enrolment in settings (QR as a PNG
//! data URI, secret encrypted at rest), whoami's `session_aal2_required` for an AAL1 session,
//! the AAL2 step-up login (wrong code 4000008, a code reused within its window refused), unlink.

mod support;

use portcullis_identity::totp::Secret;
use serde_json::{Value, json};
use support::mail::PASSWORD;
use support::{Db, TestServer, api_client};

const CIPHER: &str = "0123456789abcdef0123456789abcdef";

async fn start(db: Db) -> Option<TestServer> {
    support::start(db, |c| {
        c.selfservice.methods.totp.enabled = true;
        c.selfservice.methods.lookup_secret.enabled = true;
        c.selfservice.methods.totp.config.issuer = Some("Portcullis Test".to_owned());
        c.secrets.cipher = vec![CIPHER.to_owned()];
    })
    .await
}

async fn get_json(url: String, token: &str) -> (u16, Value) {
    let response = api_client()
        .get(url)
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post_json(url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = api_client().post(url).json(&body);
    if let Some(t) = token {
        request = request.header("X-Session-Token", t);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn password_login(server: &TestServer, email: &str) -> String {
    let (_, flow) = get_json(server.url("/self-service/login/api"), "").await;
    let (status, body) = post_json(
        flow["ui"]["action"].as_str().unwrap(),
        None,
        json!({"method": "password", "identifier": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["session_token"].as_str().unwrap().to_owned()
}

fn node<'a>(flow: &'a Value, id_or_name: &str) -> Option<&'a Value> {
    flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["id"] == id_or_name || n["attributes"]["name"] == id_or_name)
}

fn now_step() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now / 30
}

async fn totp_journey(db: Db) {
    let Some(server) = start(db).await else {
        return;
    };
    let email = "otp@example.com";
    let (_, flow) = get_json(server.url("/self-service/registration/api"), "").await;
    let (status, body) = post_json(
        flow["ui"]["action"].as_str().unwrap(),
        None,
        json!({"method": "password", "password": PASSWORD, "traits": {"email": email}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_owned();
    let identity_id = body["identity"]["id"].as_str().unwrap().to_owned();

    // Enrol.
    let (status, settings) = get_json(server.url("/self-service/settings/api"), &token).await;
    assert_eq!(status, 200);
    let qr = node(&settings, "totp_qr").expect("totp_qr node");
    assert!(
        qr["attributes"]["src"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    let secret_text = node(&settings, "totp_secret_key").expect("totp_secret_key node");
    let secret_b32 = secret_text["attributes"]["text"]["context"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = Secret::from_base32(&secret_b32).unwrap();
    assert!(node(&settings, "totp_code").is_some());
    let action = settings["ui"]["action"].as_str().unwrap().to_owned();
    let (status, failed) = post_json(
        &action,
        Some(&token),
        json!({"method": "totp", "totp_code": "12345x"}),
    )
    .await;
    assert_eq!(status, 400, "{failed}");
    let step = now_step();
    let (status, saved) = post_json(
        &action,
        Some(&token),
        json!({"method": "totp", "totp_code": secret.code_at(step)}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert!(node(&saved, "totp_unlink").is_some(), "{saved}");
    // Enrolling proved the factor: this session is AAL2 now.
    let (status, whoami) = get_json(server.url("/sessions/whoami"), &token).await;
    assert_eq!(status, 200);
    assert_eq!(whoami["authenticator_assurance_level"], "aal2");

    // At rest the secret is encrypted.
    let (_, admin) = get_json(
        server.admin_url(&format!(
            "/admin/identities/{identity_id}?include_credential=totp"
        )),
        "",
    )
    .await;
    let stored = admin["credentials"]["totp"]["config"].to_string();
    assert!(!stored.contains(&secret_b32), "{stored}");

    // A new password session is AAL1: whoami wants the second factor.
    let aal1 = password_login(&server, email).await;
    let (status, denied) = get_json(server.url("/sessions/whoami"), &aal1).await;
    assert_eq!(status, 403);
    assert_eq!(denied["error"]["id"], "session_aal2_required");
    assert!(
        denied["redirect_browser_to"]
            .as_str()
            .unwrap()
            .contains("aal=aal2")
    );

    // Settings want the second factor too (`highest_available`).
    let (status, denied) = get_json(server.url("/self-service/settings/api"), &aal1).await;
    assert_eq!(status, 403);
    assert_eq!(denied["error"]["id"], "session_aal2_required");

    // Step up.
    let (status, login) = get_json(server.url("/self-service/login/api?aal=aal2"), &aal1).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["requested_aal"], "aal2");
    let action = login["ui"]["action"].as_str().unwrap().to_owned();
    let (status, wrong) = post_json(
        &action,
        Some(&aal1),
        json!({"method": "totp", "totp_code": "000000"}),
    )
    .await;
    assert_eq!(status, 400);
    let ids: Vec<u64> = node(&wrong, "totp_code").unwrap()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![4000008]);
    // The step used to enrol cannot be used again.
    let (status, _) = post_json(
        &action,
        Some(&aal1),
        json!({"method": "totp", "totp_code": secret.code_at(step)}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, upgraded) = post_json(
        &action,
        Some(&aal1),
        json!({"method": "totp", "totp_code": secret.code_at(step + 1)}),
    )
    .await;
    assert_eq!(status, 200, "{upgraded}");
    assert_eq!(upgraded["session"]["authenticator_assurance_level"], "aal2");
    let methods: Vec<&str> = upgraded["session"]["authentication_methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["method"].as_str())
        .collect();
    assert_eq!(methods, vec!["password", "totp"]);
    let (status, _) = get_json(server.url("/sessions/whoami"), &aal1).await;
    assert_eq!(status, 200);

    // Unlink: password sessions are enough again.
    let (_, settings) = get_json(server.url("/self-service/settings/api"), &aal1).await;
    let (status, unlinked) = post_json(
        settings["ui"]["action"].as_str().unwrap(),
        Some(&aal1),
        // Kratos-style UIs post only the button's own field; the method is inferred.
        json!({"totp_unlink": true}),
    )
    .await;
    assert_eq!(status, 200, "{unlinked}");
    assert!(node(&unlinked, "totp_qr").is_some());
    let fresh = password_login(&server, email).await;
    let (status, whoami) = get_json(server.url("/sessions/whoami"), &fresh).await;
    assert_eq!(status, 200);
    assert_eq!(whoami["authenticator_assurance_level"], "aal1");
    server.stop().await;
}

async fn lookup_journey(db: Db) {
    let Some(server) = start(db).await else {
        return;
    };
    let email = "codes@example.com";
    let (_, flow) = get_json(server.url("/self-service/registration/api"), "").await;
    let (_, body) = post_json(
        flow["ui"]["action"].as_str().unwrap(),
        None,
        json!({"method": "password", "password": PASSWORD, "traits": {"email": email}}),
    )
    .await;
    let token = body["session_token"].as_str().unwrap().to_owned();
    let (_, settings) = get_json(server.url("/self-service/settings/api"), &token).await;
    assert!(node(&settings, "lookup_secret_regenerate").is_some());
    let action = settings["ui"]["action"].as_str().unwrap().to_owned();
    let (status, shown) = post_json(
        &action,
        Some(&token),
        json!({"method": "lookup_secret", "lookup_secret_regenerate": true}),
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    let codes: Vec<String> =
        node(&shown, "lookup_secret_codes").unwrap()["attributes"]["text"]["context"]["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(codes.len(), 12);
    let (status, saved) = post_json(
        &action,
        Some(&token),
        json!({"method": "lookup_secret", "lookup_secret_confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert!(node(&saved, "lookup_secret_disable").is_some());

    let aal1 = password_login(&server, email).await;
    let (status, _) = get_json(server.url("/sessions/whoami"), &aal1).await;
    assert_eq!(status, 403);
    let (_, login) = get_json(server.url("/self-service/login/api?aal=aal2"), &aal1).await;
    assert!(node(&login, "lookup_secret").is_some());
    assert!(node(&login, "totp_code").is_none(), "no TOTP enrolled");
    let action = login["ui"]["action"].as_str().unwrap().to_owned();
    let (status, upgraded) = post_json(
        &action,
        Some(&aal1),
        json!({"method": "lookup_secret", "lookup_secret": codes[0]}),
    )
    .await;
    assert_eq!(status, 200, "{upgraded}");
    assert_eq!(upgraded["session"]["authenticator_assurance_level"], "aal2");

    // Each code works once.
    let other = password_login(&server, email).await;
    let (_, login) = get_json(server.url("/self-service/login/api?aal=aal2"), &other).await;
    let (status, refused) = post_json(
        login["ui"]["action"].as_str().unwrap(),
        Some(&other),
        json!({"method": "lookup_secret", "lookup_secret": codes[0]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        node(&refused, "lookup_secret").unwrap()["messages"][0]["id"],
        4000016
    );

    // Reveal, with the method inferred from the button as Kratos does: the same codes again,
    // the used one marked with its time.
    let (status, settings) = get_json(server.url("/self-service/settings/api"), &aal1).await;
    assert_eq!(status, 200, "{settings}");
    assert!(
        node(&settings, "lookup_secret_reveal").is_some(),
        "{settings}"
    );
    let (status, revealed) = post_json(
        settings["ui"]["action"].as_str().unwrap(),
        Some(&aal1),
        json!({"lookup_secret_reveal": true}),
    )
    .await;
    assert_eq!(status, 200, "{revealed}");
    let secrets = node(&revealed, "lookup_secret_codes").unwrap()["attributes"]["text"]["context"]
        ["secrets"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(secrets.len(), 12);
    assert_eq!(secrets[0]["id"], 1050013);
    assert!(
        secrets[0]["context"]["used_at"].is_string(),
        "{}",
        secrets[0]
    );
    let unused: Vec<String> = secrets[1..]
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unused, codes[1..].to_vec());
    assert!(node(&revealed, "lookup_secret_regenerate").is_some());
    server.stop().await;
}

dual_db_test!(totp_enrol_step_up_and_unlink, super::totp_journey);
dual_db_test!(backup_codes_step_up_once_each, super::lookup_journey);
