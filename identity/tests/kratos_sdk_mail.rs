//! Ory's own Rust SDK (`ory-kratos-client`) against the courier and admin recovery endpoints, so
//! field names and enums are checked by a client we did not write; SQLite and PostgreSQL.

mod support;

use ory_kratos_client::apis::configuration::Configuration;
use ory_kratos_client::apis::{courier_api, identity_api};
use ory_kratos_client::models::{
    CourierMessageStatus, CreateRecoveryCodeForIdentityBody, CreateRecoveryLinkForIdentityBody,
    message::TemplateTypeEnum,
};
use portcullis_smtp_sink::SmtpSink;
use serde_json::{Value, json};
use support::mail::{WAIT, admin_create_identity, start_with_mail, wait_for_status};
use support::{Db, api_client};

fn config(base: &str) -> Configuration {
    Configuration {
        base_path: base.to_owned(),
        ..Configuration::default()
    }
}

async fn sdk_reads_courier_and_recovery(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    let admin = config(&server.admin);
    let id = admin_create_identity(&server, "sdk@example.com").await;

    let code = identity_api::create_recovery_code_for_identity(
        &admin,
        Some(CreateRecoveryCodeForIdentityBody::new(id.clone())),
    )
    .await
    .unwrap();
    assert_eq!(code.recovery_code.len(), 6);
    assert!(code.recovery_link.contains("/self-service/recovery?flow="));
    let link = identity_api::create_recovery_link_for_identity(
        &admin,
        None,
        Some(CreateRecoveryLinkForIdentityBody::new(id)),
    )
    .await
    .unwrap();
    assert!(link.recovery_link.contains("token="));

    let flow: Value = api_client()
        .get(server.url("/self-service/recovery/api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = api_client()
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "code", "email": "sdk@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    sink.wait_for("sdk@example.com", WAIT).await.unwrap();
    wait_for_status(&server, "sdk@example.com", "sent").await;

    let sent = courier_api::list_courier_messages(
        &admin,
        Some(10),
        None,
        Some(CourierMessageStatus::Sent),
        Some("sdk@example.com"),
    )
    .await
    .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].template_type, TemplateTypeEnum::RecoveryCodeValid);
    let one = courier_api::get_courier_message(&admin, &sent[0].id)
        .await
        .unwrap();
    assert_eq!(one.send_count, 1);
    assert_eq!(one.dispatches.map(|d| d.len()), Some(1));
    server.stop().await;
}

dual_db_test!(
    kratos_sdk_reads_courier_messages_and_admin_recovery,
    super::sdk_reads_courier_and_recovery
);
