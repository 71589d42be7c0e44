//! The Kubernetes operator (Oathkeeper-Maester equivalent).
//!
//! Watches `Rule` and `IdentitySchema` objects (and, with `--oathkeeper-compat`, Maester's
//! `rules.oathkeeper.ory.sh`), validates them with the gateway's own rule crate, writes status
//! (lease holder only) and streams the valid objects to gateways and identity replicas over
//! `GET /v1/streams/{topic}` on port 4470.

pub mod cli;
pub mod context;
pub mod evaluation;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod rbac;
pub mod rule_controller;
pub mod schema_controller;
pub mod status;

pub use context::{Context, Error};
