//! The sqlx implementation of [`Store`] over the `Any` driver: the same SQL (with `$n`
//! placeholders and portable types) runs on PostgreSQL and SQLite. Migrations are embedded.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use super::{CredentialRecord, FlowRecord, IdentityRecord, SessionRecord, Store, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The store over a PostgreSQL or SQLite pool.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
}

/// A DSN translated into what sqlx understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    pub url: String,
    pub memory: bool,
    /// The SQLite file, when there is one (its folder is created on connect).
    pub file: Option<String>,
}

impl Dsn {
    /// Accepts `postgres://…`, `sqlite://<path>?mode=rwc`, Kratos' `sqlite:///path?_fk=true`
    /// and `memory`.
    pub fn parse(dsn: &str) -> Result<Self, StoreError> {
        let dsn = dsn.trim();
        if dsn == "memory" || dsn == "sqlite::memory:" || dsn == "sqlite://:memory:" {
            return Ok(Self {
                url: "sqlite::memory:".to_owned(),
                memory: true,
                file: None,
            });
        }
        if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
            return Ok(Self {
                url: dsn.to_owned(),
                memory: false,
                file: None,
            });
        }
        let Some(rest) = dsn
            .strip_prefix("sqlite://")
            .or_else(|| dsn.strip_prefix("sqlite:"))
        else {
            return Err(StoreError::Dsn(
                "expected postgres://…, sqlite://<path> or memory".to_owned(),
            ));
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(StoreError::Dsn("sqlite DSN without a path".to_owned()));
        }
        if path == ":memory:" {
            return Self::parse("memory");
        }
        // Keep the parameters sqlx knows; drop Kratos/Go driver ones such as `_fk=true`.
        let mut kept: Vec<&str> = query
            .split('&')
            .filter(|p| p.starts_with("mode=") || p.starts_with("cache="))
            .collect();
        if !kept.iter().any(|p| p.starts_with("mode=")) {
            kept.push("mode=rwc");
        }
        Ok(Self {
            url: format!("sqlite://{path}?{}", kept.join("&")),
            memory: false,
            file: Some(path.to_owned()),
        })
    }
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
        let is_sqlite = dsn.url.starts_with("sqlite:");
        let mut pool = AnyPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_secs(5))
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
        Ok(Self { pool })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn db(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(inner) = &e
        && inner.is_unique_violation()
    {
        return StoreError::Conflict;
    }
    StoreError::Unavailable(e)
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn parse_json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

const IDENTITY_COLUMNS: &str = "i.id AS i_id, i.schema_id AS i_schema_id, i.state AS i_state, \
    i.traits AS i_traits, i.verifiable_addresses AS i_verifiable_addresses, \
    i.recovery_addresses AS i_recovery_addresses, i.metadata_public AS i_metadata_public, \
    i.metadata_admin AS i_metadata_admin, i.external_id AS i_external_id, \
    i.state_changed_at AS i_state_changed_at, i.created_at AS i_created_at, \
    i.updated_at AS i_updated_at";

const SESSION_COLUMNS: &str = "s.id AS s_id, s.identity_id AS s_identity_id, s.active AS s_active, \
    s.aal AS s_aal, s.authentication_methods AS s_authentication_methods, s.devices AS s_devices, \
    s.issued_at AS s_issued_at, s.authenticated_at AS s_authenticated_at, \
    s.expires_at AS s_expires_at, s.created_at AS s_created_at, s.updated_at AS s_updated_at";

pub(crate) fn identity_from_row(row: &AnyRow) -> Result<IdentityRecord, StoreError> {
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
        state_changed_at: get_i("i_state_changed_at")?,
        created_at: get_i("i_created_at")?,
        updated_at: get_i("i_updated_at")?,
    })
}

pub(crate) fn session_from_row(row: &AnyRow) -> Result<SessionRecord, StoreError> {
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

fn flow_from_row(row: &AnyRow) -> Result<FlowRecord, StoreError> {
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

#[async_trait]
impl Store for SqlStore {
    async fn ready(&self) -> Result<bool, StoreError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
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

    async fn insert_identity(
        &self,
        i: &IdentityRecord,
        credentials: &[CredentialRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO identities (id, schema_id, state, traits, verifiable_addresses, \
             recovery_addresses, metadata_public, metadata_admin, external_id, state_changed_at, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(i.id.to_string())
        .bind(&i.schema_id)
        .bind(&i.state)
        .bind(json_text(&i.traits))
        .bind(json_text(&i.verifiable_addresses))
        .bind(json_text(&i.recovery_addresses))
        .bind(i.metadata_public.as_ref().map(json_text))
        .bind(i.metadata_admin.as_ref().map(json_text))
        .bind(i.external_id.clone())
        .bind(i.state_changed_at)
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
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS}, {IDENTITY_COLUMNS} FROM sessions s \
             JOIN identities i ON i.id = s.identity_id WHERE s.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((session_from_row(&row)?, identity_from_row(&row)?)))
    }

    async fn revoke_session_by_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET active = 0, updated_at = $1 WHERE token_hash = $2 AND active = 1",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kratos_sqlite_dsns_are_translated() {
        let d = Dsn::parse("sqlite:///var/lib/kratos/db.sqlite?_fk=true").unwrap();
        assert_eq!(d.url, "sqlite:///var/lib/kratos/db.sqlite?mode=rwc");
        let d = Dsn::parse("sqlite://.local/identity.sqlite?mode=rwc").unwrap();
        assert_eq!(d.url, "sqlite://.local/identity.sqlite?mode=rwc");
        assert_eq!(d.file.as_deref(), Some(".local/identity.sqlite"));
        assert!(Dsn::parse("memory").unwrap().memory);
        assert!(Dsn::parse("mysql://x").is_err());
    }
}
