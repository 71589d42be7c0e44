//! Decoding of rows shared by the SQL store: column lists, JSON-as-TEXT, TEXT uuids, and the
//! mapping of sqlx errors (unique violations become [`StoreError::Conflict`]).

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{FlowRecord, IdentityRecord, SessionRecord, StoreError};

pub(super) fn db(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(inner) = &e
        && inner.is_unique_violation()
    {
        return StoreError::Conflict;
    }
    StoreError::Unavailable(e)
}

pub(super) fn json_text(value: &Value) -> String {
    value.to_string()
}

pub(super) fn parse_json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) const IDENTITY_COLUMNS: &str = "i.id AS i_id, i.schema_id AS i_schema_id, i.state AS i_state, \
    i.traits AS i_traits, i.verifiable_addresses AS i_verifiable_addresses, \
    i.recovery_addresses AS i_recovery_addresses, i.metadata_public AS i_metadata_public, \
    i.metadata_admin AS i_metadata_admin, i.external_id AS i_external_id, \
    i.available_aal AS i_available_aal, \
    i.state_changed_at AS i_state_changed_at, i.created_at AS i_created_at, \
    i.updated_at AS i_updated_at";

pub(super) const SESSION_COLUMNS: &str = "s.id AS s_id, s.identity_id AS s_identity_id, s.active AS s_active, \
    s.aal AS s_aal, s.authentication_methods AS s_authentication_methods, s.devices AS s_devices, \
    s.issued_at AS s_issued_at, s.authenticated_at AS s_authenticated_at, \
    s.expires_at AS s_expires_at, s.created_at AS s_created_at, s.updated_at AS s_updated_at";

pub(super) fn identity_from_row(row: &AnyRow) -> Result<IdentityRecord, StoreError> {
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let get_os = |c: &str| row.try_get::<Option<String>, _>(c).map_err(db);
    let get_i = |c: &str| row.try_get::<i64, _>(c).map_err(db);
    Ok(IdentityRecord {
        id: parse_uuid(&get_s("i_id")?)?,
        schema_id: get_s("i_schema_id")?,
        state: get_s("i_state")?,
        traits: parse_json(&get_s("i_traits")?)?,
        verifiable_addresses: parse_json(&get_s("i_verifiable_addresses")?)?,
        recovery_addresses: parse_json(&get_s("i_recovery_addresses")?)?,
        metadata_public: get_os("i_metadata_public")?
            .map(|t| parse_json(&t))
            .transpose()?,
        metadata_admin: get_os("i_metadata_admin")?
            .map(|t| parse_json(&t))
            .transpose()?,
        external_id: get_os("i_external_id")?,
        available_aal: get_s("i_available_aal")?,
        state_changed_at: get_i("i_state_changed_at")?,
        created_at: get_i("i_created_at")?,
        updated_at: get_i("i_updated_at")?,
    })
}

pub(super) fn session_from_row(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let get_i = |c: &str| row.try_get::<i64, _>(c).map_err(db);
    Ok(SessionRecord {
        id: parse_uuid(&get_s("s_id")?)?,
        identity_id: parse_uuid(&get_s("s_identity_id")?)?,
        active: get_i("s_active")? != 0,
        aal: get_s("s_aal")?,
        authentication_methods: parse_json(&get_s("s_authentication_methods")?)?,
        devices: parse_json(&get_s("s_devices")?)?,
        issued_at: get_i("s_issued_at")?,
        authenticated_at: get_i("s_authenticated_at")?,
        expires_at: get_i("s_expires_at")?,
        created_at: get_i("s_created_at")?,
        updated_at: get_i("s_updated_at")?,
    })
}

pub(super) fn flow_from_row(row: &AnyRow) -> Result<FlowRecord, StoreError> {
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let get_os = |c: &str| row.try_get::<Option<String>, _>(c).map_err(db);
    let get_i = |c: &str| row.try_get::<i64, _>(c).map_err(db);
    Ok(FlowRecord {
        id: parse_uuid(&get_s("id")?)?,
        kind: get_s("kind")?,
        flow_type: get_s("type")?,
        state: get_s("state")?,
        request_url: get_s("request_url")?,
        return_to: get_os("return_to")?,
        csrf_token: get_s("csrf_token")?,
        ui: parse_json(&get_s("ui")?)?,
        identity_id: get_os("identity_id")?.map(|t| parse_uuid(&t)).transpose()?,
        issued_at: get_i("issued_at")?,
        expires_at: get_i("expires_at")?,
        created_at: get_i("created_at")?,
        updated_at: get_i("updated_at")?,
    })
}
