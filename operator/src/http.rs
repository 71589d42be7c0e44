//! The operator's HTTP port (4470): `/healthz`, `/readyz`, `/metrics` and the config stream
//! (`/v1/streams/{topic}`). Every replica serves all of it.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use portcullis_stream::{Publisher, StreamToken};

use crate::metrics::Metrics;

#[derive(Clone)]
struct HttpState {
    publisher: Publisher,
    metrics: Arc<Metrics>,
}

/// The full router of the operator's HTTP port.
pub fn router(publisher: Publisher, metrics: Arc<Metrics>, token: StreamToken) -> Router {
    let state = HttpState {
        publisher: publisher.clone(),
        metrics,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
        .merge(portcullis_stream::server::router(publisher, token))
}

/// Ready once every topic has a snapshot, i.e. the caches synced and were published.
async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.publisher.all_published() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first snapshot of every topic",
        )
    }
}

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    match state.metrics.render(&state.publisher) {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
