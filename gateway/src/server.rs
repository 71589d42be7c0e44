//! `serve`: loads config and rules, then runs the Pingora proxy and the API port until SIGTERM.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::server::configuration::ServerConf;
use pingora::services::background::{BackgroundService, background_service};

use crate::config::GatewayConfig;
use crate::pipeline::Pipeline;
use crate::proxy::GatewayProxy;
use crate::{api, repository, telemetry};

/// How often rule files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_millis(500);

/// Loads everything and runs the gateway; returns only on start-up errors.
pub fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = GatewayConfig::load(config_path, std::env::vars())?;
    telemetry::init(config.log_level.as_deref(), config.log_format.as_deref());
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let stream = crate::stream::StreamSettings::from_env(|k| std::env::var(k).ok())
        .map_err(anyhow::Error::msg)?;
    if config.repositories.is_empty() && stream.is_none() {
        tracing::warn!(
            "access_rules.repositories is empty and PORTCULLIS_STREAM_URL is unset: every request will be answered 404"
        );
    }
    let config = Arc::new(config);
    let pipeline = Arc::new(Pipeline::new(Arc::clone(&config)).context("http client")?);
    if let Some(problem) = pipeline.fallback_problems().into_iter().next() {
        anyhow::bail!("{}: {problem}", config_path.display());
    }
    let repositories = Arc::new(repository::Repositories::new(
        Arc::clone(&pipeline),
        config.repositories.clone(),
    ));
    let local_contents = repositories.load_local()?;
    // A bad signing key mount (unreadable, garbage or unsupported PEM) fails start-up.
    if config
        .handler(portcullis_rules::handlers::HandlerKind::Mutator, "id_token")
        .enabled
    {
        crate::jwks::check_local_key_files(&pipeline.id_token_jwks_urls())
            .map_err(|e| anyhow::anyhow!("mutators.id_token.config.jwks_url: {e}"))?;
    }
    repositories.watch_files(local_contents, RELOAD_INTERVAL);
    let remote_repositories = if repositories.has_remote() {
        Some(
            repository::remote::RemoteRepositories::new(
                Arc::clone(&repositories),
                config.repository_poll_interval,
            )
            .context("http client for access rule repositories")?,
        )
    } else {
        None
    };

    let api_addr = config.api.addr();
    let api_listener = std::net::TcpListener::bind(&api_addr)
        .with_context(|| format!("serve.api: cannot listen on {api_addr}"))?;
    api_listener.set_nonblocking(true)?;
    let api_tls = match &config.api.tls {
        Some(pem) => Some(
            crate::tls::acceptor_builder(pem)
                .map_err(|e| anyhow::anyhow!("{}: serve.api.tls: {e}", config_path.display()))?
                .build(),
        ),
        None => None,
    };
    let proxy_tls = match &config.proxy.tls {
        Some(pem) => Some(
            crate::tls::acceptor_builder(pem)
                .map_err(|e| anyhow::anyhow!("{}: serve.proxy.tls: {e}", config_path.display()))?,
        ),
        None => None,
    };
    let prometheus_addr = config.prometheus.addr();
    let prometheus_listener = std::net::TcpListener::bind(&prometheus_addr)
        .with_context(|| format!("serve.prometheus: cannot listen on {prometheus_addr}"))?;
    prometheus_listener.set_nonblocking(true)?;
    let proxy_addr = config.proxy.addr();
    // Probe the proxy port so a conflict is a clean error rather than a panic inside Pingora.
    drop(
        std::net::TcpListener::bind(&proxy_addr)
            .with_context(|| format!("serve.proxy: cannot listen on {proxy_addr}"))?,
    );

    let conf = ServerConf {
        threads: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        GatewayProxy::new(Arc::clone(&pipeline), &config),
    );
    match proxy_tls {
        Some(builder) => proxy.add_tls_with_settings(
            &proxy_addr,
            None,
            pingora::listeners::tls::TlsSettings::from(builder),
        ),
        None => proxy.add_tcp(&proxy_addr),
    }
    server.add_service(proxy);
    server.add_service(background_service(
        "api",
        ApiService {
            listener: Mutex::new(Some(api_listener)),
            router: api::router(Arc::clone(&pipeline)),
            tls: api_tls,
        },
    ));
    server.add_service(background_service(
        "prometheus",
        ApiService {
            listener: Mutex::new(Some(prometheus_listener)),
            router: api::metrics_router(Arc::clone(&pipeline), &config.prometheus_path),
            tls: None,
        },
    ));
    pipeline.await_proxy();
    server.add_service(background_service(
        "proxy probe",
        ProxyProbe {
            addr: probe_addr(&config.proxy.host, config.proxy.port),
            tls: config.proxy.tls.is_some(),
            pipeline: Arc::clone(&pipeline),
        },
    ));
    if let Some(remote) = remote_repositories {
        server.add_service(background_service("rule repositories", remote));
    }
    if let Some(settings) = stream {
        server.add_service(background_service(
            "rules stream",
            crate::stream::StreamService::new(settings, Arc::clone(&pipeline)),
        ));
    }
    tracing::info!(proxy = %proxy_addr, api = %api_addr, "portcullis-gateway listening");
    server.run_forever()
}

/// Marks the pipeline's proxy port as accepting once a connection to it succeeds (Pingora
/// binds it after this process's other listeners): until then `/health/ready` says 503. On a
/// TLS port the probe completes a handshake (certificate not checked: it only proves the port
/// answers), since a bare connect-and-close makes Pingora log a failed handshake.
struct ProxyProbe {
    addr: String,
    tls: bool,
    pipeline: Arc<Pipeline>,
}

impl ProxyProbe {
    async fn answers(&self) -> bool {
        let Ok(tcp) = tokio::net::TcpStream::connect(&self.addr).await else {
            return false;
        };
        if !self.tls {
            return true;
        }
        let handshake = async {
            use pingora::tls::ssl::{SslConnector, SslMethod, SslVerifyMode};
            let mut builder = SslConnector::builder(SslMethod::tls()).ok()?;
            builder.set_verify(SslVerifyMode::NONE);
            let ssl = builder
                .build()
                .configure()
                .ok()?
                .verify_hostname(false)
                .into_ssl("localhost")
                .ok()?;
            let mut stream = pingora::tls::tokio_ssl::SslStream::new(ssl, tcp).ok()?;
            std::pin::Pin::new(&mut stream).connect().await.ok()?;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            Some(())
        };
        // The port is bound either way; only the log line depends on the handshake.
        let _ = tokio::time::timeout(Duration::from_secs(5), handshake).await;
        true
    }
}

#[async_trait]
impl BackgroundService for ProxyProbe {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut wait = Duration::from_millis(5);
        loop {
            if self.answers().await {
                self.pipeline.proxy_accepting();
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            wait = (wait * 2).min(Duration::from_millis(200));
        }
    }
}

/// Where this process reaches its own proxy port: the loopback address of the bound family
/// when it listens on every address.
fn probe_addr(host: &str, port: u16) -> String {
    match host {
        "" | "0.0.0.0" => format!("127.0.0.1:{port}"),
        "::" | "[::]" => format!("[::1]:{port}"),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]:{port}"),
        h => format!("{h}:{port}"),
    }
}

/// An axum router on a pre-bound listener, run as a Pingora background service.
struct ApiService {
    listener: Mutex<Option<std::net::TcpListener>>,
    router: axum::Router,
    /// Serve HTTPS with this acceptor.
    tls: Option<pingora::tls::ssl::SslAcceptor>,
}

#[async_trait]
impl BackgroundService for ApiService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = self.listener.lock().ok().and_then(|mut l| l.take());
        let Some(listener) = listener else { return };
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "API listener failed");
                return;
            }
        };
        let app = self
            .router
            .clone()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        let result = match &self.tls {
            Some(acceptor) => {
                use axum::serve::ListenerExt as _;
                match crate::tls::TlsListener::new(listener, acceptor.clone()) {
                    // `tap_io` gives the connections `ConnectInfo<SocketAddr>` like plain TCP.
                    Ok(tls) => {
                        axum::serve(tls.tap_io(|_| {}), app)
                            .with_graceful_shutdown(stop)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "API server failed");
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
