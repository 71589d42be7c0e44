//! The courier over real SMTP (the test sink): delivery, retries while the mail server is down,
//! abandonment after `message_retries`, a restart with messages still queued, and the admin API;
//! each against SQLite and PostgreSQL.

mod support;

use std::time::Duration;

use portcullis_smtp_sink::SmtpSink;
use serde_json::{Value, json};
use support::mail::{
    WAIT, admin_create_identity, courier_messages, start_with_mail, wait_for_status,
};
use support::{Db, TestServer, api_client};

/// Starts an API recovery flow for `email`, which queues one mail.
async fn request_recovery(server: &TestServer, email: &str) {
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
        .json(&json!({"method": "code", "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn delivered_and_listed(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |c| {
        c.courier.smtp.from_address = "accounts@example.org".to_owned();
        c.courier.smtp.from_name = Some("Portcullis".to_owned());
    })
    .await
    else {
        return;
    };
    admin_create_identity(&server, "mail@example.com").await;
    request_recovery(&server, "mail@example.com").await;
    let mail = sink.wait_for("mail@example.com", WAIT).await.unwrap();
    assert_eq!(mail.from, "accounts@example.org");
    assert!(mail.header("from").unwrap().contains("Portcullis"));
    assert!(mail.html.as_deref().unwrap().contains("<strong>"));

    let sent = wait_for_status(&server, "mail@example.com", "sent").await;
    assert_eq!(sent["template_type"], "recovery_code_valid");
    assert_eq!(sent["type"], "email");
    assert_eq!(sent["send_count"], 1);
    let id = sent["id"].as_str().unwrap();
    let one: Value = api_client()
        .get(server.admin_url(&format!("/admin/courier/messages/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["dispatches"][0]["status"], "success");
    assert!(courier_messages(&server, "?status=queued").await.is_empty());
    assert_eq!(courier_messages(&server, "?status=sent").await.len(), 1);
    let bad = api_client()
        .get(server.admin_url("/admin/courier/messages?status=lost"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    server.stop().await;
}

async fn retried_until_the_server_is_back(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_refusing(true);
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    admin_create_identity(&server, "retry@example.com").await;
    request_recovery(&server, "retry@example.com").await;
    assert!(sink.wait_for_refusals(2, WAIT).await);
    sink.set_refusing(false);
    let mail = sink.wait_for("retry@example.com", WAIT).await.unwrap();
    assert!(mail.subject.contains("recover"));
    let sent = wait_for_status(&server, "retry@example.com", "sent").await;
    let id = sent["id"].as_str().unwrap();
    let one: Value = api_client()
        .get(server.admin_url(&format!("/admin/courier/messages/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = one["dispatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["status"].as_str())
        .collect();
    assert!(statuses.len() >= 3, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"success"));
    assert!(
        statuses[..statuses.len() - 1]
            .iter()
            .all(|s| *s == "failed")
    );
    // Delivered exactly once to the sink.
    assert_eq!(sink.messages().len(), 1);
    server.stop().await;
}

async fn abandoned_after_the_last_retry(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_refusing(true);
    let Some(server) = start_with_mail(db, &sink, |c| c.courier.message_retries = 2).await else {
        return;
    };
    admin_create_identity(&server, "gone@example.com").await;
    request_recovery(&server, "gone@example.com").await;
    let abandoned = wait_for_status(&server, "gone@example.com", "abandoned").await;
    assert_eq!(abandoned["send_count"], 2);
    sink.set_refusing(false);
    // Nothing goes out for an abandoned message.
    assert!(
        sink.wait_for("gone@example.com", Duration::from_millis(300))
            .await
            .is_err()
    );
    server.stop().await;
}

async fn survives_a_restart(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_refusing(true);
    let Some(mut server) = start_with_mail(db, &sink, |c| {
        c.courier.worker.retry_backoff = "200ms".to_owned();
        c.courier.message_retries = 100;
    })
    .await
    else {
        return;
    };
    admin_create_identity(&server, "restart@example.com").await;
    request_recovery(&server, "restart@example.com").await;
    assert!(sink.wait_for_refusals(1, WAIT).await);
    server.restart(|_| {}).await;
    sink.set_refusing(false);
    let mail = sink.wait_for("restart@example.com", WAIT).await.unwrap();
    assert!(mail.subject.contains("recover"));
    wait_for_status(&server, "restart@example.com", "sent").await;
    server.stop().await;
}

async fn two_replicas_send_each_message_once(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_refusing(true);
    let Some(server) = start_with_mail(db, &sink, |c| {
        c.courier.message_retries = 100;
        c.courier.worker.pull_count = 3;
    })
    .await
    else {
        return;
    };
    let replica = server.replica().await;
    let recipients: Vec<String> = (0..12).map(|i| format!("r{i}@example.com")).collect();
    for email in &recipients {
        admin_create_identity(&server, email).await;
        request_recovery(&server, email).await;
    }
    assert!(sink.wait_for_refusals(1, WAIT).await);
    sink.set_refusing(false);
    for email in &recipients {
        sink.wait_for(email, WAIT).await.unwrap();
        wait_for_status(&server, email, "sent").await;
    }
    assert_eq!(
        sink.messages().len(),
        recipients.len(),
        "no message sent twice"
    );
    replica.shutdown().await;
    server.stop().await;
}

dual_db_test!(
    mail_is_delivered_and_listed_on_the_admin_api,
    super::delivered_and_listed
);
dual_db_test!(
    mail_is_retried_while_the_server_is_down,
    super::retried_until_the_server_is_back
);
dual_db_test!(
    mail_is_abandoned_after_message_retries,
    super::abandoned_after_the_last_retry
);
dual_db_test!(queued_mail_survives_a_restart, super::survives_a_restart);
dual_db_test!(
    two_replicas_send_each_message_once,
    super::two_replicas_send_each_message_once
);
