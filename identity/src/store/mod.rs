//! Persistence of identities, credentials, sessions and self-service flows, behind the [`Store`]
//! trait. One implementation ([`sql::SqlStore`]) serves PostgreSQL and SQLite from the same SQL.

mod backfill;
pub mod dsn;
mod errors;
mod factors;
mod mail;
mod rows;
pub mod sql;
mod whoami_cache;

pub use errors::ErrorRecord;
pub use mail::{
    CodeRecord, CourierFilter, CourierRecord, Delivery, DispatchRecord, MailQuota, Outbox,
};

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint (identifier, external id) was violated.
    #[error("conflicts with an existing record")]
    Conflict,
    /// The database could not be reached or answered with an error.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A stored value could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The DSN is not one we can open.
    #[error("unsupported DSN: {0}")]
    Dsn(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// An identity as stored. Timestamps are unix milliseconds.
#[derive(Debug, Clone)]
pub struct IdentityRecord {
    pub id: Uuid,
    pub schema_id: String,
    pub state: String,
    pub traits: Value,
    pub verifiable_addresses: Value,
    pub recovery_addresses: Value,
    pub metadata_public: Option<Value>,
    pub metadata_admin: Option<Value>,
    pub external_id: Option<String>,
    /// `aal2` once the identity has a second factor (TOTP), else `aal1`.
    pub available_aal: String,
    pub state_changed_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A credential to store with an identity (e.g. `password` with `{hashed_password}`).
#[derive(Debug, Clone)]
pub struct CredentialRecord {
    pub kind: String,
    pub config: Value,
    pub identifiers: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A session as stored; the token itself is never stored, only its SHA-256.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: Uuid,
    pub identity_id: Uuid,
    pub active: bool,
    pub aal: String,
    pub authentication_methods: Value,
    pub devices: Value,
    pub issued_at: i64,
    pub authenticated_at: i64,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What `/metrics` shows of whoami's session cache.
#[derive(Debug, Clone, Copy, Default)]
pub struct WhoamiCacheStats {
    /// Serving: its listening connection is up.
    pub live: bool,
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    /// How many times it started listening (1 + reconnects).
    pub listens: u64,
}

/// A self-service flow as stored.
#[derive(Debug, Clone)]
pub struct FlowRecord {
    pub id: Uuid,
    /// `login`, `registration`, `settings`.
    pub kind: String,
    /// `api` or `browser`.
    pub flow_type: String,
    pub state: String,
    pub request_url: String,
    pub return_to: Option<String>,
    /// The unmasked CSRF token the flow was created with (browser flows).
    pub csrf_token: String,
    pub ui: Value,
    pub identity_id: Option<Uuid>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored credential with its identifiers.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    pub kind: String,
    pub config: Value,
    pub identifiers: Vec<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How an identity update touches its password credential.
#[derive(Debug, Clone)]
pub struct PasswordUpdate {
    /// The identifiers derived from the new traits (replace the old ones).
    pub identifiers: Vec<String>,
    /// A new credential config (`{hashed_password}`), or None to keep the stored one.
    pub config: Option<Value>,
}

/// Storage operations the service needs. Multi-row steps run in one transaction.
/// Which sessions a listing returns.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Only this identity's sessions.
    pub identity: Option<Uuid>,
    /// Only active (`Some(true)`) or inactive (`Some(false)`) ones, as computed at `now`.
    pub active: Option<bool>,
    /// Leave this session out (the caller's own, on `GET /sessions`).
    pub except: Option<Uuid>,
    pub now: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Checks that the database answers and every migration is applied.
    async fn ready(&self) -> Result<bool, StoreError>;

    /// whoami's session cache, when there is one.
    fn whoami_cache_stats(&self) -> Option<WhoamiCacheStats> {
        None
    }

    async fn insert_flow(&self, flow: &FlowRecord) -> Result<(), StoreError>;
    async fn flow(&self, id: Uuid) -> Result<Option<FlowRecord>, StoreError>;
    async fn update_flow(
        &self,
        id: Uuid,
        state: &str,
        ui: &Value,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Inserts an identity with its credentials and their identifiers, atomically.
    async fn insert_identity(
        &self,
        identity: &IdentityRecord,
        credentials: &[CredentialRecord],
    ) -> Result<(), StoreError> {
        self.insert_identity_with_outbox(identity, credentials, &Outbox::default())
            .await
    }
    /// As [`Store::insert_identity`], writing the outbox (a verification flow, its code and
    /// message) in the same transaction.
    async fn insert_identity_with_outbox(
        &self,
        identity: &IdentityRecord,
        credentials: &[CredentialRecord],
        outbox: &Outbox,
    ) -> Result<(), StoreError>;
    async fn identity(&self, id: Uuid) -> Result<Option<IdentityRecord>, StoreError>;
    /// The identity and credential config owning a credential identifier of a given type.
    async fn identity_by_identifier(
        &self,
        kind: &str,
        identifier: &str,
    ) -> Result<Option<(IdentityRecord, Value)>, StoreError>;

    /// Identities ordered by id, after a keyset cursor and skipping `offset` more (Kratos'
    /// legacy page pagination); optionally only the owner of an identifier.
    async fn list_identities(
        &self,
        after: Option<Uuid>,
        offset: i64,
        limit: i64,
        identifier: Option<&str>,
    ) -> Result<Vec<IdentityRecord>, StoreError>;
    /// How many identities exist (`X-Total-Count` of legacy pagination).
    async fn count_identities(&self) -> Result<i64, StoreError>;
    async fn credentials(&self, identity_id: Uuid) -> Result<Vec<StoredCredential>, StoreError>;
    /// The credentials of several identities in one query (listing without N+1).
    async fn credentials_of(
        &self,
        identity_ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<StoredCredential>>, StoreError>;
    /// Updates an identity row and its password credential atomically.
    async fn update_identity(
        &self,
        identity: &IdentityRecord,
        password: &PasswordUpdate,
    ) -> Result<bool, StoreError>;
    async fn delete_identity(&self, id: Uuid) -> Result<bool, StoreError>;
    /// Replaces the stored password hash config (rehash on login).
    async fn update_password_config(
        &self,
        identity_id: Uuid,
        config: &Value,
        now: i64,
    ) -> Result<(), StoreError>;

    async fn insert_session(
        &self,
        session: &SessionRecord,
        token_hash: &str,
    ) -> Result<(), StoreError>;
    /// The session for a token hash joined with its identity, in one indexed query.
    async fn session_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(SessionRecord, IdentityRecord)>, StoreError>;
    /// Deactivates the session with this token hash; false when there is none active.
    async fn revoke_session_by_token(&self, token_hash: &str, now: i64)
    -> Result<bool, StoreError>;
    async fn session(
        &self,
        id: Uuid,
    ) -> Result<Option<(SessionRecord, IdentityRecord)>, StoreError>;
    /// Sessions matching `filter`, ordered by id after a keyset cursor and skipping `offset`
    /// more (Kratos' legacy page pagination).
    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        after: Option<Uuid>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<(SessionRecord, IdentityRecord)>, StoreError>;
    /// How many sessions match `filter`.
    async fn count_sessions(&self, filter: &SessionFilter) -> Result<i64, StoreError>;
    /// Deactivates one session; false when it does not exist.
    async fn revoke_session(&self, id: Uuid, now: i64) -> Result<bool, StoreError>;
    /// Deactivates every active session of an identity except `keep`; returns how many.
    async fn revoke_identity_sessions(
        &self,
        identity_id: Uuid,
        keep: Option<Uuid>,
        now: i64,
    ) -> Result<u64, StoreError>;
    /// Deletes every session of an identity.
    async fn delete_identity_sessions(&self, identity_id: Uuid) -> Result<u64, StoreError>;
    /// Sets a new expiry; false when the session does not exist.
    async fn extend_session(&self, id: Uuid, expires_at: i64, now: i64)
    -> Result<bool, StoreError>;
    async fn set_logout_token(&self, session_id: Uuid, hash: &str) -> Result<(), StoreError>;
    /// Deactivates a session when the logout token hash belongs to it.
    async fn revoke_session_by_logout_token(
        &self,
        session_id: Uuid,
        logout_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Replaces (or with `None` removes) the identity's credential of `kind` and recomputes its
    /// `available_aal`, atomically.
    async fn set_credential(
        &self,
        identity_id: Uuid,
        kind: &str,
        config: Option<&Value>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Replaces a credential's config only if it still is `old`; false otherwise.
    async fn swap_credential_config(
        &self,
        identity_id: Uuid,
        kind: &str,
        old: &Value,
        new: &Value,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Raises a session's assurance level and records the methods used.
    async fn upgrade_session(
        &self,
        session_id: Uuid,
        aal: &str,
        methods: &Value,
        now: i64,
    ) -> Result<(), StoreError>;
    /// A flow's private context (never shown to clients).
    async fn set_flow_context(
        &self,
        flow_id: Uuid,
        context: Option<&str>,
    ) -> Result<(), StoreError>;
    async fn flow_context(&self, flow_id: Uuid) -> Result<Option<String>, StoreError>;
    /// Writes a flow's state, ui and expiry together with its outbox, atomically. With a
    /// [`MailQuota`] on the outbox whose recipient has had its share of mail, the codes,
    /// messages and address updates are left out (the flow is still written): returns whether
    /// they were written.
    async fn update_flow_with_outbox(
        &self,
        flow: &FlowRecord,
        outbox: &Outbox,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// The identity owning an email address of `kind` (`verifiable` or `recovery`).
    async fn identity_id_by_address(
        &self,
        kind: &str,
        value: &str,
    ) -> Result<Option<Uuid>, StoreError>;
    /// Counts one more code submission on a flow; returns the new count.
    async fn count_submission(&self, flow_id: Uuid) -> Result<i64, StoreError>;
    /// Unused, unexpired codes of a flow.
    async fn live_codes(&self, flow_id: Uuid, now: i64) -> Result<Vec<CodeRecord>, StoreError>;
    /// Spends a code and writes the flow (and the verified identity) in one transaction; false
    /// when the code was spent meanwhile.
    async fn redeem_code(
        &self,
        code_id: Uuid,
        flow: &FlowRecord,
        verified: Option<&IdentityRecord>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Spends every code of a flow and expires it.
    async fn invalidate_flow(&self, flow_id: Uuid, now: i64) -> Result<(), StoreError>;
    /// Claims due courier messages until `lease_until`.
    async fn claim_courier_messages(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<CourierRecord>, StoreError>;
    /// Records one delivery attempt.
    async fn finish_courier_message(
        &self,
        id: Uuid,
        outcome: &Delivery,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn list_courier_messages(
        &self,
        filter: &CourierFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<CourierRecord>, StoreError>;
    async fn courier_message(
        &self,
        id: Uuid,
    ) -> Result<Option<(CourierRecord, Vec<DispatchRecord>)>, StoreError>;

    /// Stores an error a browser flow ended in (for the error UI).
    async fn insert_error(&self, error: &ErrorRecord) -> Result<(), StoreError>;
    async fn error(&self, id: Uuid) -> Result<Option<ErrorRecord>, StoreError>;

    /// Identities whose addresses were never indexed (written before the address index
    /// existed), ordered by id after a keyset cursor.
    async fn identities_to_backfill(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<IdentityRecord>, StoreError>;
    /// Writes an identity's address lists and indexes them, unless the identity was indexed
    /// meanwhile (by a write of the identity itself); returns whether it wrote.
    async fn backfill_addresses(&self, identity: &IdentityRecord) -> Result<bool, StoreError>;
}
