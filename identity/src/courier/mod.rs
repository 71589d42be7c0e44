//! The courier: outgoing email. Flow steps render a message from a template and write it to the
//! `courier_messages` outbox in the same transaction as the step ([`crate::store::Outbox`]); the
//! background [`sender`] claims due messages, delivers them over SMTP (or prints them with the
//! development-only `log` delivery), retries failures with exponential backoff and marks each
//! message `sent` or, after `courier.message_retries` failures, `abandoned`. A sender that dies
//! mid-delivery leaves its claim to expire, so another sender (or the restarted one) delivers the
//! message again: at least once, never lost.

pub mod sender;
pub mod templates;

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::CourierRecord;
pub use templates::{TemplateError, TemplateType, Templates};

/// What the request handlers need of the courier: the templates and a way to wake the sender.
pub struct Courier {
    templates: Templates,
    wake: Arc<Notify>,
}

impl Courier {
    pub fn new(templates: Templates) -> Self {
        Self {
            templates,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The notifier the sender waits on besides its poll interval.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Tells the sender that messages were committed (call after the transaction).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A queued outbox row for `recipient` rendered from `kind` with `vars`.
    pub fn message(
        &self,
        kind: TemplateType,
        recipient: &str,
        vars: &Value,
        now: i64,
    ) -> Result<CourierRecord, TemplateError> {
        let rendered = self.templates.render(kind, vars)?;
        Ok(CourierRecord {
            id: Uuid::new_v4(),
            status: "queued".to_owned(),
            recipient: recipient.to_owned(),
            subject: rendered.subject,
            body: rendered.plaintext,
            html_body: rendered.html,
            template_type: kind.name().to_owned(),
            send_count: 0,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
        })
    }
}
