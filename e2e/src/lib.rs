//! End-to-end test support: starts the real binaries over loopback.
