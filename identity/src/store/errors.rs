//! Storage of self-service errors (`selfservice_errors`): the error a browser flow ended in, kept
//! so the error UI can fetch it by id (`GET /self-service/errors?id=`).

use serde_json::Value;
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use super::StoreError;
use super::rows::{db, json_text, parse_json, parse_uuid};

/// A stored self-service error. `error` is the inner object of the JSON error envelope.
#[derive(Debug, Clone)]
pub struct ErrorRecord {
    pub id: Uuid,
    pub error: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(super) async fn insert(pool: &AnyPool, e: &ErrorRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO selfservice_errors (id, error, created_at, updated_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(e.id.to_string())
    .bind(json_text(&e.error))
    .bind(e.created_at)
    .bind(e.updated_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}

pub(super) async fn get(pool: &AnyPool, id: Uuid) -> Result<Option<ErrorRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT id, error, created_at, updated_at FROM selfservice_errors WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(ErrorRecord {
        id: parse_uuid(&row.try_get::<String, _>("id").map_err(db)?)?,
        error: parse_json(&row.try_get::<String, _>("error").map_err(db)?)?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    }))
}
