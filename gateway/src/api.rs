//! The API port: health, version, rules and `/decisions` (the pipeline without proxying, for
//! ingress-nginx `auth_request`, Traefik `forwardAuth` and Envoy `ext_authz`).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Deserialize;
use serde_json::json;

use crate::metrics::Service;
use crate::pipeline::Pipeline;
use crate::pipeline::error::{ErrorResponse, PipelineError, json_response};
use crate::pipeline::session::RequestInfo;

/// The Prometheus listener's router (`serve.prometheus`, Oathkeeper's port 9000).
pub fn metrics_router(pipeline: Arc<Pipeline>, path: &str) -> axum::Router {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    axum::Router::new()
        .route(&path, get(metrics))
        .fallback(not_found)
        .with_state(pipeline)
}

/// The API router.
pub fn router(pipeline: Arc<Pipeline>) -> axum::Router {
    axum::Router::new()
        .route("/health/alive", get(alive))
        .route("/health/ready", get(ready))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(well_known_jwks))
        .route("/rules", get(list_rules))
        .route("/rules/{id}", get(get_rule))
        .route("/decisions", any(decisions))
        .route("/decisions/", any(decisions))
        .route("/decisions/{*rest}", any(decisions))
        .fallback(not_found)
        .with_state(pipeline)
}

async fn alive() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(pipeline): State<Arc<Pipeline>>) -> Response {
    match pipeline.not_ready_reason() {
        None => Json(json!({"status": "ok"})).into_response(),
        Some(why) => {
            let body = json!({"errors": {"rules_loaded": why}});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// Public keys of every `id_token` signing JWKS (private parts and symmetric keys omitted).
async fn well_known_jwks(State(pipeline): State<Arc<Pipeline>>) -> Response {
    let mut keys: Vec<crate::jose::Jwk> = Vec::new();
    for url in pipeline.id_token_jwks_urls() {
        match pipeline
            .jwks()
            .get(&url, std::time::Duration::from_secs(30))
            .await
        {
            Ok(set) => {
                for key in set.keys.iter().filter_map(crate::jose::Jwk::public) {
                    if !keys.iter().any(|k| k.kid.is_some() && k.kid == key.kid) {
                        keys.push(key);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot publish id_token keys");
                return to_response(&json_response(
                    &PipelineError::internal(e.to_string()),
                    false,
                ));
            }
        }
    }
    Json(json!({ "keys": keys })).into_response()
}

async fn metrics(State(pipeline): State<Arc<Pipeline>>) -> Response {
    let mut response = Response::new(Body::from(pipeline.metrics().render()));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn list_rules(State(pipeline): State<Arc<Pipeline>>, Query(page): Query<Page>) -> Response {
    let snapshot = pipeline.snapshot();
    let limit = page.limit.unwrap_or(50).min(500);
    let rules: Vec<_> = snapshot
        .rules
        .rules()
        .iter()
        .skip(page.offset.unwrap_or(0))
        .take(limit)
        .map(|r| r.as_ref())
        .collect();
    Json(rules).into_response()
}

async fn get_rule(State(pipeline): State<Arc<Pipeline>>, Path(id): Path<String>) -> Response {
    let snapshot = pipeline.snapshot();
    match snapshot.rules.get(&id) {
        Some(rule) => Json(rule.as_ref()).into_response(),
        None => to_response(&json_response(
            &PipelineError::not_found("rule not found"),
            false,
        )),
    }
}

async fn not_found() -> Response {
    to_response(&json_response(
        &PipelineError::not_found("no such API path"),
        false,
    ))
}

fn to_response(error: &ErrorResponse) -> Response {
    let mut response = Response::new(Body::from(error.body.clone()));
    *response.status_mut() =
        StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &error.headers {
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}

/// Rebuilds the original request from `X-Forwarded-*` (trusted unconditionally, as Oathkeeper).
fn decision_request(request: &Request) -> RequestInfo {
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    let method = header("x-forwarded-method")
        .unwrap_or(request.method().as_str())
        .to_owned();
    let scheme = header("x-forwarded-proto")
        .unwrap_or("http")
        .to_ascii_lowercase();
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or_default()
        .to_owned();
    let raw_path = match header("x-forwarded-uri") {
        Some(uri) => uri.split('?').next().unwrap_or_default().to_owned(),
        None => {
            let path = request.uri().path();
            let rest = path.strip_prefix("/decisions").unwrap_or(path);
            portcullis_rules::path::decode_path(rest)
        }
    };
    RequestInfo {
        method,
        scheme,
        host,
        path: portcullis_rules::path::clean_path(&raw_path),
        query: request.uri().query().map(str::to_owned),
        headers: headers.clone(),
        remote_addr: request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip()),
        body: None,
    }
}

const NOT_ECHOED: &[&str] = &["content-length", "transfer-encoding", "connection", "host"];

/// Largest request body `/decisions` reads (for the `remote` authorizer).
const MAX_DECISION_BODY: usize = 1 << 20;

async fn decisions(State(pipeline): State<Arc<Pipeline>>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let mut req = decision_request(&request);
    match axum::body::to_bytes(request.into_body(), MAX_DECISION_BODY).await {
        Ok(body) if !body.is_empty() => req.body = Some(body),
        Ok(_) => {}
        Err(_) => {
            let mut error = PipelineError::internal("request body too large");
            error.status = 413;
            return to_response(&json_response(&error, false));
        }
    }
    match pipeline.decide(&req).await {
        Ok(decision) => {
            tracing::debug!(rule_id = %decision.rule.id, granted = true, "decision");
            pipeline.metrics().record(
                &decision.counters,
                Service::Decisions,
                true,
                200,
                started.elapsed(),
            );
            let mut response = Response::new(Body::empty());
            let out = response.headers_mut();
            if decision.echo_request_headers {
                for (name, value) in req.headers.iter() {
                    if !NOT_ECHOED.contains(&name.as_str()) {
                        out.append(name.clone(), value.clone());
                    }
                }
            }
            for (name, value) in &decision.session.header {
                if let (Ok(n), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    out.insert(n, v);
                }
            }
            response
        }
        Err(refusal) => {
            tracing::info!(
                rule_id = refusal.rule.as_ref().map(|r| r.id.as_str()).unwrap_or(""),
                granted = false,
                status = refusal.error.status,
                reason = %refusal.error.reason,
                "decision"
            );
            let response = pipeline.error_response(&refusal, &req);
            let rule_id = refusal.rule.as_ref().map(|r| r.id.as_str()).unwrap_or("");
            pipeline.metrics().request(
                Service::Decisions,
                rule_id,
                false,
                response.status,
                started.elapsed(),
            );
            to_response(&response)
        }
    }
}
