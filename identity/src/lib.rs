//! The identity service (Kratos equivalent).
