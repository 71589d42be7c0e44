//! The life of an identity's addresses in the email flows: the backfill of the address index for
//! identities written before it existed, verification status `pending` → `sent` → `completed`
//! from the verification page, recovery marking the recovered address verified, and the mail
//! quota shared by replicas on one database; each against SQLite and PostgreSQL.

mod support;

use std::time::Duration;

use portcullis_smtp_sink::SmtpSink;
use serde_json::{Value, json};
use sqlx::Connection;
use support::mail::{
    WAIT, admin_create_identity, code_of, courier_messages, start_with_mail, ui_message_ids,
};
use support::{Db, TestServer, api_client};

async fn api_flow(base: &str, kind: &str) -> Value {
    let response = api_client()
        .get(format!("{base}/self-service/{kind}/api"))
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

async fn admin_identity(server: &TestServer, id: &str) -> Value {
    let response = api_client()
        .get(server.admin_url(&format!("/admin/identities/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn connect(server: &TestServer) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&server.dsn()).await.unwrap()
}

async fn old_identities_recover_after_the_backfill(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(mut server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    // An identity written the way the first schema version did: the columns of the initial
    // migration only, no address lists and no rows in the address index.
    let id = uuid::Uuid::new_v4().to_string();
    let now = 1_700_000_000_000i64;
    let mut conn = connect(&server).await;
    sqlx::query(
        "INSERT INTO identities (id, schema_id, state, traits, verifiable_addresses, \
         recovery_addresses, metadata_public, metadata_admin, external_id, state_changed_at, \
         created_at, updated_at) VALUES ($1, 'default', 'active', $2, '[]', '[]', NULL, NULL, \
         NULL, $3, $3, $3)",
    )
    .bind(&id)
    .bind(json!({"email": "Old@Example.com"}).to_string())
    .bind(now)
    .execute(&mut conn)
    .await
    .unwrap();

    // The start-up backfill (a restart, as after an upgrade) derives its addresses; until then
    // the address index does not know it.
    server.restart(|_| {}).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let identity = loop {
        let identity = admin_identity(&server, &id).await;
        if identity["recovery_addresses"][0]["value"] == "old@example.com" {
            break identity;
        }
        assert!(tokio::time::Instant::now() < deadline, "{identity}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(identity["recovery_addresses"][0]["via"], "email");
    assert_eq!(
        identity["verifiable_addresses"][0]["value"],
        "old@example.com"
    );
    assert_eq!(identity["verifiable_addresses"][0]["verified"], false);
    assert_eq!(identity["verifiable_addresses"][0]["status"], "pending");

    let flow = api_flow(&server.public, "recovery").await;
    let (status, sent) = post(&flow, json!({"method": "code", "email": "OLD@example.com"})).await;
    assert_eq!(status, 200, "{sent}");
    let code = code_of(&sink.wait_for("old@example.com", WAIT).await.unwrap());
    let (status, done) = post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "passed_challenge");

    // Idempotent: another start leaves one verifiable and one recovery address, as they were.
    let before = admin_identity(&server, &id).await;
    server.restart(|_| {}).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = connect(&server).await;
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM identity_addresses WHERE identity_id = $1")
            .bind(&id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows, 2);
    let after = admin_identity(&server, &id).await;
    assert_eq!(
        before["verifiable_addresses"],
        after["verifiable_addresses"]
    );
    assert_eq!(before["recovery_addresses"], after["recovery_addresses"]);
    server.stop().await;
}

async fn verification_page_moves_the_address_to_sent_then_completed(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    let id = admin_create_identity(&server, "vera@example.com").await;
    let address = |identity: &Value| identity["verifiable_addresses"][0].clone();
    assert_eq!(
        address(&admin_identity(&server, &id).await)["status"],
        "pending"
    );

    let flow = api_flow(&server.public, "verification").await;
    let (status, sent) = post(
        &flow,
        json!({"method": "code", "email": "vera@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let shown = address(&admin_identity(&server, &id).await);
    assert_eq!(shown["status"], "sent", "{shown}");
    assert_eq!(shown["verified"], false);

    let code = code_of(&sink.wait_for("vera@example.com", WAIT).await.unwrap());
    let (status, done) = post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 200, "{done}");
    let shown = address(&admin_identity(&server, &id).await);
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["verified"], true);
    assert!(shown["verified_at"].is_string(), "{shown}");

    // Asking again for a verified address mails a code but does not undo `completed`.
    let flow = api_flow(&server.public, "verification").await;
    let (status, _) = post(
        &flow,
        json!({"method": "code", "email": "vera@example.com"}),
    )
    .await;
    assert_eq!(status, 200);
    let shown = address(&admin_identity(&server, &id).await);
    assert_eq!(
        (shown["status"].clone(), shown["verified"].clone()),
        (json!("completed"), json!(true))
    );
    server.stop().await;
}

async fn recovery_marks_the_address_verified(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    let id = admin_create_identity(&server, "rita@example.com").await;
    let flow = api_flow(&server.public, "recovery").await;
    let (status, sent) = post(
        &flow,
        json!({"method": "code", "email": "rita@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let code = code_of(&sink.wait_for("rita@example.com", WAIT).await.unwrap());
    // A wrong code verifies nothing.
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (status, _) = post(&sent, json!({"method": "code", "code": wrong})).await;
    assert_eq!(status, 400);
    let shown = admin_identity(&server, &id).await["verifiable_addresses"][0].clone();
    assert_eq!(shown["verified"], false);

    let (status, done) = post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 200, "{done}");
    let shown = admin_identity(&server, &id).await["verifiable_addresses"][0].clone();
    assert_eq!(shown["verified"], true, "{shown}");
    assert_eq!(shown["status"], "completed");
    assert!(shown["verified_at"].is_string(), "{shown}");
    server.stop().await;
}

async fn mail_quota_is_shared_by_replicas(db: Db) {
    let sink = SmtpSink::start().await.unwrap();
    let Some(server) = start_with_mail(db, &sink, |_| {}).await else {
        return;
    };
    admin_create_identity(&server, "shared@example.com").await;
    let replica = server.replica().await;
    let bases = [server.public.clone(), replica.settings.public_base.clone()];
    // Seven requests alternating between the two replicas, then three at once on both.
    for i in 0..7 {
        let flow = api_flow(&bases[i % 2], "recovery").await;
        let (status, sent) = post(
            &flow,
            json!({"method": "code", "email": "shared@example.com"}),
        )
        .await;
        assert_eq!((status, ui_message_ids(&sent)), (200, vec![1060003]));
    }
    let mut racing = Vec::new();
    for i in 0..4 {
        let base = bases[i % 2].clone();
        racing.push(tokio::spawn(async move {
            let flow = api_flow(&base, "recovery").await;
            post(
                &flow,
                json!({"method": "code", "email": "shared@example.com"}),
            )
            .await
            .0
        }));
    }
    for task in racing {
        assert_eq!(task.await.unwrap(), 200);
    }
    let queued = courier_messages(&server, "?recipient=shared@example.com").await;
    assert_eq!(
        queued.len(),
        5,
        "five mails per address and window across replicas"
    );
    // Verification has its own quota for the same address.
    let flow = api_flow(&bases[1], "verification").await;
    let (status, _) = post(
        &flow,
        json!({"method": "code", "email": "shared@example.com"}),
    )
    .await;
    assert_eq!(status, 200);
    let queued = courier_messages(&server, "?recipient=shared@example.com").await;
    assert_eq!(queued.len(), 6);
    replica.shutdown().await;
    server.stop().await;
}

dual_db_test!(
    identities_written_before_the_address_index_recover_after_the_backfill,
    super::old_identities_recover_after_the_backfill
);
dual_db_test!(
    verification_page_sets_status_sent_then_completed,
    super::verification_page_moves_the_address_to_sent_then_completed
);
dual_db_test!(
    completed_recovery_marks_the_address_verified,
    super::recovery_marks_the_address_verified
);
dual_db_test!(
    mail_quota_holds_across_two_replicas_on_one_database,
    super::mail_quota_is_shared_by_replicas
);
