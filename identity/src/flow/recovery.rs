//! Account recovery (`/self-service/recovery/{api,browser}`, fetch, submit
//! `GET|POST /self-service/recovery?flow=`) with the `code` or `link` method. A correct code
//! ends in a fresh (privileged) session with method `code_recovery`/`link_recovery` and a
//! settings flow to set a new password: 303 there for browsers, `continue_with`
//! `show_settings_ui` (and `set_ory_session_token` for API clients) otherwise.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::code::{self, Checked, Step};
use super::{FlowKind, FlowType, add_message};
use crate::clock::{now_ms, rfc3339};
use crate::http::error::ApiError;
use crate::http::negotiate::is_json_request;
use crate::state::AppState;
use crate::text::Message;

const KIND: FlowKind = FlowKind::Recovery;

super::create_handlers!("recovery");

async fn create(
    state: AppState,
    uri: OriginalUri,
    query: Value,
    headers: HeaderMap,
    flow_type: FlowType,
) -> Response {
    if !state.email.recovery.enabled {
        return code::disabled(KIND).into_response();
    }
    let return_to = match super::check_return_to(&state, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match state.current_session(&headers).await {
        Ok(Some(_)) => {
            if flow_type == FlowType::Browser && crate::http::negotiate::wants_html(&headers) {
                return super::see_other(
                    &return_to.unwrap_or_else(|| state.settings.default_return_url.clone()),
                );
            }
            return ApiError::bad_request(
                "A valid session was detected and thus recovery is not possible.",
            )
            .id("session_already_available")
            .into_response();
        }
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let (csrf, cookie) = super::csrf_for_request(&state, &headers);
    let cookies: Vec<String> = match flow_type {
        FlowType::Browser => cookie.into_iter().collect(),
        FlowType::Api => Vec::new(),
    };
    let request_url = format!("{}{}", state.settings.public_base, uri.0);
    match super::create(&state, KIND, flow_type, request_url, return_to, csrf).await {
        Ok(record) => super::created_response(&state, KIND, &record, &headers, &cookies),
        Err(e) => e.into_response(),
    }
}

/// `GET /self-service/recovery/flows?id=`.
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

/// `GET|POST /self-service/recovery?flow=`.
pub async fn submit(
    State(state): State<AppState>,
    method: Method,
    Query(query): Query<Value>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let step = code::begin(&state, KIND, method == Method::GET, &query, &headers, &body).await;
    let (record, presented) = match step {
        Step::Done(response) => return response,
        Step::Send(record, address) => {
            return code::send(&state, KIND, record, &headers, &address).await;
        }
        Step::Check(record, presented) => (record, presented),
    };
    let flow_type = FlowType::of(&record.flow_type);
    let csrf = record.csrf_token.clone();
    // The owner is read before the code is spent so that marking the recovered address verified
    // (the user just proved control of the mailbox, as Kratos does) goes in the code's
    // transaction.
    let now = now_ms();
    let codes = match state.store.live_codes(record.id, now).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let owner = state
        .email
        .matching(record.id, &presented, &codes)
        .and_then(|c| c.identity_id);
    let owner = match owner {
        Some(id) => match state.store.identity(id).await {
            Ok(found) => found,
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => None,
    };
    let checked = code::check(&state, KIND, record, &headers, &presented, |flow, code| {
        flow.state = "passed_challenge".to_owned();
        let mut identity = owner.filter(|i| i.state == "active")?;
        super::verification::mark_verified(&mut identity, &code.address, now_ms());
        Some(identity)
    })
    .await;
    let (code, flow) = match checked {
        Checked::Answered(response) => return response,
        Checked::Redeemed(code) => match state.store.flow(code.flow_id).await {
            Ok(Some(flow)) => (code, flow),
            Ok(None) => {
                return ApiError::not_found("The recovery flow could not be found.")
                    .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    let identity = match code.identity_id {
        Some(id) => match state.store.identity(id).await {
            Ok(Some(i)) if i.state == "active" => i,
            Ok(_) => {
                return ApiError::bad_request("The account is not active.")
                    .id("session_inactive")
                    .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => {
            return ApiError::bad_request("The recovery code names no account.").into_response();
        }
    };
    let method_name = if state.email.recovery.link {
        "link_recovery"
    } else {
        "code_recovery"
    };
    let (session, token) = match state
        .issue_session(identity.id, method_name, &headers)
        .await
    {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    tracing::info!(identity = %identity.id, "account recovered");
    let now = now_ms();
    let settings_type = if flow_type == FlowType::Browser {
        FlowType::Browser
    } else {
        FlowType::Api
    };
    let mut settings_flow = match super::settings::new_flow(
        &state,
        &identity,
        settings_type,
        csrf,
        flow.request_url.clone(),
        flow.return_to.clone(),
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let privileged_until = session
        .authenticated_at
        .saturating_add(state.settings.privileged_session_max_age_ms);
    add_message(
        &mut settings_flow.ui,
        None,
        Message::recovery_succeeded(
            state.settings.privileged_session_max_age_ms / 60_000,
            &rfc3339(privileged_until),
        ),
    );
    if let Err(e) = state
        .store
        .update_flow(
            settings_flow.id,
            &settings_flow.state,
            &settings_flow.ui,
            now,
        )
        .await
    {
        return ApiError::from(e).into_response();
    }
    let settings_url = super::ui_redirect_url(&state, FlowKind::Settings, settings_flow.id);
    let mut cookies = Vec::new();
    let mut continue_with = Vec::new();
    match flow_type {
        FlowType::Browser => cookies.push(super::session_cookie(&state, token.expose())),
        FlowType::Api => continue_with.push(json!({
            "action": "set_ory_session_token",
            "ory_session_token": token.expose(),
        })),
    }
    if flow_type == FlowType::Browser && (method == Method::GET || !is_json_request(&headers)) {
        return super::with_cookies(super::see_other(&settings_url), &cookies);
    }
    continue_with.push(json!({
        "action": "show_settings_ui",
        "flow": { "id": settings_flow.id, "url": settings_url },
    }));
    super::with_cookies(
        code::answer(&state, KIND, &flow, &headers, continue_with),
        &cookies,
    )
}
