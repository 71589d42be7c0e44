//! Kratos' (herodot's) JSON error envelope `{"error": {id, code, status, reason, details,
//! message}}` plus the "enhanced" fields (`use_flow_id`, `redirect_browser_to`). Every error
//! response of the service goes through [`ApiError`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::store::StoreError;

/// An error answered in Kratos' JSON envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub id: Option<&'static str>,
    pub reason: Option<String>,
    pub details: Option<Value>,
    /// Fields next to `error` (e.g. `use_flow_id`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            id: None,
            reason: None,
            details: None,
            extra: Map::new(),
        }
    }

    pub fn id(mut self, id: &'static str) -> Self {
        self.id = Some(id);
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn extra(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST).reason(reason)
    }

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND).reason(reason)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED)
            .id("session_inactive")
            .reason("No valid session credentials found in the request.")
    }

    pub fn body(&self) -> Value {
        let mut error = Map::new();
        if let Some(id) = self.id {
            error.insert("id".into(), json!(id));
        }
        error.insert("code".into(), json!(self.status.as_u16()));
        error.insert(
            "status".into(),
            json!(self.status.canonical_reason().unwrap_or_default()),
        );
        // 5xx reasons are scrubbed: they could carry internals.
        if !self.status.is_server_error() {
            if let Some(reason) = &self.reason {
                error.insert("reason".into(), json!(reason));
            }
            if let Some(details) = &self.details {
                error.insert("details".into(), details.clone());
            }
        }
        error.insert("message".into(), json!(standard_message(self.status)));
        let mut body = Map::new();
        body.insert("error".into(), Value::Object(error));
        body.extend(self.extra.clone());
        Value::Object(body)
    }
}

/// herodot's standard `message` per status.
fn standard_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request was malformed or contained invalid parameters",
        401 => "The request could not be authorized",
        403 => "The requested action was forbidden",
        404 => "The requested resource could not be found",
        409 => "The resource could not be created due to a conflict",
        410 => "The requested resource is no longer available",
        422 => "The request was well-formed but was unable to be followed due to semantic errors",
        429 => "Too many requests",
        503 => "The service is temporarily unavailable",
        _ if status.is_server_error() => {
            "An internal server error occurred, please contact the system administrator"
        }
        _ => "The request could not be processed",
    }
}

impl IntoResponse for ApiError {
    /// The JSON envelope; the error itself rides along in the response's extensions so that
    /// [`crate::flow::error::browser_errors`] can send a browser to the error UI instead.
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => Self::new(StatusCode::CONFLICT)
                .reason("This identity conflicts with another identity that already exists."),
            StoreError::Unavailable(e) => {
                tracing::error!(error = %e, "database error");
                Self::new(StatusCode::SERVICE_UNAVAILABLE).id("database_unavailable")
            }
            other => {
                tracing::error!(error = %other, "storage error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}
