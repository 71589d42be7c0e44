//! The Kubernetes operator (Oathkeeper-Maester equivalent).
