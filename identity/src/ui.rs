//! The minimal built-in, server-rendered UI (`/ui/registration`, `/ui/login`, `/ui/welcome`) so a
//! person can sign up and sign in with a browser and no other frontend. No JavaScript; forms are
//! rendered generically from the flow's `ui.nodes`, exactly what a Kratos custom UI gets.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use crate::clock::{now_ms, rfc3339};
use crate::flow::{self, FlowKind};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { flow::see_other("/ui/welcome") }))
        .route("/ui", get(|| async { flow::see_other("/ui/welcome") }))
        .route("/ui/registration", get(registration))
        .route("/ui/login", get(login))
        .route("/ui/settings", get(settings))
        .route("/ui/welcome", get(welcome))
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Response {
    let mut response = Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Portcullis</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#1d232a}}\
         label{{display:block;margin:.8rem 0 .2rem;font-weight:600}}\
         input{{width:100%;padding:.5rem;box-sizing:border-box;font-size:1rem}}\
         button{{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem}}\
         .error{{color:#b00020}} .info{{color:#333}} .success{{color:#0a6b2d}}\
         ul.messages{{padding-left:1.1rem}}</style></head>\
         <body><h1>{title}</h1>\n{body}\n</body></html>",
        title = escape(title),
    ))
    .into_response();
    flow::no_cache(std::mem::take(&mut response))
}

fn messages_html(messages: Option<&Value>) -> String {
    let items: Vec<String> = messages
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let kind = m.get("type").and_then(Value::as_str).unwrap_or("info");
            let class = match kind {
                "error" | "success" => kind,
                _ => "info",
            };
            let text = m.get("text").and_then(Value::as_str).unwrap_or_default();
            format!("<li class=\"{class}\">{}</li>", escape(text))
        })
        .collect();
    if items.is_empty() {
        String::new()
    } else {
        format!("<ul class=\"messages\">{}</ul>", items.join(""))
    }
}

/// Renders a flow's form from its nodes.
pub fn form_html(flow: &Value) -> String {
    let ui = &flow["ui"];
    let action = ui.get("action").and_then(Value::as_str).unwrap_or_default();
    let method = ui.get("method").and_then(Value::as_str).unwrap_or("POST");
    let mut out = messages_html(ui.get("messages"));
    out.push_str(&format!(
        "<form action=\"{}\" method=\"{}\">",
        escape(action),
        escape(method)
    ));
    for (index, node) in ui
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if node.get("type").and_then(Value::as_str) != Some("input") {
            continue;
        }
        let attrs = &node["attributes"];
        let name = attrs
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let input_type = attrs.get("type").and_then(Value::as_str).unwrap_or("text");
        let value = match attrs.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let label = node
            .pointer("/meta/label/text")
            .and_then(Value::as_str)
            .unwrap_or(name);
        match input_type {
            "hidden" => out.push_str(&format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(name),
                escape(&value)
            )),
            "submit" | "button" => out.push_str(&format!(
                "<button type=\"submit\" name=\"{}\" value=\"{}\">{}</button>",
                escape(name),
                escape(&value),
                escape(label)
            )),
            _ => {
                let id = format!("node-{index}");
                let required = if attrs.get("required").and_then(Value::as_bool) == Some(true) {
                    " required"
                } else {
                    ""
                };
                let autocomplete = attrs
                    .get("autocomplete")
                    .and_then(Value::as_str)
                    .map(|a| format!(" autocomplete=\"{}\"", escape(a)))
                    .unwrap_or_default();
                let value_attr = if input_type == "password" {
                    String::new()
                } else {
                    format!(" value=\"{}\"", escape(&value))
                };
                out.push_str(&format!(
                    "<label for=\"{id}\">{}</label><input id=\"{id}\" type=\"{}\" name=\"{}\"{value_attr}{required}{autocomplete}>",
                    escape(label),
                    escape(input_type),
                    escape(name)
                ));
            }
        }
        out.push_str(&messages_html(node.get("messages")));
    }
    out.push_str("</form>");
    out
}

async fn flow_page(state: &AppState, kind: FlowKind, flow_id: Option<&str>) -> Response {
    let restart = format!("/self-service/{}/browser", kind.name());
    let Some(id) = flow_id else {
        return flow::see_other(&restart);
    };
    let record = match flow::load(state, kind, Some(id)).await {
        Ok(r) if r.flow_type == "browser" && r.expires_at > now_ms() => r,
        Ok(_) | Err(_) => return flow::see_other(&restart),
    };
    let json = flow::flow_json(state, &record);
    let (title, other) = match kind {
        FlowKind::Registration => (
            "Create an account",
            "<p>Already have an account? <a href=\"/self-service/login/browser\">Sign in</a></p>",
        ),
        FlowKind::Login => (
            "Sign in",
            "<p>No account yet? <a href=\"/self-service/registration/browser\">Sign up</a></p>",
        ),
        FlowKind::Settings => (
            "Account settings",
            "<p><a href=\"/ui/welcome\">Back</a></p>",
        ),
    };
    page(title, &format!("{}{other}", form_html(&json)))
}

async fn registration(State(state): State<AppState>, Query(q): Query<Value>) -> Response {
    flow_page(
        &state,
        FlowKind::Registration,
        q.get("flow").and_then(Value::as_str),
    )
    .await
}

async fn login(State(state): State<AppState>, Query(q): Query<Value>) -> Response {
    flow_page(
        &state,
        FlowKind::Login,
        q.get("flow").and_then(Value::as_str),
    )
    .await
}

async fn settings(State(state): State<AppState>, Query(q): Query<Value>) -> Response {
    flow_page(
        &state,
        FlowKind::Settings,
        q.get("flow").and_then(Value::as_str),
    )
    .await
}

async fn welcome(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match state.current_session(&headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Some((session, identity)) = session else {
        return page(
            "Welcome",
            "<p>You are not signed in.</p>\
             <p><a href=\"/self-service/login/browser\">Sign in</a> · \
             <a href=\"/self-service/registration/browser\">Create an account</a></p>",
        );
    };
    let logout = match flow::logout::logout_url(&state, &headers, None).await {
        Ok((url, _)) => format!(
            "<p><a href=\"/self-service/settings/browser\">Account settings</a> · \
             <a href=\"{}\">Sign out</a></p>",
            escape(&url)
        ),
        Err(_) => String::new(),
    };
    let traits: String = identity
        .traits
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let shown = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(&shown))
        })
        .collect();
    page(
        "Welcome",
        &format!(
            "<p>You are signed in.</p><dl><dt>Identity</dt><dd>{}</dd>{traits}\
             <dt>Session expires</dt><dd>{}</dd></dl>{logout}",
            escape(&identity.id.to_string()),
            escape(&rfc3339(session.expires_at)),
        ),
    )
}
