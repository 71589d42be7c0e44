//! Identities: building a new identity from validated traits and rendering Kratos' identity JSON.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::clock::rfc3339;
use crate::schema::{IdentitySchema, schema_url};
use crate::store::IdentityRecord;

/// Builds a new active identity record for traits that passed the schema.
pub fn new_identity(schema: &IdentitySchema, traits: Value, now: i64) -> IdentityRecord {
    let verifiable: Vec<Value> = schema
        .verifiable_addresses(&traits)
        .into_iter()
        .map(|a| {
            json!({"id": Uuid::new_v4(), "value": a.value, "verified": false, "via": a.via,
                   "status": "pending", "created_at": rfc3339(now), "updated_at": rfc3339(now)})
        })
        .collect();
    let recovery: Vec<Value> = schema
        .recovery_addresses(&traits)
        .into_iter()
        .map(|a| {
            json!({"id": Uuid::new_v4(), "value": a.value, "via": a.via,
                   "created_at": rfc3339(now), "updated_at": rfc3339(now)})
        })
        .collect();
    IdentityRecord {
        id: Uuid::new_v4(),
        schema_id: schema.id.clone(),
        state: "active".to_owned(),
        traits,
        verifiable_addresses: Value::Array(verifiable),
        recovery_addresses: Value::Array(recovery),
        metadata_public: None,
        metadata_admin: None,
        external_id: None,
        available_aal: "aal1".to_owned(),
        state_changed_at: now,
        created_at: now,
        updated_at: now,
    }
}

/// A human name for an identity (authenticator apps show it): its first address, else its
/// first string trait, else its id.
pub fn display_identifier(identity: &IdentityRecord) -> String {
    identity
        .verifiable_addresses
        .as_array()
        .into_iter()
        .chain(identity.recovery_addresses.as_array())
        .flatten()
        .find_map(|a| a["value"].as_str())
        .or_else(|| {
            identity
                .traits
                .as_object()
                .and_then(|t| t.values().find_map(Value::as_str))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| identity.id.to_string())
}

/// The public identity JSON (no credentials, no admin metadata), as whoami shows it.
pub fn identity_json(identity: &IdentityRecord, public_base: &str) -> Value {
    json!({
        "id": identity.id,
        "schema_id": identity.schema_id,
        "schema_url": schema_url(public_base, &identity.schema_id),
        "state": identity.state,
        "state_changed_at": rfc3339(identity.state_changed_at),
        "traits": identity.traits,
        "verifiable_addresses": identity.verifiable_addresses,
        "recovery_addresses": identity.recovery_addresses,
        "metadata_public": identity.metadata_public,
        "created_at": rfc3339(identity.created_at),
        "updated_at": rfc3339(identity.updated_at),
        "organization_id": null,
    })
}

/// The admin identity JSON: the public shape plus `credentials` (configs blanked unless the
/// credential type is in `include_credential`) and `metadata_admin`.
pub fn admin_identity_json(
    identity: &IdentityRecord,
    credentials: &[crate::store::StoredCredential],
    include_credential: &[String],
    public_base: &str,
) -> Value {
    let mut body = identity_json(identity, public_base);
    let mut creds = serde_json::Map::new();
    for c in credentials {
        let config = if include_credential.iter().any(|t| t == &c.kind) {
            c.config.clone()
        } else {
            json!({})
        };
        creds.insert(
            c.kind.clone(),
            json!({
                "type": c.kind,
                "identifiers": c.identifiers,
                "config": config,
                "version": c.version,
                "created_at": rfc3339(c.created_at),
                "updated_at": rfc3339(c.updated_at),
            }),
        );
    }
    body["credentials"] = Value::Object(creds);
    body["metadata_admin"] = identity.metadata_admin.clone().unwrap_or(Value::Null);
    body["external_id"] = identity
        .external_id
        .clone()
        .map(Value::String)
        .unwrap_or(Value::Null);
    body
}

/// Recomputes the address lists for new traits, keeping the stored entries (ids, verification
/// state) of addresses that did not change.
pub fn refresh_addresses(schema: &IdentitySchema, identity: &mut IdentityRecord, now: i64) {
    let fresh = new_identity(schema, identity.traits.clone(), now);
    let merge = |old: &Value, new: Value| -> Value {
        let kept: Vec<Value> = new
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                old.as_array()
                    .into_iter()
                    .flatten()
                    .find(|o| o["value"] == entry["value"] && o["via"] == entry["via"])
                    .cloned()
                    .unwrap_or_else(|| entry.clone())
            })
            .collect();
        Value::Array(kept)
    };
    identity.verifiable_addresses =
        merge(&identity.verifiable_addresses, fresh.verifiable_addresses);
    identity.recovery_addresses = merge(&identity.recovery_addresses, fresh.recovery_addresses);
}
