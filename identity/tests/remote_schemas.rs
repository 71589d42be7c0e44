//! Identity schemas from `http://` URLs (Kratos' `identity.schemas[].url`): fetched at start-up
//! from a real HTTP server on loopback, retried while the server answers 5xx, served at
//! `/schemas/{id}` and enforced on registration; a schema that cannot be fetched fails start-up
//! with an error naming it.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use portcullis_identity::config::SchemaRef;
use serde_json::{Value, json};
use support::{Db, api_client};

fn person_schema() -> Value {
    json!({
        "$id": "https://schemas.example.com/person.json",
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Person",
        "type": "object",
        "properties": {"traits": {
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email", "title": "E-Mail",
                    "ory.sh/kratos": {"credentials": {"password": {"identifier": true}}}},
                "name": {"type": "string", "title": "Name", "minLength": 1}
            },
            "required": ["email", "name"],
            "additionalProperties": false
        }}
    })
}

/// Serves the person schema at `/person.json` after answering 503 `failures` times, and 404
/// everywhere else; returns its address and the request count.
async fn schema_server(failures: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/person.json",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < failures {
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                } else {
                    axum::Json(person_schema()).into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, hits)
}

async fn register(server: &support::TestServer, traits: Value) -> (u16, Value) {
    support::api_register(&server.public, traits).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_schema_is_fetched_retried_served_and_enforced() {
    let (addr, hits) = schema_server(2).await;
    let url = format!("http://{addr}/person.json");
    let Some(server) = support::start(Db::Sqlite, |config| {
        config.identity.schemas.push(SchemaRef {
            id: "person".to_owned(),
            url: url.clone(),
        });
        config.identity.default_schema_id = "person".to_owned();
    })
    .await
    else {
        return;
    };
    assert_eq!(hits.load(Ordering::SeqCst), 3, "two 503s, then the schema");

    let served: Value = api_client()
        .get(server.url("/schemas/person"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, person_schema());

    let (status, flow) = register(&server, json!({"email": "remote@example.com"})).await;
    assert_eq!(status, 400, "{flow}");
    let name_node = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.name")
        .unwrap_or_else(|| panic!("no traits.name node: {flow}"));
    assert!(
        !name_node["messages"].as_array().unwrap().is_empty(),
        "{name_node}"
    );
    let (status, body) = register(
        &server,
        json!({"email": "remote@example.com", "name": "Ada"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"]["schema_id"], "person");
    server.stop().await;
}

async fn start_error(url: String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::base_config(dir.path());
    config.dsn = Some(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("identity.sqlite").display()
    ));
    config.identity.schemas.push(SchemaRef {
        id: "person".to_owned(),
        url,
    });
    match portcullis_identity::server::start(config, true).await {
        Ok(_) => panic!("started without its schema"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_url_that_answers_404_fails_start_up_naming_it() {
    let (addr, hits) = schema_server(0).await;
    let url = format!("http://{addr}/missing.json");
    let error = start_error(url.clone()).await;
    assert!(error.contains("person") && error.contains(&url), "{error}");
    assert!(error.contains("404"), "{error}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_schema_url_fails_start_up_after_retries() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/person.json");
    let error = start_error(url.clone()).await;
    assert!(error.contains("person") && error.contains(&url), "{error}");
}
