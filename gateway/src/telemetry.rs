//! Logging setup: `tracing` with `LOG_LEVEL` / `LOG_FORMAT=json|text` (or `log.level` /
//! `log.format` from the config file; the environment wins).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Pingora's own logs are kept at `warn` unless asked for.
pub fn init(level: Option<&str>, format: Option<&str>) {
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .or_else(|| level.map(str::to_owned))
        .unwrap_or_else(|| "info".to_owned());
    let format = std::env::var("LOG_FORMAT")
        .ok()
        .or_else(|| format.map(str::to_owned))
        .unwrap_or_else(|| "text".to_owned());
    let directives = if level.contains('=') {
        level
    } else {
        format!("{level},pingora_core=warn,pingora_proxy=warn,pingora=warn")
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if format.eq_ignore_ascii_case("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("logging is already initialised: {e}");
    }
}
