//! The caller's own sessions on the public port: `GET /sessions` (the other active sessions),
//! `DELETE /sessions` (revoke all others, `{count}`), `DELETE /sessions/{id}` (revoke one other).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::http::admin::Page;
use crate::http::error::ApiError;
use crate::session::session_json;
use crate::state::AppState;

/// `GET /sessions`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<Value>,
) -> Response {
    let result = async {
        let (current, identity) = state
            .current_session(&headers)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let page = Page::from_query(&query);
        let now = now_ms();
        let sessions = state
            .store
            .list_sessions(Some(identity.id), Some(true), now, page.after, page.size)
            .await?;
        Ok::<_, ApiError>(
            sessions
                .iter()
                .filter(|(s, _)| s.id != current.id)
                .map(|(s, i)| session_json(s, i, &state.settings.public_base, now))
                .collect::<Vec<_>>(),
        )
    }
    .await;
    match result {
        Ok(list) => axum::Json(list).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /sessions`.
pub async fn revoke_others(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let (current, identity) = state
            .current_session(&headers)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok::<_, ApiError>(
            state
                .store
                .revoke_identity_sessions(identity.id, Some(current.id), now_ms())
                .await?,
        )
    }
    .await;
    match result {
        Ok(count) => axum::Json(json!({ "count": count })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /sessions/{id}`.
pub async fn revoke_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let (current, identity) = state
            .current_session(&headers)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let id = crate::http::admin::path_id(&id)?;
        if id == current.id {
            return Err(ApiError::bad_request(
                "You are not allowed to revoke your current session. Use the logout flow instead.",
            ));
        }
        match state.store.session(id).await? {
            Some((s, _)) if s.identity_id == identity.id => {
                state.store.revoke_session(id, now_ms()).await?;
                Ok(())
            }
            _ => Err(ApiError::not_found("Unable to locate the resource")),
        }
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
