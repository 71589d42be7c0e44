//! `/admin/sessions` and `/admin/identities/{id}/sessions`: list (keyset pages, `active`
//! filter), get, disable (deactivate, not delete), extend, and delete all of an identity's.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{Page, path_id};
use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::session::session_json;
use crate::state::AppState;
use crate::store::SessionFilter;

fn active_filter(query: &Value) -> Option<bool> {
    match query.get("active").and_then(Value::as_str) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

async fn list_inner(
    state: &AppState,
    identity: Option<uuid::Uuid>,
    query: &Value,
    base: String,
) -> Response {
    let page = Page::from_query(query);
    let now = now_ms();
    let filter = SessionFilter {
        identity,
        active: active_filter(query),
        except: None,
        now,
    };
    let sessions = match state
        .store
        .list_sessions(&filter, page.after, 0, page.size)
        .await
    {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let body: Vec<Value> = sessions
        .iter()
        .map(|(s, i)| session_json(s, i, &state.settings.public_base, now))
        .collect();
    let mut response = axum::Json(body).into_response();
    page.link(
        &mut response,
        &base,
        sessions.last().map(|(s, _)| s.id),
        sessions.len(),
    );
    response
}

/// `GET /admin/sessions`.
pub async fn list(State(state): State<AppState>, Query(query): Query<Value>) -> Response {
    let base = format!("{}/admin/sessions", state.settings.admin_base);
    list_inner(&state, None, &query, base).await
}

/// `GET /admin/identities/{id}/sessions`.
pub async fn list_for_identity(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Value>,
) -> Response {
    let id = match path_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state.store.identity(id).await {
        Ok(Some(_)) => {}
        Ok(None) => return ApiError::not_found("Unable to locate the resource").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    let base = format!(
        "{}/admin/identities/{id}/sessions",
        state.settings.admin_base
    );
    list_inner(&state, Some(id), &query, base).await
}

/// `DELETE /admin/identities/{id}/sessions`.
pub async fn delete_for_identity(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let id = path_id(&id)?;
        if state.store.identity(id).await?.is_none() {
            return Err(ApiError::not_found("Unable to locate the resource"));
        }
        state.store.delete_identity_sessions(id).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /admin/sessions/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let result = async {
        let id = path_id(&id)?;
        state
            .store
            .session(id)
            .await?
            .ok_or_else(|| ApiError::not_found("Unable to locate the resource"))
    }
    .await;
    match result {
        Ok((s, i)) => {
            axum::Json(session_json(&s, &i, &state.settings.public_base, now_ms())).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `DELETE /admin/sessions/{id}`: deactivates the session.
pub async fn disable(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let result = async {
        let id = path_id(&id)?;
        if state.store.revoke_session(id, now_ms()).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("Unable to locate the resource"))
        }
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PATCH /admin/sessions/{id}/extend`: expiry becomes now + `session.lifespan`.
pub async fn extend(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let result = async {
        let id = path_id(&id)?;
        let now = now_ms();
        let expires_at = now.saturating_add(state.settings.session_lifespan_ms);
        if !state.store.extend_session(id, expires_at, now).await? {
            return Err(ApiError::not_found("Unable to locate the resource"));
        }
        state
            .store
            .session(id)
            .await?
            .ok_or_else(|| ApiError::not_found("Unable to locate the resource"))
    }
    .await;
    match result {
        Ok((s, i)) => {
            axum::Json(session_json(&s, &i, &state.settings.public_base, now_ms())).into_response()
        }
        Err(e) => e.into_response(),
    }
}
