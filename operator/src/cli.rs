//! Command line of the `portcullis-operator` binary: flags, logging, signals, exit code.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use portcullis_rules::MatchingStrategy;
use portcullis_stream::StreamToken;

use crate::operator::{OperatorConfig, run};

/// Env var holding the stream bearer token (from a Secret).
pub const TOKEN_ENV: &str = "PORTCULLIS_STREAM_TOKEN";

/// Watches Rule and IdentitySchema objects, writes their status, and streams the valid ones to
/// Portcullis gateways and identity replicas.
#[derive(Debug, Parser)]
#[command(
    name = "portcullis-operator",
    version,
    after_help = "The stream bearer token is read from the PORTCULLIS_STREAM_TOKEN environment variable (required)."
)]
pub struct Args {
    /// Address of the HTTP port: /healthz, /readyz, /metrics, /v1/streams/{topic}.
    #[arg(
        long,
        env = "PORTCULLIS_OPERATOR_LISTEN",
        default_value = "0.0.0.0:4470"
    )]
    pub listen: SocketAddr,
    /// Namespaces to watch (repeat or comma-separate); none means all namespaces.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Also serve `rules.oathkeeper.ory.sh/v1alpha1` objects (migration from Oathkeeper-Maester).
    #[arg(long, env = "PORTCULLIS_OATHKEEPER_COMPAT")]
    pub oathkeeper_compat: bool,
    /// Pattern strategy of the gateways (`regexp` or `glob`), used to validate `match.url`.
    #[arg(long, env = "ACCESS_RULES_MATCHING_STRATEGY", default_value = "regexp")]
    pub matching_strategy: MatchingStrategy,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "portcullis-operator")]
    pub lease_name: String,
    /// Lease validity in seconds without renewal.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// This replica's identity in the Lease (defaults to the pod name / host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log level or tracing filter.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: `json` or `text`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

fn init_tracing(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if args.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(&args);
    let Some(token) = std::env::var(TOKEN_ENV).ok().and_then(StreamToken::new) else {
        tracing::error!(
            "{TOKEN_ENV} must be set to a non-empty token; refusing to serve the stream unauthenticated"
        );
        return ExitCode::FAILURE;
    };
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("portcullis-operator-{}", std::process::id()));
    let config = OperatorConfig {
        listen: args.listen,
        namespaces: args.namespaces.clone(),
        oathkeeper_compat: args.oathkeeper_compat,
        strategy: args.matching_strategy,
        lease_namespace: args.lease_namespace.clone(),
        lease_name: args.lease_name.clone(),
        lease_duration: Duration::from_secs(args.lease_seconds.max(3)),
        identity,
        token,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "operator failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
