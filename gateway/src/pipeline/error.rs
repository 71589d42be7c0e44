//! Pipeline errors and the Oathkeeper-shaped responses the error handlers produce.
//!
//! Every failure in the pipeline becomes a [`PipelineError`] with the status Oathkeeper uses;
//! the error handlers (`json` by default) turn it into a response. Non-verbose `json` bodies
//! carry Oathkeeper's generic message per status so internals do not leak.

use serde_json::json;

/// A pipeline failure: the status, the verbose reason, and headers to pass on (429).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct PipelineError {
    /// HTTP status.
    pub status: u16,
    /// Why, for verbose error bodies and logs (never contains secrets).
    pub reason: String,
    /// Headers copied to the response (rate-limit headers of a 429).
    pub headers: Vec<(String, String)>,
}

impl PipelineError {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// Any status (e.g. a token endpoint's 503 passed on).
    pub fn with_status(status: u16, reason: impl Into<String>) -> Self {
        Self::new(status, reason)
    }

    /// 401.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(401, reason)
    }

    /// 403.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(403, reason)
    }

    /// 404 (no rule).
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(404, reason)
    }

    /// 429 with the upstream rate-limit headers.
    pub fn too_many_requests(headers: Vec<(String, String)>) -> Self {
        Self {
            headers,
            ..Self::new(429, "Too many requests")
        }
    }

    /// 500.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(500, reason)
    }

    /// The `when.error` name: lower-cased status text with `_` (`unauthorized`, `not_found`).
    pub fn kind_name(&self) -> String {
        status_text(self.status)
            .to_ascii_lowercase()
            .replace(' ', "_")
    }

    /// Oathkeeper's verbose message for the status.
    pub fn verbose_message(&self) -> &'static str {
        match self.status {
            401 => "Access credentials are invalid",
            403 => "Access credentials are not sufficient to access this resource",
            404 => "Requested url does not match any rules",
            429 => "Too many requests",
            _ => "An internal server error occurred, please contact the system administrator",
        }
    }

    /// Oathkeeper's generic (non-verbose) message for the status.
    pub fn generic_message(&self) -> &'static str {
        match self.status {
            400 => "The request was malformed or contained invalid parameters",
            401 => "The request could not be authorized",
            403 => "The requested action was forbidden",
            404 => "The requested resource could not be found",
            409 => "The resource could not be created due to a conflict",
            415 => {
                "The request entity has a media type which the server or resource does not support"
            }
            429 => "Too many requests",
            502 => "The upstream service could not be reached",
            503 => "The upstream service is not available",
            504 => "The upstream service is timing out",
            _ => "An internal server error occurred, please contact the system administrator",
        }
    }
}

/// An HTTP response produced by an error handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// Status code.
    pub status: u16,
    /// Headers, including `Content-Type` when there is a body.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// The `json` error handler's response.
pub fn json_response(error: &PipelineError, verbose: bool) -> ErrorResponse {
    let mut inner = json!({
        "code": error.status,
        "status": status_text(error.status),
        "message": if verbose { error.verbose_message() } else { error.generic_message() },
    });
    if verbose && !error.reason.is_empty() {
        inner["reason"] = json!(error.reason);
    }
    let body = serde_json::to_vec(&json!({ "error": inner })).unwrap_or_default();
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    headers.extend(error.headers.iter().cloned());
    ErrorResponse {
        status: error.status,
        headers,
        body,
    }
}

/// HTTP reason phrase.
pub fn status_text(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Internal Server Error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_body_has_oathkeepers_shape() -> Result<(), serde_json::Error> {
        let r = json_response(&PipelineError::not_found("no rule"), false);
        assert_eq!(r.status, 404);
        let body: serde_json::Value = serde_json::from_slice(&r.body)?;
        assert_eq!(
            body,
            json!({"error": {"code": 404, "status": "Not Found", "message": "The requested resource could not be found"}})
        );
        let r = json_response(&PipelineError::unauthorized("no session"), true);
        let body: serde_json::Value = serde_json::from_slice(&r.body)?;
        assert_eq!(body["error"]["message"], "Access credentials are invalid");
        assert_eq!(body["error"]["reason"], "no session");
        Ok(())
    }

    #[test]
    fn kind_names_follow_status_text() {
        assert_eq!(PipelineError::unauthorized("").kind_name(), "unauthorized");
        assert_eq!(PipelineError::not_found("").kind_name(), "not_found");
        assert_eq!(
            PipelineError::internal("").kind_name(),
            "internal_server_error"
        );
    }
}
