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

/// Messages of the recovery and verification flows (code and link methods).
impl Message {
    pub fn label_email() -> Self {
        Self::info(1070007, "Email")
    }

    pub fn label_submit() -> Self {
        Self::info(1070005, "Submit")
    }

    pub fn label_continue() -> Self {
        Self::info(1070009, "Continue")
    }

    pub fn label_resend_code() -> Self {
        Self::info(1070008, "Resend code")
    }

    pub fn label_recovery_code() -> Self {
        Self::info(1070010, "Recovery code")
    }

    pub fn label_verification_code() -> Self {
        Self::info(1070011, "Verification code")
    }

    /// 1060002 / 1060003 / 1080001 / 1080003: the mail went out (said whether or not the address
    /// exists).
    pub fn email_sent(id: u32, what: &str) -> Self {
        Self::info(
            id,
            &format!(
                "An email containing a {what} has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with."
            ),
        )
    }

    pub fn verification_succeeded() -> Self {
        Self::new(
            1080002,
            "success",
            "You successfully verified your email address.".to_owned(),
            None,
        )
    }

    pub fn recovery_succeeded(minutes: i64, expires_at: &str) -> Self {
        Self::new(
            1060001,
            "success",
            format!(
                "You successfully recovered your account. Please change your password or set up an alternative login method (e.g. social sign in) within the next {minutes} minutes."
            ),
            Some(json!({ "privileged_session_expires_at": expires_at })),
        )
    }

    /// 4060006 / 4070006 (codes), 4060004 / 4070001 (link tokens).
    pub fn code_invalid(id: u32, what: &str, retry: &str) -> Self {
        Self::error(
            id,
            format!("The {what} is invalid or has already been used. Please {retry}."),
            json!({}),
        )
    }

    pub fn too_many_attempts() -> Self {
        Self::validation("The request was submitted too often. Please request another code.")
    }
}

/// Messages of the TOTP second factor.
impl Message {
    pub fn label_totp_unlink() -> Self {
        Self::info(1050004, "Unlink TOTP Authenticator App")
    }

    pub fn label_totp_qr() -> Self {
        Self::info(1050005, "Authenticator app QR code")
    }

    /// The secret shown next to the QR code.
    pub fn totp_secret(secret: &str) -> Self {
        Self::new(
            1050006,
            "info",
            secret.to_owned(),
            Some(json!({ "secret": secret })),
        )
    }

    pub fn label_totp_secret() -> Self {
        Self::info(
            1050017,
            "This is your authenticator app secret. Use it if you can not scan the QR code.",
        )
    }

    pub fn label_verify_code() -> Self {
        Self::info(1070006, "Verify code")
    }

    pub fn label_authentication_code() -> Self {
        Self::info(1010006, "Authentication code")
    }

    pub fn label_use_authenticator() -> Self {
        Self::info(1010009, "Use Authenticator")
    }

    pub fn second_factor_required() -> Self {
        Self::info(
            1010004,
            "Please complete the second authentication challenge.",
        )
    }

    pub fn totp_invalid() -> Self {
        Self::error(
            4000008,
            "The provided authentication code is invalid, please try again.".to_owned(),
            json!({}),
        )
    }
}

/// Messages of lookup secrets (backup codes).
impl Message {
    /// A label with Kratos' id for the lookup-secret nodes.
    pub fn lookup_label(id: u32, text: &str) -> Self {
        Self::info(id, text)
    }

    pub fn lookup_text(id: u32, text: &str) -> Self {
        Self::info(id, text)
    }

    /// 1050013: a revealed backup code that was used.
    pub fn lookup_used(used_at: &str) -> Self {
        Self::new(
            1050013,
            "info",
            format!("Used (at {used_at})"),
            Some(json!({ "used_at": used_at })),
        )
    }

    pub fn lookup_invalid() -> Self {
        Self::error(
            4000016,
            "The backup recovery code is not valid.".to_owned(),
            json!({}),
        )
    }
}
