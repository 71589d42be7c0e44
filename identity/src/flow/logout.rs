//! Logout: browser (`GET /self-service/logout/browser` → `{logout_url, logout_token}`, then
//! `GET /self-service/logout?token=`) and API (`DELETE /self-service/logout/api`).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use url::Url;

use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::http::negotiate::is_json_request;
use crate::session::Token;
use crate::state::AppState;

/// Creates a logout URL for the cookie's session (rotating its logout token).
pub async fn logout_url(
    state: &AppState,
    headers: &HeaderMap,
    return_to: Option<&str>,
) -> Result<(String, String), ApiError> {
    let Some(token) = state
        .settings
        .session_cookie
        .read(headers, &state.settings.session_cookie_name)
    else {
        return Err(ApiError::unauthorized());
    };
    let now = now_ms();
    let Some((session, identity)) = state
        .store
        .session_by_token(&Token::from_presented(&token).hash())
        .await?
    else {
        return Err(ApiError::unauthorized());
    };
    if !crate::session::is_active(&session, &identity, now) {
        return Err(ApiError::unauthorized());
    }
    let logout = Token::generate("ory_lo_");
    state
        .store
        .set_logout_token(session.id, &logout.hash())
        .await?;
    let mut url = Url::parse(&format!(
        "{}/self-service/logout",
        state.settings.public_base
    ))
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR).reason(e.to_string()))?;
    url.query_pairs_mut().append_pair("token", logout.expose());
    if let Some(r) = return_to {
        url.query_pairs_mut().append_pair("return_to", r);
    }
    Ok((url.to_string(), logout.expose().to_owned()))
}

/// `GET /self-service/logout/browser`.
pub async fn create_browser(
    State(state): State<AppState>,
    Query(query): Query<Value>,
    headers: HeaderMap,
) -> Response {
    let return_to = match super::check_return_to(&state, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match logout_url(&state, &headers, return_to.as_deref()).await {
        Ok((url, token)) => {
            axum::Json(json!({"logout_url": url, "logout_token": token})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /self-service/logout?token=&return_to=`.
pub async fn perform_browser(
    State(state): State<AppState>,
    Query(query): Query<Value>,
    headers: HeaderMap,
) -> Response {
    let Some(logout) = query
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return ApiError::bad_request("Please include a token in the URL query.").into_response();
    };
    let return_to = match super::check_return_to(&state, &query) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(cookie) = state
        .settings
        .session_cookie
        .read(&headers, &state.settings.session_cookie_name)
    else {
        return ApiError::unauthorized().into_response();
    };
    let now = now_ms();
    let found = match state
        .store
        .session_by_token(&Token::from_presented(&cookie).hash())
        .await
    {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some((session, _)) = found else {
        return ApiError::unauthorized().into_response();
    };
    match state
        .store
        .revoke_session_by_logout_token(session.id, &Token::from_presented(logout).hash(), now)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return ApiError::new(StatusCode::FORBIDDEN)
                .id("security_csrf_violation")
                .reason("Unable to log out because the logout token in the URL query does not match the session cookie.")
                .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    tracing::info!(session = %session.id, "browser logout");
    let s = &state.settings;
    let cookies = [s.session_cookie.expire(&s.session_cookie_name)];
    let response = if is_json_request(&headers) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let target = return_to
            .or_else(|| s.logout_return_url.clone())
            .unwrap_or_else(|| s.default_return_url.clone());
        super::see_other(&target)
    };
    super::with_cookies(response, &cookies)
}

/// `DELETE /self-service/logout/api` with `{"session_token": "…"}`.
pub async fn perform_api(State(state): State<AppState>, body: Bytes) -> Response {
    let token = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("session_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return ApiError::bad_request("The session_token is missing from the request body.")
            .into_response();
    };
    match state
        .store
        .revoke_session_by_token(&Token::from_presented(&token).hash(), now_ms())
        .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => ApiError::new(StatusCode::FORBIDDEN)
            .reason(
                "The provided session token is invalid or the session has already been revoked.",
            )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
