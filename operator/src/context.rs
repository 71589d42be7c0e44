//! What every reconcile gets: the client, the reflector stores, the evaluator, the stream
//! publisher, metrics, leadership and the event recorder; and the controller error type.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::api::DynamicObject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use portcullis_crds::{IdentitySchema, Rule};
use portcullis_stream::{PublishError, Publisher};

use crate::evaluation::RuleEvaluator;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::rule_controller::RuleSnapshotCache;

/// Shared state of the controllers.
pub struct Context {
    /// API client.
    pub client: Client,
    /// `rules.portcullis.dev` caches, one per watched namespace (or one for all).
    pub rules: Vec<Store<Rule>>,
    /// `rules.oathkeeper.ory.sh` caches when `--oathkeeper-compat` is on.
    pub oathkeeper_rules: Vec<Store<DynamicObject>>,
    /// `identityschemas.portcullis.dev` caches.
    pub schemas: Vec<Store<IdentitySchema>>,
    /// Validation with the gateway's semantics.
    pub evaluator: RuleEvaluator,
    /// The stream every replica serves.
    pub publisher: Publisher,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Whether this replica writes status and Events.
    pub leadership: Leadership,
    /// Kubernetes Events (`events.k8s.io`).
    pub recorder: Recorder,
    /// Last published rules evaluation; its lock orders rule publishes.
    pub rule_snapshot: tokio::sync::Mutex<Option<RuleSnapshotCache>>,
    /// Orders identity-schema publishes.
    pub schema_publish: tokio::sync::Mutex<()>,
}

impl Context {
    /// A context over the given stores.
    pub fn new(
        client: Client,
        evaluator: RuleEvaluator,
        publisher: Publisher,
        metrics: Arc<Metrics>,
        leadership: Leadership,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::status::FIELD_MANAGER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            rules: Vec::new(),
            oathkeeper_rules: Vec::new(),
            schemas: Vec::new(),
            evaluator,
            publisher,
            metrics,
            leadership,
            rule_snapshot: tokio::sync::Mutex::new(None),
            schema_publish: tokio::sync::Mutex::new(()),
        }
    }

    /// Publishes an Event about `reference`; a failure is logged, never fatal (status already
    /// carries the same information).
    pub async fn event(
        &self,
        reference: &ObjectReference,
        warning: bool,
        reason: &str,
        note: &str,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            // The Events API caps a note at 1 kB; 250 characters fit in any encoding.
            note: Some(note.chars().take(250).collect()),
            action: "Validate".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
}

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A reflector stopped before its first sync.
    #[error("cache of {0} stopped before it synced")]
    CacheStopped(&'static str),
    /// Publishing a snapshot failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A served item could not be serialized.
    #[error("cannot serialize {0}")]
    Serialize(#[from] serde_json::Error),
    /// The object lacks a name or namespace.
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
}
