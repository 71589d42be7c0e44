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
        .route("/self-service/errors", get(crate::flow::error::get_error))
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

/// Kratos' deprecated page pagination: `page` (0-based) and `per_page` (default 250, at most
/// 500), used only when `page` is given without `page_token`/`page_size`. Answers carry
/// `X-Total-Count` and a `Link` header with `first`, `prev`, `next` and `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyPage {
    pub page: i64,
    pub per_page: i64,
}

/// Kratos refuses page pagination beyond this many items.
const LEGACY_PAGE_LIMIT: i64 = 1000;

impl LegacyPage {
    /// `Ok(None)` when the request uses keyset pagination (or none); 400 when it asks
    /// for a page beyond what page pagination serves.
    pub fn from_query(query: &Value) -> Result<Option<Self>, crate::http::error::ApiError> {
        let has = |key: &str| query.get(key).is_some();
        if has("page_token") || has("page_size") || !has("page") {
            return Ok(None);
        }
        let number = |key: &str| {
            query.get(key).and_then(|v| {
                v.as_str()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .or_else(|| v.as_i64())
            })
        };
        let page = number("page").unwrap_or(0).max(0);
        let per_page = number("per_page").unwrap_or(250).clamp(1, 500);
        if page.saturating_mul(per_page) > LEGACY_PAGE_LIMIT {
            return Err(crate::http::error::ApiError::bad_request(format!(
                "Legacy pagination is not supported for enumerating over {LEGACY_PAGE_LIMIT} items. \
                 Please switch to using page_token and page_size."
            )));
        }
        Ok(Some(Self { page, per_page }))
    }

    pub fn offset(&self) -> i64 {
        self.page * self.per_page
    }

    /// Adds `X-Total-Count` and the `Link` header for a collection of `total` items.
    pub fn headers(&self, response: &mut Response, base: &str, total: i64) {
        let last = if total <= 0 {
            0
        } else {
            (total - 1) / self.per_page
        };
        let mut rels = vec![("first", 0)];
        if self.page > 0 {
            rels.push(("prev", (self.page - 1).min(last)));
        }
        if self.page < last {
            rels.push(("next", self.page + 1));
        }
        rels.push(("last", last));
        link_headers(response, total, &rels, |page| {
            format!("{base}?page={page}&per_page={}", self.per_page)
        });
    }
}

/// Sets `X-Total-Count` and a `Link` header with one `<url>; rel="…"` per `(rel, position)`,
/// `url(position)` rendering the address of that page.
pub fn link_headers(
    response: &mut Response,
    total: i64,
    rels: &[(&str, i64)],
    url: impl Fn(i64) -> String,
) {
    let links: Vec<String> = rels
        .iter()
        .map(|(rel, at)| format!("<{}>; rel=\"{rel}\"", url(*at)))
        .collect();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&links.join(",")) {
        headers.insert(axum::http::header::LINK, v);
    }
    headers.insert("x-total-count", HeaderValue::from(total.max(0)));
}

/// Parses a path id or answers 404 (an unparsable id names nothing).
pub fn path_id(raw: &str) -> Result<Uuid, crate::http::error::ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| crate::http::error::ApiError::not_found("Unable to locate the resource"))
}
