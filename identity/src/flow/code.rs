//! What recovery and verification share: the email flows' settings, one-time codes (6 digits for
//! the `code` method, 32 alphanumerics for `link`; stored as HMAC-SHA256 keyed with the first
//! `secrets.default`/`secrets.cookie` secret; compared in constant time; single-use; expiring;
//! at most [`MAX_SUBMISSIONS`] tries per flow, then the flow is invalidated), the node layouts of
//! `choose_method` and `sent_email`, and the send step that writes flow, code and mail in one
//! transaction and answers the same whether or not the address exists.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distr::Alphanumeric;
use ring::hmac;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{FlowKind, FlowType, add_message, clear_messages, csrf_node, input_node, set_value};
use crate::clock::{now_ms, rfc3339};
use crate::config::Config;
use crate::config::units::parse_duration;
use crate::courier::{Courier, TemplateType};
use crate::http::error::ApiError;
use crate::http::negotiate::is_json_request;
use crate::state::AppState;
use crate::store::{CodeRecord, FlowRecord, MailQuota, Outbox};
use crate::text::Message;

/// Wrong codes accepted per flow before it is invalidated.
pub const MAX_SUBMISSIONS: i64 = 5;

/// Mails per address and flow kind within [`MAIL_WINDOW_MS`]; more requests get the same answer
/// but send nothing (no mail bombing through recovery or verification). Counted in the courier
/// outbox, so the quota holds across every replica on the database.
const MAILS_PER_WINDOW: i64 = 5;
const MAIL_WINDOW_MS: i64 = 15 * 60 * 1000;

/// One of the two email flows, resolved from the config.
#[derive(Debug, Clone)]
pub struct EmailFlowSettings {
    pub enabled: bool,
    pub ui_url: String,
    pub lifespan_ms: i64,
    /// `link` instead of `code`.
    pub link: bool,
    pub notify_unknown_recipients: bool,
    pub return_url: Option<String>,
}

/// The recovery and verification settings, the courier, and the key codes are hashed with.
pub struct EmailFlows {
    pub courier: Courier,
    key: hmac::Key,
    pub recovery: EmailFlowSettings,
    pub verification: EmailFlowSettings,
    pub code_lifespan_ms: i64,
    pub link_lifespan_ms: i64,
    pub show_verification_ui: bool,
}

fn millis(raw: &str) -> i64 {
    parse_duration(raw)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(3_600_000)
}

impl EmailFlows {
    pub fn new(config: &Config, public_base: &str, courier: Courier) -> Self {
        let secret = config
            .secrets
            .default
            .first()
            .or_else(|| config.secrets.cookie.first())
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_else(|| {
                tracing::warn!("no secrets.default or secrets.cookie: recovery and verification codes are keyed with a random secret and do not survive a restart");
                rand::rng().random::<[u8; 32]>().to_vec()
            });
        let flows = &config.selfservice.flows;
        let resolve = |flow: &crate::config::EmailFlow, page: &str| EmailFlowSettings {
            enabled: flow.enabled,
            ui_url: flow
                .ui_url
                .clone()
                .unwrap_or_else(|| format!("{public_base}/ui/{page}")),
            lifespan_ms: millis(&flow.lifespan),
            link: flow.method == "link",
            notify_unknown_recipients: flow.notify_unknown_recipients,
            return_url: flow.after.default_browser_return_url.clone(),
        };
        Self {
            courier,
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            recovery: resolve(&flows.recovery, "recovery"),
            verification: resolve(&flows.verification, "verification"),
            code_lifespan_ms: millis(&config.selfservice.methods.code.config.lifespan),
            link_lifespan_ms: millis(&config.selfservice.methods.link.config.lifespan),
            show_verification_ui: config.registration_shows_verification_ui(),
        }
    }

    pub fn settings(&self, kind: FlowKind) -> &EmailFlowSettings {
        if kind == FlowKind::Recovery {
            &self.recovery
        } else {
            &self.verification
        }
    }

    fn tag(&self, flow_id: Uuid, code: &str) -> hmac::Tag {
        hmac::sign(&self.key, format!("{flow_id}:{code}").as_bytes())
    }

    /// A new code (or link token) for a flow: the secret to mail and the record to store.
    pub fn new_code(
        &self,
        flow_id: Uuid,
        challenge: &Challenge<'_>,
        now: i64,
    ) -> (String, CodeRecord) {
        let code: String = if challenge.link {
            rand::rng()
                .sample_iter(Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        } else {
            format!("{:06}", rand::rng().random_range(0..1_000_000u32))
        };
        let record = CodeRecord {
            id: Uuid::new_v4(),
            flow_id,
            code_hash: hex::encode(self.tag(flow_id, &code).as_ref()),
            address: challenge.address.to_owned(),
            identity_id: Some(challenge.identity_id),
            expires_at: now.saturating_add(challenge.lifespan_ms),
            created_at: now,
        };
        (code, record)
    }

    /// An HMAC of a long-lived secret (backup codes), hex.
    pub fn hash_secret(&self, secret: &str) -> String {
        hex::encode(hmac::sign(&self.key, format!("lookup:{secret}").as_bytes()).as_ref())
    }

    /// Checks a secret against [`EmailFlows::hash_secret`]'s output in constant time.
    pub fn verify_secret(&self, secret: &str, hash: &str) -> bool {
        hex::decode(hash).is_ok_and(|tag| {
            hmac::verify(&self.key, format!("lookup:{secret}").as_bytes(), &tag).is_ok()
        })
    }

    /// The stored code matching `presented`, compared in constant time.
    pub fn matching<'a>(
        &self,
        flow_id: Uuid,
        presented: &str,
        codes: &'a [CodeRecord],
    ) -> Option<&'a CodeRecord> {
        let message = format!("{flow_id}:{}", presented.trim());
        codes.iter().find(|c| {
            hex::decode(&c.code_hash)
                .is_ok_and(|tag| hmac::verify(&self.key, message.as_bytes(), &tag).is_ok())
        })
    }
}

/// `choose_method`: the address input and the submit.
pub fn choose_nodes(link: bool) -> Vec<Value> {
    let group = if link { "link" } else { "code" };
    vec![
        input_node(
            group,
            "email",
            "email",
            None,
            true,
            Some("email"),
            Some(Message::label_email()),
        ),
        input_node(
            group,
            "method",
            "submit",
            Some(json!(group)),
            false,
            None,
            Some(Message::label_submit()),
        ),
    ]
}

/// `sent_email` with the code method: the code input, continue, and resend.
pub fn code_nodes(kind: FlowKind, address: &str) -> Vec<Value> {
    let label = if kind == FlowKind::Recovery {
        Message::label_recovery_code()
    } else {
        Message::label_verification_code()
    };
    vec![
        csrf_node(),
        input_node(
            "code",
            "code",
            "text",
            None,
            true,
            Some("one-time-code"),
            Some(label),
        ),
        input_node(
            "code",
            "method",
            "hidden",
            Some(json!("code")),
            false,
            None,
            None,
        ),
        input_node(
            "code",
            "method",
            "submit",
            Some(json!("code")),
            false,
            None,
            Some(Message::label_continue()),
        ),
        input_node(
            "code",
            "email",
            "submit",
            Some(json!(address)),
            false,
            None,
            Some(Message::label_resend_code()),
        ),
    ]
}

/// The `sent_email` message of a flow kind and method.
pub fn sent_message(kind: FlowKind, link: bool) -> Message {
    match (kind, link) {
        (FlowKind::Recovery, false) => Message::email_sent(1060003, "recovery code"),
        (FlowKind::Recovery, true) => Message::email_sent(1060002, "recovery link"),
        (_, false) => Message::email_sent(1080003, "verification code"),
        (_, true) => Message::email_sent(1080001, "verification link"),
    }
}

/// The message for a wrong, spent or expired code.
pub fn invalid_message(kind: FlowKind, link: bool) -> Message {
    match (kind, link) {
        (FlowKind::Recovery, false) => Message::code_invalid(4060006, "recovery code", "try again"),
        (FlowKind::Recovery, true) => {
            Message::code_invalid(4060004, "recovery token", "retry the flow")
        }
        (_, false) => Message::code_invalid(4070006, "verification code", "try again"),
        (_, true) => Message::code_invalid(4070001, "verification token", "retry the flow"),
    }
}

/// The link a mail carries: `<public>/self-service/<kind>?flow=<id>&code=<code>` (`token=` for
/// the link method).
pub fn mail_url(state: &AppState, kind: FlowKind, flow_id: Uuid, code: &str, link: bool) -> String {
    let param = if link { "token" } else { "code" };
    format!(
        "{}/self-service/{}?flow={flow_id}&{param}={code}",
        state.settings.public_base,
        kind.name()
    )
}

/// Who a code is for and how it is delivered.
pub struct Challenge<'a> {
    pub address: &'a str,
    pub identity_id: Uuid,
    /// How long the code stays valid.
    pub lifespan_ms: i64,
    /// A link token rather than a 6-digit code.
    pub link: bool,
}

/// Renders the mail carrying a code (the `valid` template).
pub fn code_mail(
    state: &AppState,
    kind: FlowKind,
    flow: &FlowRecord,
    code: &str,
    challenge: &Challenge<'_>,
    identity: Option<Value>,
    now: i64,
) -> Result<crate::store::CourierRecord, ApiError> {
    let (link, address, expires_in_ms) = (challenge.link, challenge.address, challenge.lifespan_ms);
    let url = mail_url(state, kind, flow.id, code, link);
    let (template, vars) = match (kind, link) {
        (FlowKind::Recovery, false) => (
            TemplateType::RecoveryCodeValid,
            json!({ "RecoveryCode": code, "RecoveryURL": url }),
        ),
        (FlowKind::Recovery, true) => (TemplateType::RecoveryValid, json!({ "RecoveryURL": url })),
        (_, false) => (
            TemplateType::VerificationCodeValid,
            json!({ "VerificationCode": code, "VerificationURL": url }),
        ),
        (_, true) => (
            TemplateType::VerificationValid,
            json!({ "VerificationURL": url }),
        ),
    };
    let mut vars = vars;
    vars["To"] = json!(address);
    vars["Identity"] = identity.unwrap_or(Value::Null);
    vars["RequestURL"] = json!(flow.request_url);
    vars["ExpiresInMinutes"] = json!(expires_in_ms / 60_000);
    state
        .email
        .courier
        .message(template, address, &vars, now)
        .map_err(template_failed)
}

fn template_failed(e: crate::courier::TemplateError) -> ApiError {
    tracing::error!(error = %e, "courier template failed");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The send step: mails a code (or link) to the address when it belongs to an identity, an
/// `invalid` notice when it does not and the config asks for one, and nothing otherwise; the
/// flow moves to `sent_email` either way, so the answer reveals nothing.
pub async fn send(
    state: &AppState,
    kind: FlowKind,
    mut record: FlowRecord,
    headers: &HeaderMap,
    address: &str,
) -> Response {
    let settings = state.email.settings(kind).clone();
    let address = address.trim().to_lowercase();
    if address.is_empty() {
        add_message(
            &mut record.ui,
            Some("email"),
            Message::missing_property("email"),
        );
        return super::flow_failed(state, kind, record, headers).await;
    }
    if !address.contains('@') || address.starts_with('@') || address.ends_with('@') {
        set_value(&mut record.ui, "email", json!(address));
        add_message(&mut record.ui, Some("email"), Message::invalid_email());
        return super::flow_failed(state, kind, record, headers).await;
    }
    let now = now_ms();
    let index = if kind == FlowKind::Recovery {
        "recovery"
    } else {
        "verifiable"
    };
    let owner = match state.store.identity_id_by_address(index, &address).await {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let identity = match owner {
        Some(id) => match state.store.identity(id).await {
            Ok(found) => found,
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => None,
    };
    let mut outbox = Outbox {
        quota: Some(mail_quota(kind, &address, now)),
        ..Outbox::default()
    };
    let lifespan = if settings.link {
        state.email.link_lifespan_ms
    } else {
        state.email.code_lifespan_ms
    };
    match identity {
        Some(identity) if identity.state == "active" || kind == FlowKind::Verification => {
            let challenge = Challenge {
                address: &address,
                identity_id: identity.id,
                lifespan_ms: lifespan,
                link: settings.link,
            };
            let (code, stored) = state.email.new_code(record.id, &challenge, now);
            let json = crate::identity::identity_json(&identity, &state.settings.public_base);
            let mail = match code_mail(state, kind, &record, &code, &challenge, Some(json), now) {
                Ok(m) => m,
                Err(e) => return e.into_response(),
            };
            outbox.codes.push(stored);
            outbox.messages.push(mail);
            if kind == FlowKind::Verification {
                let mut addresses = identity.verifiable_addresses.clone();
                if mark_sent(&mut addresses, &address, now) {
                    outbox.verifiable_addresses.push((identity.id, addresses));
                }
            }
        }
        _ if settings.notify_unknown_recipients => {
            let template = match (kind, settings.link) {
                (FlowKind::Recovery, false) => TemplateType::RecoveryCodeInvalid,
                (FlowKind::Recovery, true) => TemplateType::RecoveryInvalid,
                (_, false) => TemplateType::VerificationCodeInvalid,
                (_, true) => TemplateType::VerificationInvalid,
            };
            let vars = json!({ "To": address, "RequestURL": record.request_url });
            match state.email.courier.message(template, &address, &vars, now) {
                Ok(m) => outbox.messages.push(m),
                Err(e) => return template_failed(e).into_response(),
            }
        }
        _ => {}
    }
    clear_messages(&mut record.ui);
    record.state = "sent_email".to_owned();
    if settings.link {
        set_value(&mut record.ui, "email", json!(address));
    } else {
        record.ui["nodes"] = json!(code_nodes(kind, &address));
    }
    add_message(&mut record.ui, None, sent_message(kind, settings.link));
    match state
        .store
        .update_flow_with_outbox(&record, &outbox, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(flow = %record.id, "mail quota for this address used up; nothing sent");
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    state.email.courier.wake();
    answer(state, kind, &record, headers, Vec::new())
}

/// The per-address quota of a flow kind's mails (valid and invalid, code and link).
fn mail_quota(kind: FlowKind, address: &str, now: i64) -> MailQuota {
    let template_types = TemplateType::ALL
        .iter()
        .map(|t| t.name())
        .filter(|name| name.starts_with(kind.name()))
        .collect();
    MailQuota {
        recipient: address.to_owned(),
        template_types,
        since: now.saturating_sub(MAIL_WINDOW_MS),
        max: MAILS_PER_WINDOW,
    }
}

/// Moves an unverified address to `sent` (Kratos: `pending` → `sent` → `completed`); a verified
/// address keeps `completed`. Returns whether the list changed.
pub fn mark_sent(addresses: &mut Value, address: &str, now: i64) -> bool {
    let mut changed = false;
    for entry in addresses.as_array_mut().into_iter().flatten() {
        let matches = entry["value"]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case(address));
        if matches && entry["verified"] != json!(true) && entry["status"] != json!("sent") {
            entry["status"] = json!("sent");
            entry["updated_at"] = json!(rfc3339(now));
            changed = true;
        }
    }
    changed
}

/// 303 to the UI for a browser form post, else 200 with the flow (and `continue_with`).
pub fn answer(
    state: &AppState,
    kind: FlowKind,
    record: &FlowRecord,
    headers: &HeaderMap,
    continue_with: Vec<Value>,
) -> Response {
    if record.flow_type == "browser" && !is_json_request(headers) {
        return super::see_other(&super::ui_redirect_url(state, kind, record.id));
    }
    let mut body = super::flow_json(state, record);
    if !continue_with.is_empty() {
        body["continue_with"] = Value::Array(continue_with);
    }
    super::no_cache(axum::Json(body).into_response())
}

/// The outcome of checking a presented code.
pub enum Checked {
    /// The code is right and now spent; the flow was written in the same transaction.
    Redeemed(CodeRecord),
    /// The request already got its answer (wrong code, too many tries, storage error).
    Answered(Response),
}

/// Checks a presented code against the flow's live codes, counting the attempt. On success the
/// code is spent and `record` (already moved to its success state by `on_success`) is written
/// together with `verified` in one transaction.
pub async fn check(
    state: &AppState,
    kind: FlowKind,
    mut record: FlowRecord,
    headers: &HeaderMap,
    presented: &str,
    on_success: impl FnOnce(&mut FlowRecord, &CodeRecord) -> Option<crate::store::IdentityRecord>,
) -> Checked {
    let link = state.email.settings(kind).link;
    let now = now_ms();
    let attempts = match state.store.count_submission(record.id).await {
        Ok(n) => n,
        Err(e) => return Checked::Answered(ApiError::from(e).into_response()),
    };
    clear_messages(&mut record.ui);
    if attempts > MAX_SUBMISSIONS {
        if let Err(e) = state.store.invalidate_flow(record.id, now).await {
            return Checked::Answered(ApiError::from(e).into_response());
        }
        add_message(&mut record.ui, None, Message::too_many_attempts());
        return Checked::Answered(super::flow_failed(state, kind, record, headers).await);
    }
    let codes = match state.store.live_codes(record.id, now).await {
        Ok(c) => c,
        Err(e) => return Checked::Answered(ApiError::from(e).into_response()),
    };
    let Some(code) = state.email.matching(record.id, presented, &codes).cloned() else {
        add_message(&mut record.ui, None, invalid_message(kind, link));
        return Checked::Answered(super::flow_failed(state, kind, record, headers).await);
    };
    let verified = on_success(&mut record, &code);
    match state
        .store
        .redeem_code(code.id, &record, verified.as_ref(), now)
        .await
    {
        Ok(true) => Checked::Redeemed(code),
        Ok(false) => {
            let mut record = record;
            record.state = "sent_email".to_owned();
            clear_messages(&mut record.ui);
            add_message(&mut record.ui, None, invalid_message(kind, link));
            Checked::Answered(super::flow_failed(state, kind, record, headers).await)
        }
        Err(e) => Checked::Answered(ApiError::from(e).into_response()),
    }
}

/// Creates a flow of `kind` already in `sent_email` with a code for `identity`'s address, for
/// the admin API and the registration hook. Returns the flow, the code and its record.
pub fn sent_flow(
    state: &AppState,
    kind: FlowKind,
    flow_type: FlowType,
    csrf_token: String,
    challenge: &Challenge<'_>,
    now: i64,
) -> (FlowRecord, String, CodeRecord) {
    let (address, lifespan_ms, link) = (challenge.address, challenge.lifespan_ms, challenge.link);
    let id = Uuid::new_v4();
    let mut ui = json!({ "nodes": code_nodes(kind, address), "messages": [] });
    if link {
        let mut nodes = vec![csrf_node()];
        nodes.extend(choose_nodes(true));
        ui["nodes"] = json!(nodes);
        set_value(&mut ui, "email", json!(address));
    }
    add_message(&mut ui, None, sent_message(kind, link));
    let record = FlowRecord {
        id,
        kind: kind.name().to_owned(),
        flow_type: flow_type.name().to_owned(),
        state: "sent_email".to_owned(),
        request_url: format!(
            "{}/self-service/{}/{}",
            state.settings.public_base,
            kind.name(),
            flow_type.name()
        ),
        return_to: None,
        csrf_token,
        ui,
        identity_id: None,
        issued_at: now,
        expires_at: now.saturating_add(lifespan_ms),
        created_at: now,
        updated_at: now,
    };
    let (code, stored) = state.email.new_code(id, challenge, now);
    (record, code, stored)
}

/// The request URL of a recovery flow made by `POST /admin/recovery/{code,link}`.
pub fn admin_request_url(state: &AppState, link: bool) -> String {
    let method = if link { "link" } else { "code" };
    format!("{}/admin/recovery/{method}", state.settings.admin_base)
}

/// Whether `record` was made through the admin API (only such flows may hand their CSRF token
/// to a browser that opens their link: for any other flow that would let whoever created it
/// plant a CSRF token they know in someone else's browser).
fn made_by_admin(state: &AppState, record: &FlowRecord) -> bool {
    record.kind == FlowKind::Recovery.name()
        && (record.request_url == admin_request_url(state, false)
            || record.request_url == admin_request_url(state, true))
}

/// `expires_at` as RFC 3339, for admin answers.
pub fn expires(at: i64) -> String {
    rfc3339(at)
}

/// Which step a submission asks for.
pub enum Step {
    /// Mail a code to this address.
    Send(FlowRecord, String),
    /// Check this code (typed in, or from the mailed link).
    Check(FlowRecord, String),
    /// Already answered.
    Done(Response),
}

/// The common start of `GET|POST /self-service/{recovery,verification}?flow=`: a GET carries
/// the mailed link's `code`/`token` (no CSRF token: the secret in the link is the proof); a GET
/// without one (an admin-made recovery link opened in a browser) binds the browser to the flow's
/// CSRF token and goes to the UI; a POST is a form or JSON submission with the usual checks.
pub async fn begin(
    state: &AppState,
    kind: FlowKind,
    is_get: bool,
    query: &Value,
    headers: &HeaderMap,
    body: &[u8],
) -> Step {
    if !state.email.settings(kind).enabled {
        return Step::Done(disabled(kind).into_response());
    }
    let flow_id = query.get("flow").and_then(Value::as_str);
    if is_get {
        let record = match super::load(state, kind, flow_id).await {
            Ok(r) => r,
            Err(e) => return Step::Done(e.into_response()),
        };
        let presented = ["token", "code"]
            .iter()
            .find_map(|k| query.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        return match presented {
            Some(code) if record.expires_at > now_ms() => Step::Check(record, code),
            Some(_) => {
                let mut record = record;
                clear_messages(&mut record.ui);
                let link = state.email.settings(kind).link;
                add_message(&mut record.ui, None, invalid_message(kind, link));
                Step::Done(super::flow_failed(state, kind, record, headers).await)
            }
            None if record.flow_type == "browser" && made_by_admin(state, &record) => {
                let cookie = state.settings.csrf_cookie.header(
                    &state.settings.csrf_cookie_name,
                    &record.csrf_token,
                    Some(365 * 24 * 3600),
                );
                Step::Done(super::with_cookies(
                    super::see_other(&super::ui_redirect_url(state, kind, record.id)),
                    &[cookie],
                ))
            }
            // Any other browser flow: to its page, with the browser's own CSRF cookie (the
            // page starts over if the flow is not this browser's).
            None if record.flow_type == "browser" => Step::Done(super::see_other(
                &super::ui_redirect_url(state, kind, record.id),
            )),
            None => Step::Done(super::no_cache(
                axum::Json(super::flow_json(state, &record)).into_response(),
            )),
        };
    }
    let body = match super::parse_body(headers, body) {
        Ok(b) => b,
        Err(e) => return Step::Done(e.into_response()),
    };
    let record = match super::begin_submit(state, kind, headers, flow_id, &body).await {
        Ok(r) => r,
        Err(response) => return Step::Done(response),
    };
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if record.state == "passed_challenge" {
        let mut record = record;
        clear_messages(&mut record.ui);
        add_message(
            &mut record.ui,
            None,
            Message::validation(
                "This flow was already completed successfully and can not be retried.",
            ),
        );
        return Step::Done(super::flow_failed(state, kind, record, headers).await);
    }
    match (text("code").or_else(|| text("token")), text("email")) {
        (Some(code), _) => Step::Check(record, code),
        (None, Some(email)) => Step::Send(record, email),
        (None, None) => {
            let mut record = record;
            clear_messages(&mut record.ui);
            let (node, property) = if record.state == "sent_email" {
                ("code", "code")
            } else {
                ("email", "email")
            };
            add_message(
                &mut record.ui,
                Some(node),
                Message::missing_property(property),
            );
            Step::Done(super::flow_failed(state, kind, record, headers).await)
        }
    }
}

/// 400 `self_service_flow_disabled`.
pub fn disabled(kind: FlowKind) -> ApiError {
    ApiError::bad_request(format!(
        "The {} flow is disabled by the administrator.",
        kind.name()
    ))
    .id("self_service_flow_disabled")
}
