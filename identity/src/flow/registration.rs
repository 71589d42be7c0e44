//! Registration with the password method: create (`/self-service/registration/{api,browser}`),
//! submit (`POST /self-service/registration?flow=`), the unified node layout built from the
//! identity schema, and the `session` after-hook.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{FlowKind, FlowType, add_message, clear_messages, input_node, set_value};
use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::http::negotiate::{is_json_request, wants_html};
use crate::identity::{identity_json, new_identity};
use crate::password::{Password, check_policy};
use crate::session::session_json;
use crate::state::AppState;
use crate::store::{CredentialRecord, StoreError};
use crate::text::Message;

const KIND: FlowKind = FlowKind::Registration;

/// Trait nodes from the default schema, then password and the submit button.
pub fn nodes(state: &AppState) -> Vec<Value> {
    let mut out = trait_nodes(state, "default");
    out.extend(password_nodes(Message::label_sign_up()));
    out
}

/// The `password` input and the `method=password` submit.
pub fn password_nodes(submit_label: Message) -> Vec<Value> {
    vec![
        input_node(
            "password",
            "password",
            "password",
            None,
            true,
            Some("new-password"),
            Some(Message::label_password()),
        ),
        input_node(
            "password",
            "method",
            "submit",
            Some(json!("password")),
            false,
            None,
            Some(submit_label),
        ),
    ]
}

/// One input node per trait of the default schema, in `group`.
pub fn trait_nodes(state: &AppState, group: &str) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(schema) = state.schemas.load().default_schema() {
        for field in &schema.fields {
            let (input_type, autocomplete) =
                match (field.format.as_deref(), field.json_type.as_str()) {
                    (Some("email"), _) => ("email", Some("email")),
                    (Some("tel"), _) => ("tel", Some("tel")),
                    (Some("date"), _) => ("date", None),
                    (Some("date-time"), _) => ("datetime-local", None),
                    (Some("uri"), _) => ("url", Some("url")),
                    (_, "integer" | "number") => ("number", None),
                    (_, "boolean") => ("checkbox", None),
                    _ => ("text", None),
                };
            let name = format!("traits.{}", field.path);
            let title = field.title.clone().unwrap_or_else(|| field.path.clone());
            let mut node = input_node(
                group,
                &name,
                input_type,
                None,
                field.required,
                autocomplete,
                Some(Message::label_trait(&title, &name)),
            );
            if let Some(p) = &field.pattern {
                node["attributes"]["pattern"] = json!(p);
            }
            out.push(node);
        }
    }
    out
}

fn request_url(state: &AppState, uri: &OriginalUri) -> String {
    format!("{}{}", state.settings.public_base, uri.0)
}

super::create_handlers!("registration");

async fn create(
    state: AppState,
    uri: OriginalUri,
    query: Value,
    headers: HeaderMap,
    flow_type: FlowType,
) -> Response {
    if !state.settings.registration_enabled {
        return ApiError::bad_request("Registration flow disabled.")
            .id("self_service_flow_disabled")
            .into_response();
    }
    let return_to = match super::check_return_to(&state, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match state.current_session(&headers).await {
        Ok(Some(_)) => return already_signed_in(&state, flow_type, &headers, return_to),
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let (csrf, cookie) = super::csrf_for_request(&state, &headers);
    let cookies: Vec<String> = match flow_type {
        FlowType::Browser => cookie.into_iter().collect(),
        FlowType::Api => Vec::new(),
    };
    match super::create(
        &state,
        KIND,
        flow_type,
        request_url(&state, &uri),
        return_to,
        csrf,
    )
    .await
    {
        Ok(record) => super::created_response(&state, KIND, &record, &headers, &cookies),
        Err(e) => e.into_response(),
    }
}

/// Kratos' answer when a signed-in user starts login or registration.
pub(super) fn already_signed_in(
    state: &AppState,
    flow_type: FlowType,
    headers: &HeaderMap,
    return_to: Option<String>,
) -> Response {
    if flow_type == FlowType::Browser && wants_html(headers) {
        return super::see_other(
            &return_to.unwrap_or_else(|| state.settings.default_return_url.clone()),
        );
    }
    ApiError::bad_request("A valid session was detected and thus registration is not possible.")
        .id("session_already_available")
        .into_response()
}

/// `GET /self-service/registration/flows?id=`.
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

/// `POST /self-service/registration?flow=`.
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
    let flow_type = FlowType::of(&record.flow_type);
    match state.current_session(&headers).await {
        Ok(Some(_)) => return already_signed_in(&state, flow_type, &headers, record.return_to),
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    clear_messages(&mut record.ui);
    if body.get("method").and_then(Value::as_str) != Some("password") {
        add_message(&mut record.ui, None, Message::unknown_method());
        return super::flow_failed(&state, KIND, record, &headers).await;
    }
    if !state.settings.password_enabled {
        return ApiError::not_found("This endpoint was disabled by system administrator. Please check your url or contact the system administrator to enable it.").into_response();
    }
    let Some(schema) = state.schemas.load().default_schema() else {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    };
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
        return super::flow_failed(&state, KIND, record, &headers).await;
    }
    let identifiers = schema.password_identifiers(&traits);
    if identifiers.is_empty() {
        add_message(&mut record.ui, None, Message::no_identifier());
        return super::flow_failed(&state, KIND, record, &headers).await;
    }
    let Some(password) = body.get("password").and_then(Value::as_str) else {
        add_message(
            &mut record.ui,
            Some("password"),
            Message::missing_property("password"),
        );
        return super::flow_failed(&state, KIND, record, &headers).await;
    };
    let password = Password::new(password.to_owned());
    if let Some(problem) = check_policy(&state.settings.policy, &password, &identifiers) {
        add_message(&mut record.ui, Some("password"), problem);
        return super::flow_failed(&state, KIND, record, &headers).await;
    }
    let hashed = match state.hasher.hash(&password).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "password hashing failed");
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR).into_response();
        }
    };
    let now = now_ms();
    let mut identity = new_identity(&schema, traits, now);
    let mut outbox = crate::store::Outbox::default();
    let verification = match super::verification::after_registration(
        &state,
        &mut identity,
        &record,
        &mut outbox,
        now,
    ) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let credential = CredentialRecord {
        kind: "password".to_owned(),
        config: json!({ "hashed_password": hashed }),
        identifiers,
        created_at: now,
        updated_at: now,
    };
    match state
        .store
        .insert_identity_with_outbox(&identity, &[credential], &outbox)
        .await
    {
        Ok(()) => state.email.courier.wake(),
        Err(StoreError::Conflict) => {
            crate::metrics::Metrics::inc(&state.metrics.registrations_failed);
            add_message(&mut record.ui, None, Message::duplicate_identifier());
            return super::flow_failed(&state, KIND, record, &headers).await;
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    tracing::info!(identity = %identity.id, "identity registered");
    crate::metrics::Metrics::inc(&state.metrics.registrations_succeeded);
    if let Err(e) = state
        .store
        .update_flow(record.id, "passed_challenge", &record.ui, now)
        .await
    {
        return ApiError::from(e).into_response();
    }
    let public = &state.settings.public_base;
    let mut result = json!({ "identity": identity_json(&identity, public) });
    let mut cookies = Vec::new();
    let mut continue_with = Vec::new();
    if state.settings.registration_issues_session {
        let (session, token) = match state.issue_session(identity.id, "password", &headers).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        };
        result["session"] = session_json(&session, &identity, public, now);
        match flow_type {
            FlowType::Api => {
                result["session_token"] = json!(token.expose());
                continue_with.push(json!({
                    "action": "set_ory_session_token",
                    "ory_session_token": token.expose(),
                }));
            }
            FlowType::Browser => cookies.push(super::session_cookie(&state, token.expose())),
        }
    }
    let mut target = super::return_url(
        &state,
        &record,
        state.settings.registration_return_url.as_ref(),
    );
    if let Some((flow, address)) = verification.filter(|_| state.email.show_verification_ui) {
        let url = super::ui_redirect_url(&state, FlowKind::Verification, flow.id);
        continue_with.push(json!({
            "action": "show_verification_ui",
            "flow": { "id": flow.id, "verifiable_address": address, "url": url },
        }));
        target = url;
    }
    if flow_type == FlowType::Browser {
        if !is_json_request(&headers) {
            return super::with_cookies(super::see_other(&target), &cookies);
        }
        continue_with.push(json!({"action": "redirect_browser_to", "redirect_browser_to": target}));
    }
    result["continue_with"] = Value::Array(continue_with);
    super::no_cache(super::with_cookies(
        axum::Json(result).into_response(),
        &cookies,
    ))
}
