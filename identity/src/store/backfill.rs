//! Storage side of the address backfill: identities written before the `identity_addresses`
//! index existed carry `addresses_indexed = 0`; the service derives their addresses from their
//! traits ([`crate::backfill`]) and writes them here, once.

use sqlx::AnyPool;
use uuid::Uuid;

use super::rows::{IDENTITY_COLUMNS, db, identity_from_row, json_text};
use super::{IdentityRecord, StoreError, mail};

pub(super) async fn pending(
    pool: &AnyPool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<IdentityRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {IDENTITY_COLUMNS} FROM identities i \
         WHERE i.addresses_indexed = 0 AND i.id > $1 ORDER BY i.id LIMIT $2"
    ))
    .bind(after.map(|a| a.to_string()).unwrap_or_default())
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(identity_from_row).collect()
}

pub(super) async fn apply(pool: &AnyPool, identity: &IdentityRecord) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    // Only while still unindexed: a concurrent update of the identity wrote newer lists.
    let done = sqlx::query(
        "UPDATE identities SET verifiable_addresses = $1, recovery_addresses = $2 \
         WHERE id = $3 AND addresses_indexed = 0",
    )
    .bind(json_text(&identity.verifiable_addresses))
    .bind(json_text(&identity.recovery_addresses))
    .bind(identity.id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    mail::index_addresses(&mut tx, identity).await?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}
