//! Access-rule model, parser and matcher shared by gateway and operator. No Pingora, no I/O.
