//! Verification of an email address (`/self-service/verification/{api,browser}`, fetch, submit
//! `GET|POST /self-service/verification?flow=`) with the `code` or `link` method:
//! `choose_method` → `sent_email` → `passed_challenge`, marking the address `verified` with status
//! `completed`. Registration starts one of these flows itself when verification is enabled
//! ([`after_registration`]).

use axum::body::Bytes;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::code::{self, Checked, Step};
use super::{FlowKind, FlowType, add_message};
use crate::clock::rfc3339;
use crate::state::AppState;
use crate::store::{FlowRecord, IdentityRecord, Outbox};
use crate::text::Message;

const KIND: FlowKind = FlowKind::Verification;

super::create_handlers!("verification");

async fn create(
    state: AppState,
    uri: OriginalUri,
    query: Value,
    headers: HeaderMap,
    flow_type: FlowType,
) -> Response {
    if !state.email.verification.enabled {
        return code::disabled(KIND).into_response();
    }
    let return_to = match super::check_return_to(&state, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
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

/// `GET /self-service/verification/flows?id=`.
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

/// Marks `address` verified on the identity (verification, and recovery: recovering through an
/// address proves control of it).
pub fn mark_verified(identity: &mut IdentityRecord, address: &str, now: i64) {
    if let Some(list) = identity.verifiable_addresses.as_array_mut() {
        for entry in list {
            let matches = entry["value"]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(address));
            if matches {
                entry["verified"] = json!(true);
                entry["status"] = json!("completed");
                entry["verified_at"] = json!(rfc3339(now));
                entry["updated_at"] = json!(rfc3339(now));
            }
        }
    }
}

/// `GET|POST /self-service/verification?flow=`.
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
    // The identity is read before the code is spent so that the address update and the code go
    // in one transaction.
    let now = crate::clock::now_ms();
    let codes = match state.store.live_codes(record.id, now).await {
        Ok(c) => c,
        Err(e) => return crate::http::error::ApiError::from(e).into_response(),
    };
    let owner = state
        .email
        .matching(record.id, &presented, &codes)
        .and_then(|c| c.identity_id);
    let identity = match owner {
        Some(id) => match state.store.identity(id).await {
            Ok(found) => found,
            Err(e) => return crate::http::error::ApiError::from(e).into_response(),
        },
        None => None,
    };
    let target = record
        .return_to
        .clone()
        .or_else(|| state.email.verification.return_url.clone())
        .unwrap_or_else(|| state.settings.default_return_url.clone());
    let checked = code::check(&state, KIND, record, &headers, &presented, |flow, code| {
        flow.state = "passed_challenge".to_owned();
        flow.ui["nodes"] = json!([
            super::csrf_node(),
            {
                "type": "a",
                "group": "code",
                "attributes": {
                    "href": target,
                    "title": Message::label_continue(),
                    "id": "continue",
                    "node_type": "a",
                },
                "messages": [],
                "meta": { "label": Message::label_continue() },
            }
        ]);
        add_message(&mut flow.ui, None, Message::verification_succeeded());
        let mut identity = identity?;
        mark_verified(&mut identity, &code.address, crate::clock::now_ms());
        Some(identity)
    })
    .await;
    match checked {
        Checked::Answered(response) => response,
        Checked::Redeemed(code) => {
            tracing::info!(identity = ?code.identity_id, "address verified");
            match state.store.flow(code.flow_id).await {
                Ok(Some(flow)) => code::answer(&state, KIND, &flow, &headers, Vec::new()),
                Ok(None) => crate::http::error::ApiError::not_found(
                    "The verification flow could not be found.",
                )
                .into_response(),
                Err(e) => crate::http::error::ApiError::from(e).into_response(),
            }
        }
    }
}

/// After a registration with verification enabled: a `sent_email` verification flow for the
/// first email address, its code and mail, to be written with the new identity. Also marks the
/// address `sent`. Returns the flow (for `show_verification_ui`).
pub fn after_registration(
    state: &AppState,
    identity: &mut IdentityRecord,
    registration: &FlowRecord,
    outbox: &mut Outbox,
    now: i64,
) -> Result<Option<(FlowRecord, String)>, crate::http::error::ApiError> {
    if !state.email.verification.enabled {
        return Ok(None);
    }
    let Some(address) = identity
        .verifiable_addresses
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["via"] == "email")
        .and_then(|a| a["value"].as_str())
        .map(str::to_owned)
    else {
        return Ok(None);
    };
    let settings = &state.email.verification;
    let lifespan = if settings.link {
        state.email.link_lifespan_ms
    } else {
        state.email.code_lifespan_ms
    };
    let challenge = code::Challenge {
        address: &address,
        identity_id: identity.id,
        lifespan_ms: settings.lifespan_ms.max(lifespan),
        link: settings.link,
    };
    let (mut flow, code, stored) = code::sent_flow(
        state,
        KIND,
        FlowType::of(&registration.flow_type),
        registration.csrf_token.clone(),
        &challenge,
        now,
    );
    flow.return_to = registration.return_to.clone();
    if let Some(list) = identity.verifiable_addresses.as_array_mut() {
        for entry in list.iter_mut().filter(|a| a["value"] == address.as_str()) {
            entry["status"] = json!("sent");
        }
    }
    let identity_json = crate::identity::identity_json(identity, &state.settings.public_base);
    let mail = code::code_mail(
        state,
        KIND,
        &flow,
        &code,
        &challenge,
        Some(identity_json),
        now,
    )?;
    outbox.flows.push(flow.clone());
    outbox.codes.push(stored);
    outbox.messages.push(mail);
    Ok(Some((flow, address)))
}
