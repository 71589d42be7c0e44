//! Lookup secrets (backup codes) as a second factor: settings method `lookup_secret`
//! (`lookup_secret_regenerate` shows 12 new codes, `lookup_secret_confirm` saves them,
//! `lookup_secret_reveal` shows them again with the used ones marked, as Kratos does,
//! `lookup_secret_disable` removes them) and the step-up login with `method: lookup_secret`.
//! Codes are checked against HMACs and each works once; for reveal they are also kept encrypted
//! with `secrets.cipher` (`sealed_codes`), like TOTP secrets.

use rand::Rng;
use serde_json::{Value, json};

use super::{add_message, input_node};
use crate::clock::{now_ms, rfc3339};
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{FlowRecord, IdentityRecord, StoredCredential};
use crate::text::Message;

const CODES: usize = 12;
const KIND: &str = "lookup_secret";

fn new_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..CODES)
        .map(|_| {
            (0..8)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect()
        })
        .collect()
}

fn enrolled(credentials: &[StoredCredential]) -> Option<&StoredCredential> {
    credentials.iter().find(|c| c.kind == KIND)
}

/// The settings nodes for the current state: regenerate (and disable once set up).
pub fn settings_nodes(has_codes: bool) -> Vec<Value> {
    let mut nodes = Vec::new();
    if has_codes {
        nodes.push(input_node(
            KIND,
            "lookup_secret_reveal",
            "submit",
            Some(json!(true)),
            false,
            None,
            Some(Message::lookup_label(
                1050007,
                "Reveal backup recovery codes",
            )),
        ));
    }
    nodes.push(input_node(
        KIND,
        "lookup_secret_regenerate",
        "submit",
        Some(json!(true)),
        false,
        None,
        Some(Message::lookup_label(
            1050008,
            "Generate new backup recovery codes",
        )),
    ));
    if has_codes {
        nodes.push(input_node(
            KIND,
            "lookup_secret_disable",
            "submit",
            Some(json!(true)),
            false,
            None,
            Some(Message::lookup_label(1050014, "Disable this method")),
        ));
    }
    nodes
}

/// Adds the lookup-secret nodes to a fresh settings flow.
pub async fn add_settings_nodes(
    state: &AppState,
    flow: &mut FlowRecord,
    identity: &IdentityRecord,
) -> Result<(), ApiError> {
    if !state.second_factor.lookup_enabled || !state.cipher.is_configured() {
        return Ok(());
    }
    let credentials = state.store.credentials(identity.id).await?;
    replace_nodes(flow, settings_nodes(enrolled(&credentials).is_some()));
    state
        .store
        .update_flow(flow.id, &flow.state, &flow.ui, now_ms())
        .await?;
    Ok(())
}

fn replace_nodes(flow: &mut FlowRecord, nodes: Vec<Value>) {
    let mut all = flow.ui["nodes"].as_array().cloned().unwrap_or_default();
    all.retain(|n| n["group"] != KIND);
    all.extend(nodes);
    flow.ui["nodes"] = Value::Array(all);
}

fn flag(body: &Value, name: &str) -> bool {
    matches!(body.get(name), Some(Value::Bool(true)))
        || body.get(name).and_then(Value::as_str) == Some("true")
}

/// What a `lookup_secret` settings submission did.
pub enum Outcome {
    /// New codes are on the flow, waiting for confirmation (not saved yet).
    Shown,
    /// Saved (confirmed or disabled).
    Saved,
    /// Refused; the reason is on the flow.
    Failed,
}

/// The settings `lookup_secret` method.
pub async fn settings_submit(
    state: &AppState,
    record: &mut FlowRecord,
    identity: &IdentityRecord,
    body: &Value,
) -> Result<Outcome, ApiError> {
    let now = now_ms();
    if flag(body, "lookup_secret_disable") {
        state
            .store
            .set_credential(identity.id, KIND, None, now)
            .await?;
        replace_nodes(record, settings_nodes(false));
        return Ok(Outcome::Saved);
    }
    if flag(body, "lookup_secret_reveal") {
        return reveal(state, record, identity).await;
    }
    if flag(body, "lookup_secret_confirm") {
        let pending = state.store.flow_context(record.id).await?;
        let codes: Option<(Vec<String>, String)> = pending.and_then(|sealed| {
            let plain = state.cipher.decrypt(&sealed).ok()?;
            Some((serde_json::from_slice(&plain).ok()?, sealed))
        });
        let Some((codes, sealed)) = codes else {
            add_message(
                &mut record.ui,
                None,
                Message::validation("Generate new backup recovery codes first."),
            );
            return Ok(Outcome::Failed);
        };
        let config = json!({
            "recovery_codes": codes
                .iter()
                .map(|c| json!({ "code_hash": state.email.hash_secret(c), "used_at": null }))
                .collect::<Vec<_>>(),
            "sealed_codes": sealed,
        });
        state
            .store
            .set_credential(identity.id, KIND, Some(&config), now)
            .await?;
        state.store.set_flow_context(record.id, None).await?;
        replace_nodes(record, settings_nodes(true));
        return Ok(Outcome::Saved);
    }
    // Regenerate: show new codes, keep them (encrypted) until they are confirmed.
    let codes = new_codes();
    let sealed = state
        .cipher
        .encrypt(&serde_json::to_vec(&codes).unwrap_or_default())
        .map_err(|_| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR))?;
    state
        .store
        .set_flow_context(record.id, Some(&sealed))
        .await?;
    let list: Vec<Value> = codes
        .iter()
        .map(|c| json!(Message::lookup_text(1050009, c)))
        .collect();
    replace_nodes(
        record,
        vec![
            codes_node(&codes.join(", "), list),
            input_node(
                KIND,
                "lookup_secret_confirm",
                "submit",
                Some(json!(true)),
                false,
                None,
                Some(Message::lookup_label(
                    1050010,
                    "Confirm backup recovery codes",
                )),
            ),
        ],
    );
    Ok(Outcome::Shown)
}

/// The `lookup_secret_codes` text node: the codes as text and as a list of messages.
fn codes_node(text: &str, secrets: Vec<Value>) -> Value {
    json!({
        "type": "text",
        "group": KIND,
        "attributes": {
            "id": "lookup_secret_codes",
            "text": {
                "id": 1050011,
                "text": text,
                "type": "info",
                "context": { "secrets": secrets },
            },
            "node_type": "text",
        },
        "messages": [],
        "meta": {},
    })
}

/// `lookup_secret_reveal`: the saved codes again, used ones as 1050013 with their `used_at`.
async fn reveal(
    state: &AppState,
    record: &mut FlowRecord,
    identity: &IdentityRecord,
) -> Result<Outcome, ApiError> {
    let credentials = state.store.credentials(identity.id).await?;
    let saved = enrolled(&credentials).and_then(|c| {
        let plain = state
            .cipher
            .decrypt(c.config["sealed_codes"].as_str()?)
            .ok()?;
        let codes: Vec<String> = serde_json::from_slice(&plain).ok()?;
        Some((codes, c.config["recovery_codes"].clone()))
    });
    let Some((codes, entries)) = saved else {
        add_message(
            &mut record.ui,
            None,
            Message::validation(
                "There are no backup recovery codes that can be shown; generate new ones.",
            ),
        );
        return Ok(Outcome::Failed);
    };
    let mut unused = Vec::new();
    let list: Vec<Value> = codes
        .iter()
        .enumerate()
        .map(
            |(i, code)| match entries.get(i).and_then(|e| e["used_at"].as_str()) {
                Some(at) => json!(Message::lookup_used(at)),
                None => {
                    unused.push(code.as_str());
                    json!(Message::lookup_text(1050009, code))
                }
            },
        )
        .collect();
    let mut nodes = vec![codes_node(&unused.join(", "), list)];
    nodes.extend(settings_nodes(true).into_iter().filter(|n| {
        n.pointer("/attributes/name").and_then(Value::as_str) != Some("lookup_secret_reveal")
    }));
    replace_nodes(record, nodes);
    Ok(Outcome::Shown)
}

/// The step-up login nodes for backup codes.
pub fn login_nodes() -> Vec<Value> {
    vec![
        input_node(
            KIND,
            "lookup_secret",
            "text",
            None,
            true,
            Some("off"),
            Some(Message::lookup_label(1010007, "Backup recovery code")),
        ),
        input_node(
            KIND,
            "method",
            "submit",
            Some(json!(KIND)),
            false,
            None,
            Some(Message::lookup_label(1010010, "Use backup recovery code")),
        ),
    ]
}

/// Spends a backup code at login; false when it is wrong or used.
pub async fn redeem(
    state: &AppState,
    identity: &IdentityRecord,
    presented: &str,
) -> Result<bool, ApiError> {
    let credentials = state.store.credentials(identity.id).await?;
    let Some(credential) = enrolled(&credentials) else {
        return Ok(false);
    };
    let presented = presented.trim().to_lowercase();
    let mut config = credential.config.clone();
    let Some(codes) = config["recovery_codes"].as_array_mut() else {
        return Ok(false);
    };
    let Some(entry) = codes.iter_mut().find(|c| {
        c["used_at"].is_null()
            && c["code_hash"]
                .as_str()
                .is_some_and(|h| state.email.verify_secret(&presented, h))
    }) else {
        return Ok(false);
    };
    let now = now_ms();
    entry["used_at"] = json!(rfc3339(now));
    Ok(state
        .store
        .swap_credential_config(identity.id, KIND, &credential.config, &config, now)
        .await?)
}
