//! `POST /admin/recovery/code` and `/admin/recovery/link`: an administrator starts a recovery
//! for an identity and hands the code or link to its owner out of band (Kratos' shapes:
//! `{identity_id, expires_in}` in, `{recovery_link, recovery_code, expires_at}` out, 201).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::clock::now_ms;
use crate::config::units::parse_duration;
use crate::flow::code::{Challenge, expires, sent_flow};
use crate::flow::{FlowKind, FlowType};
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::Outbox;

/// `POST /admin/recovery/code`.
pub async fn create_code(State(state): State<AppState>, body: Bytes) -> Response {
    create(state, body, false).await
}

/// `POST /admin/recovery/link`.
pub async fn create_link(State(state): State<AppState>, body: Bytes) -> Response {
    create(state, body, true).await
}

async fn create(state: AppState, body: Bytes, link: bool) -> Response {
    let result = async {
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("Unable to decode JSON body: {e}")))?;
        let identity_id = body
            .get("identity_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| ApiError::bad_request("identity_id must be an identity's UUID."))?;
        let lifespan_ms = match body.get("expires_in").and_then(Value::as_str) {
            Some(raw) => parse_duration(raw)
                .and_then(|d| i64::try_from(d.as_millis()).ok())
                .ok_or_else(|| ApiError::bad_request("expires_in must be a duration like 1h."))?,
            None => state.email.recovery.lifespan_ms,
        };
        let flow_type = match body.get("flow_type").and_then(Value::as_str) {
            Some("api") => FlowType::Api,
            _ => FlowType::Browser,
        };
        let identity = state
            .store
            .identity(identity_id)
            .await?
            .ok_or_else(|| ApiError::not_found("The requested identity could not be found."))?;
        let address = identity
            .recovery_addresses
            .as_array()
            .and_then(|list| list.first())
            .and_then(|a| a["value"].as_str())
            .unwrap_or_default()
            .to_owned();
        let now = now_ms();
        let challenge = Challenge {
            address: &address,
            identity_id: identity.id,
            lifespan_ms,
            link,
        };
        let (mut flow, code, stored) = sent_flow(
            &state,
            FlowKind::Recovery,
            flow_type,
            crate::csrf::generate(),
            &challenge,
            now,
        );
        // As Kratos, the flow's request URL is the admin call that made it: that is what lets a
        // browser opening the recovery link adopt the flow's CSRF token (see `code::begin`).
        flow.request_url = crate::flow::code::admin_request_url(&state, link);
        let outbox = Outbox {
            flows: vec![flow.clone()],
            codes: vec![stored],
            ..Outbox::default()
        };
        state.store.update_flow_with_outbox(&flow, &outbox, now).await?;
        tracing::info!(identity = %identity.id, "recovery started by admin");
        let base = format!(
            "{}/self-service/recovery?flow={}",
            state.settings.public_base, flow.id
        );
        Ok::<Value, ApiError>(if link {
            json!({ "recovery_link": format!("{base}&token={code}"), "expires_at": expires(flow.expires_at) })
        } else {
            json!({ "recovery_link": base, "recovery_code": code, "expires_at": expires(flow.expires_at) })
        })
    }
    .await;
    match result {
        Ok(body) => (StatusCode::CREATED, axum::Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}
