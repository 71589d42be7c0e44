//! Storage of second factors: a credential of one type per identity (TOTP), replaced or removed
//! with the identity's `available_aal` recomputed in the same transaction; compare-and-swap of a
//! credential's config (so a TOTP step is consumed once); session upgrades to AAL2; and a flow's
//! private context (the TOTP secret being enrolled).

use serde_json::Value;
use sqlx::AnyPool;
use uuid::Uuid;

use super::StoreError;
use super::rows::{db, json_text};

/// Credential types that make an identity able to reach AAL2.
const SECOND_FACTORS: &str = "('totp', 'lookup_secret')";

pub(super) async fn set_credential(
    pool: &AnyPool,
    identity_id: Uuid,
    kind: &str,
    config: Option<&Value>,
    now: i64,
) -> Result<(), StoreError> {
    let id = identity_id.to_string();
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("DELETE FROM identity_credentials WHERE identity_id = $1 AND type = $2")
        .bind(&id)
        .bind(kind)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    if let Some(config) = config {
        sqlx::query(
            "INSERT INTO identity_credentials (id, identity_id, type, config, version, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $5)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(&id)
        .bind(kind)
        .bind(json_text(config))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    sqlx::query(&format!(
        "UPDATE identities SET available_aal = CASE WHEN EXISTS (SELECT 1 FROM \
         identity_credentials c WHERE c.identity_id = $1 AND c.type IN {SECOND_FACTORS}) \
         THEN 'aal2' ELSE 'aal1' END, updated_at = $2 WHERE id = $1"
    ))
    .bind(&id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

pub(super) async fn swap_credential_config(
    pool: &AnyPool,
    identity_id: Uuid,
    kind: &str,
    old: &Value,
    new: &Value,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE identity_credentials SET config = $1, updated_at = $2 \
         WHERE identity_id = $3 AND type = $4 AND config = $5",
    )
    .bind(json_text(new))
    .bind(now)
    .bind(identity_id.to_string())
    .bind(kind)
    .bind(json_text(old))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn upgrade_session(
    pool: &AnyPool,
    session_id: Uuid,
    aal: &str,
    methods: &Value,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sessions SET aal = $1, authentication_methods = $2, authenticated_at = $3, \
         updated_at = $3 WHERE id = $4",
    )
    .bind(aal)
    .bind(json_text(methods))
    .bind(now)
    .bind(session_id.to_string())
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(super) async fn set_flow_context(
    pool: &AnyPool,
    flow_id: Uuid,
    context: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE selfservice_flows SET internal_context = $1 WHERE id = $2")
        .bind(context.map(str::to_owned))
        .bind(flow_id.to_string())
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub(super) async fn flow_context(
    pool: &AnyPool,
    flow_id: Uuid,
) -> Result<Option<String>, StoreError> {
    let found: Option<Option<String>> =
        sqlx::query_scalar("SELECT internal_context FROM selfservice_flows WHERE id = $1")
            .bind(flow_id.to_string())
            .fetch_optional(pool)
            .await
            .map_err(db)?;
    Ok(found.flatten())
}
