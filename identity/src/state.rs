//! What every request handler shares: the store, schemas, hasher and the settings resolved from
//! the config once the listeners are bound (base URLs, UI URLs, cookie attributes, lifespans).

use std::sync::Arc;

use url::Url;

use crate::config::{Config, PasswordPolicy};
use crate::cookie::CookieAttrs;
use crate::http::error::ApiError;
use crate::password::Hasher;
use crate::schema::SchemaRegistry;
use crate::store::{IdentityRecord, SessionRecord, Store};

/// Settings resolved at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Public base URL without a trailing slash, e.g. `http://127.0.0.1:4433`.
    pub public_base: String,
    pub admin_base: String,
    pub registration_ui_url: String,
    pub login_ui_url: String,
    pub settings_ui_url: String,
    /// `selfservice.flows.error.ui_url`: browsers are sent to `<this>?id=<error id>`.
    pub error_ui_url: String,
    pub default_return_url: String,
    pub registration_return_url: Option<String>,
    pub login_return_url: Option<String>,
    pub logout_return_url: Option<String>,
    pub allowed_return_urls: Vec<Url>,
    pub registration_enabled: bool,
    pub password_enabled: bool,
    pub registration_issues_session: bool,
    pub registration_lifespan_ms: i64,
    pub login_lifespan_ms: i64,
    pub settings_lifespan_ms: i64,
    pub privileged_session_max_age_ms: i64,
    pub session_lifespan_ms: i64,
    pub session_cookie_name: String,
    pub session_cookie_persistent: bool,
    pub session_cookie: CookieAttrs,
    pub csrf_cookie_name: String,
    pub csrf_cookie: CookieAttrs,
    pub policy: PasswordPolicy,
    pub dev: bool,
}

fn trim_base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

impl Settings {
    /// Resolves settings; `public_base`/`admin_base` are used when the config sets no base_url.
    pub fn resolve(config: &Config, public_base: &str, admin_base: &str, dev: bool) -> Self {
        let public_base = trim_base(
            config
                .serve
                .public
                .base_url
                .as_deref()
                .unwrap_or(public_base),
        );
        let admin_base = trim_base(config.serve.admin.base_url.as_deref().unwrap_or(admin_base));
        let https = public_base.starts_with("https://");
        let flows = &config.selfservice.flows;
        let same_site = |v: Option<&String>| v.cloned().unwrap_or_else(|| "Lax".to_owned());
        let cookie_path = config
            .cookies
            .path
            .clone()
            .unwrap_or_else(|| "/".to_owned());
        // Kratos: secrets.cookie signs cookies, secrets.default when that list is empty.
        let cookie_secrets = if config.secrets.cookie.is_empty() {
            &config.secrets.default
        } else {
            &config.secrets.cookie
        };
        // Neither set: a random key for this process (start-up warns; cookies, not sessions, are
        // lost on restart), never an unsigned or well-known one.
        let cookie_keys = Arc::new(if cookie_secrets.is_empty() {
            let mut key = [0u8; 32];
            rand::fill(&mut key);
            crate::cookie::CookieKeys::new(&[key])
        } else {
            crate::cookie::CookieKeys::new(cookie_secrets)
        });
        let session_cookie = CookieAttrs {
            keys: cookie_keys.clone(),
            path: config
                .session
                .cookie
                .path
                .clone()
                .unwrap_or_else(|| cookie_path.clone()),
            domain: config
                .session
                .cookie
                .domain
                .clone()
                .or_else(|| config.cookies.domain.clone()),
            same_site: same_site(
                config
                    .session
                    .cookie
                    .same_site
                    .as_ref()
                    .or(config.cookies.same_site.as_ref()),
            ),
            secure: config.session.cookie.secure.unwrap_or(https),
        };
        let csrf_secure = config.cookies.secure.unwrap_or(https);
        let csrf_cookie = CookieAttrs {
            keys: cookie_keys,
            path: cookie_path,
            domain: config.cookies.domain.clone(),
            same_site: if csrf_secure {
                same_site(config.cookies.same_site.as_ref())
            } else {
                "Lax".to_owned()
            },
            secure: csrf_secure,
        };
        let lifespan_ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            registration_ui_url: flows
                .registration
                .ui_url
                .clone()
                .unwrap_or_else(|| format!("{public_base}/ui/registration")),
            login_ui_url: flows
                .login
                .ui_url
                .clone()
                .unwrap_or_else(|| format!("{public_base}/ui/login")),
            settings_ui_url: flows
                .settings
                .ui_url
                .clone()
                .unwrap_or_else(|| format!("{public_base}/ui/settings")),
            error_ui_url: flows
                .error
                .ui_url
                .clone()
                .unwrap_or_else(|| format!("{public_base}/ui/error")),
            default_return_url: config
                .selfservice
                .default_browser_return_url
                .clone()
                .unwrap_or_else(|| format!("{public_base}/ui/welcome")),
            registration_return_url: flows
                .registration
                .after
                .password
                .default_browser_return_url
                .clone()
                .or_else(|| flows.registration.after.default_browser_return_url.clone()),
            login_return_url: flows
                .login
                .after
                .password
                .default_browser_return_url
                .clone()
                .or_else(|| flows.login.after.default_browser_return_url.clone()),
            logout_return_url: flows.logout.after.default_browser_return_url.clone(),
            allowed_return_urls: config
                .selfservice
                .allowed_return_urls
                .iter()
                .filter_map(|u| Url::parse(u).ok())
                .collect(),
            registration_enabled: flows.registration.enabled,
            password_enabled: config.selfservice.methods.password.enabled,
            registration_issues_session: config.registration_issues_session(),
            registration_lifespan_ms: lifespan_ms(flows.registration.lifespan()),
            login_lifespan_ms: lifespan_ms(flows.login.lifespan()),
            settings_lifespan_ms: lifespan_ms(
                crate::config::units::parse_duration(&flows.settings.lifespan)
                    .unwrap_or(std::time::Duration::from_secs(3600)),
            ),
            privileged_session_max_age_ms: lifespan_ms(
                crate::config::units::parse_duration(&flows.settings.privileged_session_max_age)
                    .unwrap_or(std::time::Duration::from_secs(3600)),
            ),
            session_lifespan_ms: lifespan_ms(config.session.lifespan()),
            session_cookie_name: config.session.cookie.name.clone(),
            session_cookie_persistent: config.session.cookie.persistent,
            session_cookie,
            csrf_cookie_name: crate::csrf::cookie_name(&format!("{public_base}/")),
            csrf_cookie,
            policy: config.selfservice.methods.password.config.clone(),
            public_base,
            admin_base,
            dev,
        }
    }

    /// Whether a `return_to` URL is allowed: an allow-listed URL (same scheme, host or
    /// `*.domain` wildcard, path prefix) or a page of this service.
    pub fn return_to_allowed(&self, candidate: &Url) -> bool {
        if let Ok(public) = Url::parse(&self.public_base)
            && public.origin() == candidate.origin()
            && (candidate.path().starts_with("/ui/")
                || candidate.path().starts_with("/self-service"))
        {
            return true;
        }
        if let Ok(default) = Url::parse(&self.default_return_url)
            && default.origin() == candidate.origin()
            && candidate.path().starts_with(default.path())
        {
            return true;
        }
        self.allowed_return_urls.iter().any(|allowed| {
            if allowed.scheme() != candidate.scheme() {
                return false;
            }
            let (Some(allowed_host), Some(host)) = (allowed.host_str(), candidate.host_str())
            else {
                return false;
            };
            let host_ok = if let Some(suffix) = allowed_host.strip_prefix("*.") {
                host.ends_with(&format!(".{suffix}"))
            } else {
                allowed_host == host
                    && allowed.port_or_known_default() == candidate.port_or_known_default()
            };
            host_ok && candidate.path().starts_with(allowed.path())
        })
    }
}

impl Settings {
    /// `DEV_DISABLE_API_FLOW_ENFORCEMENT=true` lifts the API-flow cookie guard, in dev only.
    pub fn dev_disable_api_flow_enforcement(&self) -> bool {
        self.dev && std::env::var("DEV_DISABLE_API_FLOW_ENFORCEMENT").is_ok_and(|v| v == "true")
    }
}

/// Shared state of both routers.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Swapped atomically when the operator streams new identity schemas.
    pub schemas: Arc<arc_swap::ArcSwap<SchemaRegistry>>,
    pub hasher: Hasher,
    pub settings: Arc<Settings>,
    pub throttle: Arc<crate::throttle::Throttle>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Recovery and verification settings, their code key, and the courier.
    pub email: Arc<crate::flow::code::EmailFlows>,
    /// `secrets.cipher` (TOTP secrets at rest).
    pub cipher: Arc<crate::cipher::Cipher>,
    pub second_factor: Arc<crate::flow::second_factor::SecondFactor>,
    /// The built-in UI's compiled templates.
    pub ui: Arc<crate::ui::Templates>,
}

impl AppState {
    /// The caller's active session (token from `X-Session-Token`, cookie or Bearer), if any.
    pub async fn current_session(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<(SessionRecord, IdentityRecord)>, ApiError> {
        let Some(token) = crate::session::presented_token(
            headers,
            &self.settings.session_cookie,
            &self.settings.session_cookie_name,
        ) else {
            return Ok(None);
        };
        let now = crate::clock::now_ms();
        Ok(self
            .store
            .session_by_token(&token.hash())
            .await?
            .filter(|(s, i)| crate::session::is_active(s, i, now)))
    }

    /// Creates and stores a new session for an identity; returns it with its token.
    pub async fn issue_session(
        &self,
        identity_id: uuid::Uuid,
        method: &str,
        headers: &axum::http::HeaderMap,
    ) -> Result<(SessionRecord, crate::session::Token), ApiError> {
        let now = crate::clock::now_ms();
        let session = crate::session::new_session(
            identity_id,
            method,
            now,
            self.settings.session_lifespan_ms,
            headers,
        );
        let token = crate::session::Token::generate("ory_st_");
        self.store.insert_session(&session, &token.hash()).await?;
        Ok((session, token))
    }
}
