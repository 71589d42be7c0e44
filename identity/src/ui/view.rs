//! Turns a flow's `ui` container (Kratos' JSON: `action`, `method`, `nodes`, `messages`) into what
//! the templates render: one form per method group (each carrying the `default` group's nodes,
//! such as `csrf_token` and the identifier), every node with a unique DOM id, its label, its
//! messages and the `aria-describedby` list that ties them to the field. Nothing here knows a
//! method by name, so new groups and traits show up without code changes.

use serde::Serialize;
use serde_json::Value;

/// A message (`uiText`).
#[derive(Debug, Serialize)]
pub struct Message {
    /// DOM id, for `aria-describedby`.
    pub dom_id: String,
    pub id: Option<i64>,
    pub text: String,
    /// `info`, `error` or `success`.
    pub kind: &'static str,
}

/// One node, flattened for templates. `kind` is the node type (`input`, `text`, `img`, `a`,
/// `script`, `div`); the other fields are filled for the kinds that have them.
#[derive(Debug, Serialize, Default)]
pub struct Node {
    pub kind: String,
    pub dom_id: String,
    pub group: String,
    pub name: String,
    pub input_type: String,
    pub value: String,
    pub checked: bool,
    pub label: String,
    pub required: bool,
    pub disabled: bool,
    pub autocomplete: Option<String>,
    pub pattern: Option<String>,
    pub maxlength: Option<i64>,
    pub text: String,
    pub src: String,
    pub href: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub script: Option<Value>,
    pub messages: Vec<Message>,
    pub invalid: bool,
    /// Space-separated message DOM ids, empty when there are none.
    pub described_by: String,
    /// The node as the flow carried it, for custom templates.
    pub raw: Value,
}

/// One `<form>`: a method group plus the `default` group's nodes.
#[derive(Debug, Serialize)]
pub struct Form {
    pub group: String,
    pub title: String,
    pub action: String,
    pub method: String,
    /// `method=<group>` to send as a hidden field when no node of the form is named `method`
    /// (forms whose only buttons are flags such as `totp_unlink` or `lookup_secret_confirm`).
    pub implicit_method: Option<String>,
    pub nodes: Vec<Node>,
}

/// The flow's forms and flow-level messages.
#[derive(Debug, Serialize)]
pub struct FlowView {
    pub messages: Vec<Message>,
    pub forms: Vec<Form>,
}

/// The input types a node may carry; anything else renders as `text`.
const INPUT_TYPES: &[&str] = &[
    "text",
    "password",
    "number",
    "checkbox",
    "hidden",
    "email",
    "tel",
    "submit",
    "button",
    "datetime-local",
    "date",
    "url",
];

/// Groups that are not a self-service method.
const NOT_METHODS: &[&str] = &["default", "captcha"];

/// A readable title for a method group.
fn group_title(group: &str) -> String {
    match group {
        "default" => String::new(),
        "password" => "Password".to_owned(),
        "profile" => "Profile".to_owned(),
        "code" => "Email code".to_owned(),
        "link" => "Email link".to_owned(),
        "totp" => "Authenticator app".to_owned(),
        "lookup_secret" => "Backup recovery codes".to_owned(),
        "oidc" => "Sign in with another provider".to_owned(),
        "webauthn" => "Security key".to_owned(),
        "passkey" => "Passkey".to_owned(),
        other => {
            let spaced = other.replace('_', " ");
            let mut chars = spaced.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// A DOM id made of `[a-z0-9-]` only.
fn dom_id(parts: &[&str]) -> String {
    let joined = parts.join("-");
    joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn messages(list: Option<&Value>, prefix: &str) -> Vec<Message> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| Message {
            dom_id: format!("{prefix}-msg-{i}"),
            id: m.get("id").and_then(Value::as_i64),
            text: m
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            kind: match m.get("type").and_then(Value::as_str) {
                Some("error") => "error",
                Some("success") => "success",
                _ => "info",
            },
        })
        .collect()
}

fn scalar(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn node_view(raw: &Value, form_group: &str, index: usize) -> Node {
    let attrs = &raw["attributes"];
    let kind = raw
        .get("type")
        .and_then(Value::as_str)
        .or_else(|| str_at(attrs, "/node_type"))
        .unwrap_or("input")
        .to_owned();
    let name = str_at(attrs, "/name")
        .or_else(|| str_at(attrs, "/id"))
        .unwrap_or_default()
        .to_owned();
    let id = dom_id(&[
        "ui",
        form_group,
        if name.is_empty() { "node" } else { &name },
        &index.to_string(),
    ]);
    let input_type = str_at(attrs, "/type")
        .filter(|t| INPUT_TYPES.contains(t))
        .unwrap_or("text")
        .to_owned();
    let value = scalar(attrs.get("value"));
    let label = str_at(raw, "/meta/label/text")
        .or_else(|| str_at(attrs, "/label/text"))
        .map(str::to_owned)
        .unwrap_or_else(|| match (kind.as_str(), input_type.as_str()) {
            ("input", "submit" | "button") if !value.is_empty() => value.clone(),
            ("input", _) => name.clone(),
            _ => String::new(),
        });
    let msgs = messages(raw.get("messages"), &id);
    let described_by = msgs
        .iter()
        .map(|m| m.dom_id.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Node {
        dom_id: id,
        group: raw
            .get("group")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned(),
        name,
        checked: input_type == "checkbox" && matches!(attrs.get("value"), Some(Value::Bool(true))),
        value: if input_type == "password" {
            String::new()
        } else {
            value
        },
        input_type,
        label,
        required: attrs.get("required").and_then(Value::as_bool) == Some(true),
        disabled: attrs.get("disabled").and_then(Value::as_bool) == Some(true),
        autocomplete: str_at(attrs, "/autocomplete").map(str::to_owned),
        pattern: str_at(attrs, "/pattern").map(str::to_owned),
        maxlength: attrs.get("maxlength").and_then(Value::as_i64),
        text: str_at(attrs, "/text/text")
            .or_else(|| str_at(attrs, "/title/text"))
            .unwrap_or_default()
            .to_owned(),
        src: str_at(attrs, "/src").unwrap_or_default().to_owned(),
        href: str_at(attrs, "/href").unwrap_or_default().to_owned(),
        width: attrs.get("width").and_then(Value::as_i64),
        height: attrs.get("height").and_then(Value::as_i64),
        script: (kind == "script").then(|| attrs.clone()),
        invalid: msgs.iter().any(|m| m.kind == "error"),
        messages: msgs,
        described_by,
        raw: raw.clone(),
        kind,
    }
}

/// Splits a flow's nodes into forms, one per method group in order of appearance; the
/// `default` group's nodes open every form. A flow with only `default` nodes has one form.
pub fn flow_view(flow: &Value) -> FlowView {
    let ui = &flow["ui"];
    let action = str_at(ui, "/action").unwrap_or_default().to_owned();
    let method = str_at(ui, "/method").unwrap_or("POST").to_owned();
    let nodes: Vec<&Value> = ui
        .get("nodes")
        .and_then(Value::as_array)
        .map(|n| n.iter().collect())
        .unwrap_or_default();
    let group_of = |n: &Value| {
        n.get("group")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned()
    };
    let mut groups: Vec<String> = Vec::new();
    for n in &nodes {
        let g = group_of(n);
        if g != "default" && !groups.contains(&g) {
            groups.push(g);
        }
    }
    if groups.is_empty() {
        groups.push("default".to_owned());
    }
    let forms = groups
        .into_iter()
        .map(|group| {
            let nodes: Vec<Node> = nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    let g = group_of(n);
                    g == "default" || g == group
                })
                .map(|(i, n)| node_view(n, &group, i))
                .collect();
            let implicit_method = (!NOT_METHODS.contains(&group.as_str())
                && !nodes.iter().any(|n| n.name == "method"))
            .then(|| group.clone());
            Form {
                title: group_title(&group),
                implicit_method,
                group,
                action: action.clone(),
                method: method.clone(),
                nodes,
            }
        })
        .collect();
    FlowView {
        messages: messages(ui.get("messages"), "ui-flow"),
        forms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(group: &str, name: &str, ty: &str) -> Value {
        json!({"type": "input", "group": group, "messages": [], "meta": {},
               "attributes": {"name": name, "type": ty, "node_type": "input"}})
    }

    #[test]
    fn default_nodes_open_every_method_form() {
        let flow = json!({"ui": {"action": "/a", "method": "POST", "nodes": [
            input("default", "csrf_token", "hidden"),
            input("profile", "traits.email", "email"),
            input("password", "password", "password"),
            input("totp", "totp_code", "text"),
        ]}});
        let view = flow_view(&flow);
        let groups: Vec<_> = view.forms.iter().map(|f| f.group.as_str()).collect();
        assert_eq!(groups, ["profile", "password", "totp"]);
        for form in &view.forms {
            assert_eq!(form.nodes[0].name, "csrf_token");
            assert_eq!(form.nodes.len(), 2);
            assert_eq!(form.implicit_method.as_deref(), Some(form.group.as_str()));
        }
        let mut with_button = flow.clone();
        with_button["ui"]["nodes"][3] = input("totp", "method", "submit");
        assert_eq!(flow_view(&with_button).forms[2].implicit_method, None);
        let ids: std::collections::HashSet<_> = view
            .forms
            .iter()
            .flat_map(|f| f.nodes.iter().map(|n| n.dom_id.clone()))
            .collect();
        assert_eq!(ids.len(), 6, "DOM ids are unique across forms");
    }

    #[test]
    fn messages_are_described_and_errors_mark_the_field_invalid() {
        let mut node = input("password", "password", "password");
        node["attributes"]["value"] = json!("secret");
        node["messages"] = json!([{"id": 4000032, "text": "too short", "type": "error"}]);
        let view = flow_view(&json!({"ui": {"nodes": [node]}}));
        let n = &view.forms[0].nodes[0];
        assert!(n.invalid);
        assert_eq!(n.described_by, n.messages[0].dom_id);
        assert_eq!(n.value, "", "password values are never rendered");
    }

    #[test]
    fn unknown_input_types_render_as_text() {
        let view = flow_view(&json!({"ui": {"nodes": [input("x", "n", "javascript")]}}));
        assert_eq!(view.forms[0].nodes[0].input_type, "text");
        assert_eq!(view.forms[0].title, "X");
    }
}
