//! The `portcullis-identity` command line: `serve -c kratos.yml [--dev]` and
//! `migrate sql [-e] [--yes] [DSN]`, with logging set up from `LOG_LEVEL` / `LOG_FORMAT`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::store::sql::SqlStore;

/// Kratos-compatible identity service.
#[derive(Debug, Parser)]
#[command(name = "portcullis-identity", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the public (4433) and admin (4434) APIs.
    Serve {
        /// Path to kratos.yml.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Development mode: apply migrations on start, allow insecure cookies on http, pretty logs.
        #[arg(long)]
        dev: bool,
    },
    /// Database migrations.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
}

#[derive(Debug, Subcommand)]
enum MigrateCommand {
    /// Apply all pending SQL migrations.
    #[command(alias = "up")]
    Sql {
        /// Database DSN (postgres://…, sqlite://path?mode=rwc, memory).
        dsn: Option<String>,
        /// Read the DSN from the DSN environment variable.
        #[arg(short = 'e', long = "read-from-env")]
        read_from_env: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Path to kratos.yml (its `dsn` is used when no other DSN is given).
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
}

fn init_logging(config: Option<&Config>, dev: bool) {
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .or_else(|| config.and_then(|c| c.log.level.clone()))
        .unwrap_or_else(|| "info".to_owned());
    let format = std::env::var("LOG_FORMAT")
        .ok()
        .or_else(|| config.and_then(|c| c.log.format.clone()))
        .unwrap_or_else(|| if dev { "text" } else { "json" }.to_owned());
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("{level},sqlx=warn,hyper=warn,tower=warn"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        let _ = builder.json().try_init();
    } else if dev {
        let _ = builder.pretty().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Entry point of the binary (and of the e2e wrapper).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    let (config, warnings) = match path {
        Some(p) => Config::load(p)?,
        None => Config::from_str_with_env("", PathBuf::from("."), &|n| std::env::var(n).ok())?,
    };
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, dev } => {
            // Logging needs the config's log section; warnings are printed once it is up.
            let (parsed, warnings) = match &config {
                Some(p) => Config::load(p)?,
                None => {
                    Config::from_str_with_env("", PathBuf::from("."), &|n| std::env::var(n).ok())?
                }
            };
            init_logging(Some(&parsed), dev);
            for w in warnings {
                tracing::warn!("{w}");
            }
            let mut parsed = parsed;
            parsed.stream =
                crate::schema_stream::StreamSettings::from_env(&|n| std::env::var(n).ok())?;
            let running = crate::server::start(parsed, dev).await?;
            shutdown_signal().await;
            tracing::info!("shutting down");
            running.shutdown().await;
            Ok(())
        }
        Command::Migrate {
            command:
                MigrateCommand::Sql {
                    dsn,
                    read_from_env,
                    yes,
                    config,
                },
        } => {
            init_logging(None, false);
            let dsn = if read_from_env {
                std::env::var("DSN").ok()
            } else {
                None
            }
            .or(dsn)
            .or_else(|| load_config(config.as_ref()).ok().and_then(|c| c.dsn))
            .ok_or_else(|| {
                anyhow::anyhow!("no DSN: pass one, or -e with the DSN environment variable")
            })?;
            if !yes {
                anyhow::bail!("refusing to migrate without --yes");
            }
            let store = SqlStore::connect(&dsn).await?;
            store.migrate().await?;
            store.close().await;
            eprintln!("Successfully applied migrations!");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
