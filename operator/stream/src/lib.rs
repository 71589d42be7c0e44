//! The config stream: versioned full snapshots per topic, served by the operator over
//! server-sent events and consumed by gateway and identity replicas.
