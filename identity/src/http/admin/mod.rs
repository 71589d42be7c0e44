//! The admin API (port 4434): identities and sessions. Routes live under `/admin` and are also
//! answered without the prefix, as Kratos does.

pub mod courier;
pub mod identities;
pub mod recovery;
pub mod sessions;

use axum::Router;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{get, patch, post};
use serde_json::Value;
use uuid::Uuid;

use crate::state::AppState;

/// The admin routes, without the `/admin` prefix.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/identities",
            get(identities::list).post(identities::create),
        )
        .route(
            "/identities/{id}",
            get(identities::get)
                .put(identities::update)
                .patch(identities::patch)
                .delete(identities::delete),
        )
        .route(
            "/identities/{id}/sessions",
            get(sessions::list_for_identity).delete(sessions::delete_for_identity),
        )
        .route("/sessions", get(sessions::list))
        .route(
            "/sessions/{id}",
            get(sessions::get).delete(sessions::disable),
        )
        .route("/sessions/{id}/extend", patch(sessions::extend))
        .route("/courier/messages", get(courier::list))
        .route("/courier/messages/{id}", get(courier::get))
        .route("/recovery/code", post(recovery::create_code))
        .route("/recovery/link", post(recovery::create_link))
}

/// Keyset pagination parameters: `page_size` (default 250, at most 1000) and `page_token`.
pub struct Page {
    pub size: i64,
    pub after: Option<Uuid>,
}

impl Page {
    pub fn from_query(query: &Value) -> Self {
        let number = |key: &str| {
            query.get(key).and_then(|v| {
                v.as_str()
                    .and_then(|s| s.parse::<i64>().ok())
                    .or_else(|| v.as_i64())
            })
        };
        let size = number("page_size")
            .or_else(|| number("per_page"))
            .unwrap_or(250)
            .clamp(1, 1000);
        let after = query
            .get("page_token")
            .and_then(Value::as_str)
            .and_then(|t| Uuid::parse_str(t).ok());
        Self { size, after }
    }

    /// Adds the `Link` header (`rel="first"`, and `rel="next"` when the page is full).
    pub fn link(&self, response: &mut Response, base: &str, last: Option<Uuid>, count: usize) {
        let mut links = vec![format!(
            "<{base}?page_size={}&page_token=>; rel=\"first\"",
            self.size
        )];
        if let Some(last) = last
            && count as i64 == self.size
        {
            links.push(format!(
                "<{base}?page_size={}&page_token={last}>; rel=\"next\"",
                self.size
            ));
        }
        if let Ok(v) = HeaderValue::from_str(&links.join(",")) {
            response.headers_mut().insert(axum::http::header::LINK, v);
        }
    }
}

/// Parses a path id or answers 404 (an unparsable id names nothing).
pub fn path_id(raw: &str) -> Result<Uuid, crate::http::error::ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| crate::http::error::ApiError::not_found("Unable to locate the resource"))
}
