//! Decides, for the whole set of Rule objects at once, which are served and what each one's
//! `Accepted` condition says. Pure and level-based: the same objects always give the same
//! verdicts, so every operator replica serves the same snapshot.
//!
//! A rule is accepted when the gateway's own validator (`portcullis_rules::validate_rule`)
//! accepts it and no older rule claims the same URL pattern for a common method. On such a
//! conflict the older rule keeps being served (a newcomer cannot take a working route down)
//! and both rules say so in their condition message.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use portcullis_rules::{MatchingStrategy, RuleError};

/// Identifies a Rule object: API group, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// `portcullis.dev` or `oathkeeper.ory.sh`.
    pub group: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One Rule object as the evaluation sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Which object.
    pub key: ObjectKey,
    /// `metadata.creationTimestamp` (seconds), for "older wins"; absent sorts first.
    pub created: Option<i64>,
    /// The access rule the gateway would serve for it.
    pub rule: portcullis_rules::Rule,
}

/// Machine-readable reason of an `Accepted` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Valid and served.
    Valid,
    /// `match.url` does not compile under the configured strategy.
    InvalidPattern,
    /// A handler name the gateway does not know.
    UnknownHandler,
    /// A handler config with the wrong shape.
    InvalidHandlerConfig,
    /// Anything else the validator refused (methods, upstream URL, empty lists).
    Invalid,
    /// An older rule already claims this URL pattern and method (or this rule id).
    Conflict,
}

impl Reason {
    /// The CamelCase reason string of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "Valid",
            Self::InvalidPattern => "InvalidPattern",
            Self::UnknownHandler => "UnknownHandler",
            Self::InvalidHandlerConfig => "InvalidHandlerConfig",
            Self::Invalid => "Invalid",
            Self::Conflict => "Conflict",
        }
    }
}

/// The outcome for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the rule is served.
    pub accepted: bool,
    /// Why.
    pub reason: Reason,
    /// Human-readable detail naming the field or the other rule.
    pub message: String,
}

/// Verdicts for every candidate and the rules to serve, sorted by id.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// One verdict per candidate.
    pub verdicts: HashMap<ObjectKey, Verdict>,
    /// The accepted rules, in id order.
    pub served: Vec<portcullis_rules::Rule>,
}

/// Validates rules with the gateway's validator, remembering results for unchanged rules so
/// that re-evaluating thousands of rules on every change stays cheap. The memo only keeps
/// rules seen in the latest evaluation, so memory is bounded by the live rule set.
pub struct RuleEvaluator {
    strategy: MatchingStrategy,
    memo: Mutex<HashMap<String, Result<(), RuleError>>>,
}

impl RuleEvaluator {
    /// An evaluator for `strategy` (the gateways' `access_rules.matching_strategy`).
    pub fn new(strategy: MatchingStrategy) -> Self {
        Self {
            strategy,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// How many validation results are remembered (bounded by the last evaluated rule set).
    pub fn remembered(&self) -> usize {
        match self.memo.lock() {
            Ok(memo) => memo.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// Evaluates the full set of rule objects.
    pub fn evaluate(&self, mut candidates: Vec<Candidate>) -> Evaluation {
        candidates
            .sort_by(|a, b| (a.created, &a.rule.id, &a.key).cmp(&(b.created, &b.rule.id, &b.key)));
        let validity = self.validate_all(&candidates);

        let mut evaluation = Evaluation::default();
        // id → owner, and (url, METHOD) → owner, among accepted rules, oldest first.
        let mut ids: HashMap<&str, &ObjectKey> = HashMap::new();
        let mut claims: HashMap<(&str, String), &Candidate> = HashMap::new();
        let mut served: BTreeMap<String, portcullis_rules::Rule> = BTreeMap::new();
        let mut notes: HashMap<ObjectKey, Vec<String>> = HashMap::new();

        for (candidate, validity) in candidates.iter().zip(validity) {
            if let Err(e) = validity {
                evaluation
                    .verdicts
                    .insert(candidate.key.clone(), rejected(&e));
                continue;
            }
            if let Some(owner) = ids.get(candidate.rule.id.as_str()) {
                let message = format!(
                    "rule id {:?} is already served for {}/{} ({})",
                    candidate.rule.id, owner.namespace, owner.name, owner.group
                );
                evaluation
                    .verdicts
                    .insert(candidate.key.clone(), conflict(message));
                continue;
            }
            let clash = candidate.rule.matcher.methods.iter().find_map(|m| {
                claims.get(&(candidate.rule.matcher.url.as_str(), m.to_ascii_uppercase()))
            });
            if let Some(owner) = clash {
                let message = format!(
                    "match.url {:?} is already claimed by rule {:?}, which is older; this rule is not served",
                    candidate.rule.matcher.url, owner.rule.id
                );
                notes
                    .entry(owner.key.clone())
                    .or_default()
                    .push(candidate.rule.id.clone());
                evaluation
                    .verdicts
                    .insert(candidate.key.clone(), conflict(message));
                continue;
            }
            ids.insert(&candidate.rule.id, &candidate.key);
            for method in &candidate.rule.matcher.methods {
                claims.insert(
                    (&candidate.rule.matcher.url, method.to_ascii_uppercase()),
                    candidate,
                );
            }
            served.insert(candidate.rule.id.clone(), candidate.rule.clone());
            evaluation.verdicts.insert(
                candidate.key.clone(),
                Verdict {
                    accepted: true,
                    reason: Reason::Valid,
                    message: "rule is valid and served to gateways".into(),
                },
            );
        }
        for (owner, newer) in notes {
            if let Some(verdict) = evaluation.verdicts.get_mut(&owner) {
                verdict.message = format!(
                    "rule is valid and served to gateways; newer rules claiming the same match.url are not served: {}",
                    newer.join(", ")
                );
            }
        }
        evaluation.served = served.into_values().collect();
        evaluation
    }

    fn validate_all(&self, candidates: &[Candidate]) -> Vec<Result<(), RuleError>> {
        let mut memo = match self.memo.lock() {
            Ok(memo) => memo,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut fresh = HashMap::with_capacity(candidates.len());
        let results = candidates
            .iter()
            .map(|c| {
                let key = serde_json::to_string(&c.rule).unwrap_or_default();
                let result = match memo.get(&key) {
                    Some(result) => result.clone(),
                    None => portcullis_rules::validate_rule(&c.rule, self.strategy),
                };
                fresh.insert(key, result.clone());
                result
            })
            .collect();
        *memo = fresh;
        results
    }
}

fn conflict(message: String) -> Verdict {
    Verdict {
        accepted: false,
        reason: Reason::Conflict,
        message,
    }
}

/// Maps a validator error to a verdict whose message names the CR field (`spec.…`).
fn rejected(e: &RuleError) -> Verdict {
    let reason = if e.field == "match.url" {
        Reason::InvalidPattern
    } else if e.field.ends_with(".handler") {
        Reason::UnknownHandler
    } else if e.field.ends_with(".config") || e.field.contains(".config.") {
        Reason::InvalidHandlerConfig
    } else {
        Reason::Invalid
    };
    let field = e
        .field
        .replace("strip_path", "stripPath")
        .replace("preserve_host", "preserveHost");
    Verdict {
        accepted: false,
        reason,
        message: format!("spec.{field}: {}", e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn candidate(name: &str, created: i64, url: &str, methods: &[&str]) -> Candidate {
        let rule: portcullis_rules::Rule = match serde_json::from_value(json!({
            "id": format!("{name}.default"),
            "match": {"url": url, "methods": methods},
            "upstream": {"url": "http://127.0.0.1:4460"},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}],
        })) {
            Ok(rule) => rule,
            Err(e) => panic!("test rule: {e}"),
        };
        Candidate {
            key: ObjectKey {
                group: "portcullis.dev".into(),
                namespace: "default".into(),
                name: name.into(),
            },
            created: Some(created),
            rule,
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: "portcullis.dev".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[test]
    fn valid_rules_are_served_in_id_order() {
        let evaluator = RuleEvaluator::new(MatchingStrategy::Regexp);
        let evaluation = evaluator.evaluate(vec![
            candidate("b", 2, "http://b/<.*>", &["GET"]),
            candidate("a", 1, "http://a/<.*>", &["GET"]),
        ]);
        let ids: Vec<_> = evaluation.served.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a.default", "b.default"]);
        assert_eq!(evaluation.verdicts[&key("a")].reason, Reason::Valid);
    }

    #[test]
    fn broken_regex_is_rejected_naming_the_field_and_others_unaffected() {
        let evaluator = RuleEvaluator::new(MatchingStrategy::Regexp);
        let evaluation = evaluator.evaluate(vec![
            candidate("bad", 1, "http://a/<[unclosed>", &["GET"]),
            candidate("good", 2, "http://b/<.*>", &["GET"]),
        ]);
        let bad = &evaluation.verdicts[&key("bad")];
        assert!(!bad.accepted);
        assert_eq!(bad.reason, Reason::InvalidPattern);
        assert!(
            bad.message.starts_with("spec.match.url: "),
            "{}",
            bad.message
        );
        assert!(evaluation.verdicts[&key("good")].accepted);
        let ids: Vec<_> = evaluation.served.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["good.default"]);
    }

    #[test]
    fn unknown_handler_is_its_own_reason() {
        let evaluator = RuleEvaluator::new(MatchingStrategy::Regexp);
        let mut c = candidate("x", 1, "http://a/<.*>", &["GET"]);
        c.rule.authorizer = portcullis_rules::Handler::named("keto_magic");
        let evaluation = evaluator.evaluate(vec![c]);
        let verdict = &evaluation.verdicts[&key("x")];
        assert_eq!(verdict.reason, Reason::UnknownHandler);
        assert!(
            verdict.message.starts_with("spec.authorizer.handler"),
            "{}",
            verdict.message
        );
    }

    #[test]
    fn same_url_and_method_is_reported_on_both_and_the_older_is_served() {
        let evaluator = RuleEvaluator::new(MatchingStrategy::Regexp);
        let evaluation = evaluator.evaluate(vec![
            candidate("newer", 5, "http://a/<.*>", &["POST", "GET"]),
            candidate("older", 1, "http://a/<.*>", &["GET"]),
            candidate("other-method", 6, "http://a/<.*>", &["DELETE"]),
        ]);
        let newer = &evaluation.verdicts[&key("newer")];
        assert_eq!(newer.reason, Reason::Conflict);
        assert!(newer.message.contains("older.default"), "{}", newer.message);
        let older = &evaluation.verdicts[&key("older")];
        assert!(older.accepted);
        assert!(older.message.contains("newer.default"), "{}", older.message);
        assert!(evaluation.verdicts[&key("other-method")].accepted);
        assert_eq!(evaluation.served.len(), 2);
    }

    #[test]
    fn memo_only_keeps_live_rules() {
        let evaluator = RuleEvaluator::new(MatchingStrategy::Regexp);
        evaluator.evaluate(vec![
            candidate("a", 1, "http://a/<.*>", &["GET"]),
            candidate("b", 1, "http://b/<.*>", &["GET"]),
        ]);
        evaluator.evaluate(vec![candidate("a", 1, "http://a/<.*>", &["GET"])]);
        let size = evaluator.memo.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert_eq!(size, 1);
    }
}
