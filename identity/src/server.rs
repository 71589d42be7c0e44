//! Starting the service: open the store (migrating in dev / for `memory`), load schemas, bind the
//! public and admin listeners and serve until asked to stop (graceful shutdown).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::password::{HashError, Hasher};
use crate::schema::{SchemaError, SchemaRegistry};
use crate::state::{AppState, Settings};
use crate::store::StoreError;
use crate::store::dsn::Dsn;
use crate::store::sql::SqlStore;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("no DSN configured: set `dsn` in the config or the DSN environment variable")]
    NoDsn,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Hasher(#[from] HashError),
    #[error(transparent)]
    CourierTemplate(#[from] crate::courier::TemplateError),
    #[error(transparent)]
    Courier(#[from] crate::courier::sender::SenderError),
    #[error(transparent)]
    Ui(#[from] crate::ui::TemplateError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A running service.
pub struct Running {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub settings: Arc<Settings>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: SqlStore,
    /// Kept alive while serving; dropping it ends the subscription.
    _subscriber: Option<portcullis_stream::Subscriber>,
}

impl Running {
    /// Stops accepting connections, lets in-flight requests finish, closes the pool.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.store.close().await;
    }

    /// Waits until both listeners have stopped (after [`Running::shutdown`] or a failure).
    pub async fn wait(&mut self) {
        for task in self.tasks.iter_mut() {
            let _ = task.await;
        }
    }

    /// Sends the stop signal without waiting.
    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

fn base_url(addr: SocketAddr, host: &str) -> String {
    let shown = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if host.contains(':') {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("http://{shown}:{}", addr.port())
}

async fn bind(host: &str, port: u16) -> Result<TcpListener, ServeError> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Opens the store, binds both ports and starts serving in background tasks.
pub async fn start(config: Config, dev: bool) -> Result<Running, ServeError> {
    let dsn = config.dsn.clone().ok_or(ServeError::NoDsn)?;
    let store = SqlStore::connect(&dsn).await?;
    if dev || Dsn::parse(&dsn)?.memory {
        store.migrate().await?;
    } else if !crate::store::Store::ready(&store).await.unwrap_or(false) {
        tracing::warn!(
            "database migrations are pending; run `portcullis-identity migrate sql -e --yes` (or serve --dev)"
        );
    }
    let store = match config.portcullis.whoami_cache.settings() {
        Some(settings) => store.with_whoami_cache(settings).await,
        None => store,
    };
    let schema_refs = crate::schema::fetch_remote(&config.identity.schemas).await?;
    let schemas = if config.stream.is_some() {
        SchemaRegistry::load_partial(
            &schema_refs,
            &config.identity.default_schema_id,
            &config.base_dir,
        )?
    } else {
        SchemaRegistry::load(
            &schema_refs,
            &config.identity.default_schema_id,
            &config.base_dir,
        )?
    };
    let file_schemas = Arc::new(schemas);
    let registry = Arc::new(arc_swap::ArcSwap::new(file_schemas.clone()));
    let subscriber = config
        .stream
        .clone()
        .map(|s| crate::schema_stream::subscribe(s, file_schemas.clone(), registry.clone()));
    let hasher = Hasher::new(&config.hashers.argon2)?;
    let ui = Arc::new(crate::ui::Templates::load(
        config.ui_template_dir().as_deref(),
    )?);
    let courier_templates =
        crate::courier::Templates::load(config.courier_template_dir().as_deref())?;
    let transport = crate::courier::sender::Transport::from_config(&config.courier)?;
    let public = bind(&config.serve.public.host, config.serve.public.port).await?;
    let admin = bind(&config.serve.admin.host, config.serve.admin.port).await?;
    let public_addr = public.local_addr().map_err(|source| ServeError::Bind {
        addr: "public".into(),
        source,
    })?;
    let admin_addr = admin.local_addr().map_err(|source| ServeError::Bind {
        addr: "admin".into(),
        source,
    })?;
    let settings = Arc::new(Settings::resolve(
        &config,
        &base_url(public_addr, &config.serve.public.host),
        &base_url(admin_addr, &config.serve.admin.host),
        dev,
    ));
    if !settings.public_base.starts_with("https://")
        && !dev
        && config.session.cookie.secure.is_none()
    {
        tracing::warn!("public base URL is not https: session cookies are sent without Secure");
    }
    if config.secrets.cookie.is_empty() && config.secrets.default.is_empty() {
        tracing::warn!(
            "no secrets.cookie / secrets.default configured (SECRETS_COOKIE, SECRETS_DEFAULT): cookies are signed with a random key and stop working when this process restarts"
        );
    }
    let email = Arc::new(crate::flow::code::EmailFlows::new(
        &config,
        &settings.public_base,
        crate::courier::Courier::new(courier_templates),
    ));
    let cipher = crate::cipher::Cipher::new(&config.secrets.cipher);
    if config.selfservice.methods.totp.enabled && !cipher.is_configured() {
        tracing::warn!(
            "selfservice.methods.totp is enabled but secrets.cipher (SECRETS_CIPHER) is not set: TOTP enrolment is unavailable"
        );
    }
    let state = AppState {
        cipher: Arc::new(cipher),
        second_factor: Arc::new(crate::flow::second_factor::SecondFactor::from_config(
            &config,
            &settings.public_base,
        )),
        email: email.clone(),
        store: Arc::new(store.clone()),
        schemas: registry,
        hasher,
        settings: settings.clone(),
        throttle: Arc::new(crate::throttle::Throttle::new(
            config.selfservice.flows.login.throttle.to_config(),
        )),
        metrics: Arc::new(crate::metrics::Metrics::default()),
        ui,
    };
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (listener, router, name) in [
        (public, crate::http::public_router(state.clone()), "public"),
        (admin, crate::http::admin_router(state.clone()), "admin"),
    ] {
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
            {
                tracing::error!(listener = name, error = %e, "server failed");
            }
        }));
    }
    tasks.push(crate::backfill::spawn(
        state.store.clone(),
        state.schemas.clone(),
        stop_rx.clone(),
    ));
    tasks.push(crate::courier::sender::spawn(
        state.store.clone(),
        transport,
        crate::courier::sender::Schedule::from_config(&config.courier),
        email.courier.waker(),
        stop_rx.clone(),
    ));
    tracing::info!(public = %settings.public_base, admin = %settings.admin_base, "identity service listening");
    Ok(Running {
        public_addr,
        admin_addr,
        settings,
        stop,
        tasks,
        store,
        _subscriber: subscriber,
    })
}
