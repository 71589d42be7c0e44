//! The shipped example config and rules load as they are.

use std::path::Path;
use std::sync::Arc;

use portcullis_gateway::config::GatewayConfig;
use portcullis_gateway::pipeline::Pipeline;

#[test]
fn local_example_loads() -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local/oathkeeper.yml");
    let config = GatewayConfig::load(&path, Vec::new())?;
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.proxy.port, 4455);
    let pipeline = Arc::new(Pipeline::new(Arc::new(config.clone()))?);
    portcullis_gateway::repository::load(&pipeline, &config.repositories)?;
    let snapshot = pipeline.snapshot();
    assert_eq!(snapshot.rules.len(), 2);
    for url in [
        "http://127.0.0.1:4455/public/x",
        "http://localhost:4455/protected/y",
    ] {
        assert!(snapshot.rules.find("GET", url).is_ok(), "{url}");
    }
    Ok(())
}
