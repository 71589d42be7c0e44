//! Load-time validation of one rule, with the gateway's exact semantics.
//!
//! Unlike Oathkeeper (which keeps invalid rules and fails requests at match time), a rule that
//! does not validate is rejected up front with its id and the offending field.

use crate::handlers::{HandlerKind, check_config};
use crate::model::{Handler, MatchingStrategy, Rule};
use crate::pattern::Pattern;
use crate::rule_error::RuleError;

/// Validates `rule`: the pattern compiles, handler names are known, handler config fragments
/// have the right shape (templates parse), the upstream URL is absolute.
pub fn validate_rule(rule: &Rule, strategy: MatchingStrategy) -> Result<(), RuleError> {
    compile_rule(rule, strategy).map(|_| ())
}

pub(crate) fn compile_rule(rule: &Rule, strategy: MatchingStrategy) -> Result<Pattern, RuleError> {
    compile_rule_reusing(rule, strategy, None)
}

/// [`compile_rule`], taking `known` (the same `match.url` compiled earlier under the same
/// strategy) instead of compiling the pattern again.
pub(crate) fn compile_rule_reusing(
    rule: &Rule,
    strategy: MatchingStrategy,
    known: Option<&Pattern>,
) -> Result<Pattern, RuleError> {
    let id = rule.id.as_str();
    if id.is_empty() {
        return Err(RuleError::new(id, "id", "must be set"));
    }
    if rule.matcher.url.is_empty() {
        return Err(RuleError::new(id, "match.url", "must be set"));
    }
    let pattern = match known {
        Some(pattern) => pattern.clone(),
        None => Pattern::compile(&rule.matcher.url, strategy)
            .map_err(|e| RuleError::new(id, "match.url", e.to_string()))?,
    };
    for (i, method) in rule.matcher.methods.iter().enumerate() {
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(RuleError::new(
                id,
                format!("match.methods[{i}]"),
                format!("{method:?} is not an HTTP method token"),
            ));
        }
    }
    if !rule.upstream.url.is_empty() {
        match url::Url::parse(&rule.upstream.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => {
                return Err(RuleError::new(
                    id,
                    "upstream.url",
                    "must be an absolute http(s) URL",
                ));
            }
            Err(e) => return Err(RuleError::new(id, "upstream.url", e.to_string())),
        }
    }
    if rule.authenticators.is_empty() {
        return Err(RuleError::new(
            id,
            "authenticators",
            "must contain at least one handler",
        ));
    }
    for (i, h) in rule.authenticators.iter().enumerate() {
        check_handler(
            id,
            &format!("authenticators[{i}]"),
            HandlerKind::Authenticator,
            h,
        )?;
    }
    check_handler(id, "authorizer", HandlerKind::Authorizer, &rule.authorizer)?;
    if rule.mutators.is_empty() {
        return Err(RuleError::new(
            id,
            "mutators",
            "must contain at least one handler",
        ));
    }
    for (i, h) in rule.mutators.iter().enumerate() {
        check_handler(id, &format!("mutators[{i}]"), HandlerKind::Mutator, h)?;
    }
    for (i, h) in rule.errors.iter().enumerate() {
        check_handler(id, &format!("errors[{i}]"), HandlerKind::ErrorHandler, h)?;
    }
    Ok(pattern)
}

fn check_handler(
    id: &str,
    field: &str,
    kind: HandlerKind,
    handler: &Handler,
) -> Result<(), RuleError> {
    if handler.handler.is_empty() {
        return Err(RuleError::new(
            id,
            format!("{field}.handler"),
            "must be set",
        ));
    }
    if !kind.known_names().contains(&handler.handler.as_str()) {
        return Err(RuleError::new(
            id,
            format!("{field}.handler"),
            format!(
                "{:?} is not one of the supported {}: {}",
                handler.handler,
                kind.section(),
                kind.known_names().join(", ")
            ),
        ));
    }
    if let Some(config) = &handler.config {
        check_config(kind, &handler.handler, config)
            .map_err(|message| RuleError::new(id, format!("{field}.config"), message))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(patch: serde_json::Value) -> Rule {
        let mut base = json!({
            "id": "r1",
            "match": {"url": "http://a/<.*>", "methods": ["GET"]},
            "upstream": {"url": "http://127.0.0.1:4460"},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}]
        });
        if let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap_or_else(|e| panic!("test rule: {e}"))
    }

    #[test]
    fn each_problem_names_its_field() {
        let cases = [
            (json!({}), None),
            (json!({"id": ""}), Some("id")),
            (
                json!({"match": {"url": "http://a/<.*", "methods": ["GET"]}}),
                Some("match.url"),
            ),
            (
                json!({"match": {"url": "", "methods": ["GET"]}}),
                Some("match.url"),
            ),
            (
                json!({"match": {"url": "http://a", "methods": ["G T"]}}),
                Some("match.methods[0]"),
            ),
            (
                json!({"upstream": {"url": "not a url"}}),
                Some("upstream.url"),
            ),
            (json!({"upstream": {"url": ""}}), None),
            (json!({"authenticators": []}), Some("authenticators")),
            (
                json!({"authenticators": [{"handler": "anonymous"}, {"handler": "magic"}]}),
                Some("authenticators[1].handler"),
            ),
            (
                json!({"authorizer": {"handler": ""}}),
                Some("authorizer.handler"),
            ),
            (
                json!({"mutators": [{"handler": "header", "config": {"headers": {"X": "{{ .S"}}}]}),
                Some("mutators[0].config"),
            ),
            (
                json!({"errors": [{"handler": "redirect", "config": {"to": 5}}]}),
                Some("errors[0].config"),
            ),
            (json!({"mutators": []}), Some("mutators")),
        ];
        for (patch, field) in cases {
            let result = validate_rule(&rule(patch.clone()), MatchingStrategy::Regexp);
            assert_eq!(
                result.as_ref().err().map(|e| e.field.as_str()),
                field,
                "{patch}"
            );
            if let Err(e) = result {
                assert!(e.to_string().contains("r1") || e.rule_id.is_empty(), "{e}");
            }
        }
    }

    #[test]
    fn glob_strategy_is_used_for_validation() {
        let r = rule(json!({"match": {"url": "http://a/<[a>", "methods": ["GET"]}}));
        assert!(validate_rule(&r, MatchingStrategy::Glob).is_err());
    }
}
