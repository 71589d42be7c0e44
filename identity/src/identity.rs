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
        state_changed_at: now,
        created_at: now,
        updated_at: now,
    }
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
