//! Mapping of a `Rule` custom resource to the gateway's rule model (Oathkeeper format), as
//! Oathkeeper-Maester does: id `<name>.<namespace>`, `stripPath`/`preserveHost` become
//! `strip_path`/`preserve_host`, and Maester's defaults fill absent handler lists.

use crate::rule::{Handler, Rule};

/// Authenticators of a rule that lists none (Maester's default).
pub const DEFAULT_AUTHENTICATOR: &str = "unauthorized";
/// Authorizer of a rule that has none (Maester's default).
pub const DEFAULT_AUTHORIZER: &str = "deny";
/// Mutators of a rule that lists none (Maester's default).
pub const DEFAULT_MUTATOR: &str = "noop";

fn handler(h: &Handler) -> portcullis_rules::Handler {
    portcullis_rules::Handler {
        handler: h.handler.clone(),
        config: h.config.clone(),
    }
}

fn handlers(list: Option<&Vec<Handler>>, default: &str) -> Vec<portcullis_rules::Handler> {
    match list {
        Some(list) => list.iter().map(handler).collect(),
        None => vec![portcullis_rules::Handler::named(default)],
    }
}

impl Rule {
    /// The access rule gateways serve for this object. `configMapName` is dropped.
    pub fn to_access_rule(&self) -> portcullis_rules::Rule {
        let spec = &self.spec;
        let upstream = spec.upstream.as_ref();
        portcullis_rules::Rule {
            id: self.rule_id(),
            version: None,
            description: None,
            matcher: portcullis_rules::RuleMatch {
                url: spec.matcher.url.clone(),
                methods: spec.matcher.methods.clone(),
            },
            upstream: portcullis_rules::Upstream {
                url: upstream.map(|u| u.url.clone()).unwrap_or_default(),
                preserve_host: upstream.and_then(|u| u.preserve_host).unwrap_or(false),
                strip_path: upstream.and_then(|u| u.strip_path.clone()),
            },
            authenticators: handlers(spec.authenticators.as_ref(), DEFAULT_AUTHENTICATOR),
            authorizer: spec.authorizer.as_ref().map_or_else(
                || portcullis_rules::Handler::named(DEFAULT_AUTHORIZER),
                handler,
            ),
            mutators: handlers(spec.mutators.as_ref(), DEFAULT_MUTATOR),
            errors: spec.errors.iter().flatten().map(handler).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{RuleMatch, RuleSpec, Upstream};
    use portcullis_rules::{MatchingStrategy, validate_rule};
    use serde_json::json;

    fn rule(spec: RuleSpec) -> Rule {
        let mut rule = Rule::new("api", spec);
        rule.metadata.namespace = Some("shop".into());
        rule
    }

    fn spec() -> RuleSpec {
        RuleSpec {
            matcher: RuleMatch {
                url: "http://shop.example/api/<.*>".into(),
                methods: vec!["GET".into()],
            },
            upstream: Some(Upstream {
                url: "http://api:8080".into(),
                strip_path: Some("/api".into()),
                preserve_host: Some(true),
            }),
            authenticators: Some(vec![Handler {
                handler: "anonymous".into(),
                config: Some(json!({"subject": "guest"})),
            }]),
            authorizer: Some(Handler {
                handler: "allow".into(),
                config: None,
            }),
            mutators: None,
            errors: None,
            config_map_name: Some("ignored".into()),
        }
    }

    #[test]
    fn maps_to_oathkeeper_json_field_names() -> Result<(), serde_json::Error> {
        let served = serde_json::to_value(rule(spec()).to_access_rule())?;
        assert_eq!(served["id"], "api.shop");
        assert_eq!(served["match"]["url"], "http://shop.example/api/<.*>");
        assert_eq!(served["upstream"]["strip_path"], "/api");
        assert_eq!(served["upstream"]["preserve_host"], true);
        assert_eq!(served["authenticators"][0]["config"]["subject"], "guest");
        assert!(served.get("configMapName").is_none());
        Ok(())
    }

    #[test]
    fn absent_handlers_get_maesters_defaults_and_validate() {
        let mut spec = spec();
        spec.authenticators = None;
        spec.authorizer = None;
        spec.upstream = None;
        let served = rule(spec).to_access_rule();
        assert_eq!(
            served.authenticators,
            [portcullis_rules::Handler::named("unauthorized")]
        );
        assert_eq!(served.authorizer, portcullis_rules::Handler::named("deny"));
        assert_eq!(served.mutators, [portcullis_rules::Handler::named("noop")]);
        assert_eq!(served.upstream.url, "");
        assert_eq!(validate_rule(&served, MatchingStrategy::Regexp), Ok(()));
    }
}
