//! The identity-aware reverse proxy.
pub mod cli;
