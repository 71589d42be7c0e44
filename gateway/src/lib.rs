//! The identity-aware reverse proxy.
