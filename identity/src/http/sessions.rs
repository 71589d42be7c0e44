//! The caller's own sessions on the public port: `GET /sessions` (the other active sessions),
//! `DELETE /sessions` (revoke all others, `{count}`), `DELETE /sessions/{id}` (revoke one other).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::http::admin::{LegacyPage, Page};
use crate::http::error::ApiError;
use crate::session::session_json;
use crate::state::AppState;
use crate::store::SessionFilter;

/// `GET /sessions`: the caller's other active sessions, in keyset pages or Kratos' deprecated
/// `page`/`per_page` pages (with `X-Total-Count`).
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
        let legacy = LegacyPage::from_query(&query)?;
        let page = Page::from_query(&query);
        let now = now_ms();
        let filter = SessionFilter {
            identity: Some(identity.id),
            active: Some(true),
            except: Some(current.id),
            now,
        };
        let (after, offset, limit) = match legacy {
            Some(l) => (None, l.offset(), l.per_page),
            None => (page.after, 0, page.size),
        };
        let sessions = state
            .store
            .list_sessions(&filter, after, offset, limit)
            .await?;
        let total = match legacy {
            Some(_) => Some(state.store.count_sessions(&filter).await?),
            None => None,
        };
        let body: Vec<Value> = sessions
            .iter()
            .map(|(s, i)| session_json(s, i, &state.settings.public_base, now))
            .collect();
        let mut response = axum::Json(body).into_response();
        let base = format!("{}/sessions", state.settings.public_base);
        match (legacy, total) {
            (Some(legacy), Some(total)) => legacy.headers(&mut response, &base, total),
            _ => page.link(
                &mut response,
                &base,
                sessions.last().map(|(s, _)| s.id),
                sessions.len(),
            ),
        }
        Ok::<_, ApiError>(response)
    }
    .await;
    result.unwrap_or_else(|e| e.into_response())
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
