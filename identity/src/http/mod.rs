//! The two HTTP routers: the public API (self-service flows, whoami, schemas, built-in UI) and
//! the admin API, plus the endpoints both share (health, version).

pub mod admin;
pub mod error;
pub mod negotiate;
pub mod sessions;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get};
use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::flow;
use crate::session::session_json;
use crate::state::AppState;
use error::ApiError;

/// Kratos caps request bodies at 5 MB.
const BODY_LIMIT: usize = 5 * 1024 * 1024;

/// The version reported at `/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The public router (port 4433).
pub fn public_router(state: AppState) -> Router {
    Router::new()
        .route("/health/alive", get(alive))
        .route("/health/ready", get(ready))
        .route("/version", get(version))
        .route(
            "/self-service/registration/api",
            get(flow::registration::create_api),
        )
        .route(
            "/self-service/registration/browser",
            get(flow::registration::create_browser),
        )
        .route(
            "/self-service/registration/flows",
            get(flow::registration::get_flow),
        )
        .route(
            "/self-service/registration",
            get(flow::registration::submit).post(flow::registration::submit),
        )
        .route("/self-service/login/api", get(flow::login::create_api))
        .route(
            "/self-service/login/browser",
            get(flow::login::create_browser),
        )
        .route("/self-service/login/flows", get(flow::login::get_flow))
        .route(
            "/self-service/login",
            get(flow::login::submit).post(flow::login::submit),
        )
        .route(
            "/self-service/settings/api",
            get(flow::settings::create_api),
        )
        .route(
            "/self-service/settings/browser",
            get(flow::settings::create_browser),
        )
        .route(
            "/self-service/settings/flows",
            get(flow::settings::get_flow),
        )
        .route(
            "/self-service/settings",
            get(flow::settings::submit).post(flow::settings::submit),
        )
        .route(
            "/self-service/recovery/api",
            get(flow::recovery::create_api),
        )
        .route(
            "/self-service/recovery/browser",
            get(flow::recovery::create_browser),
        )
        .route(
            "/self-service/recovery/flows",
            get(flow::recovery::get_flow),
        )
        .route(
            "/self-service/recovery",
            get(flow::recovery::submit).post(flow::recovery::submit),
        )
        .route(
            "/self-service/verification/api",
            get(flow::verification::create_api),
        )
        .route(
            "/self-service/verification/browser",
            get(flow::verification::create_browser),
        )
        .route(
            "/self-service/verification/flows",
            get(flow::verification::get_flow),
        )
        .route(
            "/self-service/verification",
            get(flow::verification::submit).post(flow::verification::submit),
        )
        .route(
            "/self-service/logout/browser",
            get(flow::logout::create_browser),
        )
        .route("/self-service/logout", get(flow::logout::perform_browser))
        .route(
            "/self-service/logout/api",
            delete(flow::logout::perform_api),
        )
        .route("/sessions/whoami", any(whoami))
        .route(
            "/sessions",
            get(sessions::list).delete(sessions::revoke_others),
        )
        .route("/sessions/{id}", delete(sessions::revoke_one))
        .route("/admin/{*rest}", any(to_admin))
        .route("/schemas", get(list_schemas))
        .route("/schemas/{id}", get(get_schema))
        .route("/self-service/errors", get(flow::error::get_error))
        .merge(crate::ui::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            flow::error::browser_errors,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The admin router (port 4434).
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/health/alive", get(alive))
        .route("/health/ready", get(ready))
        .route("/version", get(version))
        .route("/admin/health/alive", get(alive))
        .route("/admin/health/ready", get(ready))
        .route("/admin/version", get(version))
        .route("/admin/metrics/prometheus", get(metrics))
        .route("/metrics", get(metrics))
        .nest("/admin", admin::routes())
        .merge(admin::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Admin paths on the public port answer 307 to the admin base URL, as Kratos does.
async fn to_admin(State(state): State<AppState>, uri: axum::http::Uri) -> Response {
    let target = format!(
        "{}{}",
        state.settings.admin_base,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(&target) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, v);
    }
    response
}

async fn alive() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.schemas.load().default_schema().is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"errors": {"identity_schemas": "waiting for identity schemas"}})),
        )
            .into_response();
    }
    match state.store.ready().await {
        Ok(true) => axum::Json(json!({"status": "ok"})).into_response(),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"errors": {"migrations": "pending migrations"}})),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"errors": {"database": "the database is not reachable"}})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = state.metrics.render();
            if let Some(stats) = state.store.whoami_cache_stats() {
                text.push_str(&crate::metrics::render_whoami_cache(&stats));
            }
            text
        },
    )
        .into_response()
}

async fn version() -> Response {
    axum::Json(json!({"version": format!("v{VERSION}")})).into_response()
}

/// `/sessions/whoami`: 200 with the session, 401 otherwise.
async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let found = match state.current_session(&headers).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let Some((session, identity)) = found else {
        crate::metrics::Metrics::inc(&state.metrics.whoami_unauthorized);
        return ApiError::unauthorized().into_response();
    };
    if state.second_factor.whoami_highest_available
        && flow::second_factor::needs_aal2(&session, &identity)
    {
        return flow::second_factor::aal2_required(&state, None).into_response();
    }
    crate::metrics::Metrics::inc(&state.metrics.whoami_active);
    let body = session_json(&session, &identity, &state.settings.public_base, now_ms());
    let mut response = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&identity.id.to_string()) {
        response
            .headers_mut()
            .insert("x-kratos-authenticated-identity-id", v);
    }
    response
}

/// `GET /schemas`: every schema, in pages of `page_size` (default 250, at most 1000; the
/// `page_token` is an offset) or Kratos' deprecated `page`/`per_page`; `X-Total-Count` and a
/// `Link` header carrying both styles' parameters, as Kratos' schema listing does.
async fn list_schemas(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<Value>,
) -> Response {
    let legacy = match admin::LegacyPage::from_query(&query) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let keyset = admin::Page::from_query(&query);
    let token_offset = query
        .get("page_token")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let (offset, size) = match legacy {
        Some(l) => (l.offset(), l.per_page),
        None => (token_offset, keyset.size),
    };
    let registry = state.schemas.load();
    let all: Vec<_> = registry.all().collect();
    let total = all.len() as i64;
    let list: Vec<_> = all
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(size).unwrap_or(0))
        .map(|s| json!({"id": s.id, "schema": s.raw}))
        .collect();
    let mut response = axum::Json(list).into_response();
    let base = format!("{}/schemas", state.settings.public_base);
    let last = if total == 0 {
        0
    } else {
        (total - 1) / size * size
    };
    let mut rels = vec![("first", 0)];
    if offset > 0 {
        rels.push(("prev", (offset - size).max(0)));
    }
    if offset + size < total {
        rels.push(("next", offset + size));
    }
    rels.push(("last", last));
    admin::link_headers(&mut response, total, &rels, |at| {
        format!(
            "{base}?page_size={size}&page_token={at}&per_page={size}&page={}",
            at / size
        )
    });
    response
}

async fn get_schema(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.schemas.load().get(&id) {
        Some(s) => axum::Json(s.raw.clone()).into_response(),
        None => ApiError::not_found("The requested resource could not be found").into_response(),
    }
}
