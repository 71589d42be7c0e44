//! The start-up backfill of the address index. Identities written before `identity_addresses`
//! existed (or by code that did not maintain it) are marked `addresses_indexed = 0`; recovery and
//! verification look addresses up in that index only, so such identities could not recover until
//! they were next updated. This step derives each one's verifiable and recovery addresses from
//! its traits through its schema's `ory.sh/kratos` extension (`verification.via`, `recovery.via`),
//! merges them with the stored lists (keeping ids and verification state), and indexes them.
//!
//! It is idempotent: an identity is written at most once (the write is conditional on the mark)
//! and every later write of an identity maintains the index itself. Identities whose schema is
//! not loaded yet (schemas still arriving from the operator) are retried until it is.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::schema::SchemaRegistry;
use crate::store::{Store, StoreError};

/// Identities read per query.
const BATCH: i64 = 200;
/// How long to wait before looking again for identities whose schema was missing, or after a
/// database error.
const RETRY: Duration = Duration::from_secs(30);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Identities whose addresses were derived and indexed.
    pub indexed: u64,
    /// Identities left for later because their schema is unknown.
    pub waiting_for_schema: u64,
}

/// One pass over every identity still marked unindexed.
pub async fn run_once(store: &dyn Store, schemas: &SchemaRegistry) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut after = None;
    loop {
        let batch = store.identities_to_backfill(after, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        let full = batch.len() as i64 == BATCH;
        for mut identity in batch {
            let Some(schema) = schemas.get(&identity.schema_id) else {
                report.waiting_for_schema += 1;
                continue;
            };
            crate::identity::refresh_addresses(&schema, &mut identity, now_ms());
            if store.backfill_addresses(&identity).await? {
                report.indexed += 1;
            }
        }
        if !full {
            break;
        }
    }
    Ok(report)
}

/// Runs the backfill in the background once the migrations are applied, retrying while
/// identities wait for their schema or the database fails; ends when nothing is left or on stop.
pub fn spawn(
    store: Arc<dyn Store>,
    schemas: Arc<ArcSwap<SchemaRegistry>>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut warned = false;
        loop {
            if *stop.borrow() {
                return;
            }
            let done = match store.ready().await {
                Ok(true) => match run_once(store.as_ref(), &schemas.load_full()).await {
                    Ok(report) => {
                        if report.indexed > 0 {
                            tracing::info!(indexed = report.indexed, "identity address backfill");
                        }
                        if report.waiting_for_schema > 0 && !warned {
                            warned = true;
                            tracing::warn!(
                                identities = report.waiting_for_schema,
                                "identity address backfill: identities of unknown schemas wait until their schema is loaded"
                            );
                        }
                        report.waiting_for_schema == 0
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "identity address backfill failed; retrying");
                        false
                    }
                },
                // Migrations pending: the column does not exist yet.
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "identity address backfill: database unavailable");
                    false
                }
            };
            if done {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}
