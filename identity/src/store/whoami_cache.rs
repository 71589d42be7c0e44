//! whoami's session cache on PostgreSQL, kept exact across replicas by the database itself.
//!
//! A row trigger on `sessions` and `identities` (installed by [`install_triggers`] with the
//! migrations) sends `NOTIFY portcullis_whoami, '<identity id>'` for every update or delete; the
//! notification is delivered when the writing transaction commits, to every replica listening.
//! Each replica keeps `token hash → (session, identity)` for sessions it has answered and
//! drops an identity's entries when its notification arrives. So that nothing stale survives:
//!
//! - the cache serves only while the listening connection is up; losing it empties the cache
//!   and bypasses it until `LISTEN` is back (notifications sent meanwhile are lost);
//! - every eviction bumps a generation, and a row read before the bump is not cached after it
//!   (the read may have seen the data from before the write);
//! - this replica's own writes empty the cache before their call returns
//!   ([`WhoamiCache::clear`]), so a revocation answered here takes effect here at once, without
//!   waiting for its own notification;
//! - entries older than the configured age are not served, however quiet the channel.
//!
//! Unknown tokens are never cached: a token is only ever looked up, never invented.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{IdentityRecord, SessionRecord, StoreError, WhoamiCacheStats};

/// The channel the triggers notify on.
pub(super) const CHANNEL: &str = "portcullis_whoami";

const TRIGGER: &str = "portcullis_whoami_changed";

/// What a cached whoami holds.
pub(super) type Found = (SessionRecord, IdentityRecord);

/// The cache; see the module documentation.
pub(super) struct WhoamiCache {
    state: RwLock<State>,
    max_entries: usize,
    max_age: Duration,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
    hits: AtomicU64,
    misses: AtomicU64,
    listens: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Serving: the listening connection is up.
    live: bool,
    generation: u64,
    entries: HashMap<String, Entry>,
    by_identity: HashMap<Uuid, Vec<String>>,
}

struct Entry {
    at: Instant,
    found: Arc<Found>,
}

impl WhoamiCache {
    pub(super) fn new(max_entries: usize, max_age: Duration) -> Self {
        Self {
            state: RwLock::new(State::default()),
            max_entries,
            max_age,
            listener: Mutex::new(None),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            listens: AtomicU64::new(0),
        }
    }

    /// What `/metrics` shows of the cache.
    pub(super) fn stats(&self) -> WhoamiCacheStats {
        let (live, entries) = self
            .state
            .read()
            .map(|s| (s.live, s.entries.len()))
            .unwrap_or((false, 0));
        WhoamiCacheStats {
            live,
            entries,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            listens: self.listens.load(Ordering::Relaxed),
        }
    }

    /// The cached session and identity for a token hash, if fresh and the cache is live.
    pub(super) fn get(&self, token_hash: &str) -> Option<Found> {
        let state = self.state.read().ok()?;
        if !state.live {
            return None;
        }
        let found = state
            .entries
            .get(token_hash)
            .filter(|e| e.at.elapsed() < self.max_age)
            .map(|e| (*e.found).clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The generation to hand back to [`WhoamiCache::insert`] with a row read after this call.
    pub(super) fn generation(&self) -> u64 {
        self.state.read().map(|s| s.generation).unwrap_or(u64::MAX)
    }

    /// Caches a row read after [`WhoamiCache::generation`] returned `generation`, unless
    /// something was evicted since (or the cache is not live).
    pub(super) fn insert(&self, generation: u64, token_hash: &str, found: &Found) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        if !state.live || state.generation != generation {
            return;
        }
        if state.entries.len() >= self.max_entries {
            state.entries.clear();
            state.by_identity.clear();
        }
        let entry = Entry {
            at: Instant::now(),
            found: Arc::new(found.clone()),
        };
        let identity = found.1.id;
        if state.entries.insert(token_hash.to_owned(), entry).is_none() {
            state
                .by_identity
                .entry(identity)
                .or_default()
                .push(token_hash.to_owned());
        }
    }

    /// Drops every entry of one identity (a notification).
    fn evict(&self, identity: Uuid) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        state.generation = state.generation.wrapping_add(1);
        if let Some(tokens) = state.by_identity.remove(&identity) {
            for token in tokens {
                state.entries.remove(&token);
            }
        }
    }

    /// Drops everything (this replica wrote, or a notification could not be read).
    pub(super) fn clear(&self) {
        self.set_live(None);
    }

    /// Empties the cache and, with `Some`, starts or stops serving.
    fn set_live(&self, live: Option<bool>) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        state.generation = state.generation.wrapping_add(1);
        state.entries.clear();
        state.by_identity.clear();
        if let Some(live) = live {
            state.live = live;
        }
    }

    #[cfg(test)]
    fn is_live(&self) -> bool {
        self.state.read().map(|s| s.live).unwrap_or(false)
    }

    /// Starts the task that listens for notifications on a connection of its own.
    pub(super) fn start_listening(self: &Arc<Self>, url: String) {
        let cache = Arc::clone(self);
        let task = tokio::spawn(async move { cache.listen(&url).await });
        if let Ok(mut listener) = self.listener.lock()
            && let Some(old) = listener.replace(task.abort_handle())
        {
            old.abort();
        }
    }

    /// Stops listening; the cache stops serving.
    pub(super) fn stop(&self) {
        if let Ok(mut listener) = self.listener.lock()
            && let Some(task) = listener.take()
        {
            task.abort();
        }
        self.set_live(Some(false));
    }

    async fn listen(&self, url: &str) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.listen_once(url).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => tracing::warn!("whoami cache off: cannot listen for changes: {e}"),
            }
            self.set_live(Some(false));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Serves while one listening connection lasts; returns when it is gone.
    async fn listen_once(&self, url: &str) -> Result<(), sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        self.set_live(Some(true));
        self.listens.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("whoami cache live");
        loop {
            match listener.try_recv().await? {
                Some(notification) => match Uuid::parse_str(notification.payload()) {
                    Ok(identity) => self.evict(identity),
                    Err(_) => self.clear(),
                },
                None => {
                    tracing::info!("whoami cache off: the listening connection was lost");
                    return Ok(());
                }
            }
        }
    }
}

/// Installs (or replaces) the notifying triggers; idempotent, serialized between replicas.
pub(super) async fn install_triggers(pool: &sqlx::AnyPool) -> Result<(), StoreError> {
    let function = format!(
        "CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $body$ \
         BEGIN \
           IF TG_TABLE_NAME = 'sessions' THEN \
             PERFORM pg_notify('{CHANNEL}', OLD.identity_id::text); \
           ELSE \
             PERFORM pg_notify('{CHANNEL}', OLD.id::text); \
           END IF; \
           RETURN NULL; \
         END $body$"
    );
    let mut statements = vec![
        // Any constant: replicas starting at once would otherwise race on the catalog.
        "SELECT pg_advisory_xact_lock(7406392156130105)".to_owned(),
        function,
    ];
    for table in ["sessions", "identities"] {
        statements.push(format!("DROP TRIGGER IF EXISTS {TRIGGER} ON {table}"));
        statements.push(format!(
            "CREATE TRIGGER {TRIGGER} AFTER UPDATE OR DELETE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
        ));
    }
    let mut tx = pool.begin().await.map_err(super::rows::db)?;
    for sql in &statements {
        sqlx::query(sql)
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(super::rows::db)?;
    }
    tx.commit().await.map_err(super::rows::db)?;
    Ok(())
}

/// Whether both triggers are in place (the cache is only correct with them).
pub(super) async fn triggers_installed(pool: &sqlx::AnyPool) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM pg_trigger WHERE tgname = '{TRIGGER}' AND NOT tgisinternal"
    ))
    .fetch_one(pool)
    .await
    .map_err(super::rows::db)?;
    Ok(n == 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn found(identity: Uuid) -> Found {
        let session = SessionRecord {
            id: Uuid::new_v4(),
            identity_id: identity,
            active: true,
            aal: "aal1".into(),
            authentication_methods: json!([]),
            devices: json!([]),
            issued_at: 0,
            authenticated_at: 0,
            expires_at: i64::MAX,
            created_at: 0,
            updated_at: 0,
        };
        let identity = IdentityRecord {
            id: identity,
            schema_id: "default".into(),
            state: "active".into(),
            traits: json!({}),
            verifiable_addresses: json!([]),
            recovery_addresses: json!([]),
            metadata_public: None,
            metadata_admin: None,
            external_id: None,
            available_aal: "aal1".into(),
            state_changed_at: 0,
            created_at: 0,
            updated_at: 0,
        };
        (session, identity)
    }

    fn live_cache() -> WhoamiCache {
        let cache = WhoamiCache::new(4, Duration::from_secs(60));
        cache.set_live(Some(true));
        cache
    }

    #[test]
    fn serves_only_while_live() {
        let cache = WhoamiCache::new(4, Duration::from_secs(60));
        let a = Uuid::new_v4();
        cache.insert(cache.generation(), "t", &found(a));
        assert!(cache.get("t").is_none(), "not live: nothing cached");
        cache.set_live(Some(true));
        cache.insert(cache.generation(), "t", &found(a));
        assert_eq!(cache.get("t").map(|f| f.1.id), Some(a));
        cache.stop();
        assert!(!cache.is_live());
        assert!(cache.get("t").is_none(), "going dark empties the cache");
    }

    #[test]
    fn a_read_from_before_an_eviction_is_not_cached() {
        let cache = live_cache();
        let a = Uuid::new_v4();
        let before = cache.generation();
        cache.evict(Uuid::new_v4());
        cache.insert(before, "t", &found(a));
        assert!(cache.get("t").is_none());
        let before = cache.generation();
        cache.clear();
        cache.insert(before, "t", &found(a));
        assert!(cache.get("t").is_none());
    }

    #[test]
    fn eviction_drops_only_that_identity() {
        let cache = live_cache();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        cache.insert(cache.generation(), "a1", &found(a));
        cache.insert(cache.generation(), "a2", &found(a));
        cache.insert(cache.generation(), "b1", &found(b));
        cache.evict(a);
        assert!(cache.get("a1").is_none());
        assert!(cache.get("a2").is_none());
        assert!(cache.get("b1").is_some());
    }

    #[test]
    fn old_entries_are_not_served_and_the_size_is_bounded() {
        let cache = WhoamiCache::new(2, Duration::ZERO);
        cache.set_live(Some(true));
        cache.insert(cache.generation(), "t", &found(Uuid::new_v4()));
        assert!(cache.get("t").is_none(), "older than max age");
        let cache = live_cache();
        for i in 0..10 {
            cache.insert(cache.generation(), &format!("t{i}"), &found(Uuid::new_v4()));
        }
        let state = cache.state.read().unwrap();
        assert!(state.entries.len() <= 4);
        assert!(state.by_identity.len() <= 4);
    }
}
