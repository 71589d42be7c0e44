//! The self-service flow model shared by every flow: the flow record and its JSON, the `ui`
//! container and its nodes/messages, creation, fetch (`GET …/flows?id=`), and the common submit
//! steps (expiry → 410, CSRF for browser flows, the API-flow cookie guard, 400-with-flow).

pub mod code;
pub mod error;
pub mod login;
pub mod logout;
pub mod lookup;
pub mod recovery;
pub mod registration;
pub mod second_factor;
pub mod settings;
mod submit;
pub mod verification;

/// The `GET /self-service/<flow>/api` and `/browser` handlers of a flow module: both call the
/// module's `create(state, uri, query, headers, flow_type)`, differing only in the flow type.
macro_rules! create_handlers {
    ($flow:literal) => {
        #[doc = concat!("`GET /self-service/", $flow, "/api`.")]
        pub async fn create_api(
            State(state): State<AppState>,
            uri: OriginalUri,
            Query(query): Query<Value>,
            headers: HeaderMap,
        ) -> Response {
            create(state, uri, query, headers, FlowType::Api).await
        }

        #[doc = concat!("`GET /self-service/", $flow, "/browser`.")]
        pub async fn create_browser(
            State(state): State<AppState>,
            uri: OriginalUri,
            Query(query): Query<Value>,
            headers: HeaderMap,
        ) -> Response {
            create(state, uri, query, headers, FlowType::Browser).await
        }
    };
}
pub(crate) use create_handlers;

use submit::csrf_error;
pub use submit::{begin_submit, flow_failed, flow_failed_with, parse_body};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use url::Url;
use uuid::Uuid;

use crate::clock::{now_ms, rfc3339};
use crate::http::error::ApiError;
use crate::http::negotiate::wants_html;
use crate::state::AppState;
use crate::store::FlowRecord;
use crate::text::Message;

/// Which self-service flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    Login,
    Registration,
    Settings,
    Recovery,
    Verification,
}

impl FlowKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Registration => "registration",
            Self::Settings => "settings",
            Self::Recovery => "recovery",
            Self::Verification => "verification",
        }
    }

    fn ui_url(self, state: &AppState) -> String {
        match self {
            Self::Login => state.settings.login_ui_url.clone(),
            Self::Registration => state.settings.registration_ui_url.clone(),
            Self::Settings => state.settings.settings_ui_url.clone(),
            Self::Recovery | Self::Verification => state.email.settings(self).ui_url.clone(),
        }
    }

    fn lifespan_ms(self, state: &AppState) -> i64 {
        match self {
            Self::Login => state.settings.login_lifespan_ms,
            Self::Registration => state.settings.registration_lifespan_ms,
            Self::Settings => state.settings.settings_lifespan_ms,
            Self::Recovery | Self::Verification => state.email.settings(self).lifespan_ms,
        }
    }

    fn expired_message_id(self) -> u32 {
        match self {
            Self::Login => 4010001,
            Self::Registration => 4040001,
            Self::Settings => 4050001,
            Self::Recovery => 4060005,
            Self::Verification => 4070005,
        }
    }

    fn initial_nodes(self, state: &AppState) -> Vec<Value> {
        match self {
            Self::Login => login::nodes(),
            Self::Registration => registration::nodes(state),
            Self::Settings => Vec::new(),
            Self::Recovery | Self::Verification => {
                code::choose_nodes(state.email.settings(self).link)
            }
        }
    }
}

/// `api` or `browser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowType {
    Api,
    Browser,
}

impl FlowType {
    /// The type stored in a flow record's `flow_type` column; anything but `browser` is an API
    /// flow.
    pub fn of(name: &str) -> FlowType {
        if name == "browser" {
            Self::Browser
        } else {
            Self::Api
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Browser => "browser",
        }
    }
}

/// An input node.
pub fn input_node(
    group: &str,
    name: &str,
    input_type: &str,
    value: Option<Value>,
    required: bool,
    autocomplete: Option<&str>,
    label: Option<Message>,
) -> Value {
    let mut attributes = Map::new();
    attributes.insert("name".into(), json!(name));
    attributes.insert("type".into(), json!(input_type));
    if let Some(v) = value {
        attributes.insert("value".into(), v);
    }
    if required {
        attributes.insert("required".into(), json!(true));
    }
    if let Some(a) = autocomplete {
        attributes.insert("autocomplete".into(), json!(a));
    }
    attributes.insert("disabled".into(), json!(false));
    attributes.insert("node_type".into(), json!("input"));
    let mut meta = Map::new();
    if let Some(label) = label {
        meta.insert("label".into(), json!(label));
    }
    json!({
        "type": "input",
        "group": group,
        "attributes": attributes,
        "messages": [],
        "meta": meta,
    })
}

/// The `csrf_token` node; its value is filled in (masked) on every render.
pub fn csrf_node() -> Value {
    input_node("default", "csrf_token", "hidden", None, true, None, None)
}

fn nodes_mut(ui: &mut Value) -> impl Iterator<Item = &mut Value> {
    ui.get_mut("nodes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn node_name(node: &Value) -> Option<&str> {
    node.pointer("/attributes/name").and_then(Value::as_str)
}

/// Drops every message on the flow and its nodes (before a new validation round).
pub fn clear_messages(ui: &mut Value) {
    ui["messages"] = json!([]);
    for node in nodes_mut(ui) {
        node["messages"] = json!([]);
    }
}

/// Attaches a message to a node by name, or to `ui.messages` when there is no such node.
pub fn add_message(ui: &mut Value, node: Option<&str>, message: Message) {
    if let Some(name) = node {
        for n in nodes_mut(ui) {
            if node_name(n) == Some(name) {
                if let Some(list) = n["messages"].as_array_mut() {
                    list.push(json!(message));
                }
                return;
            }
        }
    }
    if let Some(list) = ui["messages"].as_array_mut() {
        list.push(json!(message));
    } else {
        ui["messages"] = json!([message]);
    }
}

/// Keeps a submitted value on its node (never for password or csrf nodes).
pub fn set_value(ui: &mut Value, name: &str, value: Value) {
    for n in nodes_mut(ui) {
        if node_name(n) == Some(name) && value.is_string() | value.is_number() | value.is_boolean()
        {
            n["attributes"]["value"] = value;
            return;
        }
    }
}

/// Renders a stored flow as Kratos' flow JSON (a fresh masked CSRF token in its node).
pub fn flow_json(state: &AppState, record: &FlowRecord) -> Value {
    let mut ui = record.ui.clone();
    let masked = crate::csrf::mask(&record.csrf_token);
    for n in nodes_mut(&mut ui) {
        if node_name(n) == Some("csrf_token") {
            n["attributes"]["value"] = json!(masked);
        }
    }
    ui["action"] = json!(format!(
        "{}/self-service/{}?flow={}",
        state.settings.public_base, record.kind, record.id
    ));
    ui["method"] = json!("POST");
    let mut flow = json!({
        "id": record.id,
        "type": record.flow_type,
        "expires_at": rfc3339(record.expires_at),
        "issued_at": rfc3339(record.issued_at),
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
        "request_url": record.request_url,
        "ui": ui,
        "state": record.state,
    });
    if let Some(r) = &record.return_to {
        flow["return_to"] = json!(r);
    }
    if record.kind == "login" {
        flow["refresh"] = json!(false);
        // Step-up (AAL2) login flows are bound to the identity of the session they upgrade.
        let aal = if record.identity_id.is_some() {
            "aal2"
        } else {
            "aal1"
        };
        flow["requested_aal"] = json!(aal);
    }
    flow
}

/// Validates `return_to` from a query string against the allow-list.
pub fn check_return_to(state: &AppState, query: &Value) -> Result<Option<String>, ApiError> {
    let Some(raw) = query.get("return_to").and_then(Value::as_str) else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let parsed = Url::parse(raw).or_else(|_| {
        Url::parse(&state.settings.default_return_url).and_then(|base| base.join(raw))
    });
    match parsed {
        Ok(url) if state.settings.return_to_allowed(&url) => Ok(Some(url.to_string())),
        _ => Err(
            ApiError::bad_request("Requested return_to URL is not allowed.")
                .id("self_service_flow_return_to_forbidden"),
        ),
    }
}

/// Creates and stores a new flow.
pub async fn create(
    state: &AppState,
    kind: FlowKind,
    flow_type: FlowType,
    request_url: String,
    return_to: Option<String>,
    csrf_token: String,
) -> Result<FlowRecord, ApiError> {
    let mut nodes = vec![csrf_node()];
    nodes.extend(kind.initial_nodes(state));
    let new = NewFlow {
        kind,
        flow_type,
        request_url,
        return_to,
        csrf_token,
        nodes,
        identity_id: None,
        state: if kind == FlowKind::Settings {
            "show_form"
        } else {
            "choose_method"
        },
    };
    create_with(state, new).await
}

/// Everything a new flow is made of.
pub struct NewFlow {
    pub kind: FlowKind,
    pub flow_type: FlowType,
    pub request_url: String,
    pub return_to: Option<String>,
    pub csrf_token: String,
    /// All nodes, the csrf node included.
    pub nodes: Vec<Value>,
    pub identity_id: Option<Uuid>,
    pub state: &'static str,
}

/// Creates and stores a flow from explicit parts.
pub async fn create_with(state: &AppState, new: NewFlow) -> Result<FlowRecord, ApiError> {
    let now = now_ms();
    let record = FlowRecord {
        id: Uuid::new_v4(),
        kind: new.kind.name().to_owned(),
        flow_type: new.flow_type.name().to_owned(),
        state: new.state.to_owned(),
        request_url: new.request_url,
        return_to: new.return_to,
        csrf_token: new.csrf_token,
        ui: json!({ "nodes": new.nodes, "messages": [] }),
        identity_id: new.identity_id,
        issued_at: now,
        expires_at: now.saturating_add(new.kind.lifespan_ms(state)),
        created_at: now,
        updated_at: now,
    };
    state.store.insert_flow(&record).await?;
    Ok(record)
}

/// The CSRF cookie already on the request when valid, else a new token and its Set-Cookie.
pub fn csrf_for_request(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    let name = &state.settings.csrf_cookie_name;
    let existing = state.settings.csrf_cookie.read(headers, name);
    match existing.filter(|t| crate::csrf::is_valid_token(t)) {
        Some(existing) => (existing, None),
        None => {
            let token = crate::csrf::generate();
            let cookie = state
                .settings
                .csrf_cookie
                .header(name, &token, Some(365 * 24 * 3600));
            (token, Some(cookie))
        }
    }
}

/// Adds `Set-Cookie` headers to a response.
pub fn with_cookies(mut response: Response, cookies: &[String]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// A 303 See Other.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// Kratos' no-cache header on flow responses.
pub fn no_cache(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache, no-store, must-revalidate"),
    );
    response
}

/// `<ui_url>?flow=<id>`.
pub fn ui_redirect_url(state: &AppState, kind: FlowKind, id: Uuid) -> String {
    let ui = kind.ui_url(state);
    let sep = if ui.contains('?') { '&' } else { '?' };
    format!("{ui}{sep}flow={id}")
}

/// Answers a freshly created flow: 303 to the UI for browsers wanting HTML, else 200 JSON.
pub fn created_response(
    state: &AppState,
    kind: FlowKind,
    record: &FlowRecord,
    headers: &HeaderMap,
    cookies: &[String],
) -> Response {
    let response = if record.flow_type == "browser" && wants_html(headers) {
        see_other(&ui_redirect_url(state, kind, record.id))
    } else {
        axum::Json(flow_json(state, record)).into_response()
    };
    no_cache(with_cookies(response, cookies))
}

fn parse_flow_id(raw: Option<&str>) -> Result<Uuid, ApiError> {
    raw.and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| ApiError::bad_request("The flow query parameter is missing or malformed."))
}

/// Loads a flow of the expected kind or answers 404.
pub async fn load(
    state: &AppState,
    kind: FlowKind,
    raw_id: Option<&str>,
) -> Result<FlowRecord, ApiError> {
    let id = parse_flow_id(raw_id)?;
    state
        .store
        .flow(id)
        .await?
        .filter(|f| f.kind == kind.name())
        .ok_or_else(|| ApiError::not_found(format!("The {} flow could not be found.", kind.name())))
}

/// `GET /self-service/<kind>/flows?id=`.
pub async fn fetch(
    state: &AppState,
    kind: FlowKind,
    headers: &HeaderMap,
    id: Option<&str>,
) -> Response {
    let record = match load(state, kind, id).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if record.flow_type == "browser" {
        let cookie = state
            .settings
            .csrf_cookie
            .read(headers, &state.settings.csrf_cookie_name);
        if cookie.as_deref() != Some(record.csrf_token.as_str()) {
            return csrf_error(crate::csrf::Rejection::NoCookie).into_response();
        }
    }
    if record.expires_at <= now_ms() {
        let init = format!(
            "{}/self-service/{}/{}",
            state.settings.public_base,
            kind.name(),
            record.flow_type
        );
        let details = if record.flow_type == "browser" {
            json!({ "redirect_to": init })
        } else {
            json!({ "api": init })
        };
        return ApiError::new(StatusCode::GONE)
            .id("self_service_flow_expired")
            .reason("The self-service flow has expired.")
            .details(details)
            .extra("expired_at", json!(rfc3339(record.expires_at)))
            .into_response();
    }
    let mut body = flow_json(state, &record);
    if kind == FlowKind::Settings {
        let session = match state.current_session(headers).await {
            Ok(Some(s)) => s,
            Ok(None) => return ApiError::unauthorized().into_response(),
            Err(e) => return e.into_response(),
        };
        if Some(session.1.id) != record.identity_id {
            return ApiError::new(StatusCode::FORBIDDEN)
                .id("security_identity_mismatch")
                .reason("The flow belongs to another identity.")
                .into_response();
        }
        body["identity"] = crate::identity::identity_json(&session.1, &state.settings.public_base);
    }
    no_cache(axum::Json(body).into_response())
}

/// Where a browser goes after a successful flow.
pub fn return_url(state: &AppState, record: &FlowRecord, after: Option<&String>) -> String {
    record
        .return_to
        .clone()
        .or_else(|| after.cloned())
        .unwrap_or_else(|| state.settings.default_return_url.clone())
}

/// The session cookie for a freshly issued session.
pub fn session_cookie(state: &AppState, token: &str) -> String {
    let s = &state.settings;
    let max_age = s
        .session_cookie_persistent
        .then_some(s.session_lifespan_ms / 1000);
    s.session_cookie
        .header(&s.session_cookie_name, token, max_age)
}
