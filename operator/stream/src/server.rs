//! The stream endpoint, `GET /v1/streams/{topic}`: server-sent events carrying full snapshots,
//! authenticated with `Authorization: Bearer <token>`. Any operator replica can serve it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use tokio::sync::watch;

use crate::publisher::{Publisher, SubscriberGuard};
use crate::snapshot::Snapshot;
use crate::token::StreamToken;

/// SSE event name of a snapshot frame.
pub const SNAPSHOT_EVENT: &str = "snapshot";
/// How often an idle stream sends a comment, so subscribers can detect a dead connection.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Clone)]
struct StreamState {
    publisher: Publisher,
    token: Arc<StreamToken>,
}

/// The router serving `/v1/streams/{topic}` from `publisher`, accepting only `token`.
pub fn router(publisher: Publisher, token: StreamToken) -> Router {
    Router::new()
        .route("/v1/streams/{topic}", get(stream_topic))
        .with_state(StreamState {
            publisher,
            token: Arc::new(token),
        })
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "error": {
            "code": status.as_u16(),
            "status": status.canonical_reason().unwrap_or_default(),
            "message": message,
        }
    });
    (status, axum::Json(body)).into_response()
}

async fn stream_topic(
    State(state): State<StreamState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !state.token.matches_authorization(authorization) {
        let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    let Some((rx, guard)) = state.publisher.subscribe(&topic) else {
        return error(StatusCode::NOT_FOUND, "unknown topic");
    };
    tracing::debug!(%topic, "stream subscriber connected");
    let events = snapshot_events(rx, state.publisher.closing(), guard);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// The current snapshot (once one exists), then every new one, until the publisher closes.
fn snapshot_events(
    rx: watch::Receiver<Option<Arc<Snapshot>>>,
    closing: watch::Receiver<bool>,
    guard: SubscriberGuard,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = (rx, closing, guard, true);
    futures::stream::unfold(state, |(mut rx, mut closing, guard, first)| async move {
        let mut first = first;
        loop {
            if *closing.borrow() {
                return None;
            }
            if !first {
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    closed = closing.changed() => {
                        closed.ok()?;
                        continue;
                    }
                }
            }
            first = false;
            let current = rx.borrow_and_update().clone();
            let Some(snapshot) = current else { continue };
            let event = match serde_json::to_string(snapshot.as_ref()) {
                Ok(data) => Event::default()
                    .event(SNAPSHOT_EVENT)
                    .id(snapshot.version.to_string())
                    .data(data),
                Err(e) => {
                    tracing::error!(error = %e, "cannot serialize snapshot; closing stream");
                    return None;
                }
            };
            return Some((Ok(event), (rx, closing, guard, false)));
        }
    })
}
