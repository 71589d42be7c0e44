//! Kratos' self-service error flow. When a browser (a request that is not a JSON request) ends a
//! flow step in an error that is not shown on the flow itself (a CSRF violation, an unknown or
//! tampered flow id, an identity mismatch, a forbidden `return_to`, a server error), the error is
//! stored and the browser is sent to `selfservice.flows.error.ui_url?id=<id>` (the built-in
//! `/ui/error` by default), which reads it back through `GET /self-service/errors?id=` (public and
//! admin). JSON requests and API flows get the JSON error as before. Expired flows are not errors
//! here: the submit step already answers them with a new flow, as Kratos does.
//!
//! [`browser_errors`] is the one place that makes this decision: handlers answer with an
//! [`ApiError`] as usual, and the middleware, seeing the error in the response's extensions,
//! forwards it when the request came from a browser.

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{FlowKind, add_message, clear_messages, no_cache, see_other, ui_redirect_url};
use crate::clock::{now_ms, rfc3339};
use crate::http::error::ApiError;
use crate::http::negotiate::is_json_request;
use crate::state::AppState;
use crate::store::ErrorRecord;
use crate::text::Message;

/// The fields of an error object that are stored; anything else (e.g. `debug`) never is.
const STORED_FIELDS: &[&str] = &["id", "code", "status", "reason", "details", "message"];

/// What a request path is, as far as forwarding errors goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `GET|POST /self-service/<flow>?flow=`.
    Submit(FlowKind),
    /// A browser-only endpoint (`/self-service/<flow>/browser`, browser logout).
    Browser,
}

fn scope(path: &str) -> Option<Scope> {
    let rest = path.strip_prefix("/self-service/")?;
    let kind = |name: &str| match name {
        "login" => Some(FlowKind::Login),
        "registration" => Some(FlowKind::Registration),
        "settings" => Some(FlowKind::Settings),
        "recovery" => Some(FlowKind::Recovery),
        "verification" => Some(FlowKind::Verification),
        _ => None,
    };
    match rest.split_once('/') {
        None if rest == "logout" => Some(Scope::Browser),
        None => kind(rest).map(Scope::Submit),
        Some((name, "browser")) if name == "logout" || kind(name).is_some() => Some(Scope::Browser),
        Some(_) => None,
    }
}

/// The error object as stored: the envelope's inner object (5xx already scrubbed of reason and
/// details by [`ApiError::body`]), restricted to [`STORED_FIELDS`].
fn stored_error(err: &ApiError) -> Value {
    let body = err.body();
    let mut out = Map::new();
    if let Some(Value::Object(inner)) = body.get("error") {
        for (key, value) in inner {
            if STORED_FIELDS.contains(&key.as_str()) {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

/// `<error ui_url>?id=<id>`.
pub fn error_ui_url(state: &AppState, id: &str) -> String {
    let ui = &state.settings.error_ui_url;
    let sep = if ui.contains('?') { '&' } else { '?' };
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id", id)
        .finish();
    format!("{ui}{sep}{query}")
}

/// Stores `err` and sends the browser to the error UI. When the error cannot be stored (the
/// database is down), the JSON error is the answer: the request fails either way.
pub async fn forward(state: &AppState, err: ApiError) -> Response {
    let now = now_ms();
    let record = ErrorRecord {
        id: Uuid::new_v4(),
        error: stored_error(&err),
        created_at: now,
        updated_at: now,
    };
    match state.store.insert_error(&record).await {
        Ok(()) => {
            tracing::info!(error_id = %record.id, status = err.status.as_u16(), kind = err.id.unwrap_or_default(), "browser sent to the error UI");
            no_cache(see_other(&error_ui_url(state, &record.id.to_string())))
        }
        Err(e) => {
            tracing::error!(error = %e, "could not store a self-service error");
            err.into_response()
        }
    }
}

/// Middleware on the public router: browser requests to flow endpoints that end in an
/// [`ApiError`] are redirected instead of shown raw JSON, as Kratos does.
/// - An error carrying `redirect_browser_to` sends the browser there.
/// - On an existing browser flow, a 400 becomes a message on the flow (id 4000001) and the
///   browser goes back to the flow's page (Kratos' `ParseError`); a missing session on a
///   settings flow goes to the login.
/// - Anything else (no such flow, CSRF, mismatch, 5xx) is stored and shown by the error UI.
///
/// API flows, JSON requests and every other endpoint pass through untouched.
pub async fn browser_errors(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(scope) = scope(request.uri().path()) else {
        return next.run(request).await;
    };
    if is_json_request(request.headers()) {
        return next.run(request).await;
    }
    let flow_id = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "flow")
            .and_then(|(_, v)| Uuid::parse_str(&v).ok())
    });
    let response = next.run(request).await;
    let Some(err) = response.extensions().get::<ApiError>().cloned() else {
        return response;
    };
    if let Some(to) = err.extra.get("redirect_browser_to").and_then(Value::as_str) {
        return see_other(to);
    }
    if let (Scope::Submit(kind), Some(id)) = (scope, flow_id) {
        let flow = match state.store.flow(id).await {
            Ok(found) => found.filter(|f| f.kind == kind.name()),
            Err(e) => {
                tracing::error!(error = %e, "could not load the flow of a failed request");
                None
            }
        };
        if let Some(mut flow) = flow {
            if flow.flow_type != "browser" {
                return response;
            }
            let now = now_ms();
            if err.status == StatusCode::BAD_REQUEST && flow.expires_at > now {
                clear_messages(&mut flow.ui);
                let reason = err
                    .reason
                    .clone()
                    .unwrap_or_else(|| "The request was malformed.".to_owned());
                add_message(&mut flow.ui, None, Message::validation(&reason));
                if state
                    .store
                    .update_flow(flow.id, &flow.state, &flow.ui, now)
                    .await
                    .is_ok()
                {
                    return see_other(&ui_redirect_url(&state, kind, flow.id));
                }
            }
            if err.status == StatusCode::UNAUTHORIZED && kind == FlowKind::Settings {
                let mut login =
                    format!("{}/self-service/login/browser", state.settings.public_base);
                let return_to = format!(
                    "{}/self-service/settings/browser",
                    state.settings.public_base
                );
                login.push('?');
                login.push_str(
                    &url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("return_to", &return_to)
                        .finish(),
                );
                return see_other(&login);
            }
        }
    }
    forward(&state, err).await
}

/// Kratos' stub errors (`?id=stub:500` and friends), for UI development.
fn stub(id: &str) -> Option<Value> {
    let status = match id {
        "stub:500" => StatusCode::INTERNAL_SERVER_ERROR,
        "stub:404" => StatusCode::NOT_FOUND,
        "stub:403" => StatusCode::FORBIDDEN,
        _ => return None,
    };
    let mut error = ApiError::new(status).body()["error"].clone();
    error["reason"] = json!("This is a stub error.");
    Some(error)
}

/// `GET /self-service/errors?id=` (public and admin): the stored error as Kratos' error
/// container `{id, error, created_at, updated_at}`; 404 in the JSON error shape for an id that
/// is unknown or not a UUID.
pub async fn get_error(State(state): State<AppState>, Query(query): Query<Value>) -> Response {
    let raw = query.get("id").and_then(Value::as_str).unwrap_or_default();
    if let Some(error) = stub(raw) {
        let now = rfc3339(now_ms());
        return no_cache(
            axum::Json(json!({"id": raw, "error": error, "created_at": now, "updated_at": now}))
                .into_response(),
        );
    }
    let not_found = || ApiError::not_found("Unable to locate the resource").into_response();
    let Ok(id) = Uuid::parse_str(raw) else {
        return not_found();
    };
    match state.store.error(id).await {
        Ok(Some(record)) => no_cache(
            axum::Json(json!({
                "id": record.id,
                "error": record.error,
                "created_at": rfc3339(record.created_at),
                "updated_at": rfc3339(record.updated_at),
            }))
            .into_response(),
        ),
        Ok(None) => not_found(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_cover_browser_endpoints_only() {
        assert_eq!(
            scope("/self-service/login"),
            Some(Scope::Submit(FlowKind::Login))
        );
        assert_eq!(
            scope("/self-service/recovery"),
            Some(Scope::Submit(FlowKind::Recovery))
        );
        assert_eq!(
            scope("/self-service/settings/browser"),
            Some(Scope::Browser)
        );
        assert_eq!(scope("/self-service/logout/browser"), Some(Scope::Browser));
        assert_eq!(scope("/self-service/logout"), Some(Scope::Browser));
        for other in [
            "/self-service/login/api",
            "/self-service/login/flows",
            "/self-service/errors",
            "/self-service/logout/api",
            "/sessions/whoami",
            "/ui/error",
        ] {
            assert_eq!(scope(other), None, "{other}");
        }
    }

    #[test]
    fn stored_errors_keep_only_public_fields() {
        let err = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR)
            .reason("db password is hunter2")
            .details(json!({"dsn": "postgres://u:hunter2@db"}));
        let stored = stored_error(&err);
        assert!(!stored.to_string().contains("hunter2"), "{stored}");
        assert_eq!(stored["code"], 500);
        let err = ApiError::new(StatusCode::FORBIDDEN)
            .id("security_csrf_violation")
            .reason("bad token")
            .extra("debug", json!("x"));
        let stored = stored_error(&err);
        assert_eq!(stored["id"], "security_csrf_violation");
        assert_eq!(stored["reason"], "bad token");
        assert!(stored.get("debug").is_none());
    }
}
