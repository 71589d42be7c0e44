//! Command line: `serve` (like `oathkeeper serve`) and `demo-upstream`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Portcullis gateway: an Oathkeeper-compatible identity-aware proxy.
#[derive(Parser)]
#[command(name = "portcullis-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (serve.proxy, default :4455) and the API (serve.api, default :4456).
    Serve {
        /// Path to an oathkeeper.yml (YAML or JSON).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print a new private JWK set for the id_token mutator (like `oathkeeper credentials
    /// generate`). Mount the output from a Secret and point `mutators.id_token.config.jwks_url`
    /// at it with `file://`.
    #[command(name = "credentials-generate")]
    CredentialsGenerate {
        /// Signing algorithm (ES256 only: RSA keys are generated with e.g. openssl).
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// Key id.
        #[arg(long, default_value = "portcullis-1")]
        kid: String,
    },
    /// Run a tiny echo server that answers every request with the method, path, query and
    /// headers it received (to see e.g. X-User-Id set by the gateway).
    DemoUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4460")]
        listen: String,
    },
}

/// Entry point of the `portcullis-gateway` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => match crate::server::serve(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let message = format!("{e:#}").replace('\n', " ");
                eprintln!("portcullis-gateway: {message}");
                tracing::error!("{message}");
                ExitCode::FAILURE
            }
        },
        Command::CredentialsGenerate { alg, kid } => {
            if alg != "ES256" {
                eprintln!("portcullis-gateway: only ES256 keys can be generated here");
                return ExitCode::FAILURE;
            }
            let set = crate::jose::generate_es256(&kid)
                .map(|key| crate::jose::JwkSet { keys: vec![key] });
            match set.map(|s| serde_json::to_string_pretty(&s)) {
                Ok(Ok(text)) => {
                    use std::io::Write;
                    match writeln!(std::io::stdout(), "{text}") {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(_) => ExitCode::FAILURE,
                    }
                }
                Ok(Err(e)) => {
                    eprintln!("portcullis-gateway: {e}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("portcullis-gateway: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::DemoUpstream { listen } => {
            crate::telemetry::init(None, None);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("portcullis-gateway: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(crate::demo_upstream::serve(&listen)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("portcullis-gateway: demo-upstream on {listen}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
