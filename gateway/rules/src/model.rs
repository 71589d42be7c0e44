//! The access-rule model in Oathkeeper's JSON/YAML format.
//!
//! Field names and defaults follow Oathkeeper's `rule.Rule`: unknown fields are ignored, lists
//! default to empty (validation then reports what is missing), `config` is free JSON that the
//! gateway deep-merges over the global handler config.

use serde::{Deserialize, Serialize};

/// One access rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Rule id, unique by convention (Oathkeeper does not enforce it).
    #[serde(default)]
    pub id: String,
    /// Oathkeeper version the rule was written for (kept, not interpreted).
    #[serde(default)]
    pub version: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// What requests the rule applies to.
    #[serde(rename = "match")]
    pub matcher: RuleMatch,
    /// Where matching requests are proxied to.
    #[serde(default)]
    pub upstream: Upstream,
    /// Authenticators, tried in order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub authenticators: Vec<Handler>,
    /// The one authorizer.
    #[serde(default)]
    pub authorizer: Handler,
    /// Mutators, all run in order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mutators: Vec<Handler>,
    /// Rule-level error handlers (empty: the global fallback).
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<Handler>,
}

/// `match`: the URL pattern and the methods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleMatch {
    /// Pattern with `<...>` parts, compared against `scheme://host[:port]/path`.
    #[serde(default)]
    pub url: String,
    /// HTTP methods, compared case-insensitively; empty matches nothing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub methods: Vec<String>,
}

/// `upstream`: the proxy target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    /// Absolute URL of the upstream; may be empty for decision-only rules.
    #[serde(default)]
    pub url: String,
    /// Keep the client's `Host` header instead of the upstream's.
    #[serde(default)]
    pub preserve_host: bool,
    /// Path segment removed from the forwarded path (Oathkeeper's first-occurrence semantics).
    #[serde(default)]
    pub strip_path: Option<String>,
}

/// One handler reference: `{handler, config}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Handler {
    /// Handler id, e.g. `cookie_session`.
    #[serde(default)]
    pub handler: String,
    /// Rule-level config, merged over the global config of the handler.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

impl Handler {
    /// A handler without rule-level config.
    pub fn named(name: &str) -> Self {
        Self {
            handler: name.to_owned(),
            config: None,
        }
    }
}

/// How `match.url` patterns are interpreted (`access_rules.matching_strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchingStrategy {
    /// Anchored regular expressions inside `<...>` (the default; `""` means this too).
    #[default]
    #[serde(alias = "")]
    Regexp,
    /// Globs inside `<...>` with `.` and `/` as separators.
    Glob,
}

impl std::str::FromStr for MatchingStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "regexp" => Ok(Self::Regexp),
            "glob" => Ok(Self::Glob),
            other => Err(format!(
                "unknown matching strategy {other:?}, expected \"regexp\" or \"glob\""
            )),
        }
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_rule_uses_lenient_defaults() -> Result<(), serde_json::Error> {
        let rule: Rule = serde_json::from_str(
            r#"{"id":"a","match":{"url":"http://x/<.*>","methods":["GET"]},"unknown":1,
                "errors":null,"authorizer":{"handler":"allow"}}"#,
        )?;
        assert_eq!(rule.id, "a");
        assert!(rule.authenticators.is_empty());
        assert!(rule.errors.is_empty());
        assert_eq!(rule.authorizer, Handler::named("allow"));
        assert_eq!(rule.upstream, Upstream::default());
        Ok(())
    }

    #[test]
    fn strategy_parses_empty_as_regexp() {
        assert_eq!("".parse(), Ok(MatchingStrategy::Regexp));
        assert_eq!("glob".parse(), Ok(MatchingStrategy::Glob));
        assert!("nope".parse::<MatchingStrategy>().is_err());
    }
}
