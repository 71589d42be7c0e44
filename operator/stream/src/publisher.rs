//! The publishing side: one watch channel per topic holding the latest snapshot. The
//! operator's controllers publish full item sets; the server streams them to subscribers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::snapshot::{Snapshot, TOPICS, digest_of};

/// Publishing to a topic that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The topic is not one of [`crate::TOPICS`].
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
}

struct TopicChannel {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    subscribers: Arc<AtomicUsize>,
}

/// Holds the current snapshot of every topic. Cheap to clone; all clones share state.
///
/// A topic has no snapshot until its first publish, so a freshly started operator never
/// serves an empty rule set before its caches have synced.
#[derive(Clone)]
pub struct Publisher {
    topics: Arc<HashMap<String, TopicChannel>>,
    closing: watch::Sender<bool>,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    /// A publisher for every topic in [`TOPICS`].
    pub fn new() -> Self {
        let topics = TOPICS
            .iter()
            .map(|topic| {
                let (tx, _) = watch::channel(None);
                let channel = TopicChannel {
                    tx,
                    subscribers: Arc::new(AtomicUsize::new(0)),
                };
                ((*topic).to_owned(), channel)
            })
            .collect();
        let (closing, _) = watch::channel(false);
        Self {
            topics: Arc::new(topics),
            closing,
        }
    }

    /// Ends every open stream (graceful shutdown: subscribers reconnect to another replica).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Publisher::close_streams`] was called.
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    fn channel(&self, topic: &str) -> Result<&TopicChannel, PublishError> {
        self.topics
            .get(topic)
            .ok_or_else(|| PublishError::UnknownTopic(topic.to_owned()))
    }

    /// Publishes the full item set of `topic` and returns the version it is served under.
    /// Publishing the same content again keeps the current version and wakes nobody.
    pub fn publish(&self, topic: &str, items: Vec<serde_json::Value>) -> Result<u64, PublishError> {
        let channel = self.channel(topic)?;
        let digest = digest_of(&items);
        let mut version = 0;
        channel.tx.send_if_modified(|current| {
            if let Some(snapshot) = current.as_ref().filter(|s| s.digest == digest) {
                version = snapshot.version;
                return false;
            }
            // Wall-clock based so versions keep increasing across operator restarts, and
            // strictly increasing even when the clock steps back.
            let previous = current.as_ref().map_or(0, |s| s.version);
            version = previous.saturating_add(1).max(unix_millis());
            *current = Some(Arc::new(Snapshot {
                topic: topic.to_owned(),
                version,
                digest: digest.clone(),
                items,
            }));
            true
        });
        Ok(version)
    }

    /// The current snapshot of `topic`, if one was published.
    pub fn current(&self, topic: &str) -> Option<Arc<Snapshot>> {
        self.channel(topic).ok()?.tx.borrow().clone()
    }

    /// Whether every topic has been published at least once (the operator's readiness).
    pub fn all_published(&self) -> bool {
        self.topics.values().all(|c| c.tx.borrow().is_some())
    }

    /// A receiver of `topic`'s snapshots, plus a guard counting it as a connected subscriber.
    pub(crate) fn subscribe(
        &self,
        topic: &str,
    ) -> Option<(watch::Receiver<Option<Arc<Snapshot>>>, SubscriberGuard)> {
        let channel = self.channel(topic).ok()?;
        channel.subscribers.fetch_add(1, Ordering::SeqCst);
        let guard = SubscriberGuard(channel.subscribers.clone());
        Some((channel.tx.subscribe(), guard))
    }

    /// How many stream subscribers of `topic` are connected to this replica.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.channel(topic)
            .map_or(0, |c| c.subscribers.load(Ordering::SeqCst))
    }
}

/// Counts a connected subscriber for as long as it lives.
pub(crate) struct SubscriberGuard(Arc<AtomicUsize>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TOPIC_RULES;
    use serde_json::json;

    #[test]
    fn nothing_is_served_before_the_first_publish() {
        let publisher = Publisher::new();
        assert!(publisher.current(TOPIC_RULES).is_none());
        assert!(!publisher.all_published());
    }

    #[test]
    fn versions_increase_and_identical_content_keeps_its_version() -> Result<(), PublishError> {
        let publisher = Publisher::new();
        let v1 = publisher.publish(TOPIC_RULES, vec![json!({"id": "a"})])?;
        let same = publisher.publish(TOPIC_RULES, vec![json!({"id": "a"})])?;
        let v2 = publisher.publish(TOPIC_RULES, vec![json!({"id": "b"})])?;
        assert_eq!(v1, same);
        assert!(v2 > v1);
        Ok(())
    }

    #[test]
    fn unknown_topic_is_an_error() {
        let publisher = Publisher::new();
        assert!(matches!(
            publisher.publish("nope", vec![]),
            Err(PublishError::UnknownTopic(_))
        ));
    }

    #[test]
    fn subscriber_guard_counts_connections() {
        let publisher = Publisher::new();
        let first = publisher.subscribe(TOPIC_RULES);
        let second = publisher.subscribe(TOPIC_RULES);
        assert_eq!(publisher.subscribers(TOPIC_RULES), 2);
        drop(first);
        assert_eq!(publisher.subscribers(TOPIC_RULES), 1);
        drop(second);
        assert_eq!(publisher.subscribers(TOPIC_RULES), 0);
    }
}
