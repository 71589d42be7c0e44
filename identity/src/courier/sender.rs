//! The background sender: every `courier.worker.pull_wait` (or at once when a flow committed a
//! message) it claims up to `pull_count` due messages, delivers each, and records the outcome.
//! Claims carry a lease; a message whose sender died before finishing is claimed again once the
//! lease has run out.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use url::Url;

use crate::clock::now_ms;
use crate::config::CourierConfig;
use crate::config::units::parse_duration;
use crate::store::{CourierRecord, Delivery, Store};

/// How long a claim lasts; a delivery attempt times out well before.
const LEASE: Duration = Duration::from_secs(120);
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The courier config could not be turned into a transport.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("courier.smtp.connection_uri: {0}")]
    Uri(String),
    #[error("courier.smtp.from_address: {0}")]
    From(String),
}

/// Where messages go.
pub enum Transport {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    /// Development only: messages (codes included) are written to the log.
    Log,
}

/// The sender's schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub retries: u32,
    pub pull_count: i64,
    pub pull_wait: Duration,
    pub backoff: Duration,
}

impl Schedule {
    pub fn from_config(config: &CourierConfig) -> Self {
        Self {
            retries: config.message_retries.max(1),
            pull_count: config.worker.pull_count.clamp(1, 1000),
            pull_wait: parse_duration(&config.worker.pull_wait).unwrap_or(Duration::from_secs(1)),
            backoff: parse_duration(&config.worker.retry_backoff).unwrap_or(Duration::from_secs(1)),
        }
    }

    /// The delay before attempt `failures + 1`: backoff × 2^(failures − 1), at most 10 minutes.
    fn delay(&self, failures: i64) -> Duration {
        let exponent = u32::try_from(failures.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        self.backoff
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(MAX_BACKOFF)
    }
}

impl Transport {
    /// The transport the config asks for (see [`CourierConfig::delivery_strategy`]).
    pub fn from_config(config: &CourierConfig) -> Result<Self, SenderError> {
        let strategy = config.delivery_strategy.as_deref().unwrap_or(
            if config.smtp.connection_uri.is_some() {
                "smtp"
            } else {
                "log"
            },
        );
        if strategy == "log" {
            tracing::warn!(
                "courier: `log` delivery, messages are written to the log instead of being sent (development only)"
            );
            return Ok(Self::Log);
        }
        let uri =
            config.smtp.connection_uri.as_deref().ok_or_else(|| {
                SenderError::Uri("not set (env COURIER_SMTP_CONNECTION_URI)".into())
            })?;
        let address = config
            .smtp
            .from_address
            .parse()
            .map_err(|e: lettre::address::AddressError| SenderError::From(e.to_string()))?;
        let from = Mailbox::new(config.smtp.from_name.clone(), address);
        Ok(Self::Smtp {
            transport: smtp_transport(uri, config.smtp.local_name.as_deref())?,
            from,
        })
    }

    async fn deliver(&self, message: &CourierRecord) -> Result<(), String> {
        match self {
            Self::Log => {
                tracing::warn!(
                    target: "portcullis_identity::courier::dev_log_delivery_includes_secrets",
                    recipient = %message.recipient,
                    subject = %message.subject,
                    body = %message.body,
                    "courier message (log delivery, development only)"
                );
                Ok(())
            }
            Self::Smtp { transport, from } => {
                let to: Mailbox = message
                    .recipient
                    .parse()
                    .map_err(|e| format!("invalid recipient: {e}"))?;
                let email = lettre::Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(message.subject.clone())
                    .multipart(MultiPart::alternative_plain_html(
                        message.body.clone(),
                        message.html_body.clone(),
                    ))
                    .map_err(|e| e.to_string())?;
                transport
                    .send(email)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Builds the SMTP transport from Kratos' connection URI.
fn smtp_transport(
    uri: &str,
    local_name: Option<&str>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SenderError> {
    let url = Url::parse(uri).map_err(|e| SenderError::Uri(e.to_string()))?;
    let implicit_tls = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => return Err(SenderError::Uri(format!("unsupported scheme `{other}`"))),
    };
    let host = url
        .host_str()
        .ok_or_else(|| SenderError::Uri("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let flag = |name: &str| {
        url.query_pairs()
            .any(|(k, v)| k == name && v.eq_ignore_ascii_case("true"))
    };
    let server_name = url
        .query_pairs()
        .find(|(k, _)| k == "server_name")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| host.clone());
    let skip_verify = flag("skip_ssl_verify");
    let tls = TlsParameters::builder(server_name)
        .dangerous_accept_invalid_certs(skip_verify)
        .dangerous_accept_invalid_hostnames(skip_verify)
        .build_rustls()
        .map_err(|e| SenderError::Uri(e.to_string()))?;
    let tls = if implicit_tls {
        Tls::Wrapper(tls)
    } else if flag("disable_starttls") {
        Tls::None
    } else {
        Tls::Required(tls)
    };
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 25 });
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT))
        .hello_name(ClientId::Domain(
            local_name.unwrap_or("localhost").to_owned(),
        ));
    if !url.username().is_empty() {
        builder = builder.credentials(Credentials::new(
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or_default()),
        ));
    }
    Ok(builder.build())
}

/// `p%40ss` → `p@ss` (user info in a URL is percent-encoded; `+` stays `+`).
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = input.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts the sender; it stops when `stop` turns true.
pub fn spawn(
    store: Arc<dyn Store>,
    transport: Transport,
    schedule: Schedule,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                return;
            }
            let full = match run_once(store.as_ref(), &transport, &schedule).await {
                Ok(count) => count as i64 >= schedule.pull_count,
                Err(e) => {
                    tracing::warn!(error = %e, "courier: cannot read the outbox");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(schedule.pull_wait) => {}
                _ = wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    })
}

/// One pull: claims due messages and attempts each once. Returns how many were claimed.
pub async fn run_once(
    store: &dyn Store,
    transport: &Transport,
    schedule: &Schedule,
) -> Result<usize, crate::store::StoreError> {
    let now = now_ms();
    let lease_until = now.saturating_add(i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX));
    let batch = store
        .claim_courier_messages(now, lease_until, schedule.pull_count)
        .await?;
    for message in &batch {
        let outcome = match transport.deliver(message).await {
            Ok(()) => {
                tracing::info!(message = %message.id, template = %message.template_type, "courier: message sent");
                Delivery::Sent
            }
            Err(error) => {
                let failures = message.send_count.saturating_add(1);
                if failures >= i64::from(schedule.retries) {
                    tracing::error!(message = %message.id, %error, attempts = failures, "courier: message abandoned");
                    Delivery::Abandoned { error }
                } else {
                    let delay = schedule.delay(failures);
                    tracing::warn!(message = %message.id, %error, retry_in = ?delay, "courier: delivery failed, will retry");
                    Delivery::Retry {
                        next_attempt_at: now_ms()
                            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
                        error,
                    }
                }
            }
        };
        store
            .finish_courier_message(message.id, &outcome, now_ms())
            .await?;
    }
    Ok(batch.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let schedule = Schedule {
            retries: 5,
            pull_count: 10,
            pull_wait: Duration::from_secs(1),
            backoff: Duration::from_secs(1),
        };
        assert_eq!(schedule.delay(1), Duration::from_secs(1));
        assert_eq!(schedule.delay(2), Duration::from_secs(2));
        assert_eq!(schedule.delay(4), Duration::from_secs(8));
        assert_eq!(schedule.delay(40), MAX_BACKOFF);
    }

    #[test]
    fn user_info_is_percent_decoded() {
        assert_eq!(percent_decode("p%40ss+word%2"), "p@ss+word%2");
    }

    /// The pooled transport needs a runtime even to be built.
    #[tokio::test]
    async fn connection_uris_in_kratos_form() {
        assert!(
            smtp_transport(
                "smtp://u:p%40ss@127.0.0.1:2525/?disable_starttls=true",
                None
            )
            .is_ok()
        );
        assert!(smtp_transport("smtps://mail.example.com/?skip_ssl_verify=true", None).is_ok());
        assert!(smtp_transport("http://example.com", None).is_err());
    }
}
