//! `/admin/courier/messages`: the outbox as Kratos shows it (newest first, filters `status` and
//! `recipient`, keyset pages), and one message with its delivery attempts.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Page, path_id};
use crate::clock::rfc3339;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{CourierFilter, CourierRecord, DispatchRecord};

const STATUSES: [&str; 4] = ["queued", "processing", "sent", "abandoned"];

fn message_json(m: &CourierRecord, dispatches: Option<&[DispatchRecord]>) -> Value {
    let mut body = json!({
        "id": m.id,
        "status": m.status,
        "type": "email",
        "channel": "email",
        "recipient": m.recipient,
        "subject": m.subject,
        "body": m.body,
        "template_type": m.template_type,
        "send_count": m.send_count,
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
    });
    if let Some(list) = dispatches {
        body["dispatches"] = list
            .iter()
            .map(|d| {
                json!({
                    "id": d.id,
                    "message_id": d.message_id,
                    "status": d.status,
                    "error": d.error.as_ref().map(|e| json!({ "message": e })),
                    "created_at": rfc3339(d.created_at),
                    "updated_at": rfc3339(d.created_at),
                })
            })
            .collect();
    }
    body
}

/// `GET /admin/courier/messages`.
pub async fn list(State(state): State<AppState>, Query(query): Query<Value>) -> Response {
    let page = Page::from_query(&query);
    let text = |key: &str| {
        query
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let status = text("status");
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        return ApiError::bad_request(format!("status must be one of {}", STATUSES.join(", ")))
            .into_response();
    }
    let filter = CourierFilter {
        status,
        recipient: text("recipient").map(|r| r.to_lowercase()),
    };
    let messages = match state
        .store
        .list_courier_messages(&filter, page.after, page.size)
        .await
    {
        Ok(list) => list,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let body: Vec<Value> = messages.iter().map(|m| message_json(m, None)).collect();
    let mut response = axum::Json(body).into_response();
    let base = format!("{}/admin/courier/messages", state.settings.admin_base);
    page.link(
        &mut response,
        &base,
        messages.last().map(|m| m.id),
        messages.len(),
    );
    response
}

/// `GET /admin/courier/messages/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let id = match path_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state.store.courier_message(id).await {
        Ok(Some((message, dispatches))) => {
            axum::Json(message_json(&message, Some(&dispatches))).into_response()
        }
        Ok(None) => ApiError::not_found("Unable to locate the resource").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
