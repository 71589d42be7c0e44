//! A snapshot: the full, versioned set of items of one topic, as sent on the wire and cached
//! on a subscriber's disk.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Topic carrying gateway access rules (Oathkeeper rule JSON, one item per rule).
pub const TOPIC_RULES: &str = "rules";
/// Topic carrying identity schemas (`{"id", "default", "schema"}` per item).
pub const TOPIC_IDENTITY_SCHEMAS: &str = "identity-schemas";
/// Every topic the operator serves.
pub const TOPICS: [&str; 2] = [TOPIC_RULES, TOPIC_IDENTITY_SCHEMAS];

/// The full content of one topic at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The topic, e.g. `rules`.
    pub topic: String,
    /// Monotonic version assigned by the publishing operator replica.
    pub version: u64,
    /// SHA-256 (hex) of the serialized items: equal digests mean equal content, whichever
    /// replica produced the snapshot.
    #[serde(default)]
    pub digest: String,
    /// The items, in a stable order.
    pub items: Vec<serde_json::Value>,
}

impl Snapshot {
    /// A snapshot with its digest computed from `items`.
    pub fn new(topic: &str, version: u64, items: Vec<serde_json::Value>) -> Self {
        let digest = digest_of(&items);
        Self {
            topic: topic.to_owned(),
            version,
            digest,
            items,
        }
    }

    /// Whether the digest matches the items (a truncated or tampered cache file fails this).
    pub fn digest_is_valid(&self) -> bool {
        digest_of(&self.items) == self.digest
    }
}

/// SHA-256 hex digest of the canonical JSON serialization of `items`.
pub(crate) fn digest_of(items: &[serde_json::Value]) -> String {
    let mut hasher = Sha256::new();
    for item in items {
        // serde_json::Value maps are ordered (BTreeMap), so this serialization is canonical.
        hasher.update(item.to_string().as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_depends_on_content_not_version() {
        let a = Snapshot::new(TOPIC_RULES, 1, vec![json!({"id": "a"})]);
        let b = Snapshot::new(TOPIC_RULES, 7, vec![json!({"id": "a"})]);
        let c = Snapshot::new(TOPIC_RULES, 1, vec![json!({"id": "b"})]);
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
    }

    #[test]
    fn tampered_items_fail_the_digest_check() {
        let mut s = Snapshot::new(TOPIC_RULES, 1, vec![json!({"id": "a"})]);
        assert!(s.digest_is_valid());
        s.items.push(json!({"id": "evil"}));
        assert!(!s.digest_is_valid());
    }
}
