//! Access-rule model, parser and matcher shared by gateway and operator. No Pingora, no I/O.
//!
//! Data flow: bytes → [`parse_rules`] → [`Rule`]s → [`validate_rule`] / [`RuleSet::compile`] →
//! an immutable [`RuleSet`] whose [`RuleSet::find`] picks the one rule for a request. Handler
//! config shapes ([`handlers`]) and Go-style templates ([`template`]) live here too so that the
//! operator validates a rule exactly as the gateway will run it.

pub mod handlers;
mod index;
mod model;
mod parse;
pub mod path;
pub mod pattern;
mod rule_error;
pub mod template;
mod validate;

pub use index::{CompiledRules, Found, Match, MatchError, RuleSet};
pub use model::{Handler, MatchingStrategy, Rule, RuleMatch, Upstream};
pub use parse::parse_rules;
pub use rule_error::{ParseError, RuleError};
pub use validate::validate_rule;
