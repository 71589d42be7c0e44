//! Kubernetes custom resource types (Rule, IdentitySchema). Types only, no I/O.
