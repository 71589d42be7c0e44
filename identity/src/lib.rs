//! Portcullis identity: a Kratos-compatible identity service (self-service registration, login
//! and logout flows, sessions and whoami, identity schemas) on axum and sqlx, for PostgreSQL and
//! SQLite. `cli::main` is the binary's entry point; `server::start` runs it in-process.

pub mod backfill;
pub mod cipher;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cookie;
pub mod courier;
pub mod csrf;
pub mod flow;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod password;
pub mod schema;
pub mod schema_stream;
pub mod server;
pub mod session;
pub mod state;
pub mod store;
pub mod text;
pub mod throttle;
pub mod totp;
pub mod ui;
