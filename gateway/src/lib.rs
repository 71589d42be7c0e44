//! The identity-aware reverse proxy (Oathkeeper's equivalent on Pingora).
//!
//! Data flow: [`config`] + [`repository`] feed the [`pipeline`] (an atomically swapped
//! snapshot of compiled rules and their handlers); [`proxy`] runs it for every request on the
//! proxy port and forwards to the [`upstream`]; [`api`] serves health, rules and `/decisions`.

pub mod api;
pub mod cli;
pub mod config;
pub mod demo_upstream;
pub mod env_overrides;
pub mod jose;
pub mod jwks;
pub mod metrics;
pub mod pem_key;
pub mod pipeline;
pub mod proxy;
pub mod repository;
pub mod server;
pub mod stream;
pub mod telemetry;
pub mod tls;
pub mod upstream;
