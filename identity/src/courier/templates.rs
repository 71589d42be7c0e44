//! The courier's email templates: embedded defaults for recovery and verification (code and link
//! variants, `valid` and `invalid`), each a subject, a plain-text body and an HTML body, rendered
//! with minijinja. A folder in Kratos' layout overrides any of them:
//!
//! ```text
//! <courier.template_override_path>/recovery_code/valid/email.subject.gotmpl
//!                                                      email.body.gotmpl            (HTML)
//!                                                      email.body.plaintext.gotmpl
//! ```
//!
//! Templates are minijinja (`{{ RecoveryCode }}`); Kratos' Go spelling `{{ .RecoveryCode }}` is
//! accepted for plain substitutions. Variables: `To`, `RecoveryCode`, `RecoveryURL`,
//! `VerificationCode`, `VerificationURL`, `Identity` (the identity JSON, e.g.
//! `Identity.traits.email`), `RequestURL`, `ExpiresInMinutes`.

use std::path::{Path, PathBuf};

use minijinja::Environment;
use serde_json::Value;

/// Kratos' template types this service sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateType {
    RecoveryCodeValid,
    RecoveryCodeInvalid,
    RecoveryValid,
    RecoveryInvalid,
    VerificationCodeValid,
    VerificationCodeInvalid,
    VerificationValid,
    VerificationInvalid,
}

impl TemplateType {
    pub const ALL: [TemplateType; 8] = [
        Self::RecoveryCodeValid,
        Self::RecoveryCodeInvalid,
        Self::RecoveryValid,
        Self::RecoveryInvalid,
        Self::VerificationCodeValid,
        Self::VerificationCodeInvalid,
        Self::VerificationValid,
        Self::VerificationInvalid,
    ];

    /// The name shown as `template_type` on the admin API.
    pub fn name(self) -> &'static str {
        match self {
            Self::RecoveryCodeValid => "recovery_code_valid",
            Self::RecoveryCodeInvalid => "recovery_code_invalid",
            Self::RecoveryValid => "recovery_valid",
            Self::RecoveryInvalid => "recovery_invalid",
            Self::VerificationCodeValid => "verification_code_valid",
            Self::VerificationCodeInvalid => "verification_code_invalid",
            Self::VerificationValid => "verification_valid",
            Self::VerificationInvalid => "verification_invalid",
        }
    }

    /// The override folder, Kratos' layout: `recovery_code/valid`.
    fn folder(self) -> &'static str {
        match self {
            Self::RecoveryCodeValid => "recovery_code/valid",
            Self::RecoveryCodeInvalid => "recovery_code/invalid",
            Self::RecoveryValid => "recovery/valid",
            Self::RecoveryInvalid => "recovery/invalid",
            Self::VerificationCodeValid => "verification_code/valid",
            Self::VerificationCodeInvalid => "verification_code/invalid",
            Self::VerificationValid => "verification/valid",
            Self::VerificationInvalid => "verification/invalid",
        }
    }

    /// The embedded (subject, plain text, HTML).
    fn defaults(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::RecoveryCodeValid => (
                "Use code {{ RecoveryCode }} to recover access to your account",
                "Hi,\n\nplease recover access to your account by entering the following code:\n\n{{ RecoveryCode }}\n\nThe code expires in {{ ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email.\n",
                "<p>Hi,</p><p>please recover access to your account by entering the following code:</p><p><strong>{{ RecoveryCode }}</strong></p><p>The code expires in {{ ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email.</p>",
            ),
            Self::RecoveryValid => (
                "Recover access to your account",
                "Hi,\n\nplease recover access to your account by opening this link:\n\n{{ RecoveryURL }}\n\nThe link expires in {{ ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email.\n",
                "<p>Hi,</p><p>please recover access to your account by opening this link:</p><p><a href=\"{{ RecoveryURL }}\">{{ RecoveryURL }}</a></p><p>The link expires in {{ ExpiresInMinutes }} minutes. If you did not ask for it, ignore this email.</p>",
            ),
            Self::RecoveryCodeInvalid | Self::RecoveryInvalid => (
                "Account access attempted",
                "Hi,\n\nyou (or someone else) entered this email address when trying to recover access to an account.\n\nThis address is not registered with us, so the attempt failed. If it was you, check whether you signed up with a different address. If it was not you, ignore this email.\n",
                "<p>Hi,</p><p>you (or someone else) entered this email address when trying to recover access to an account.</p><p>This address is not registered with us, so the attempt failed. If it was you, check whether you signed up with a different address. If it was not you, ignore this email.</p>",
            ),
            Self::VerificationCodeValid => (
                "Use code {{ VerificationCode }} to verify your account",
                "Hi,\n\nplease verify your account by entering the following code:\n\n{{ VerificationCode }}\n\nor opening this link:\n\n{{ VerificationURL }}\n",
                "<p>Hi,</p><p>please verify your account by entering the following code:</p><p><strong>{{ VerificationCode }}</strong></p><p>or opening this link: <a href=\"{{ VerificationURL }}\">{{ VerificationURL }}</a></p>",
            ),
            Self::VerificationValid => (
                "Please verify your email address",
                "Hi,\n\nplease verify your account by opening this link:\n\n{{ VerificationURL }}\n",
                "<p>Hi,</p><p>please verify your account by opening this link:</p><p><a href=\"{{ VerificationURL }}\">{{ VerificationURL }}</a></p>",
            ),
            Self::VerificationCodeInvalid | Self::VerificationInvalid => (
                "Someone tried to verify this email address",
                "Hi,\n\nsomeone asked to verify this email address, but we were unable to find an account for it.\n\nIf it was you, check whether you signed up with a different address. If it was not you, ignore this email.\n",
                "<p>Hi,</p><p>someone asked to verify this email address, but we were unable to find an account for it.</p><p>If it was you, check whether you signed up with a different address. If it was not you, ignore this email.</p>",
            ),
        }
    }
}

/// A template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read courier template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("courier template {name}: {source}")]
    Syntax {
        name: String,
        source: minijinja::Error,
    },
}

/// A rendered email.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub plaintext: String,
    pub html: String,
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

/// Kratos writes `{{ .Name }}`; minijinja reads `{{ Name }}`.
fn from_go_syntax(source: &str) -> String {
    source
        .replace("{{ .", "{{ ")
        .replace("{{- .", "{{- ")
        .replace("{{.", "{{ ")
}

impl Templates {
    /// The embedded defaults, each replaced by a file of the override folder where one exists.
    pub fn load(override_dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        for kind in TemplateType::ALL {
            let (subject, plaintext, html) = kind.defaults();
            for (file, name, default) in [
                ("email.subject.gotmpl", "subject.txt", subject),
                ("email.body.plaintext.gotmpl", "body.txt", plaintext),
                ("email.body.gotmpl", "body.html", html),
            ] {
                let source = match override_dir {
                    Some(dir) => {
                        let path = dir.join(kind.folder()).join(file);
                        match std::fs::read_to_string(&path) {
                            Ok(text) => from_go_syntax(&text),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                                default.to_owned()
                            }
                            Err(source) => return Err(TemplateError::Read { path, source }),
                        }
                    }
                    None => default.to_owned(),
                };
                let name = format!("{}/{name}", kind.name());
                env.add_template_owned(name.clone(), source)
                    .map_err(|source| TemplateError::Syntax { name, source })?;
            }
        }
        Ok(Self { env })
    }

    /// Renders one message. `vars` is the template context (an object).
    pub fn render(&self, kind: TemplateType, vars: &Value) -> Result<Rendered, TemplateError> {
        let part = |name: &str| {
            let name = format!("{}/{name}", kind.name());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(vars))
                .map_err(|source| TemplateError::Syntax { name, source })
        };
        Ok(Rendered {
            subject: part("subject.txt")?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
            plaintext: part("body.txt")?,
            html: part("body.html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_render_codes_and_escape_html() {
        let templates = Templates::load(None).unwrap();
        let out = templates
            .render(
                TemplateType::VerificationCodeValid,
                &json!({"VerificationCode": "123456", "VerificationURL": "http://x/?a=1&b=<2>"}),
            )
            .unwrap();
        assert_eq!(out.subject, "Use code 123456 to verify your account");
        assert!(out.plaintext.contains("http://x/?a=1&b=<2>"));
        assert!(out.html.contains("&lt;2&gt;"));
    }

    #[test]
    fn override_folder_in_kratos_layout_with_go_syntax() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("recovery_code/valid");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("email.subject.gotmpl"),
            "Your code: {{ .RecoveryCode }}",
        )
        .unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let out = templates
            .render(
                TemplateType::RecoveryCodeValid,
                &json!({"RecoveryCode": "987654"}),
            )
            .unwrap();
        assert_eq!(out.subject, "Your code: 987654");
        assert!(
            out.plaintext.contains("987654"),
            "the body keeps its default"
        );
    }
}
