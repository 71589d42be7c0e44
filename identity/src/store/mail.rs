//! Storage of what the email flows need: the courier's outbox (`courier_messages` and their
//! dispatch attempts), one-time codes of recovery and verification flows, and the address index
//! (`identity_addresses`) that finds an identity by a verifiable or recovery address. Everything a
//! flow step writes (flow, code, message) goes in through [`Outbox`] in the step's transaction.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};
use uuid::Uuid;

use super::rows::{db, json_text, parse_uuid};
use super::{FlowRecord, IdentityRecord, StoreError};

/// A message in the courier's outbox.
#[derive(Debug, Clone)]
pub struct CourierRecord {
    pub id: Uuid,
    /// `queued`, `processing`, `sent` or `abandoned` (Kratos' names).
    pub status: String,
    pub recipient: String,
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    pub html_body: String,
    /// Kratos' template type, e.g. `recovery_code_valid`.
    pub template_type: String,
    pub send_count: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One delivery attempt of a message.
#[derive(Debug, Clone)]
pub struct DispatchRecord {
    pub id: Uuid,
    pub message_id: Uuid,
    /// `success` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub created_at: i64,
}

/// A one-time code (or link token) of a recovery or verification flow, stored as an HMAC.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub id: Uuid,
    pub flow_id: Uuid,
    pub code_hash: String,
    /// The address the code was sent to.
    pub address: String,
    /// The identity the address belongs to.
    pub identity_id: Option<Uuid>,
    pub expires_at: i64,
    pub created_at: i64,
}

/// What one flow step writes besides its own row, in the same transaction: a new flow (the
/// verification flow a registration starts), a code, the message that carries it, and new
/// verifiable address lists (an address whose code was just sent is `sent`).
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    pub flows: Vec<FlowRecord>,
    pub codes: Vec<CodeRecord>,
    pub messages: Vec<CourierRecord>,
    /// `(identity id, verifiable_addresses)` to write.
    pub verifiable_addresses: Vec<(Uuid, serde_json::Value)>,
    /// Write codes, messages and addresses only while the recipient is within its quota.
    pub quota: Option<MailQuota>,
}

/// A mail quota counted in the outbox itself, so every replica on the database enforces the
/// same one: at most `max` messages of `template_types` to `recipient` created after `since`.
#[derive(Debug, Clone)]
pub struct MailQuota {
    pub recipient: String,
    pub template_types: Vec<&'static str>,
    pub since: i64,
    pub max: i64,
}

/// What happened to a claimed message.
#[derive(Debug, Clone)]
pub enum Delivery {
    Sent,
    /// Failed; try again at `next_attempt_at`.
    Retry {
        next_attempt_at: i64,
        error: String,
    },
    /// Failed for the last time.
    Abandoned {
        error: String,
    },
}

/// Filters of `GET /admin/courier/messages`.
#[derive(Debug, Clone, Default)]
pub struct CourierFilter {
    pub status: Option<String>,
    pub recipient: Option<String>,
}

pub(super) async fn insert_outbox(
    tx: &mut Transaction<'_, Any>,
    outbox: &Outbox,
) -> Result<(), StoreError> {
    for f in &outbox.flows {
        sqlx::query(
            "INSERT INTO selfservice_flows (id, kind, type, state, request_url, return_to, \
             csrf_token, ui, identity_id, issued_at, expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(f.id.to_string())
        .bind(&f.kind)
        .bind(&f.flow_type)
        .bind(&f.state)
        .bind(&f.request_url)
        .bind(f.return_to.clone())
        .bind(&f.csrf_token)
        .bind(json_text(&f.ui))
        .bind(f.identity_id.map(|i| i.to_string()))
        .bind(f.issued_at)
        .bind(f.expires_at)
        .bind(f.created_at)
        .bind(f.updated_at)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    for c in &outbox.codes {
        sqlx::query(
            "INSERT INTO selfservice_codes (id, flow_id, code_hash, address, identity_id, \
             used_at, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
        )
        .bind(c.id.to_string())
        .bind(c.flow_id.to_string())
        .bind(&c.code_hash)
        .bind(&c.address)
        .bind(c.identity_id.map(|i| i.to_string()))
        .bind(c.expires_at)
        .bind(c.created_at)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    for m in &outbox.messages {
        sqlx::query(
            "INSERT INTO courier_messages (id, type, status, recipient, subject, body, html_body, \
             template_type, send_count, next_attempt_at, claimed_until, created_at, updated_at) \
             VALUES ($1, 'email', $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)",
        )
        .bind(m.id.to_string())
        .bind(&m.status)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(&m.html_body)
        .bind(&m.template_type)
        .bind(m.send_count)
        .bind(m.next_attempt_at)
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    for (identity_id, addresses) in &outbox.verifiable_addresses {
        sqlx::query("UPDATE identities SET verifiable_addresses = $1 WHERE id = $2")
            .bind(json_text(addresses))
            .bind(identity_id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// Whether `quota`'s recipient may get one more message. Called after the transaction wrote
/// (SQLite: it holds the write lock) or took the recipient's advisory lock (PostgreSQL), so two
/// replicas counting at once are serialized and never both take the last slot.
async fn within_quota(
    tx: &mut Transaction<'_, Any>,
    quota: &MailQuota,
) -> Result<bool, StoreError> {
    if tx.backend_name().eq_ignore_ascii_case("postgresql") {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("portcullis-mail:{}", quota.recipient))
            .execute(&mut **tx)
            .await
            .map_err(db)?;
    }
    let placeholders: Vec<String> = (0..quota.template_types.len())
        .map(|i| format!("${}", i + 3))
        .collect();
    let sql = format!(
        "SELECT COUNT(*) FROM courier_messages WHERE recipient = $1 AND created_at > $2 \
         AND template_type IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_scalar::<_, i64>(&sql)
        .bind(quota.recipient.clone())
        .bind(quota.since);
    for t in &quota.template_types {
        query = query.bind(*t);
    }
    let sent = query.fetch_one(&mut **tx).await.map_err(db)?;
    Ok(sent < quota.max)
}

/// Rewrites the address index of one identity from its address lists.
pub(super) async fn index_addresses(
    tx: &mut Transaction<'_, Any>,
    identity: &IdentityRecord,
) -> Result<(), StoreError> {
    let id = identity.id.to_string();
    sqlx::query("DELETE FROM identity_addresses WHERE identity_id = $1")
        .bind(&id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    for (kind, list) in [
        ("verifiable", &identity.verifiable_addresses),
        ("recovery", &identity.recovery_addresses),
    ] {
        for entry in list.as_array().into_iter().flatten() {
            let (Some(via), Some(value)) = (entry["via"].as_str(), entry["value"].as_str()) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO identity_addresses (identity_id, kind, via, value) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(kind)
            .bind(via)
            .bind(value.to_lowercase())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
    }
    sqlx::query("UPDATE identities SET addresses_indexed = 1 WHERE id = $1")
        .bind(&id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

pub(super) async fn update_flow_with_outbox(
    pool: &AnyPool,
    flow: &FlowRecord,
    outbox: &Outbox,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query(
        "UPDATE selfservice_flows SET state = $1, ui = $2, updated_at = $3, expires_at = $4 \
         WHERE id = $5",
    )
    .bind(&flow.state)
    .bind(json_text(&flow.ui))
    .bind(now)
    .bind(flow.expires_at)
    .bind(flow.id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let allowed = match &outbox.quota {
        Some(quota) => within_quota(&mut tx, quota).await?,
        None => true,
    };
    if allowed {
        insert_outbox(&mut tx, outbox).await?;
    } else {
        let flows_only = Outbox {
            flows: outbox.flows.clone(),
            ..Outbox::default()
        };
        insert_outbox(&mut tx, &flows_only).await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(allowed)
}

/// The identity owning an address of `kind` (`verifiable` or `recovery`).
pub(super) async fn identity_id_by_address(
    pool: &AnyPool,
    kind: &str,
    value: &str,
) -> Result<Option<Uuid>, StoreError> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT identity_id FROM identity_addresses WHERE kind = $1 AND via = 'email' \
         AND value = $2 LIMIT 1",
    )
    .bind(kind)
    .bind(value.to_lowercase())
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    id.map(|i| parse_uuid(&i)).transpose()
}

/// Counts one more code submission on a flow; returns the new count.
pub(super) async fn count_submission(pool: &AnyPool, flow_id: Uuid) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "UPDATE selfservice_flows SET submit_count = submit_count + 1 WHERE id = $1 \
         RETURNING submit_count",
    )
    .bind(flow_id.to_string())
    .fetch_one(pool)
    .await
    .map_err(db)
}

fn code_from_row(row: &AnyRow) -> Result<CodeRecord, StoreError> {
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let get_i = |c: &str| row.try_get::<i64, _>(c).map_err(db);
    Ok(CodeRecord {
        id: parse_uuid(&get_s("id")?)?,
        flow_id: parse_uuid(&get_s("flow_id")?)?,
        code_hash: get_s("code_hash")?,
        address: get_s("address")?,
        identity_id: row
            .try_get::<Option<String>, _>("identity_id")
            .map_err(db)?
            .map(|t| parse_uuid(&t))
            .transpose()?,
        expires_at: get_i("expires_at")?,
        created_at: get_i("created_at")?,
    })
}

/// Unused, unexpired codes of a flow.
pub(super) async fn live_codes(
    pool: &AnyPool,
    flow_id: Uuid,
    now: i64,
) -> Result<Vec<CodeRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, flow_id, code_hash, address, identity_id, expires_at, created_at \
         FROM selfservice_codes WHERE flow_id = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(flow_id.to_string())
    .bind(now)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(code_from_row).collect()
}

/// Marks a code used and, in the same transaction, writes the flow's new state and (when given)
/// the identity's new verifiable addresses. False when the code was used meanwhile.
pub(super) async fn redeem_code(
    pool: &AnyPool,
    code_id: Uuid,
    flow: &FlowRecord,
    verified: Option<&IdentityRecord>,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    let done =
        sqlx::query("UPDATE selfservice_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(code_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("UPDATE selfservice_flows SET state = $1, ui = $2, updated_at = $3 WHERE id = $4")
        .bind(&flow.state)
        .bind(json_text(&flow.ui))
        .bind(now)
        .bind(flow.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    if let Some(identity) = verified {
        sqlx::query(
            "UPDATE identities SET verifiable_addresses = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(json_text(&identity.verifiable_addresses))
        .bind(now)
        .bind(identity.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(true)
}

/// Invalidates a flow: every code is spent and the flow expires now.
pub(super) async fn invalidate_flow(
    pool: &AnyPool,
    flow_id: Uuid,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("UPDATE selfservice_codes SET used_at = $1 WHERE flow_id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(flow_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("UPDATE selfservice_flows SET expires_at = $1, updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(flow_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

const COURIER_COLUMNS: &str = "id, status, recipient, subject, body, html_body, template_type, \
    send_count, next_attempt_at, created_at, updated_at";

fn courier_from_row(row: &AnyRow) -> Result<CourierRecord, StoreError> {
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(db);
    let get_i = |c: &str| row.try_get::<i64, _>(c).map_err(db);
    Ok(CourierRecord {
        id: parse_uuid(&get_s("id")?)?,
        status: get_s("status")?,
        recipient: get_s("recipient")?,
        subject: get_s("subject")?,
        body: get_s("body")?,
        html_body: get_s("html_body")?,
        template_type: get_s("template_type")?,
        send_count: get_i("send_count")?,
        next_attempt_at: get_i("next_attempt_at")?,
        created_at: get_i("created_at")?,
        updated_at: get_i("updated_at")?,
    })
}

/// Claims up to `limit` due messages for this sender until `lease_until`: queued messages whose
/// time has come, and messages another sender claimed but did not finish before its lease ran
/// out (it crashed). Each claim is a conditional UPDATE, so two senders never both win a row.
pub(super) async fn claim_due(
    pool: &AnyPool,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<CourierRecord>, StoreError> {
    let candidates: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM courier_messages WHERE (status = 'queued' AND next_attempt_at <= $1) \
         OR (status = 'processing' AND claimed_until < $1) ORDER BY next_attempt_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut claimed = Vec::new();
    for id in candidates {
        let done = sqlx::query(
            "UPDATE courier_messages SET status = 'processing', claimed_until = $1, \
             updated_at = $2 WHERE id = $3 AND ((status = 'queued' AND next_attempt_at <= $2) \
             OR (status = 'processing' AND claimed_until < $2))",
        )
        .bind(lease_until)
        .bind(now)
        .bind(&id)
        .execute(pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 1
            && let Some(message) = courier_message(pool, &id).await?
        {
            claimed.push(message);
        }
    }
    Ok(claimed)
}

async fn courier_message(pool: &AnyPool, id: &str) -> Result<Option<CourierRecord>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COURIER_COLUMNS} FROM courier_messages WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.as_ref().map(courier_from_row).transpose()
}

/// Records the outcome of one attempt.
pub(super) async fn finish_delivery(
    pool: &AnyPool,
    id: Uuid,
    outcome: &Delivery,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db)?;
    let (status, next_attempt_at, dispatch, error) = match outcome {
        Delivery::Sent => ("sent", now, "success", None),
        Delivery::Retry {
            next_attempt_at,
            error,
        } => ("queued", *next_attempt_at, "failed", Some(error.clone())),
        Delivery::Abandoned { error } => ("abandoned", now, "failed", Some(error.clone())),
    };
    sqlx::query(
        "UPDATE courier_messages SET status = $1, send_count = send_count + 1, \
         next_attempt_at = $2, claimed_until = 0, updated_at = $3 WHERE id = $4",
    )
    .bind(status)
    .bind(next_attempt_at)
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    sqlx::query(
        "INSERT INTO courier_message_dispatches (id, message_id, status, error, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(id.to_string())
    .bind(dispatch)
    .bind(error)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// Messages newest first, after a keyset cursor (the id of the last message of the previous
/// page).
pub(super) async fn list_messages(
    pool: &AnyPool,
    filter: &CourierFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CourierRecord>, StoreError> {
    let cursor = match after {
        Some(id) => courier_message(pool, &id.to_string()).await?,
        None => None,
    };
    let (cursor_at, cursor_id) = cursor
        .map(|c| (c.created_at, c.id.to_string()))
        .unwrap_or((i64::MAX, String::new()));
    let rows = sqlx::query(&format!(
        "SELECT {COURIER_COLUMNS} FROM courier_messages \
         WHERE ($1 = '' OR status = $1) AND ($2 = '' OR recipient = $2) \
         AND (created_at < $3 OR (created_at = $3 AND id < $4) OR $4 = '') \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(filter.status.clone().unwrap_or_default())
    .bind(filter.recipient.clone().unwrap_or_default())
    .bind(cursor_at)
    .bind(cursor_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(courier_from_row).collect()
}

/// One message with its dispatch attempts.
pub(super) async fn message_with_dispatches(
    pool: &AnyPool,
    id: Uuid,
) -> Result<Option<(CourierRecord, Vec<DispatchRecord>)>, StoreError> {
    let Some(message) = courier_message(pool, &id.to_string()).await? else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT id, message_id, status, error, created_at FROM courier_message_dispatches \
         WHERE message_id = $1 ORDER BY created_at, id",
    )
    .bind(id.to_string())
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let dispatches = rows
        .iter()
        .map(|row| {
            Ok(DispatchRecord {
                id: parse_uuid(&row.try_get::<String, _>("id").map_err(db)?)?,
                message_id: parse_uuid(&row.try_get::<String, _>("message_id").map_err(db)?)?,
                status: row.try_get("status").map_err(db)?,
                error: row.try_get("error").map_err(db)?,
                created_at: row.try_get("created_at").map_err(db)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some((message, dispatches)))
}
