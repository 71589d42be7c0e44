//! Mail helpers: a server configured with recovery and verification against an SMTP sink, and
//! reading codes and links out of received mail.

use std::time::Duration;

use portcullis_identity::config::{Config, Hook};
use portcullis_smtp_sink::{Message, SmtpSink};
use serde_json::{Value, json};

use super::{Db, TestServer, api_client};

pub const WAIT: Duration = Duration::from_secs(20);
pub const PASSWORD: &str = "correct horse battery staple";

/// Recovery and verification on, the courier pointed at `sink` with fast polling and backoff.
pub fn configure_mail(config: &mut Config, sink: &SmtpSink) {
    config.courier.smtp.connection_uri = Some(sink.connection_uri());
    config.courier.worker.pull_wait = "50ms".to_owned();
    config.courier.worker.retry_backoff = "50ms".to_owned();
    config.secrets.default = vec!["a-test-secret-of-enough-length".to_owned()];
    config.selfservice.flows.recovery.enabled = true;
    config.selfservice.flows.verification.enabled = true;
    config
        .selfservice
        .flows
        .registration
        .after
        .hooks
        .push(Hook {
            hook: "show_verification_ui".to_owned(),
        });
}

/// A server with mail configured (plus `more`); `None` when PostgreSQL is unreachable.
pub async fn start_with_mail(
    db: Db,
    sink: &SmtpSink,
    more: impl FnOnce(&mut Config),
) -> Option<TestServer> {
    super::start(db, |c| {
        configure_mail(c, sink);
        more(c);
    })
    .await
}

/// The first run of exactly `len` ASCII digits in `text`.
pub fn digits(text: &str, len: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == len {
                return Some(text[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    None
}

/// The 6-digit code of a mail.
pub fn code_of(mail: &Message) -> String {
    digits(&mail.body, 6).unwrap_or_else(|| panic!("no code in {:?}", mail.body))
}

/// The first `http://` link of a mail.
pub fn link_of(mail: &Message) -> String {
    let start = mail.body.find("http://").expect("a link in the mail");
    mail.body[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Creates an identity with a password through the admin API; returns its id.
pub async fn admin_create_identity(server: &TestServer, email: &str) -> String {
    let response = api_client()
        .post(server.admin_url("/admin/identities"))
        .json(&json!({
            "schema_id": "default",
            "traits": {"email": email},
            "credentials": {"password": {"config": {"password": PASSWORD}}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// Message ids on `ui.messages`.
pub fn ui_message_ids(flow: &Value) -> Vec<u64> {
    flow["ui"]["messages"]
        .as_array()
        .map(|l| l.iter().filter_map(|m| m["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// `GET /admin/courier/messages` with a query string.
pub async fn courier_messages(server: &TestServer, query: &str) -> Vec<Value> {
    let response = api_client()
        .get(server.admin_url(&format!("/admin/courier/messages{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls the admin API until a message to `recipient` has `status`; returns it.
pub async fn wait_for_status(server: &TestServer, recipient: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = courier_messages(server, &format!("?recipient={recipient}")).await;
        if let Some(m) = list.iter().find(|m| m["status"] == status) {
            return m.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message to {recipient} reached {status}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
