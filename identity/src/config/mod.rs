//! The kratos.yml this service reads: file parsing (YAML or JSON), environment overrides in Ory's
//! style, defaults in one place, and warnings for keys we do not implement.

pub mod overrides;
pub mod units;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid YAML or JSON: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The parsed config file, after environment overrides. Field names are Kratos' keys.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub dsn: Option<String>,
    pub serve: Serve,
    pub identity: IdentityConfig,
    pub selfservice: SelfService,
    pub secrets: Secrets,
    pub hashers: Hashers,
    pub session: SessionConfig,
    pub cookies: Cookies,
    pub log: LogConfig,
    pub courier: CourierConfig,
    /// Portcullis' own settings, not Kratos keys.
    pub portcullis: PortcullisConfig,
    /// The folder the config file lives in; relative `file://` URLs resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The operator's config stream (from `PORTCULLIS_STREAM_*` in a cluster).
    #[serde(skip)]
    pub stream: Option<crate::schema_stream::StreamSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Serve {
    pub public: Listener,
    pub admin: Listener,
}

impl Default for Serve {
    fn default() -> Self {
        Self {
            public: Listener {
                port: 4433,
                ..Listener::default()
            },
            admin: Listener {
                port: 4434,
                ..Listener::default()
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Listener {
    pub base_url: Option<String>,
    pub host: String,
    pub port: u16,
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            base_url: None,
            host: "0.0.0.0".to_owned(),
            port: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IdentityConfig {
    pub default_schema_id: String,
    pub schemas: Vec<SchemaRef>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            default_schema_id: "default".to_owned(),
            schemas: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SchemaRef {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct SelfService {
    pub default_browser_return_url: Option<String>,
    pub allowed_return_urls: Vec<String>,
    pub methods: Methods,
    pub flows: Flows,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Methods {
    pub password: PasswordMethod,
    pub code: CodeMethod,
    pub link: CodeMethod,
    pub totp: TotpMethod,
    pub lookup_secret: TotpMethod,
}

/// `selfservice.methods.totp` (off by default, like Kratos); `config.issuer` names the service
/// in authenticator apps (default: the public host).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct TotpMethod {
    pub enabled: bool,
    pub config: TotpConfig,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct TotpConfig {
    pub issuer: Option<String>,
}

/// `selfservice.methods.code` and `.link`: on by default; `config.lifespan` is how long a code
/// or link stays valid (1h).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CodeMethod {
    pub enabled: bool,
    pub config: CodeMethodConfig,
}

impl Default for CodeMethod {
    fn default() -> Self {
        Self {
            enabled: true,
            config: CodeMethodConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CodeMethodConfig {
    pub lifespan: String,
}

impl Default for CodeMethodConfig {
    fn default() -> Self {
        Self {
            lifespan: "1h".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PasswordMethod {
    pub enabled: bool,
    pub config: PasswordPolicy,
}

impl Default for PasswordMethod {
    fn default() -> Self {
        Self {
            enabled: true,
            config: PasswordPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PasswordPolicy {
    pub min_password_length: usize,
    pub identifier_similarity_check_enabled: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_password_length: 8,
            identifier_similarity_check_enabled: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Flows {
    pub registration: FlowConfig,
    pub login: FlowConfig,
    pub settings: SettingsFlow,
    pub logout: LogoutFlow,
    pub recovery: EmailFlow,
    pub verification: EmailFlow,
    pub error: ErrorFlow,
}

/// `selfservice.flows.error`: where browsers see an error a flow ended in.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ErrorFlow {
    /// Default: the built-in `/ui/error`.
    pub ui_url: Option<String>,
}

/// `selfservice.flows.recovery` and `.verification` (off by default, like Kratos).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EmailFlow {
    pub enabled: bool,
    pub ui_url: Option<String>,
    pub lifespan: String,
    /// `code` (default) or `link`.
    #[serde(rename = "use")]
    pub method: String,
    /// Mail an "invalid" message to addresses that belong to no identity.
    pub notify_unknown_recipients: bool,
    pub after: AfterConfig,
}

impl Default for EmailFlow {
    fn default() -> Self {
        Self {
            enabled: false,
            ui_url: None,
            lifespan: "1h".to_owned(),
            method: "code".to_owned(),
            notify_unknown_recipients: false,
            after: AfterConfig::default(),
        }
    }
}

/// `courier`: outgoing mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CourierConfig {
    /// `smtp`, or `log` (Portcullis addition, for local development: messages are printed, codes
    /// included). Unset: `smtp` when `smtp.connection_uri` is set, else `log`.
    pub delivery_strategy: Option<String>,
    pub smtp: SmtpConfig,
    /// A folder of template overrides in Kratos' layout (`recovery_code/valid/email.subject.gotmpl`).
    pub template_override_path: Option<String>,
    /// Failed attempts after which a message is abandoned.
    pub message_retries: u32,
    pub worker: CourierWorker,
}

impl Default for CourierConfig {
    fn default() -> Self {
        Self {
            delivery_strategy: None,
            smtp: SmtpConfig::default(),
            template_override_path: None,
            message_retries: 5,
            worker: CourierWorker::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    /// `smtp://user:pass@host:port/` (STARTTLS unless `?disable_starttls=true`) or `smtps://`;
    /// `?skip_ssl_verify=true` accepts any certificate. Best supplied by env
    /// `COURIER_SMTP_CONNECTION_URI` since it may carry a password.
    pub connection_uri: Option<String>,
    pub from_address: String,
    pub from_name: Option<String>,
    pub local_name: Option<String>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            connection_uri: None,
            from_address: "no-reply@ory.kratos.sh".to_owned(),
            from_name: None,
            local_name: None,
        }
    }
}

/// `courier.worker`: how many messages a pull claims and how often the sender looks.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CourierWorker {
    pub pull_count: i64,
    pub pull_wait: String,
    /// Portcullis addition: the first retry delay, doubled per failure up to 10 minutes.
    pub retry_backoff: String,
}

impl Default for CourierWorker {
    fn default() -> Self {
        Self {
            pull_count: 10,
            pull_wait: "1s".to_owned(),
            retry_backoff: "1s".to_owned(),
        }
    }
}

impl Config {
    /// `courier.template_override_path` resolved against the config file's folder.
    pub fn courier_template_dir(&self) -> Option<PathBuf> {
        let raw = self.courier.template_override_path.as_deref()?;
        let raw = raw.strip_prefix("file://").unwrap_or(raw);
        (!raw.is_empty()).then(|| self.base_dir.join(raw))
    }

    /// Whether registration is followed by `show_verification_ui`.
    pub fn registration_shows_verification_ui(&self) -> bool {
        let after = &self.selfservice.flows.registration.after;
        after
            .password
            .hooks
            .iter()
            .chain(after.hooks.iter())
            .any(|h| h.hook == "show_verification_ui")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SettingsFlow {
    pub ui_url: Option<String>,
    pub lifespan: String,
    pub privileged_session_max_age: String,
    /// `highest_available` (default) or `aal1`.
    pub required_aal: String,
}

impl Default for SettingsFlow {
    fn default() -> Self {
        Self {
            ui_url: None,
            lifespan: "1h".to_owned(),
            privileged_session_max_age: "1h".to_owned(),
            required_aal: "highest_available".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FlowConfig {
    pub enabled: bool,
    pub ui_url: Option<String>,
    pub lifespan: String,
    pub after: AfterConfig,
    /// Login only (Portcullis addition): failed-login throttling.
    pub throttle: ThrottleSettings,
}

/// `selfservice.flows.login.throttle`: on by default, 10 failures per identifier or 100 per IP
/// within 15m lock that key for 15m (429).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ThrottleSettings {
    pub enabled: bool,
    pub max_attempts: u32,
    pub max_attempts_per_ip: u32,
    pub window: String,
    pub lockout_duration: String,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_attempts: 10,
            max_attempts_per_ip: 100,
            window: "15m".to_owned(),
            lockout_duration: "15m".to_owned(),
        }
    }
}

impl ThrottleSettings {
    pub fn to_config(&self) -> crate::throttle::ThrottleConfig {
        let d = |s: &str| units::parse_duration(s).unwrap_or(Duration::from_secs(900));
        crate::throttle::ThrottleConfig {
            enabled: self.enabled,
            max_attempts: self.max_attempts.max(1),
            max_attempts_per_ip: self.max_attempts_per_ip.max(1),
            window: d(&self.window),
            lockout: d(&self.lockout_duration),
        }
    }
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ui_url: None,
            lifespan: "1h".to_owned(),
            after: AfterConfig::default(),
            throttle: ThrottleSettings::default(),
        }
    }
}

impl FlowConfig {
    /// The flow lifespan; an unparsable value was rejected by [`Config::validate`].
    pub fn lifespan(&self) -> Duration {
        units::parse_duration(&self.lifespan).unwrap_or(Duration::from_secs(3600))
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct AfterConfig {
    pub default_browser_return_url: Option<String>,
    pub hooks: Vec<Hook>,
    pub password: MethodAfter,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct MethodAfter {
    pub default_browser_return_url: Option<String>,
    pub hooks: Vec<Hook>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Hook {
    pub hook: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct LogoutFlow {
    pub after: LogoutAfter,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct LogoutAfter {
    pub default_browser_return_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Secrets {
    pub default: Vec<String>,
    pub cookie: Vec<String>,
    pub cipher: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Hashers {
    pub algorithm: Option<String>,
    pub argon2: Argon2Config,
}

/// Argon2id parameters. Defaults: 64 MiB, 1 iteration, 1 lane, 16-byte salt, 32-byte key,
/// at most as many concurrent hashes as CPUs (memory × concurrency must fit the pod).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Argon2Config {
    pub memory: Value,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt_length: u32,
    pub key_length: u32,
    /// Portcullis addition: how many hashes may run at once.
    pub concurrency: Option<u32>,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory: Value::String("64MB".to_owned()),
            iterations: 1,
            parallelism: 1,
            salt_length: 16,
            key_length: 32,
            concurrency: None,
        }
    }
}

impl Argon2Config {
    /// Memory cost in KiB; numbers are bytes, strings take units (`128MB`).
    pub fn memory_kib(&self) -> Option<u32> {
        match &self.memory {
            Value::Number(n) => n.as_u64().and_then(|b| u32::try_from(b / 1024).ok()),
            Value::String(s) => units::parse_kib(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SessionConfig {
    pub lifespan: String,
    pub cookie: SessionCookie,
    pub whoami: WhoamiConfig,
}

/// `session.whoami.required_aal`: `highest_available` (default: a session of an identity with a
/// second factor must be AAL2) or `aal1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WhoamiConfig {
    pub required_aal: String,
}

impl Default for WhoamiConfig {
    fn default() -> Self {
        Self {
            required_aal: "highest_available".to_owned(),
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            lifespan: "24h".to_owned(),
            cookie: SessionCookie::default(),
            whoami: WhoamiConfig::default(),
        }
    }
}

impl SessionConfig {
    pub fn lifespan(&self) -> Duration {
        units::parse_duration(&self.lifespan).unwrap_or(Duration::from_secs(86400))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SessionCookie {
    pub name: String,
    pub domain: Option<String>,
    pub path: Option<String>,
    pub same_site: Option<String>,
    pub secure: Option<bool>,
    pub persistent: bool,
}

impl Default for SessionCookie {
    fn default() -> Self {
        Self {
            name: "ory_kratos_session".to_owned(),
            domain: None,
            path: None,
            same_site: None,
            secure: None,
            persistent: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Cookies {
    pub domain: Option<String>,
    pub path: Option<String>,
    pub same_site: Option<String>,
    pub secure: Option<bool>,
}

/// `portcullis:` — settings Kratos does not have.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct PortcullisConfig {
    pub ui: UiConfig,
    pub whoami_cache: WhoamiCacheConfig,
}

/// `portcullis.whoami_cache`: whoami's session cache on PostgreSQL, kept exact across replicas
/// by database notifications (see `store::whoami_cache`). SQLite never caches.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WhoamiCacheConfig {
    pub enabled: bool,
    /// Sessions held at most; a full cache starts again empty.
    pub max_entries: usize,
    /// How long an entry may be served without a fresh read, however quiet the notifications.
    pub max_age: String,
}

impl Default for WhoamiCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 100_000,
            max_age: "10s".to_owned(),
        }
    }
}

impl WhoamiCacheConfig {
    /// The store's settings, or `None` when the cache is off.
    pub fn settings(&self) -> Option<crate::store::sql::WhoamiCacheSettings> {
        let max_age = units::parse_duration(&self.max_age)?;
        (self.enabled && self.max_entries > 0 && !max_age.is_zero()).then_some(
            crate::store::sql::WhoamiCacheSettings {
                max_entries: self.max_entries,
                max_age,
            },
        )
    }
}

/// `portcullis.ui`: the built-in UI.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct UiConfig {
    /// A directory whose files replace the embedded templates of the same name
    /// (`layout.html`, `macros.html`, `flow.html`, `welcome.html`, `error.html`); relative
    /// paths resolve against the config file's folder.
    pub template_override_path: Option<String>,
}

impl Config {
    /// `portcullis.ui.template_override_path` resolved against the config file's folder.
    pub fn ui_template_dir(&self) -> Option<PathBuf> {
        let raw = self.portcullis.ui.template_override_path.as_deref()?;
        let raw = raw.strip_prefix("file://").unwrap_or(raw);
        if raw.is_empty() {
            return None;
        }
        Some(self.base_dir.join(raw))
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct LogConfig {
    pub level: Option<String>,
    pub format: Option<String>,
}

impl Config {
    /// Reads a kratos.yml (YAML or JSON) and applies the process environment.
    /// Returns the config and one warning per key that is not implemented.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_str_with_env(&text, base_dir, &|name| std::env::var(name).ok()).map_err(|err| {
            match err {
                ConfigError::Parse { message, .. } => ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                },
                other => other,
            }
        })
    }

    /// Parses config text with an explicit environment (tests pass their own).
    pub fn from_str_with_env(
        text: &str,
        base_dir: PathBuf,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let mut root: Value = if text.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
                path: PathBuf::new(),
                message: e.to_string(),
            })?
        };
        if root.is_null() {
            root = Value::Object(Default::default());
        }
        let warnings = overrides::unsupported_keys(&root)
            .into_iter()
            .map(|key| {
                format!("config key `{key}` is not supported by portcullis-identity and is ignored")
            })
            .collect();
        overrides::apply_env(&mut root, env);
        let mut config: Config =
            serde_json::from_value(root).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.base_dir = base_dir;
        config.validate()?;
        Ok((config, warnings))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            (
                "selfservice.flows.registration.lifespan",
                &self.selfservice.flows.registration.lifespan,
            ),
            (
                "selfservice.flows.login.lifespan",
                &self.selfservice.flows.login.lifespan,
            ),
            ("session.lifespan", &self.session.lifespan),
            (
                "selfservice.flows.settings.lifespan",
                &self.selfservice.flows.settings.lifespan,
            ),
            (
                "selfservice.flows.settings.privileged_session_max_age",
                &self.selfservice.flows.settings.privileged_session_max_age,
            ),
            (
                "selfservice.flows.recovery.lifespan",
                &self.selfservice.flows.recovery.lifespan,
            ),
            (
                "selfservice.flows.verification.lifespan",
                &self.selfservice.flows.verification.lifespan,
            ),
            (
                "selfservice.methods.code.config.lifespan",
                &self.selfservice.methods.code.config.lifespan,
            ),
            (
                "selfservice.methods.link.config.lifespan",
                &self.selfservice.methods.link.config.lifespan,
            ),
            ("courier.worker.pull_wait", &self.courier.worker.pull_wait),
            (
                "portcullis.whoami_cache.max_age",
                &self.portcullis.whoami_cache.max_age,
            ),
            (
                "courier.worker.retry_backoff",
                &self.courier.worker.retry_backoff,
            ),
        ] {
            if units::parse_duration(value).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "{key}: `{value}` is not a duration like 1h or 30m"
                )));
            }
        }
        for (key, method) in [
            (
                "selfservice.flows.recovery.use",
                &self.selfservice.flows.recovery.method,
            ),
            (
                "selfservice.flows.verification.use",
                &self.selfservice.flows.verification.method,
            ),
        ] {
            if method != "code" && method != "link" {
                return Err(ConfigError::Invalid(format!(
                    "{key}: `{method}` is neither `code` nor `link`"
                )));
            }
        }
        if let Some(strategy) = &self.courier.delivery_strategy
            && strategy != "smtp"
            && strategy != "log"
        {
            return Err(ConfigError::Invalid(format!(
                "courier.delivery_strategy: `{strategy}` is not supported (smtp or log)"
            )));
        }
        if self.hashers.argon2.memory_kib().is_none() {
            return Err(ConfigError::Invalid(
                "hashers.argon2.memory: expected a size like 64MB".to_owned(),
            ));
        }
        if let Some(alg) = &self.hashers.algorithm
            && alg != "argon2"
        {
            tracing::warn!(
                algorithm = %alg,
                "hashers.algorithm: only argon2 is written; other algorithms are verified on import"
            );
        }
        for (key, list) in [
            ("secrets.default", &self.secrets.default),
            ("secrets.cookie", &self.secrets.cookie),
        ] {
            if list.iter().any(|s| s.len() < 16) {
                return Err(ConfigError::Invalid(format!(
                    "{key}: every secret must be at least 16 characters long"
                )));
            }
        }
        if self.secrets.cipher.iter().any(|s| s.len() != 32) {
            return Err(ConfigError::Invalid(
                "secrets.cipher: every secret must be exactly 32 characters long".to_owned(),
            ));
        }
        Ok(())
    }

    /// Hook names configured after a successful registration with a password.
    pub fn registration_issues_session(&self) -> bool {
        let after = &self.selfservice.flows.registration.after;
        after
            .password
            .hooks
            .iter()
            .chain(after.hooks.iter())
            .any(|h| h.hook == "session")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kratos() {
        let (config, warnings) =
            Config::from_str_with_env("", PathBuf::from("."), &|_| None).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config.serve.public.port, 4433);
        assert_eq!(config.serve.admin.port, 4434);
        assert_eq!(config.session.cookie.name, "ory_kratos_session");
        assert_eq!(config.session.lifespan(), Duration::from_secs(86400));
        assert_eq!(config.identity.default_schema_id, "default");
    }

    #[test]
    fn short_secrets_are_rejected() {
        let err =
            Config::from_str_with_env("secrets: {cookie: [short]}", PathBuf::new(), &|_| None)
                .unwrap_err();
        assert!(err.to_string().contains("secrets.cookie"));
    }
}
