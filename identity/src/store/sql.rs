//! The sqlx implementation of [`Store`] over the `Any` driver: the same SQL (with `$n`
//! placeholders and portable types) runs on PostgreSQL and SQLite. Migrations are embedded.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection as _, Row};
use uuid::Uuid;

use super::dsn::Dsn;
use super::rows::{
    IDENTITY_COLUMNS, SESSION_COLUMNS, db, flow_from_row, identity_from_row, json_text, parse_json,
    parse_uuid, session_from_row,
};
use super::whoami_cache::{self, WhoamiCache};
use super::{
    CodeRecord, CourierFilter, CourierRecord, CredentialRecord, Delivery, DispatchRecord,
    FlowRecord, IdentityRecord, Outbox, PasswordUpdate, SessionFilter, SessionRecord, Store,
    StoreError, StoredCredential,
};
use super::{ErrorRecord, backfill, errors, factors, mail};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The store over a PostgreSQL or SQLite pool.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// Connections for whoami's one query, outside the pool (see [`Direct`]); `None` for an
    /// in-memory database, whose data lives in the pool's one connection.
    direct: Option<Arc<Direct>>,
    /// whoami's cache on PostgreSQL (see [`whoami_cache`]); `None` when off.
    cache: Option<Arc<WhoamiCache>>,
    /// PostgreSQL's URL (for the cache's listening connection); `None` on SQLite.
    postgres_url: Option<String>,
}

/// `portcullis.whoami_cache`: how whoami's cache is sized.
#[derive(Debug, Clone, Copy)]
pub struct WhoamiCacheSettings {
    pub max_entries: usize,
    pub max_age: std::time::Duration,
}

impl SqlStore {
    /// Connects (creating the SQLite file and its folder when needed).
    pub async fn connect(dsn: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dsn = Dsn::parse(dsn)?;
        if let Some(file) = &dsn.file
            && let Some(parent) = Path::new(file).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Dsn(format!("cannot create {}: {e}", parent.display())))?;
        }
        let options =
            AnyConnectOptions::from_str(&dsn.url).map_err(|e| StoreError::Dsn(e.to_string()))?;
        let options_for_direct = options.clone();
        let is_sqlite = dsn.url.starts_with("sqlite:");
        let mut pool = AnyPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // sqlx pings a connection on every acquire by default: a second round trip to the
            // database per whoami. It already pings on every release, so a connection handed
            // out after less than IDLE_PING_AFTER idle was alive a moment ago; only ones idle
            // longer are pinged. One that died meanwhile (database restarted) fails its query:
            // idempotent reads retry on another connection (`SqlStore::read`).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_PING_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if is_sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            });
        if dsn.memory {
            // One connection that lives as long as the pool: the in-memory database is per
            // connection.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else if is_sqlite {
            pool = pool.max_connections(4);
        } else {
            pool = pool.max_connections(16);
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)?;
        if is_sqlite && !dsn.memory {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(StoreError::Unavailable)?;
        }
        let direct = (!dsn.memory).then(|| {
            Arc::new(Direct {
                options: options_for_direct,
                is_sqlite,
                idle: std::sync::Mutex::new(Vec::new()),
                permits: tokio::sync::Semaphore::new(DIRECT_CONNECTIONS),
            })
        });
        let postgres_url = (!is_sqlite).then(|| dsn.url.clone());
        Ok(Self {
            pool,
            direct,
            cache: None,
            postgres_url,
        })
    }

    /// Turns on whoami's session cache (PostgreSQL only; SQLite answers whoami in-process
    /// already). Needs the notifying triggers, which [`SqlStore::migrate`] installs: without
    /// them the cache stays off and says why.
    pub async fn with_whoami_cache(mut self, settings: WhoamiCacheSettings) -> Self {
        let Some(url) = self.postgres_url.clone() else {
            return self;
        };
        match whoami_cache::triggers_installed(&self.pool).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    "whoami cache off: its triggers are missing; run `portcullis-identity migrate sql -e --yes`"
                );
                return self;
            }
            Err(e) => {
                tracing::warn!("whoami cache off: {e}");
                return self;
            }
        }
        let cache = Arc::new(WhoamiCache::new(settings.max_entries, settings.max_age));
        cache.start_listening(url);
        self.cache = Some(cache);
        self
    }

    /// Awaits a write that may change what whoami answers, then empties this replica's cache
    /// before the write's caller hears back (also when the write failed: it may have
    /// committed).
    async fn changing<T>(&self, write: impl std::future::Future<Output = T>) -> T {
        let result = write.await;
        if let Some(cache) = &self.cache {
            cache.clear();
        }
        result
    }

    /// Runs an idempotent read, again on another connection when the one it got turns out to
    /// be dead (the database restarted or dropped it while it sat idle in the pool): at most
    /// once per pooled connection plus one, so that a pool full of dead connections drains.
    async fn read<T, F, Fut>(&self, mut query: F) -> Result<T, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let mut left = self.pool.options().get_max_connections() + 1;
        loop {
            match query().await {
                Err(e) if left > 1 && connection_lost(&e) => {
                    tracing::info!("database connection lost, retrying the read: {e}");
                    left -= 1;
                }
                other => return other,
            }
        }
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        if self.postgres_url.is_some() {
            whoami_cache::install_triggers(&self.pool).await?;
        }
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        if let Some(cache) = &self.cache {
            cache.stop();
        }
        if let Some(direct) = &self.direct {
            direct.permits.close();
            let idle = direct
                .idle
                .lock()
                .map(|mut idle| std::mem::take(&mut *idle))
                .unwrap_or_default();
            for conn in idle {
                let _ = conn.close().await;
            }
        }
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for SqlStore {
    fn whoami_cache_stats(&self) -> Option<super::WhoamiCacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    async fn ready(&self) -> Result<bool, StoreError> {
        let applied: i64 = self
            .read(|| {
                sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&self.pool)
            })
            .await
            .map_err(db)?;
        Ok(applied as usize >= MIGRATOR.iter().count())
    }

    async fn insert_flow(&self, f: &FlowRecord) -> Result<(), StoreError> {
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
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn flow(&self, id: Uuid) -> Result<Option<FlowRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM selfservice_flows WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(flow_from_row).transpose()
    }

    async fn update_flow(
        &self,
        id: Uuid,
        state: &str,
        ui: &Value,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE selfservice_flows SET state = $1, ui = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(json_text(ui))
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn insert_identity_with_outbox(
        &self,
        i: &IdentityRecord,
        credentials: &[CredentialRecord],
        outbox: &Outbox,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let query = sqlx::query(
            "INSERT INTO identities (id, schema_id, state, traits, verifiable_addresses, \
             recovery_addresses, metadata_public, metadata_admin, external_id, state_changed_at, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        );
        bind_identity_fields(query.bind(i.id.to_string()), i)
            .bind(i.created_at)
            .bind(i.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for c in credentials {
            let credential_id = Uuid::new_v4().to_string();
            sqlx::query(
                "INSERT INTO identity_credentials (id, identity_id, type, config, version, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $6)",
            )
            .bind(&credential_id)
            .bind(i.id.to_string())
            .bind(&c.kind)
            .bind(json_text(&c.config))
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            for identifier in &c.identifiers {
                sqlx::query(
                    "INSERT INTO identity_credential_identifiers (id, credential_id, type, \
                     identifier, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(Uuid::new_v4().to_string())
                .bind(&credential_id)
                .bind(&c.kind)
                .bind(identifier)
                .bind(c.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
        }
        mail::index_addresses(&mut tx, i).await?;
        mail::insert_outbox(&mut tx, outbox).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn identity(&self, id: Uuid) -> Result<Option<IdentityRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM identities i WHERE i.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(identity_from_row).transpose()
    }

    async fn identity_by_identifier(
        &self,
        kind: &str,
        identifier: &str,
    ) -> Result<Option<(IdentityRecord, Value)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {IDENTITY_COLUMNS}, c.config AS c_config \
             FROM identity_credential_identifiers ci \
             JOIN identity_credentials c ON c.id = ci.credential_id \
             JOIN identities i ON i.id = c.identity_id \
             WHERE ci.type = $1 AND ci.identifier = $2"
        ))
        .bind(kind)
        .bind(identifier)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let config: String = row.try_get("c_config").map_err(db)?;
        Ok(Some((identity_from_row(&row)?, parse_json(&config)?)))
    }

    async fn insert_session(&self, s: &SessionRecord, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, identity_id, active, aal, \
             authentication_methods, devices, issued_at, authenticated_at, expires_at, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(s.id.to_string())
        .bind(token_hash)
        .bind(s.identity_id.to_string())
        .bind(i64::from(s.active))
        .bind(&s.aal)
        .bind(json_text(&s.authentication_methods))
        .bind(json_text(&s.devices))
        .bind(s.issued_at)
        .bind(s.authenticated_at)
        .bind(s.expires_at)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(SessionRecord, IdentityRecord)>, StoreError> {
        if let Some(found) = self.cache.as_ref().and_then(|c| c.get(token_hash)) {
            return Ok(Some(found));
        }
        let generation = self.cache.as_ref().map(|c| c.generation());
        let query = || sqlx::query(SESSION_BY_TOKEN.as_str()).bind(token_hash);
        let row = match &self.direct {
            Some(direct) => self.read(|| direct.fetch_optional(query())).await,
            None => self.read(|| query().fetch_optional(&self.pool)).await,
        }
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let found = (session_from_row(&row)?, identity_from_row(&row)?);
        if let (Some(cache), Some(generation)) = (&self.cache, generation) {
            cache.insert(generation, token_hash, &found);
        }
        Ok(Some(found))
    }

    async fn revoke_session_by_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.changing(async {
            let done = sqlx::query(
                "UPDATE sessions SET active = 0, updated_at = $1 WHERE token_hash = $2 AND active = 1",
            )
            .bind(now)
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn list_identities(
        &self,
        after: Option<Uuid>,
        offset: i64,
        limit: i64,
        identifier: Option<&str>,
    ) -> Result<Vec<IdentityRecord>, StoreError> {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        let rows = match identifier {
            Some(identifier) => {
                sqlx::query(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities i \
                 JOIN identity_credentials c ON c.identity_id = i.id \
                 JOIN identity_credential_identifiers ci ON ci.credential_id = c.id \
                 WHERE ci.identifier = $1 AND i.id > $2 ORDER BY i.id LIMIT $3 OFFSET $4"
                ))
                .bind(identifier.to_owned())
                .bind(after)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities i WHERE i.id > $1 \
                 ORDER BY i.id LIMIT $2 OFFSET $3"
                ))
                .bind(after)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(db)?;
        rows.iter().map(identity_from_row).collect()
    }

    async fn count_identities(&self) -> Result<i64, StoreError> {
        sqlx::query("SELECT COUNT(*) AS n FROM identities")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get::<i64, _>("n"))
            .map_err(db)
    }

    async fn credentials(&self, identity_id: Uuid) -> Result<Vec<StoredCredential>, StoreError> {
        let mut all = self.credentials_of(&[identity_id]).await?;
        Ok(all.remove(&identity_id).unwrap_or_default())
    }

    async fn credentials_of(
        &self,
        identity_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<StoredCredential>>, StoreError> {
        if identity_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let placeholders: Vec<String> = (1..=identity_ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT c.identity_id AS identity_id, c.id AS id, c.type AS type, \
             c.config AS config, c.version AS version, c.created_at AS created_at, \
             c.updated_at AS updated_at, ci.identifier AS identifier \
             FROM identity_credentials c \
             LEFT JOIN identity_credential_identifiers ci ON ci.credential_id = c.id \
             WHERE c.identity_id IN ({}) ORDER BY c.identity_id, c.type, c.id, ci.identifier",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in identity_ids {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db)?;
        // Rows come grouped by identity, then credential; one credential spans one row per
        // identifier.
        let mut out: HashMap<Uuid, Vec<StoredCredential>> = HashMap::new();
        let mut last_credential: Option<String> = None;
        for row in &rows {
            let owner = parse_uuid(&row.try_get::<String, _>("identity_id").map_err(db)?)?;
            let id: String = row.try_get("id").map_err(db)?;
            let identifier: Option<String> = row.try_get("identifier").map_err(db)?;
            let list = out.entry(owner).or_default();
            if last_credential.as_deref() == Some(id.as_str())
                && let Some(existing) = list.last_mut()
            {
                existing.identifiers.extend(identifier);
                continue;
            }
            list.push(StoredCredential {
                kind: row.try_get("type").map_err(db)?,
                config: parse_json(&row.try_get::<String, _>("config").map_err(db)?)?,
                identifiers: identifier.into_iter().collect(),
                version: row.try_get("version").map_err(db)?,
                created_at: row.try_get("created_at").map_err(db)?,
                updated_at: row.try_get("updated_at").map_err(db)?,
            });
            last_credential = Some(id);
        }
        Ok(out)
    }

    async fn update_identity(
        &self,
        i: &IdentityRecord,
        password: &PasswordUpdate,
    ) -> Result<bool, StoreError> {
        self.changing(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let query = sqlx::query(
                "UPDATE identities SET schema_id = $1, state = $2, traits = $3, \
                 verifiable_addresses = $4, recovery_addresses = $5, metadata_public = $6, \
                 metadata_admin = $7, external_id = $8, state_changed_at = $9, updated_at = $10 \
                 WHERE id = $11",
            );
            let done = bind_identity_fields(query, i)
            .bind(i.updated_at)
            .bind(i.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            mail::index_addresses(&mut tx, i).await?;
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT id FROM identity_credentials WHERE identity_id = $1 AND type = 'password'",
            )
            .bind(i.id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let credential_id = match (existing, &password.config) {
                (Some(id), Some(config)) => {
                    sqlx::query(
                        "UPDATE identity_credentials SET config = $1, updated_at = $2 WHERE id = $3",
                    )
                    .bind(json_text(config))
                    .bind(i.updated_at)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                    Some(id)
                }
                (Some(id), None) => Some(id),
                (None, Some(config)) => {
                    let id = Uuid::new_v4().to_string();
                    sqlx::query(
                        "INSERT INTO identity_credentials (id, identity_id, type, config, version, \
                         created_at, updated_at) VALUES ($1, $2, 'password', $3, 0, $4, $5)",
                    )
                    .bind(&id)
                    .bind(i.id.to_string())
                    .bind(json_text(config))
                    .bind(i.updated_at)
                    .bind(i.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                    Some(id)
                }
                (None, None) => None,
            };
            if let Some(credential_id) = credential_id {
                sqlx::query("DELETE FROM identity_credential_identifiers WHERE credential_id = $1")
                    .bind(&credential_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                for identifier in &password.identifiers {
                    sqlx::query(
                        "INSERT INTO identity_credential_identifiers (id, credential_id, type, \
                         identifier, created_at) VALUES ($1, $2, 'password', $3, $4)",
                    )
                    .bind(Uuid::new_v4().to_string())
                    .bind(&credential_id)
                    .bind(identifier)
                    .bind(i.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
            }
            tx.commit().await.map_err(db)?;
            Ok(true)
        })
        .await
    }

    async fn delete_identity(&self, id: Uuid) -> Result<bool, StoreError> {
        self.changing(async {
            let done = sqlx::query("DELETE FROM identities WHERE id = $1")
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err(db)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn update_password_config(
        &self,
        identity_id: Uuid,
        config: &Value,
        now: i64,
    ) -> Result<(), StoreError> {
        self.changing(async {
            sqlx::query(
                "UPDATE identity_credentials SET config = $1, updated_at = $2 \
                 WHERE identity_id = $3 AND type = 'password'",
            )
            .bind(json_text(config))
            .bind(now)
            .bind(identity_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn session(
        &self,
        id: Uuid,
    ) -> Result<Option<(SessionRecord, IdentityRecord)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS}, {IDENTITY_COLUMNS} FROM sessions s \
             JOIN identities i ON i.id = s.identity_id WHERE s.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((session_from_row(&row)?, identity_from_row(&row)?)))
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        after: Option<Uuid>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<(SessionRecord, IdentityRecord)>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, {IDENTITY_COLUMNS} {SESSION_FILTER} \
             AND s.id > $5 ORDER BY s.id LIMIT $6 OFFSET $7"
        );
        let rows = bind_session_filter(sqlx::query(&sql), filter)
            .bind(after.map(|a| a.to_string()).unwrap_or_default())
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| Ok((session_from_row(row)?, identity_from_row(row)?)))
            .collect()
    }

    async fn count_sessions(&self, filter: &SessionFilter) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n {SESSION_FILTER}");
        bind_session_filter(sqlx::query(&sql), filter)
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get::<i64, _>("n"))
            .map_err(db)
    }

    async fn revoke_session(&self, id: Uuid, now: i64) -> Result<bool, StoreError> {
        self.changing(async {
            let done = sqlx::query("UPDATE sessions SET active = 0, updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err(db)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn revoke_identity_sessions(
        &self,
        identity_id: Uuid,
        keep: Option<Uuid>,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.changing(async {
            let done = sqlx::query(
                "UPDATE sessions SET active = 0, updated_at = $1 \
                 WHERE identity_id = $2 AND active = 1 AND expires_at > $1 AND id <> $3",
            )
            .bind(now)
            .bind(identity_id.to_string())
            .bind(keep.map(|k| k.to_string()).unwrap_or_default())
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn delete_identity_sessions(&self, identity_id: Uuid) -> Result<u64, StoreError> {
        self.changing(async {
            let done = sqlx::query("DELETE FROM sessions WHERE identity_id = $1")
                .bind(identity_id.to_string())
                .execute(&self.pool)
                .await
                .map_err(db)?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn extend_session(
        &self,
        id: Uuid,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.changing(async {
            let done =
                sqlx::query("UPDATE sessions SET expires_at = $1, updated_at = $2 WHERE id = $3")
                    .bind(expires_at)
                    .bind(now)
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn set_logout_token(&self, session_id: Uuid, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET logout_token_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(session_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn revoke_session_by_logout_token(
        &self,
        session_id: Uuid,
        logout_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.changing(async {
            let done = sqlx::query(
                "UPDATE sessions SET active = 0, logout_token_hash = NULL, updated_at = $1 \
                 WHERE id = $2 AND logout_token_hash = $3",
            )
            .bind(now)
            .bind(session_id.to_string())
            .bind(logout_hash)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn set_credential(
        &self,
        identity_id: Uuid,
        kind: &str,
        config: Option<&Value>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.changing(async {
            factors::set_credential(&self.pool, identity_id, kind, config, now).await
        })
        .await
    }

    async fn swap_credential_config(
        &self,
        identity_id: Uuid,
        kind: &str,
        old: &Value,
        new: &Value,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.changing(async {
            factors::swap_credential_config(&self.pool, identity_id, kind, old, new, now).await
        })
        .await
    }

    async fn upgrade_session(
        &self,
        session_id: Uuid,
        aal: &str,
        methods: &Value,
        now: i64,
    ) -> Result<(), StoreError> {
        self.changing(async {
            factors::upgrade_session(&self.pool, session_id, aal, methods, now).await
        })
        .await
    }

    async fn set_flow_context(
        &self,
        flow_id: Uuid,
        context: Option<&str>,
    ) -> Result<(), StoreError> {
        factors::set_flow_context(&self.pool, flow_id, context).await
    }

    async fn flow_context(&self, flow_id: Uuid) -> Result<Option<String>, StoreError> {
        factors::flow_context(&self.pool, flow_id).await
    }

    async fn update_flow_with_outbox(
        &self,
        flow: &FlowRecord,
        outbox: &Outbox,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.changing(async { mail::update_flow_with_outbox(&self.pool, flow, outbox, now).await })
            .await
    }

    async fn identity_id_by_address(
        &self,
        kind: &str,
        value: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        mail::identity_id_by_address(&self.pool, kind, value).await
    }

    async fn count_submission(&self, flow_id: Uuid) -> Result<i64, StoreError> {
        mail::count_submission(&self.pool, flow_id).await
    }

    async fn live_codes(&self, flow_id: Uuid, now: i64) -> Result<Vec<CodeRecord>, StoreError> {
        mail::live_codes(&self.pool, flow_id, now).await
    }

    async fn redeem_code(
        &self,
        code_id: Uuid,
        flow: &FlowRecord,
        verified: Option<&IdentityRecord>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.changing(async { mail::redeem_code(&self.pool, code_id, flow, verified, now).await })
            .await
    }

    async fn invalidate_flow(&self, flow_id: Uuid, now: i64) -> Result<(), StoreError> {
        mail::invalidate_flow(&self.pool, flow_id, now).await
    }

    async fn claim_courier_messages(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<CourierRecord>, StoreError> {
        mail::claim_due(&self.pool, now, lease_until, limit).await
    }

    async fn finish_courier_message(
        &self,
        id: Uuid,
        outcome: &Delivery,
        now: i64,
    ) -> Result<(), StoreError> {
        mail::finish_delivery(&self.pool, id, outcome, now).await
    }

    async fn list_courier_messages(
        &self,
        filter: &CourierFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<CourierRecord>, StoreError> {
        mail::list_messages(&self.pool, filter, after, limit).await
    }

    async fn courier_message(
        &self,
        id: Uuid,
    ) -> Result<Option<(CourierRecord, Vec<DispatchRecord>)>, StoreError> {
        mail::message_with_dispatches(&self.pool, id).await
    }

    async fn insert_error(&self, error: &ErrorRecord) -> Result<(), StoreError> {
        errors::insert(&self.pool, error).await
    }

    async fn error(&self, id: Uuid) -> Result<Option<ErrorRecord>, StoreError> {
        errors::get(&self.pool, id).await
    }

    async fn identities_to_backfill(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<IdentityRecord>, StoreError> {
        backfill::pending(&self.pool, after, limit).await
    }

    async fn backfill_addresses(&self, identity: &IdentityRecord) -> Result<bool, StoreError> {
        self.changing(async { backfill::apply(&self.pool, identity).await })
            .await
    }
}

/// The `FROM … WHERE` of session listings: $1 identity ('' = any), $2 active filter (-1 any,
/// 1 active, 0 inactive), $3 now, $4 a session id to leave out ('' = none).
const SESSION_FILTER: &str = "FROM sessions s JOIN identities i ON i.id = s.identity_id \
     WHERE ($1 = '' OR s.identity_id = $1) \
     AND ($2 < 0 OR (CASE WHEN s.active = 1 AND s.expires_at > $3 AND i.state = 'active' \
          THEN 1 ELSE 0 END) = $2) \
     AND ($4 = '' OR s.id <> $4)";

fn bind_session_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    filter: &SessionFilter,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(filter.identity.map(|i| i.to_string()).unwrap_or_default())
        .bind(match filter.active {
            None => -1i64,
            Some(true) => 1,
            Some(false) => 0,
        })
        .bind(filter.now)
        .bind(filter.except.map(|i| i.to_string()).unwrap_or_default())
}

/// Binds an identity's fields in the order both the insert and the update list them:
/// `schema_id` through `state_changed_at`.
fn bind_identity_fields<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    i: &'q IdentityRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&i.schema_id)
        .bind(&i.state)
        .bind(json_text(&i.traits))
        .bind(json_text(&i.verifiable_addresses))
        .bind(json_text(&i.recovery_addresses))
        .bind(i.metadata_public.as_ref().map(json_text))
        .bind(i.metadata_admin.as_ref().map(json_text))
        .bind(i.external_id.clone())
        .bind(i.state_changed_at)
}

/// How long a request may wait for a database connection, pooled or direct.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A pooled connection idle at least this long is pinged before it is handed out.
const IDLE_PING_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// whoami's one indexed query: the session by token hash joined with its identity.
static SESSION_BY_TOKEN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {SESSION_COLUMNS}, {IDENTITY_COLUMNS} FROM sessions s \
         JOIN identities i ON i.id = s.identity_id WHERE s.token_hash = $1"
    )
});

/// Whether an error means the connection itself is gone (as opposed to the query failing):
/// socket errors, a broken protocol stream, or PostgreSQL's connection-exception (08xxx) and
/// operator-intervention (57Pxx, e.g. the backend was terminated) classes.
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// How many connections whoami may use at once, beside the pool.
const DIRECT_CONNECTIONS: usize = 8;

/// A few connections kept outside sqlx's pool for whoami's single read. The pool pings a
/// connection (a round trip to the database) every time one is given back, so a pooled whoami
/// costs two round trips; these connections are checked by their use instead: one whose query
/// fails is dropped, and [`SqlStore::read`] retries on another. At most
/// [`DIRECT_CONNECTIONS`] are in use or idle.
struct Direct {
    options: AnyConnectOptions,
    is_sqlite: bool,
    idle: std::sync::Mutex<Vec<sqlx::AnyConnection>>,
    permits: tokio::sync::Semaphore,
}

impl Direct {
    async fn fetch_optional<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<Option<sqlx::any::AnyRow>, sqlx::Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        // Dropped on error (and when this future is dropped mid-query): only a connection
        // that just answered goes back.
        let row = query.fetch_optional(&mut conn).await?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        Ok(row)
    }

    async fn connect(&self) -> Result<sqlx::AnyConnection, sqlx::Error> {
        // Bounded like the pool's acquire: a database that does not answer fails the read
        // (503) instead of holding the request for the OS's connect timeout.
        let mut conn = tokio::time::timeout(
            ACQUIRE_TIMEOUT,
            sqlx::AnyConnection::connect_with(&self.options),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
        if self.is_sqlite {
            sqlx::query("PRAGMA busy_timeout = 5000")
                .execute(&mut conn)
                .await?;
        }
        Ok(conn)
    }
}
