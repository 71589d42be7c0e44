//! The common steps of submitting any flow: body parsing (JSON or dotted form fields), expiry
//! (410 with a replacement flow, or 303 for browsers), the CSRF check for browser flows, the
//! API-flow cookie/Origin guard, and answering validation failures with the flow (400 or 303).

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{
    FlowKind, FlowType, NewFlow, add_message, clear_messages, create_with, flow_json, load,
    no_cache, see_other, ui_redirect_url,
};
use crate::clock::{now_ms, rfc3339};
use crate::http::error::ApiError;
use crate::http::negotiate::is_json_request;
use crate::state::AppState;
use crate::store::FlowRecord;
use crate::text::Message;

pub(super) fn csrf_error(rejection: crate::csrf::Rejection) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN)
        .id("security_csrf_violation")
        .reason("Please retry the flow and optionally clear your cookies. The request was rejected to protect you from Cross-Site-Request-Forgery (CSRF) which could cause account takeover, leaking personal information, and other serious security issues.")
        .details(json!({
            "hint": rejection.reason(),
            "reject_reason": rejection.reason(),
        }))
}

/// Parses a submit body (JSON, or a form with dotted names such as `traits.email`).
pub fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if is_json {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Unable to decode JSON body: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "The request body must be a JSON object.",
            ));
        }
        return Ok(value);
    }
    let mut root = Value::Object(Map::new());
    for (key, value) in url::form_urlencoded::parse(body) {
        let parts: Vec<&str> = key.split('.').collect();
        let mut node = &mut root;
        for (i, part) in parts.iter().enumerate() {
            let Value::Object(map) = node else { break };
            if i + 1 == parts.len() {
                map.insert((*part).to_owned(), Value::String(value.to_string()));
                break;
            }
            node = map
                .entry((*part).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
        }
    }
    Ok(root)
}

/// The common submit checks. Returns the flow, or the response that ends the request.
pub async fn begin_submit(
    state: &AppState,
    kind: FlowKind,
    headers: &HeaderMap,
    flow_id: Option<&str>,
    body: &Value,
) -> Result<FlowRecord, Response> {
    let record = load(state, kind, flow_id)
        .await
        .map_err(IntoResponse::into_response)?;
    let now = now_ms();
    if record.expires_at <= now {
        return Err(expired(state, kind, &record, headers, now).await);
    }
    if record.flow_type == "browser" {
        let cookie = state
            .settings
            .csrf_cookie
            .read(headers, &state.settings.csrf_cookie_name);
        let submitted = body
            .get("csrf_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
        if let Err(rejection) =
            crate::csrf::verify(cookie.as_deref(), submitted.as_deref(), &record.csrf_token)
        {
            tracing::info!(flow = %record.id, reason = rejection.reason(), "CSRF check failed");
            return Err(csrf_error(rejection).into_response());
        }
    } else if (crate::cookie::has_non_cloudflare_cookie(headers)
        || headers.contains_key(header::ORIGIN))
        && !state.settings.dev_disable_api_flow_enforcement()
    {
        let mut record = record;
        clear_messages(&mut record.ui);
        add_message(
            &mut record.ui,
            None,
            Message::validation(
                "The HTTP request contains a Cookie or Origin header, which is not allowed for API flows. Use browser flows in browsers.",
            ),
        );
        return Err(flow_failed(state, kind, record, headers).await);
    }
    Ok(record)
}

async fn expired(
    state: &AppState,
    kind: FlowKind,
    old: &FlowRecord,
    headers: &HeaderMap,
    now: i64,
) -> Response {
    let flow_type = FlowType::of(&old.flow_type);
    let minutes = (now - old.expires_at) as f64 / 60_000.0;
    let mut ui = old.ui.clone();
    clear_messages(&mut ui);
    let nodes = ui["nodes"].as_array().cloned().unwrap_or_default();
    let new = NewFlow {
        kind,
        flow_type,
        request_url: old.request_url.clone(),
        return_to: old.return_to.clone(),
        csrf_token: old.csrf_token.clone(),
        nodes,
        identity_id: old.identity_id,
        state: if kind == FlowKind::Settings {
            "show_form"
        } else {
            "choose_method"
        },
    };
    let mut replacement = match create_with(state, new).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    add_message(
        &mut replacement.ui,
        None,
        Message::flow_expired(kind.expired_message_id(), kind.name(), minutes),
    );
    if let Err(e) = state
        .store
        .update_flow(replacement.id, &replacement.state, &replacement.ui, now)
        .await
    {
        return ApiError::from(e).into_response();
    }
    if flow_type == FlowType::Browser && !is_json_request(headers) {
        return see_other(&ui_redirect_url(state, kind, replacement.id));
    }
    ApiError::new(StatusCode::GONE)
        .id("self_service_flow_expired")
        .reason(format!(
            "The self-service flow expired {minutes:.2} minutes ago, initialize a new one."
        ))
        .extra("use_flow_id", json!(replacement.id))
        .extra("expired_at", json!(rfc3339(old.expires_at)))
        .extra(
            "since",
            json!((now - old.expires_at).saturating_mul(1_000_000)),
        )
        .into_response()
}

/// Stores the flow with its new messages, then answers 400 with the flow (API/JSON) or 303
/// back to the UI (browser HTML).
pub async fn flow_failed(
    state: &AppState,
    kind: FlowKind,
    record: FlowRecord,
    headers: &HeaderMap,
) -> Response {
    flow_failed_with(state, kind, record, headers, None).await
}

/// As [`flow_failed`], adding `identity` to the flow JSON (settings flows carry it).
pub async fn flow_failed_with(
    state: &AppState,
    kind: FlowKind,
    record: FlowRecord,
    headers: &HeaderMap,
    identity: Option<Value>,
) -> Response {
    let now = now_ms();
    if let Err(e) = state
        .store
        .update_flow(record.id, &record.state, &record.ui, now)
        .await
    {
        return ApiError::from(e).into_response();
    }
    if record.flow_type == "browser" && !is_json_request(headers) {
        return see_other(&ui_redirect_url(state, kind, record.id));
    }
    let mut flow = flow_json(state, &record);
    if let Some(identity) = identity {
        flow["identity"] = identity;
    }
    no_cache((StatusCode::BAD_REQUEST, axum::Json(flow)).into_response())
}
