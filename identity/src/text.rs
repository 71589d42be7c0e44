//! UI messages with Kratos' numeric ids (UIs translate by id, so the ids must match Kratos).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A `uiText`: `{id, text, type, context?}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub id: u32,
    pub text: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

impl Message {
    fn new(id: u32, kind: &str, text: String, context: Option<Value>) -> Self {
        Self {
            id,
            text,
            kind: kind.to_owned(),
            context,
        }
    }

    fn error(id: u32, text: String, context: Value) -> Self {
        Self::new(id, "error", text, Some(context))
    }

    fn info(id: u32, text: &str) -> Self {
        Self::new(id, "info", text.to_owned(), None)
    }

    pub fn validation(reason: &str) -> Self {
        Self::error(4000001, reason.to_owned(), json!({ "reason": reason }))
    }

    pub fn missing_property(property: &str) -> Self {
        Self::error(
            4000002,
            format!("Property {property} is missing."),
            json!({ "property": property }),
        )
    }

    pub fn min_length(limit: u64) -> Self {
        Self::error(
            4000003,
            format!("length must be >= {limit}, but got fewer"),
            json!({ "min_length": limit }),
        )
    }

    pub fn max_length(limit: u64) -> Self {
        Self::error(
            4000017,
            format!("length must be <= {limit}, but got more"),
            json!({ "max_length": limit }),
        )
    }

    pub fn pattern(pattern: &str) -> Self {
        Self::error(
            4000004,
            format!("does not match pattern \"{pattern}\""),
            json!({ "pattern": pattern }),
        )
    }

    pub fn invalid_email() -> Self {
        Self::error(4000040, "Enter a valid email address".to_owned(), json!({}))
    }

    pub fn invalid_credentials() -> Self {
        Self::error(
            4000006,
            "The provided credentials are invalid, check for spelling mistakes in your password or username, email address, or phone number.".to_owned(),
            json!({}),
        )
    }

    pub fn duplicate_identifier() -> Self {
        Self::error(
            4000007,
            "An account with the same identifier (email, phone, username, ...) exists already."
                .to_owned(),
            json!({}),
        )
    }

    pub fn no_identifier() -> Self {
        Self::error(
            4000009,
            "Could not find any login identifiers. Did you forget to set them? This could also be caused by a server misconfiguration.".to_owned(),
            json!({}),
        )
    }

    pub fn password_too_similar() -> Self {
        Self::error(
            4000031,
            "The password can not be used because it is too similar to the identifier.".to_owned(),
            json!({}),
        )
    }

    pub fn password_too_short(min: usize, actual: usize) -> Self {
        Self::error(
            4000032,
            format!("The password must be at least {min} characters long, but got {actual}."),
            json!({ "min_length": min, "actual_length": actual }),
        )
    }

    pub fn flow_expired(id: u32, flow: &str, minutes: f64) -> Self {
        Self::error(
            id,
            format!("The {flow} flow expired {minutes:.2} minutes ago, please try again."),
            json!({ "expired_minutes": minutes }),
        )
    }

    pub fn unknown_method() -> Self {
        Self::error(
            4010002,
            "Could not find a strategy to handle this request. Use method \"password\".".to_owned(),
            json!({}),
        )
    }

    pub fn identity_disabled() -> Self {
        Self::error(
            4010011,
            "This account has been disabled. Contact the administrator.".to_owned(),
            json!({}),
        )
    }

    pub fn label_password() -> Self {
        Self::info(1070001, "Password")
    }

    pub fn label_id() -> Self {
        Self::info(1070004, "ID")
    }

    pub fn label_sign_in() -> Self {
        Self::info(1010022, "Sign in with password")
    }

    pub fn label_sign_up() -> Self {
        Self::info(1040001, "Sign up")
    }

    pub fn label_save() -> Self {
        Self::info(1070003, "Save")
    }

    pub fn settings_saved() -> Self {
        Self::new(
            1050001,
            "success",
            "Your changes have been saved!".to_owned(),
            None,
        )
    }

    pub fn same_password() -> Self {
        Self::error(
            4000039,
            "The new password must be different from the old password.".to_owned(),
            json!({}),
        )
    }

    pub fn label_trait(title: &str, name: &str) -> Self {
        Self::new(
            1070002,
            "info",
            title.to_owned(),
            Some(json!({ "title": title, "name": name })),
        )
    }
}
