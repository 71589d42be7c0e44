//! Identity schemas from the operator's `identity-schemas` stream: a real stream server (the
//! `portcullis-stream` publisher) over loopback, the identity service started with no schema file,
//! ready once the snapshot arrives, and later snapshots swapping the set (an invalid one is never
//! served).

mod support;

use portcullis_identity::schema_stream::StreamSettings;
use portcullis_stream::{Publisher, StreamToken, TOPIC_IDENTITY_SCHEMAS};
use serde_json::{Value, json};
use support::{Db, api_client};

fn schema(property: &str) -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"traits": {"type": "object", "properties": {
            property: {"type": "string", "format": "email",
                "ory.sh/kratos": {"credentials": {"password": {"identifier": true}}}}
        }, "required": [property]}}
    })
}

/// Polls until `check` holds for the body of GET `url` (a condition, not a fixed delay).
async fn wait_until(url: &str, check: impl Fn(u16, &Value) -> bool) {
    for _ in 0..200 {
        if let Ok(r) = api_client().get(url).send().await {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if check(status, &body) {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("condition on {url} never held");
}

async fn streamed(db: Db) {
    let publisher = Publisher::new();
    let token = StreamToken::new("stream-token-for-tests").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stream_addr = listener.local_addr().unwrap();
    let router = portcullis_stream::server::router(publisher.clone(), token.clone());
    let server_task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    publisher
        .publish(
            TOPIC_IDENTITY_SCHEMAS,
            vec![json!({"id": "team/customers", "default": true, "schema": schema("email")})],
        )
        .unwrap();

    let Some(server) = support::start(db, |c| {
        c.identity.schemas.clear();
        c.stream = Some(StreamSettings {
            url: url::Url::parse(&format!("http://{stream_addr}/")).unwrap(),
            token: token.clone(),
            cache: None,
        });
    })
    .await
    else {
        server_task.abort();
        return;
    };
    wait_until(&server.url("/health/ready"), |s, _| s == 200).await;
    let schemas: Value = api_client()
        .get(server.url("/schemas"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schemas[0]["id"], "team/customers");
    let flow: Value = api_client()
        .get(server.url("/self-service/registration/api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let registered = api_client()
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "password": "correct horse battery staple", "traits": {"email": "wes@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    let body: Value = registered.json().await.unwrap();
    assert_eq!(body["identity"]["schema_id"], "team/customers");

    // An invalid snapshot (no traits) is never served; a valid new one replaces the set.
    publisher
        .publish(
            TOPIC_IDENTITY_SCHEMAS,
            vec![json!({"id": "broken", "default": true, "schema": {"type": "object"}})],
        )
        .unwrap();
    publisher
        .publish(
            TOPIC_IDENTITY_SCHEMAS,
            vec![
                json!({"id": "team/customers", "default": false, "schema": schema("email")}),
                json!({"id": "team/staff", "default": true, "schema": schema("work_email")}),
            ],
        )
        .unwrap();
    wait_until(&server.url("/schemas"), |_, b| {
        b.as_array()
            .is_some_and(|l| l.iter().any(|s| s["id"] == "team/staff"))
    })
    .await;
    let schemas: Value = api_client()
        .get(server.url("/schemas"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !schemas
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "broken")
    );
    let flow: Value = api_client()
        .get(server.url("/self-service/registration/api"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        flow["ui"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["attributes"]["name"] == "traits.work_email")
    );
    server.stop().await;
    server_task.abort();
}
dual_db_test!(identity_schemas_follow_the_operator_stream, super::streamed);
