//! Reads a rules document: a JSON or YAML list of rules in Oathkeeper's format.
//!
//! Like Oathkeeper, bytes that are valid JSON are read as JSON, anything else as YAML; a single
//! object (not a list) is rejected. Errors name the document, the rule id and the field.

use serde_json::Value;

use crate::model::Rule;
use crate::rule_error::{ParseError, RuleError};

/// The YAML parser's limits, scaled to the document: its defaults (250 000 nodes, a million
/// events) refuse a file of about 8 000 rules. Without aliases every node and event takes at
/// least a byte of input, so limits proportional to the length only stop alias expansion, which
/// keeps its own default budget.
fn yaml_options(len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = budget.max_nodes.max(len);
    budget.max_events = budget.max_events.max(len.saturating_mul(2));
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Parses a rules document. `source_name` (a file path or stream name) is used in errors.
pub fn parse_rules(bytes: &[u8], source_name: &str) -> Result<Vec<Rule>, ParseError> {
    let syntax = |message: String| ParseError::Syntax {
        source_name: source_name.to_owned(),
        message,
    };
    let document: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(_) if bytes.iter().all(u8::is_ascii_whitespace) => Value::Array(Vec::new()),
        Err(_) => serde_saphyr::from_slice_with_options(bytes, yaml_options(bytes.len())).map_err(
            |e| {
                let text = e.to_string();
                syntax(format!(
                    "not valid JSON or YAML: {}",
                    text.lines().next().unwrap_or_default()
                ))
            },
        )?,
    };
    let items = match document {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        _ => return Err(syntax("expected a list of rules".to_owned())),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("#{index}"));
            serde_json::from_value::<Rule>(item).map_err(|e| ParseError::Rule {
                source_name: source_name.to_owned(),
                error: RuleError::new(&id, field_of(&e.to_string()), e.to_string()),
            })
        })
        .collect()
}

/// Best-effort field name from a serde message such as "missing field `match`".
fn field_of(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| "(rule)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
- id: public
  match:
    url: http://127.0.0.1:4455/public/<.*>
    methods: [GET, POST]
  upstream:
    url: http://127.0.0.1:4460
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
"#;

    #[test]
    fn a_yaml_file_of_ten_thousand_rules_loads() {
        let rule = |i: usize| {
            format!(
                "- id: r{i}\n  description: rule {i}\n  match:\n    url: http://127.0.0.1:4455/svc{i}/<.*>\n    \
                 methods: [GET, POST, PUT, DELETE]\n  upstream:\n    url: http://127.0.0.1:4460\n    \
                 preserve_host: true\n  authenticators: [{{handler: noop}}, {{handler: anonymous, config: {{subject: guest}}}}]\n  \
                 authorizer: {{handler: allow}}\n  mutators: [{{handler: header, config: {{headers: {{X-User: x}}}}}}]\n"
            )
        };
        let yaml: String = (0..10_000).map(rule).collect();
        let rules = parse_rules(yaml.as_bytes(), "big.yaml").expect("10 000 rules parse");
        assert_eq!(rules.len(), 10_000);
        assert_eq!(rules[9_999].id, "r9999");
    }

    #[test]
    fn reads_yaml_and_json_lists() -> Result<(), Box<dyn std::error::Error>> {
        let from_yaml = parse_rules(YAML.as_bytes(), "rules.yml")?;
        assert_eq!(from_yaml.len(), 1);
        assert_eq!(from_yaml[0].matcher.methods, vec!["GET", "POST"]);
        let json = serde_json::to_vec(&from_yaml)?;
        assert_eq!(parse_rules(&json, "rules.json")?, from_yaml);
        assert!(parse_rules(b"", "empty.yml")?.is_empty());
        Ok(())
    }

    #[test]
    fn errors_name_the_source_and_rule() {
        let err = parse_rules(br#"[{"id":"r1","upstream":{"url":"x"}}]"#, "a.json");
        let Err(ParseError::Rule { source_name, error }) = err else {
            panic!("expected a rule error, got {err:?}");
        };
        assert_eq!(source_name, "a.json");
        assert_eq!(error.rule_id, "r1");
        assert_eq!(error.field, "match");
        assert!(matches!(
            parse_rules(br#"{"id":"single"}"#, "b.json"),
            Err(ParseError::Syntax { .. })
        ));
        assert!(matches!(
            parse_rules(b"- id: [unclosed", "c.yml"),
            Err(ParseError::Syntax { .. })
        ));
    }
}
