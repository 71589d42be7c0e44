//! Prometheus metrics of the operator, named `portcullis_operator_*`.

use portcullis_stream::{Publisher, TOPICS};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

/// The operator's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabel, Counter>,
    errors: Family<KindLabel, Counter>,
    objects_served: Family<TopicLabel, Gauge>,
    snapshot_version: Family<TopicLabel, Gauge>,
    subscribers: Family<TopicLabel, Gauge>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis_operator");
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<KindLabel, Counter>::default();
        let objects_served = Family::<TopicLabel, Gauge>::default();
        let snapshot_version = Family::<TopicLabel, Gauge>::default();
        let subscribers = Family::<TopicLabel, Gauge>::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciliations, by object kind",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciliations, by object kind",
            errors.clone(),
        );
        registry.register(
            "objects_served",
            "Objects in the served snapshot, by topic",
            objects_served.clone(),
        );
        registry.register(
            "snapshot_version",
            "Version of the served snapshot, by topic",
            snapshot_version.clone(),
        );
        registry.register(
            "subscribers",
            "Stream subscribers connected to this replica, by topic",
            subscribers.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease and writes status",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            objects_served,
            snapshot_version,
            subscribers,
            leader,
        }
    }

    /// Counts one reconciliation of `kind`.
    pub fn reconciled(&self, kind: &str) {
        self.reconciles
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts one failed reconciliation of `kind`.
    pub fn failed(&self, kind: &str) {
        self.errors
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records leadership.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Renders the text exposition, refreshing the stream gauges from `publisher` first.
    pub fn render(&self, publisher: &Publisher) -> Result<String, std::fmt::Error> {
        for topic in TOPICS {
            let label = TopicLabel {
                topic: topic.to_owned(),
            };
            let current = publisher.current(topic);
            let served = current.as_ref().map_or(0, |s| s.items.len());
            let version = current.as_ref().map_or(0, |s| s.version);
            self.objects_served
                .get_or_create(&label)
                .set(i64::try_from(served).unwrap_or(i64::MAX));
            self.snapshot_version
                .get_or_create(&label)
                .set(i64::try_from(version).unwrap_or(i64::MAX));
            self.subscribers
                .get_or_create(&label)
                .set(i64::try_from(publisher.subscribers(topic)).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
