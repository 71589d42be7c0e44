//! The config stream: versioned full snapshots per topic, served by the operator over
//! server-sent events and consumed by gateway and identity replicas.
//!
//! Data flow: the operator's controllers call [`Publisher::publish`] with the full set of valid
//! objects for a topic; [`server::router`] serves `GET /v1/streams/{topic}` (bearer token) as
//! `event: snapshot` frames, the current snapshot at once and then every new version; a
//! [`Subscriber`] in each gateway or identity replica applies each snapshot through a callback,
//! keeps the last good one in memory and on disk, and reconnects with capped backoff.

mod publisher;
pub mod server;
mod snapshot;
mod sse;
mod subscriber;
mod token;

pub use publisher::{PublishError, Publisher};
pub use snapshot::{Snapshot, TOPIC_IDENTITY_SCHEMAS, TOPIC_RULES, TOPICS};
pub use subscriber::{ApplyError, SubscribeError, Subscriber, SubscriberConfig};
pub use token::StreamToken;
