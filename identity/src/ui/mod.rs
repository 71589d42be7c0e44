//! The built-in, server-rendered UI: `/ui/{login,registration,recovery,verification,settings}`,
//! `/ui/welcome` and `/ui/error`, so a person can use the service with a browser and no other
//! frontend. No JavaScript. A page asks this service's own public API for the flow, exactly as a
//! Kratos custom UI would (`GET /self-service/<flow>/flows?id=` with the browser's cookies, run
//! in-process), and renders its `ui` nodes generically, so new traits and methods appear without
//! code changes. Templates are embedded and overridable ([`templates`]).

mod templates;
mod view;

pub use templates::{TemplateError, Templates};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::flow;
use crate::state::AppState;

/// The flows that have a page.
const FLOWS: &[&str] = &[
    "login",
    "registration",
    "recovery",
    "verification",
    "settings",
];

/// Request headers passed on to the in-process API call.
const FORWARDED: &[&str] = &[
    "cookie",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// The largest API answer a page reads.
const MAX_BODY: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(to_welcome))
        .route("/ui", get(to_welcome))
        .route("/ui/", get(to_welcome))
        .route("/ui/welcome", get(welcome))
        .route("/ui/error", get(error_page))
        .route("/ui/{flow}", get(flow_page))
}

async fn to_welcome(State(state): State<AppState>) -> Response {
    flow::see_other(&format!("{}/ui/welcome", state.settings.public_base))
}

/// An answer of this service's own public API.
struct Answer {
    status: StatusCode,
    set_cookies: Vec<HeaderValue>,
    body: Value,
}

/// `GET path_and_query` on the public API, in-process, with the browser's cookies.
async fn api_get(state: &AppState, headers: &HeaderMap, path_and_query: &str) -> Answer {
    let mut request = Request::builder()
        .method("GET")
        .uri(path_and_query)
        .header(header::ACCEPT, "application/json");
    for name in FORWARDED {
        for value in headers.get_all(*name) {
            request = request.header(*name, value);
        }
    }
    let failed = |status| Answer {
        status,
        set_cookies: Vec::new(),
        body: Value::Null,
    };
    let Ok(request) = request.body(Body::empty()) else {
        return failed(StatusCode::BAD_REQUEST);
    };
    let Ok(response) = crate::http::public_router(state.clone())
        .oneshot(request)
        .await;
    let status = response.status();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    let body = match axum::body::to_bytes(response.into_body(), MAX_BODY).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => return failed(StatusCode::BAD_GATEWAY),
    };
    Answer {
        status,
        set_cookies,
        body,
    }
}

/// The links the pages use, absolute on the public base URL.
#[derive(Serialize)]
struct Urls {
    login: String,
    registration: String,
    recovery: String,
    verification: String,
    settings: String,
    welcome: String,
}

impl Urls {
    fn new(state: &AppState) -> Self {
        let base = &state.settings.public_base;
        let start = |flow: &str| format!("{base}/self-service/{flow}/browser");
        Self {
            login: start("login"),
            registration: start("registration"),
            recovery: start("recovery"),
            verification: start("verification"),
            settings: start("settings"),
            welcome: format!("{base}/ui/welcome"),
        }
    }
}

#[derive(Serialize)]
struct Link {
    href: String,
    text: &'static str,
}

/// Renders a template into a no-cache HTML response carrying the API's cookies.
fn render(
    state: &AppState,
    status: StatusCode,
    template: &str,
    context: Value,
    cookies: Vec<HeaderValue>,
) -> Response {
    let mut response = match state.ui.render(template, &context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template, error = %e, "UI template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    };
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    flow::no_cache(response)
}

fn error_response(state: &AppState, status: StatusCode, error: Value) -> Response {
    let context = json!({
        "title": "Something went wrong",
        "error": error,
        "urls": Urls::new(state),
    });
    render(state, status, "error.html", context, Vec::new())
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `/self-service/<flow>/browser` with the page's query (`return_to`, `aal`, `refresh`, …) but
/// not its `flow`.
fn restart_url(state: &AppState, name: &str, pairs: &[(String, String)]) -> String {
    let mut url = format!("{}/self-service/{name}/browser", state.settings.public_base);
    let kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "flow").collect();
    if !kept.is_empty() {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        url.push('?');
        url.push_str(&query);
    }
    url
}

fn title(name: &str, flow: &Value) -> &'static str {
    match name {
        "login" if flow.get("requested_aal").and_then(Value::as_str) == Some("aal2") => {
            "Second factor"
        }
        "login" if flow.get("refresh").and_then(Value::as_bool) == Some(true) => "Confirm it's you",
        "login" => "Sign in",
        "registration" => "Create an account",
        "recovery" => "Recover your account",
        "verification" => "Verify your email address",
        "settings" => "Account settings",
        _ => "Portcullis",
    }
}

/// A login flow for someone already signed in: the second factor (`aal2`) or a refresh.
fn signed_in_step(flow: &Value) -> bool {
    flow.get("requested_aal").and_then(Value::as_str) == Some("aal2")
        || flow.get("refresh").and_then(Value::as_bool) == Some(true)
}

fn links(state: &AppState, name: &str, flow: &Value) -> Vec<Link> {
    let urls = Urls::new(state);
    match name {
        "login" if signed_in_step(flow) => vec![Link {
            href: urls.welcome,
            text: "Back",
        }],
        "login" => {
            let mut out = Vec::new();
            if state.settings.registration_enabled {
                out.push(Link {
                    href: urls.registration,
                    text: "Create an account",
                });
            }
            if state.email.recovery.enabled {
                out.push(Link {
                    href: urls.recovery,
                    text: "Forgot your password?",
                });
            }
            out
        }
        "registration" => vec![Link {
            href: urls.login,
            text: "Already have an account? Sign in",
        }],
        "recovery" | "verification" => vec![Link {
            href: urls.login,
            text: "Back to sign in",
        }],
        _ => vec![Link {
            href: urls.welcome,
            text: "Back",
        }],
    }
}

/// `GET /ui/<flow>[?flow=<id>]`: no flow → start one; a flow the API will not hand out
/// (unknown, expired, another browser's, another identity's) → start a new one; otherwise render.
async fn flow_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(name) = FLOWS.iter().copied().find(|f| *f == name) else {
        return error_response(
            &state,
            StatusCode::NOT_FOUND,
            json!({"code": 404, "status": "Not Found", "message": "There is no such page."}),
        );
    };
    let pairs = query_pairs(raw.as_deref());
    let restart = restart_url(&state, name, &pairs);
    let Some((_, id)) = pairs.iter().find(|(k, _)| k == "flow") else {
        return flow::see_other(&restart);
    };
    let path = format!(
        "/self-service/{name}/flows?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("id", id)
            .finish()
    );
    let answer = api_get(&state, &headers, &path).await;
    if answer.status.is_success() {
        let flow = answer.body;
        let mut links = links(&state, name, &flow);
        if name == "login" && signed_in_step(&flow) {
            // A second factor or a re-authentication: offer a way out of the session.
            let logout = api_get(&state, &headers, "/self-service/logout/browser").await;
            if let Some(href) = logout.body.get("logout_url").and_then(Value::as_str) {
                links.push(Link {
                    href: href.to_owned(),
                    text: "Sign out",
                });
            }
        }
        let context = json!({
            "title": title(name, &flow),
            "flow_name": name,
            "view": view::flow_view(&flow),
            "links": links,
            "urls": Urls::new(&state),
            "flow": flow,
        });
        return render(
            &state,
            StatusCode::OK,
            "flow.html",
            context,
            answer.set_cookies,
        );
    }
    if let Some(to) = answer
        .body
        .get("redirect_browser_to")
        .and_then(Value::as_str)
    {
        return flow::see_other(to);
    }
    if answer.status.is_client_error() {
        return flow::see_other(&restart);
    }
    error_response(&state, answer.status, answer.body["error"].clone())
}

/// Flattens traits to `(dotted name, text)` rows.
fn trait_rows(prefix: &str, value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                trait_rows(&name, v, out);
            }
        }
        Value::String(s) if s.is_empty() => {}
        Value::String(s) => out.push(json!({"name": prefix, "value": s})),
        Value::Null => {}
        other => out.push(json!({"name": prefix, "value": other.to_string()})),
    }
}

/// `GET /ui/welcome`: the session (via `/sessions/whoami`), links and the logout link.
async fn welcome(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let urls = Urls::new(&state);
    let whoami = api_get(&state, &headers, "/sessions/whoami").await;
    if let Some(to) = whoami
        .body
        .get("redirect_browser_to")
        .and_then(Value::as_str)
    {
        return flow::see_other(to);
    }
    if !whoami.status.is_success() {
        let context = json!({"title": "Welcome", "session": null, "urls": urls});
        return render(&state, StatusCode::OK, "welcome.html", context, Vec::new());
    }
    let session = whoami.body;
    let mut traits = Vec::new();
    trait_rows("", &session["identity"]["traits"], &mut traits);
    let addresses: Vec<Value> = session["identity"]["verifiable_addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| json!({"value": a["value"], "verified": a["verified"] == json!(true)}))
        .collect();
    let unverified =
        state.email.verification.enabled && addresses.iter().any(|a| a["verified"] != json!(true));
    let methods: Vec<Value> = session["authentication_methods"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("method").cloned())
        .collect();
    let logout = api_get(&state, &headers, "/self-service/logout/browser").await;
    let context = json!({
        "title": "Welcome",
        "session": session,
        "traits": traits,
        "addresses": addresses,
        "unverified": unverified,
        "methods": methods,
        "logout_url": logout.body.get("logout_url"),
        "urls": urls,
    });
    render(&state, StatusCode::OK, "welcome.html", context, Vec::new())
}

/// `GET /ui/error?id=`: renders `/self-service/errors?id=`.
async fn error_page(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let Some((_, id)) = pairs.iter().find(|(k, _)| k == "id") else {
        return error_response(
            &state,
            StatusCode::OK,
            json!({"message": "Something went wrong. Please start again."}),
        );
    };
    let path = format!(
        "/self-service/errors?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("id", id)
            .finish()
    );
    let answer = api_get(&state, &headers, &path).await;
    let error = if answer.status.is_success() {
        answer.body["error"].clone()
    } else {
        json!({
            "code": answer.status.as_u16(),
            "message": "This error is not known or has expired. Please start again."
        })
    };
    error_response(&state, StatusCode::OK, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(flow: Value) -> String {
        let templates = Templates::load(None).unwrap();
        let context = json!({
            "title": "T",
            "flow_name": "settings",
            "view": view::flow_view(&flow),
            "links": [],
            "flow": flow,
        });
        templates.render("flow.html", &context).unwrap()
    }

    #[test]
    fn every_node_type_renders() {
        let html = page(
            json!({"ui": {"action": "https://id.example/self-service/settings?flow=1",
                "method": "POST", "messages": [{"id": 1050001, "text": "Saved <ok>", "type": "success"}],
                "nodes": [
                {"type": "input", "group": "default", "messages": [], "meta": {},
                 "attributes": {"name": "csrf_token", "type": "hidden", "value": "a/b+c=", "node_type": "input"}},
                {"type": "img", "group": "totp", "messages": [], "meta": {"label": {"id": 1050005, "text": "QR code"}},
                 "attributes": {"id": "totp_qr", "src": "data:image/png;base64,AAAA", "width": 256, "height": 256, "node_type": "img"}},
                {"type": "text", "group": "totp", "messages": [], "meta": {"label": {"id": 1050006, "text": "Secret"}},
                 "attributes": {"id": "totp_secret_key", "text": {"id": 1050017, "text": "JBSWY3DP", "type": "info"}, "node_type": "text"}},
                {"type": "input", "group": "totp", "messages": [{"id": 4000008, "text": "Wrong code", "type": "error"}],
                 "meta": {"label": {"id": 1070006, "text": "Verify code"}},
                 "attributes": {"name": "totp_code", "type": "text", "required": true, "autocomplete": "one-time-code", "node_type": "input"}},
                {"type": "input", "group": "profile", "messages": [], "meta": {"label": {"id": 1, "text": "Newsletter"}},
                 "attributes": {"name": "traits.newsletter", "type": "checkbox", "value": true, "node_type": "input"}},
                {"type": "a", "group": "lookup_secret", "messages": [], "meta": {},
                 "attributes": {"id": "help", "href": "https://example.com/help", "title": {"id": 1, "text": "Help"}, "node_type": "a"}},
                {"type": "script", "group": "webauthn", "messages": [], "meta": {},
                 "attributes": {"id": "webauthn_script", "src": "https://id.example/webauthn.js", "async": true,
                                "integrity": "sha512-x", "crossorigin": "anonymous", "referrerpolicy": "no-referrer",
                                "type": "text/javascript", "nonce": "n", "node_type": "script"}}
            ]}}),
        );
        assert!(html.contains("Saved &lt;ok&gt;"), "{html}");
        assert!(html.contains(r#"<input type="hidden" name="csrf_token" value="a/b+c=">"#));
        assert!(html.contains(
            r#"src="data:image/png;base64,AAAA" width="256" height="256" alt="QR code""#
        ));
        assert!(
            html.contains(r#"data-node="totp_secret_key""#) && html.contains(">JBSWY3DP</code>")
        );
        assert!(html.contains(r#"autocomplete="one-time-code" aria-invalid="true" aria-describedby="ui-totp-totp-code-3-msg-0""#), "{html}");
        assert!(html.contains(r#"<p id="ui-totp-totp-code-3-msg-0" class="msg msg-error" data-message-id="4000008">Wrong code</p>"#));
        assert!(html.contains(r#"type="checkbox" id="ui-profile-traits-newsletter-4" name="traits.newsletter" value="true" checked"#), "{html}");
        assert!(
            html.contains(
                r#"<a id="ui-lookup-secret-help-5" href="https://example.com/help">Help</a>"#
            ),
            "{html}"
        );
        assert!(html.contains(r#"<script src="https://id.example/webauthn.js" async type="text/javascript" integrity="sha512-x""#), "{html}");
        assert_eq!(
            html.matches("<form ").count(),
            4,
            "one form per method group"
        );
        assert_eq!(
            html.matches("name=\"csrf_token\"").count(),
            4,
            "csrf in every form"
        );
    }
}
