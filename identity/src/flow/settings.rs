//! Settings for a signed-in identity (`/self-service/settings/{api,browser}`, submit
//! `POST /self-service/settings?flow=`): the `profile` method (traits) and the `password` method.
//! Changing the password or a login identifier needs a privileged (recent) session.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use url::Url;

use super::{
    FlowKind, FlowType, NewFlow, add_message, clear_messages, csrf_node, input_node, set_value,
};
use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::http::negotiate::{is_json_request, wants_html};
use crate::identity::{identity_json, refresh_addresses};
use crate::password::{Password, check_policy};
use crate::state::AppState;
use crate::store::{IdentityRecord, PasswordUpdate, SessionRecord, StoreError};
use crate::text::Message;

const KIND: FlowKind = FlowKind::Settings;

fn nodes(state: &AppState, identity: &IdentityRecord) -> Vec<Value> {
    let mut ui =
        json!({ "nodes": super::registration::trait_nodes(state, "profile"), "messages": [] });
    if let Some(schema) = state.schemas.load().get(&identity.schema_id) {
        for field in &schema.fields {
            if let Some(v) = crate::schema::lookup(&identity.traits, &field.path) {
                set_value(&mut ui, &format!("traits.{}", field.path), v.clone());
            }
        }
    }
    let mut out = vec![csrf_node()];
    out.extend(ui["nodes"].as_array().cloned().unwrap_or_default());
    out.push(input_node(
        "profile",
        "method",
        "submit",
        Some(json!("profile")),
        false,
        None,
        Some(Message::label_save()),
    ));
    out.extend(super::registration::password_nodes(Message::label_save()));
    out
}

super::create_handlers!("settings");

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
    let (session, identity) = match state.current_session(&headers).await {
        Ok(Some(s)) => s,
        Ok(None) if flow_type == FlowType::Browser && wants_html(&headers) => {
            let mut login = match Url::parse(&format!(
                "{}/self-service/login/browser",
                state.settings.public_base
            )) {
                Ok(u) => u,
                Err(_) => return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR).into_response(),
            };
            login
                .query_pairs_mut()
                .append_pair("return_to", &request_url);
            return super::see_other(login.as_str());
        }
        Ok(None) => return ApiError::unauthorized().into_response(),
        Err(e) => return e.into_response(),
    };
    let browser_page = flow_type == FlowType::Browser && wants_html(&headers);
    if let Some(response) = aal2_gate(&state, &session, &identity, browser_page, &request_url) {
        return response;
    }
    let (csrf, cookie) = super::csrf_for_request(&state, &headers);
    let cookies: Vec<String> = match flow_type {
        FlowType::Browser => cookie.into_iter().collect(),
        FlowType::Api => Vec::new(),
    };
    let record = match new_flow(&state, &identity, flow_type, csrf, request_url, return_to).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let response = if flow_type == FlowType::Browser && wants_html(&headers) {
        super::see_other(&super::ui_redirect_url(&state, KIND, record.id))
    } else {
        let mut body = super::flow_json(&state, &record);
        body["identity"] = identity_json(&identity, &state.settings.public_base);
        axum::Json(body).into_response()
    };
    super::no_cache(super::with_cookies(response, &cookies))
}

/// Creates and stores a settings flow for an identity (also the end of a recovery).
pub async fn new_flow(
    state: &AppState,
    identity: &IdentityRecord,
    flow_type: FlowType,
    csrf_token: String,
    request_url: String,
    return_to: Option<String>,
) -> Result<crate::store::FlowRecord, ApiError> {
    let new = NewFlow {
        kind: KIND,
        flow_type,
        request_url,
        return_to,
        csrf_token,
        nodes: nodes(state, identity),
        identity_id: Some(identity.id),
        state: "show_form",
    };
    let mut record = super::create_with(state, new).await?;
    super::second_factor::add_settings_nodes(state, &mut record, identity).await?;
    super::lookup::add_settings_nodes(state, &mut record, identity).await?;
    Ok(record)
}

/// `highest_available`: an AAL1 session of an identity with a second factor must step up first
/// (browsers are sent to the step-up login).
fn aal2_gate(
    state: &AppState,
    session: &SessionRecord,
    identity: &IdentityRecord,
    browser_page: bool,
    return_to: &str,
) -> Option<Response> {
    if !state.second_factor.settings_highest_available
        || !super::second_factor::needs_aal2(session, identity)
    {
        return None;
    }
    let error = super::second_factor::aal2_required(state, Some(return_to));
    if browser_page {
        let target = error.body()["redirect_browser_to"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_default();
        return Some(super::see_other(&target));
    }
    Some(error.into_response())
}

/// `GET /self-service/settings/flows?id=`.
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

fn privileged(state: &AppState, session: &SessionRecord, now: i64) -> bool {
    session
        .authenticated_at
        .saturating_add(state.settings.privileged_session_max_age_ms)
        > now
}

fn refresh_required(state: &AppState, record_request_url: &str, headers: &HeaderMap) -> Response {
    let target = Url::parse(&format!(
        "{}/self-service/login/browser?refresh=true",
        state.settings.public_base
    ))
    .map(|mut u| {
        u.query_pairs_mut()
            .append_pair("return_to", record_request_url);
        u.to_string()
    })
    .unwrap_or_default();
    if !is_json_request(headers) && headers.get("x-session-token").is_none() {
        return super::see_other(&target);
    }
    ApiError::new(StatusCode::FORBIDDEN)
        .id("session_refresh_required")
        .reason("The login session is too old and thus not allowed to update these fields. Please re-authenticate.")
        .details(json!({ "redirect_browser_to": target }))
        .extra("redirect_browser_to", json!(target))
        .into_response()
}

/// Stores the flow as it is (nothing saved yet) and shows it again: 303 to the UI for browser
/// forms, 200 with the flow otherwise.
async fn show_form(
    state: &AppState,
    record: crate::store::FlowRecord,
    identity: &IdentityRecord,
    headers: &HeaderMap,
    now: i64,
) -> Response {
    if let Err(e) = state
        .store
        .update_flow(record.id, &record.state, &record.ui, now)
        .await
    {
        return ApiError::from(e).into_response();
    }
    if record.flow_type == "browser" && !is_json_request(headers) {
        return super::see_other(&super::ui_redirect_url(state, KIND, record.id));
    }
    let mut flow = super::flow_json(state, &record);
    flow["identity"] = identity_json(identity, &state.settings.public_base);
    super::no_cache(axum::Json(flow).into_response())
}

/// The settings method of a submission: `method`, or, as Kratos infers it for UIs whose buttons
/// carry only their own field, `totp` for `totp_unlink=true` and `lookup_secret` for
/// `lookup_secret_{regenerate,reveal,confirm,disable}=true`.
fn submitted_method(body: &Value) -> Option<&str> {
    if let Some(method) = body.get("method").and_then(Value::as_str) {
        return Some(method);
    }
    let set = |name: &str| {
        matches!(body.get(name), Some(Value::Bool(true)))
            || body.get(name).and_then(Value::as_str) == Some("true")
    };
    if set("totp_unlink") {
        return Some("totp");
    }
    [
        "lookup_secret_regenerate",
        "lookup_secret_reveal",
        "lookup_secret_confirm",
        "lookup_secret_disable",
    ]
    .into_iter()
    .any(set)
    .then_some("lookup_secret")
}

/// `POST /self-service/settings?flow=`.
pub async fn submit(
    State(state): State<AppState>,
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
    let (session, mut identity) = match state.current_session(&headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return ApiError::unauthorized().into_response(),
        Err(e) => return e.into_response(),
    };
    if record.identity_id != Some(identity.id) {
        return ApiError::new(StatusCode::FORBIDDEN)
            .id("security_identity_mismatch")
            .reason("The flow belongs to another identity.")
            .into_response();
    }
    let browser_page = record.flow_type == "browser" && !is_json_request(&headers);
    if let Some(response) = aal2_gate(
        &state,
        &session,
        &identity,
        browser_page,
        &record.request_url,
    ) {
        return response;
    }
    let Some(schema) = state.schemas.load().get(&identity.schema_id) else {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    };
    let public = state.settings.public_base.clone();
    clear_messages(&mut record.ui);
    let now = now_ms();
    let old_identifiers = schema.password_identifiers(&identity.traits);
    let update = match submitted_method(&body) {
        Some("profile") => {
            let mut traits = body.get("traits").cloned().unwrap_or_else(|| json!({}));
            if !traits.is_object() {
                traits = json!({});
            }
            schema.coerce_form_traits(&mut traits);
            for field in &schema.fields {
                if let Some(value) = crate::schema::lookup(&traits, &field.path) {
                    set_value(
                        &mut record.ui,
                        &format!("traits.{}", field.path),
                        value.clone(),
                    );
                }
            }
            let errors = schema.validate(&traits);
            if !errors.is_empty() {
                for e in errors {
                    add_message(&mut record.ui, e.node.as_deref(), e.message);
                }
                let current = identity_json(&identity, &public);
                return super::flow_failed_with(&state, KIND, record, &headers, Some(current))
                    .await;
            }
            let identifiers = schema.password_identifiers(&traits);
            if identifiers != old_identifiers && !privileged(&state, &session, now) {
                return refresh_required(&state, &record.request_url, &headers);
            }
            identity.traits = traits;
            refresh_addresses(&schema, &mut identity, now);
            Some(PasswordUpdate {
                identifiers,
                config: None,
            })
        }
        Some("totp") if state.second_factor.totp_enabled => {
            if !privileged(&state, &session, now) {
                return refresh_required(&state, &record.request_url, &headers);
            }
            match super::second_factor::settings_submit(
                &state,
                &mut record,
                &session,
                &identity,
                &body,
            )
            .await
            {
                Ok(None) => None,
                Ok(Some(_)) => {
                    let current = identity_json(&identity, &public);
                    return super::flow_failed_with(&state, KIND, record, &headers, Some(current))
                        .await;
                }
                Err(e) => return e.into_response(),
            }
        }
        Some("lookup_secret")
            if state.second_factor.lookup_enabled && state.cipher.is_configured() =>
        {
            if !privileged(&state, &session, now) {
                return refresh_required(&state, &record.request_url, &headers);
            }
            match super::lookup::settings_submit(&state, &mut record, &identity, &body).await {
                Ok(super::lookup::Outcome::Saved) => None,
                Ok(super::lookup::Outcome::Shown) => {
                    return show_form(&state, record, &identity, &headers, now).await;
                }
                Ok(super::lookup::Outcome::Failed) => {
                    let current = identity_json(&identity, &public);
                    return super::flow_failed_with(&state, KIND, record, &headers, Some(current))
                        .await;
                }
                Err(e) => return e.into_response(),
            }
        }
        Some("password") => {
            if !privileged(&state, &session, now) {
                return refresh_required(&state, &record.request_url, &headers);
            }
            let password = Password::new(
                body.get("password")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            );
            if let Some(problem) = check_policy(&state.settings.policy, &password, &old_identifiers)
            {
                add_message(&mut record.ui, Some("password"), problem);
                let current = identity_json(&identity, &public);
                return super::flow_failed_with(&state, KIND, record, &headers, Some(current))
                    .await;
            }
            let hashed = match state.hasher.hash(&password).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(error = %e, "password hashing failed");
                    return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR).into_response();
                }
            };
            Some(PasswordUpdate {
                identifiers: old_identifiers,
                config: Some(json!({ "hashed_password": hashed })),
            })
        }
        _ => {
            add_message(&mut record.ui, None, Message::unknown_method());
            let current = identity_json(&identity, &public);
            return super::flow_failed_with(&state, KIND, record, &headers, Some(current)).await;
        }
    };
    if let Some(update) = update {
        identity.updated_at = now;
        match state.store.update_identity(&identity, &update).await {
            Ok(true) => {}
            Ok(false) => return ApiError::unauthorized().into_response(),
            Err(StoreError::Conflict) => {
                add_message(&mut record.ui, None, Message::duplicate_identifier());
                let current = identity_json(&identity, &public);
                return super::flow_failed_with(&state, KIND, record, &headers, Some(current))
                    .await;
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    tracing::info!(identity = %identity.id, "settings updated");
    record.state = "success".to_owned();
    add_message(&mut record.ui, None, Message::settings_saved());
    if let Err(e) = state
        .store
        .update_flow(record.id, &record.state, &record.ui, now)
        .await
    {
        return ApiError::from(e).into_response();
    }
    if record.flow_type == "browser" && !is_json_request(&headers) {
        let target = record
            .return_to
            .clone()
            .unwrap_or_else(|| super::ui_redirect_url(&state, KIND, record.id));
        return super::see_other(&target);
    }
    let mut flow = super::flow_json(&state, &record);
    flow["identity"] = identity_json(&identity, &public);
    super::no_cache(axum::Json(flow).into_response())
}
