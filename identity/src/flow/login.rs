//! Login with the password method: create (`/self-service/login/{api,browser}`), submit
//! (`POST /self-service/login?flow=`). Unknown identifiers and wrong passwords give the same
//! message (4000006) after the same amount of hashing work.

use axum::body::Bytes;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, OriginalUri, Query, State};
use axum::http::HeaderMap;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{FlowKind, FlowType, add_message, clear_messages, input_node, set_value};
use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::http::negotiate::is_json_request;
use crate::password::Password;
use crate::schema::normalize_identifier;
use crate::session::session_json;
use crate::state::AppState;
use crate::text::Message;

const KIND: FlowKind = FlowKind::Login;

/// The unified password login layout.
pub fn nodes() -> Vec<Value> {
    vec![
        input_node(
            "default",
            "identifier",
            "text",
            None,
            true,
            None,
            Some(Message::label_id()),
        ),
        input_node(
            "password",
            "password",
            "password",
            None,
            true,
            Some("current-password"),
            Some(Message::label_password()),
        ),
        input_node(
            "password",
            "method",
            "submit",
            Some(json!("password")),
            false,
            None,
            Some(Message::label_sign_in()),
        ),
    ]
}

super::create_handlers!("login");

async fn create(
    state: AppState,
    uri: OriginalUri,
    query: Value,
    headers: HeaderMap,
    flow_type: FlowType,
) -> Response {
    let return_to = match super::check_return_to(&state, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let request_url = format!("{}{}", state.settings.public_base, uri.0);
    if query.get("aal").and_then(Value::as_str) == Some("aal2") {
        return super::second_factor::create_login(
            &state,
            flow_type,
            request_url,
            return_to,
            &headers,
        )
        .await;
    }
    let refresh = query.get("refresh").and_then(Value::as_str) == Some("true");
    if !refresh {
        match state.current_session(&headers).await {
            Ok(Some(_)) => {
                return super::registration::already_signed_in(
                    &state, flow_type, &headers, return_to,
                );
            }
            Ok(None) => {}
            Err(e) => return e.into_response(),
        }
    }
    let (csrf, cookie) = super::csrf_for_request(&state, &headers);
    let cookies: Vec<String> = match flow_type {
        FlowType::Browser => cookie.into_iter().collect(),
        FlowType::Api => Vec::new(),
    };
    match super::create(&state, KIND, flow_type, request_url, return_to, csrf).await {
        Ok(record) => super::created_response(&state, KIND, &record, &headers, &cookies),
        Err(e) => e.into_response(),
    }
}

/// `GET /self-service/login/flows?id=`.
pub async fn get_flow(
    State(state): State<AppState>,
    Query(query): Query<Value>,
    headers: HeaderMap,
) -> Response {
    super::fetch(
        &state,
        KIND,
        &headers,
        query.get("id").and_then(Value::as_str),
    )
    .await
}

/// `POST /self-service/login?flow=`.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<Value>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match super::parse_body(&headers, &body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let flow_id = query.get("flow").and_then(Value::as_str);
    let mut record = match super::begin_submit(&state, KIND, &headers, flow_id, &body).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    if record.identity_id.is_some() {
        return super::second_factor::submit_login(&state, record, &headers, &body).await;
    }
    let flow_type = FlowType::of(&record.flow_type);
    clear_messages(&mut record.ui);
    if body.get("method").and_then(Value::as_str) != Some("password") {
        add_message(&mut record.ui, None, Message::unknown_method());
        return super::flow_failed(&state, KIND, record, &headers).await;
    }
    if !state.settings.password_enabled {
        return ApiError::not_found("This endpoint was disabled by system administrator. Please check your url or contact the system administrator to enable it.").into_response();
    }
    let identifier = body
        .get("identifier")
        .or_else(|| body.get("password_identifier"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    set_value(&mut record.ui, "identifier", json!(identifier));
    let password = Password::new(
        body.get("password")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    );
    let normalized = normalize_identifier(&identifier);
    let ip = peer.ip().to_string();
    if let Some(wait) = state
        .throttle
        .locked(&normalized, Some(&ip), Instant::now())
    {
        crate::metrics::Metrics::inc(&state.metrics.logins_throttled);
        return throttled(wait);
    }
    let found = if normalized.is_empty() {
        None
    } else {
        match state
            .store
            .identity_by_identifier("password", &normalized)
            .await
        {
            Ok(f) => f,
            Err(e) => return ApiError::from(e).into_response(),
        }
    };
    let stored_hash = found
        .as_ref()
        .and_then(|(_, config)| config.get("hashed_password"))
        .and_then(Value::as_str);
    let stored_hash = stored_hash.map(str::to_owned);
    let verified = state.hasher.verify(&password, stored_hash.as_deref()).await;
    let identity = match found {
        Some((identity, _)) if verified => identity,
        _ => {
            state
                .throttle
                .failed(&normalized, Some(&ip), Instant::now());
            crate::metrics::Metrics::inc(&state.metrics.logins_failed);
            add_message(&mut record.ui, None, Message::invalid_credentials());
            return super::flow_failed(&state, KIND, record, &headers).await;
        }
    };
    state.throttle.succeeded(&normalized);
    crate::metrics::Metrics::inc(&state.metrics.logins_succeeded);
    if let Some(stored) = stored_hash.as_deref()
        && state.hasher.needs_rehash(stored)
    {
        rehash(&state, identity.id, &password).await;
    }
    if identity.state != "active" {
        add_message(&mut record.ui, None, Message::identity_disabled());
        return super::flow_failed(&state, KIND, record, &headers).await;
    }
    let (session, token) = match state.issue_session(identity.id, "password", &headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let now = now_ms();
    if let Err(e) = state
        .store
        .update_flow(record.id, "passed_challenge", &record.ui, now)
        .await
    {
        return ApiError::from(e).into_response();
    }
    tracing::info!(identity = %identity.id, session = %session.id, "login succeeded");
    let session_body = session_json(&session, &identity, &state.settings.public_base, now);
    match flow_type {
        FlowType::Api => super::no_cache(
            axum::Json(json!({
                "session": session_body,
                "session_token": token.expose(),
                "continue_with": null,
            }))
            .into_response(),
        ),
        FlowType::Browser => {
            let cookies = [super::session_cookie(&state, token.expose())];
            let target =
                super::return_url(&state, &record, state.settings.login_return_url.as_ref());
            if !is_json_request(&headers) {
                return super::with_cookies(super::see_other(&target), &cookies);
            }
            let result = json!({
                "session": session_body,
                "continue_with": [{"action": "redirect_browser_to", "redirect_browser_to": target}],
            });
            super::no_cache(super::with_cookies(
                axum::Json(result).into_response(),
                &cookies,
            ))
        }
    }
}

/// Replaces an imported or outdated hash with one at the current argon2id parameters. A failure
/// is logged and does not fail the login: the old hash still verifies.
async fn rehash(state: &AppState, identity_id: uuid::Uuid, password: &Password) {
    match state.hasher.hash(password).await {
        Ok(hash) => {
            let config = json!({ "hashed_password": hash });
            match state
                .store
                .update_password_config(identity_id, &config, now_ms())
                .await
            {
                Ok(()) => {
                    tracing::info!(identity = %identity_id, "password re-hashed with current parameters")
                }
                Err(e) => {
                    tracing::warn!(identity = %identity_id, error = %e, "password re-hash not stored")
                }
            }
        }
        Err(e) => tracing::warn!(identity = %identity_id, error = %e, "password re-hash failed"),
    }
}

/// 429 in the error envelope with `Retry-After`, in Ory's rate-limit bucket naming.
fn throttled(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS)
        .id("too_many_requests")
        .reason("Too many failed login attempts. Please try again later.")
        .details(json!({ "bucket": "kratos-public-medium", "retry_after_seconds": seconds }))
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    response
}
