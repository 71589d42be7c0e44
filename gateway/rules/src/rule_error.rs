//! Errors naming the rule, the field and the file, for start-up failures and operator status.

/// A rule that cannot be served: which rule, which field, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule_id:?}: field {field}: {message}")]
pub struct RuleError {
    /// The rule id (`""` when the rule has none).
    pub rule_id: String,
    /// The field path, e.g. `match.url` or `authenticators[1].config`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl RuleError {
    pub(crate) fn new(rule_id: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule_id: rule_id.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A rules document that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a JSON/YAML list of objects.
    #[error("{source_name}: {message}")]
    Syntax {
        /// File or stream the bytes came from.
        source_name: String,
        /// The first line of the parser's explanation.
        message: String,
    },
    /// A list element is not a valid rule.
    #[error("{source_name}: {error}")]
    Rule {
        /// File or stream the bytes came from.
        source_name: String,
        /// The rule and field.
        error: RuleError,
    },
}
