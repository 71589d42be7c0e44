//! `demo-upstream`: a tiny echo server that answers every request with what it received, so the
//! headers the gateway sets (e.g. `X-User-Id`) can be seen.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Request;
use serde_json::{Value, json};

/// The echo of one request: `{"method","path","query","headers"}`.
pub async fn echo(request: Request) -> Json<Value> {
    let mut headers: BTreeMap<String, Value> = BTreeMap::new();
    for (name, value) in request.headers() {
        let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => *existing = Value::Array(vec![existing.clone(), value]),
            None => {
                headers.insert(name.as_str().to_owned(), value);
            }
        }
    }
    Json(json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query().unwrap_or_default(),
        "headers": headers,
    }))
}

/// Serves the echo on `listen` until SIGTERM/SIGINT.
pub async fn serve(listen: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "demo upstream listening");
    let app = axum::Router::new().fallback(echo);
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::server::shutdown_signal())
        .await
}
