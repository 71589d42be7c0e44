//! The TOTP second factor in the flows: enrolment and unlinking in settings (`totp_qr`,
//! `totp_secret_key`, `totp_code`, `totp_unlink`), the AAL2 step-up login
//! (`/self-service/login/{browser,api}?aal=aal2` on top of an AAL1 session), and the
//! `highest_available` checks of whoami and settings (403 `session_aal2_required`).
//! The secret is encrypted with `secrets.cipher`; each 30-second step is accepted once.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{FlowKind, FlowType, NewFlow, add_message, clear_messages, csrf_node, input_node};
use crate::clock::{now_ms, rfc3339};
use crate::http::error::ApiError;
use crate::http::negotiate::is_json_request;
use crate::state::AppState;
use crate::store::{FlowRecord, IdentityRecord, SessionRecord};
use crate::text::Message;
use crate::totp::{Secret, otpauth_url, qr_data_uri};

/// Settings resolved from the config.
#[derive(Debug, Clone)]
pub struct SecondFactor {
    pub totp_enabled: bool,
    /// `selfservice.methods.lookup_secret.enabled` (backup codes).
    pub lookup_enabled: bool,
    pub issuer: String,
    /// `session.whoami.required_aal == highest_available`.
    pub whoami_highest_available: bool,
    /// `selfservice.flows.settings.required_aal == highest_available`.
    pub settings_highest_available: bool,
}

impl SecondFactor {
    pub fn from_config(config: &crate::config::Config, public_base: &str) -> Self {
        let issuer = config
            .selfservice
            .methods
            .totp
            .config
            .issuer
            .clone()
            .unwrap_or_else(|| {
                url::Url::parse(public_base)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "Portcullis".to_owned())
            });
        Self {
            totp_enabled: config.selfservice.methods.totp.enabled,
            lookup_enabled: config.selfservice.methods.lookup_secret.enabled,
            issuer,
            whoami_highest_available: config.session.whoami.required_aal == "highest_available",
            settings_highest_available: config.selfservice.flows.settings.required_aal
                == "highest_available",
        }
    }
}

/// Whether this session must step up before it counts (the identity has a second factor).
pub fn needs_aal2(session: &SessionRecord, identity: &IdentityRecord) -> bool {
    identity.available_aal == "aal2" && session.aal != "aal2"
}

/// Kratos' 403 `session_aal2_required`, pointing at the step-up login.
pub fn aal2_required(state: &AppState, return_to: Option<&str>) -> ApiError {
    let mut target = format!(
        "{}/self-service/login/browser?aal=aal2",
        state.settings.public_base
    );
    if let Some(r) = return_to {
        target.push_str("&return_to=");
        target.extend(url::form_urlencoded::byte_serialize(r.as_bytes()));
    }
    ApiError::new(StatusCode::FORBIDDEN)
        .id("session_aal2_required")
        .reason("An active session was found but it does not fulfill the Authenticator Assurance Level, implying that the session must first be upgraded.")
        .details(json!({ "redirect_browser_to": target }))
        .extra("redirect_browser_to", json!(target))
}

fn text_node(id: &str, text: Message, label: Message) -> Value {
    json!({
        "type": "text",
        "group": "totp",
        "attributes": { "id": id, "text": text, "node_type": "text" },
        "messages": [],
        "meta": { "label": label },
    })
}

/// Adds the TOTP nodes to a fresh settings flow: unlink when enrolled, else a new secret (kept
/// encrypted in the flow's private context) with its QR code and the code input.
pub async fn add_settings_nodes(
    state: &AppState,
    flow: &mut FlowRecord,
    identity: &IdentityRecord,
) -> Result<(), ApiError> {
    if !state.second_factor.totp_enabled || !state.cipher.is_configured() {
        return Ok(());
    }
    let enrolled = state
        .store
        .credentials(identity.id)
        .await?
        .iter()
        .any(|c| c.kind == "totp");
    let mut nodes = flow.ui["nodes"].as_array().cloned().unwrap_or_default();
    if enrolled {
        nodes.push(input_node(
            "totp",
            "totp_unlink",
            "submit",
            Some(json!(true)),
            false,
            None,
            Some(Message::label_totp_unlink()),
        ));
    } else {
        let secret = Secret::generate();
        let account = crate::identity::display_identifier(identity);
        let url = otpauth_url(&secret, &state.second_factor.issuer, &account);
        let sealed = state
            .cipher
            .encrypt(secret.base32().as_bytes())
            .map_err(|e| {
                tracing::error!(error = %e, "cannot encrypt a TOTP secret");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR)
            })?;
        state.store.set_flow_context(flow.id, Some(&sealed)).await?;
        nodes.push(json!({
            "type": "img",
            "group": "totp",
            "attributes": {
                "id": "totp_qr",
                "src": qr_data_uri(&url).unwrap_or_default(),
                "width": 256,
                "height": 256,
                "node_type": "img",
            },
            "messages": [],
            "meta": { "label": Message::label_totp_qr() },
        }));
        nodes.push(text_node(
            "totp_secret_key",
            Message::totp_secret(&secret.base32()),
            Message::label_totp_secret(),
        ));
        nodes.push(input_node(
            "totp",
            "totp_code",
            "text",
            None,
            true,
            Some("one-time-code"),
            Some(Message::label_verify_code()),
        ));
        nodes.push(input_node(
            "totp",
            "method",
            "submit",
            Some(json!("totp")),
            false,
            None,
            Some(Message::label_save()),
        ));
    }
    flow.ui["nodes"] = Value::Array(nodes);
    state
        .store
        .update_flow(flow.id, &flow.state, &flow.ui, now_ms())
        .await?;
    Ok(())
}

/// The settings `totp` method: enrol with the pending secret and a valid code (the session is
/// upgraded to AAL2: the user just proved the factor), or unlink (`totp_unlink=true`).
/// `Ok(None)` = done, the caller answers with the saved flow; `Ok(Some(response))` = answered.
pub async fn settings_submit(
    state: &AppState,
    record: &mut FlowRecord,
    session: &SessionRecord,
    identity: &IdentityRecord,
    body: &Value,
) -> Result<Option<Response>, ApiError> {
    let now = now_ms();
    let unlink = matches!(body.get("totp_unlink"), Some(Value::Bool(true)))
        || body.get("totp_unlink").and_then(Value::as_str) == Some("true");
    if unlink {
        state
            .store
            .set_credential(identity.id, "totp", None, now)
            .await?;
        tracing::info!(identity = %identity.id, "TOTP unlinked");
        refresh_settings_nodes(state, record, identity).await?;
        return Ok(None);
    }
    let code = body
        .get("totp_code")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned();
    let pending = state.store.flow_context(record.id).await?;
    let secret = pending
        .and_then(|sealed| state.cipher.decrypt(&sealed).ok())
        .and_then(|plain| String::from_utf8(plain).ok())
        .and_then(|b32| Secret::from_base32(&b32));
    let Some(secret) = secret else {
        add_message(
            &mut record.ui,
            None,
            Message::validation("Start a new settings flow to set up an authenticator app."),
        );
        return Ok(Some(StatusCode::BAD_REQUEST.into_response()));
    };
    let Some(step) = secret.matching_step(&code, now) else {
        add_message(&mut record.ui, Some("totp_code"), Message::totp_invalid());
        return Ok(Some(StatusCode::BAD_REQUEST.into_response()));
    };
    let sealed = state
        .cipher
        .encrypt(secret.base32().as_bytes())
        .map_err(|e| {
            tracing::error!(error = %e, "cannot encrypt a TOTP secret");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR)
        })?;
    let config = json!({ "totp_secret_encrypted": sealed, "last_step": step });
    state
        .store
        .set_credential(identity.id, "totp", Some(&config), now)
        .await?;
    state.store.set_flow_context(record.id, None).await?;
    upgrade(state, session, "totp", now).await?;
    tracing::info!(identity = %identity.id, "TOTP enrolled");
    refresh_settings_nodes(state, record, identity).await?;
    Ok(None)
}

/// Replaces the `totp` nodes after an enrolment or unlink (unlink button ↔ a new QR code).
async fn refresh_settings_nodes(
    state: &AppState,
    record: &mut FlowRecord,
    identity: &IdentityRecord,
) -> Result<(), ApiError> {
    if let Some(nodes) = record.ui["nodes"].as_array_mut() {
        nodes.retain(|n| n["group"] != "totp");
    }
    add_settings_nodes(state, record, identity).await
}

async fn upgrade(
    state: &AppState,
    session: &SessionRecord,
    method: &str,
    now: i64,
) -> Result<(), ApiError> {
    let mut methods = session
        .authentication_methods
        .as_array()
        .cloned()
        .unwrap_or_default();
    methods.push(json!({ "method": method, "aal": "aal2", "completed_at": rfc3339(now) }));
    state
        .store
        .upgrade_session(session.id, "aal2", &Value::Array(methods), now)
        .await?;
    Ok(())
}

/// The step-up login nodes for the factors the identity has.
fn login_nodes(totp: bool, lookup: bool) -> Vec<Value> {
    let mut nodes = vec![csrf_node()];
    if totp {
        nodes.extend(totp_login_nodes());
    }
    if lookup {
        nodes.extend(super::lookup::login_nodes());
    }
    nodes
}

fn totp_login_nodes() -> Vec<Value> {
    vec![
        input_node(
            "totp",
            "totp_code",
            "text",
            None,
            true,
            Some("one-time-code"),
            Some(Message::label_authentication_code()),
        ),
        input_node(
            "totp",
            "method",
            "submit",
            Some(json!("totp")),
            false,
            None,
            Some(Message::label_use_authenticator()),
        ),
    ]
}

/// `GET /self-service/login/{browser,api}?aal=aal2`: needs an AAL1 session of an identity with
/// a second factor; the flow is bound to that identity.
pub async fn create_login(
    state: &AppState,
    flow_type: FlowType,
    request_url: String,
    return_to: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let (session, identity) = match state.current_session(headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return ApiError::unauthorized().into_response();
        }
        Err(e) => return e.into_response(),
    };
    if identity.available_aal != "aal2" {
        return ApiError::bad_request("No second factor is set up for this account.")
            .id("no_aal2_credentials")
            .into_response();
    }
    if session.aal == "aal2" {
        return super::registration::already_signed_in(state, flow_type, headers, return_to);
    }
    let kinds: Vec<String> = match state.store.credentials(identity.id).await {
        Ok(list) => list.into_iter().map(|c| c.kind).collect(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let has = |kind: &str| kinds.iter().any(|k| k == kind);
    let (csrf, cookie) = super::csrf_for_request(state, headers);
    let cookies: Vec<String> = match flow_type {
        FlowType::Browser => cookie.into_iter().collect(),
        FlowType::Api => Vec::new(),
    };
    let new = NewFlow {
        kind: FlowKind::Login,
        flow_type,
        request_url,
        return_to,
        csrf_token: csrf,
        nodes: login_nodes(has("totp"), has("lookup_secret")),
        identity_id: Some(identity.id),
        state: "choose_method",
    };
    let mut record = match super::create_with(state, new).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    add_message(&mut record.ui, None, Message::second_factor_required());
    if let Err(e) = state
        .store
        .update_flow(record.id, &record.state, &record.ui, now_ms())
        .await
    {
        return ApiError::from(e).into_response();
    }
    super::created_response(state, FlowKind::Login, &record, headers, &cookies)
}

/// Submitting a step-up login flow (`method: totp`, `totp_code`).
pub async fn submit_login(
    state: &AppState,
    mut record: FlowRecord,
    headers: &HeaderMap,
    body: &Value,
) -> Response {
    let (session, identity) = match state.current_session(headers).await {
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
    clear_messages(&mut record.ui);
    let now = now_ms();
    let method = body
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if method == "lookup_secret" {
        let presented = body
            .get("lookup_secret")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match super::lookup::redeem(state, &identity, presented).await {
            Ok(true) => {
                return finish_login(
                    state,
                    record,
                    headers,
                    &session,
                    &identity,
                    "lookup_secret",
                    now,
                )
                .await;
            }
            Ok(false) => {
                add_message(
                    &mut record.ui,
                    Some("lookup_secret"),
                    Message::lookup_invalid(),
                );
                return super::flow_failed(state, FlowKind::Login, record, headers).await;
            }
            Err(e) => return e.into_response(),
        }
    }
    if method != "totp" {
        add_message(&mut record.ui, None, Message::unknown_method());
        return super::flow_failed(state, FlowKind::Login, record, headers).await;
    }
    let credential = match state.store.credentials(identity.id).await {
        Ok(list) => list.into_iter().find(|c| c.kind == "totp"),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let code = body
        .get("totp_code")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let accepted = match &credential {
        Some(c) => {
            let secret = c
                .config
                .get("totp_secret_encrypted")
                .and_then(Value::as_str)
                .and_then(|sealed| state.cipher.decrypt(sealed).ok())
                .and_then(|plain| String::from_utf8(plain).ok())
                .and_then(|b32| Secret::from_base32(&b32));
            let last = c
                .config
                .get("last_step")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MIN);
            match secret.and_then(|s| s.matching_step(code, now)) {
                Some(step) if step > last => {
                    let mut next = c.config.clone();
                    next["last_step"] = json!(step);
                    match state
                        .store
                        .swap_credential_config(identity.id, "totp", &c.config, &next, now)
                        .await
                    {
                        Ok(swapped) => swapped,
                        Err(e) => return ApiError::from(e).into_response(),
                    }
                }
                _ => false,
            }
        }
        None => false,
    };
    if !accepted {
        add_message(&mut record.ui, Some("totp_code"), Message::totp_invalid());
        return super::flow_failed(state, FlowKind::Login, record, headers).await;
    }
    finish_login(state, record, headers, &session, &identity, "totp", now).await
}

/// Upgrades the session after a second factor and answers the login flow.
async fn finish_login(
    state: &AppState,
    record: FlowRecord,
    headers: &HeaderMap,
    session: &SessionRecord,
    identity: &IdentityRecord,
    method: &str,
    now: i64,
) -> Response {
    if let Err(e) = upgrade(state, session, method, now).await {
        return e.into_response();
    }
    if let Err(e) = state
        .store
        .update_flow(record.id, "passed_challenge", &record.ui, now)
        .await
    {
        return ApiError::from(e).into_response();
    }
    tracing::info!(identity = %identity.id, session = %session.id, "second factor accepted");
    let session = match state.store.session(session.id).await {
        Ok(Some((s, _))) => s,
        Ok(None) => return ApiError::unauthorized().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let session_body =
        crate::session::session_json(&session, identity, &state.settings.public_base, now);
    let target = super::return_url(state, &record, state.settings.login_return_url.as_ref());
    if record.flow_type == "browser" && !is_json_request(headers) {
        return super::see_other(&target);
    }
    let mut result = json!({ "session": session_body, "continue_with": null });
    if record.flow_type == "browser" {
        result["continue_with"] =
            json!([{ "action": "redirect_browser_to", "redirect_browser_to": target }]);
    }
    super::no_cache(axum::Json(result).into_response())
}
