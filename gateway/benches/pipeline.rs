//! The per-request pipeline outside Pingora: match + handlers for a pass-through rule
//! (`noop → allow → noop`) and for a rule with an `anonymous` authenticator and a templated
//! `header` mutator, as `/decisions` and the proxy run them.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-gw cargo bench -p portcullis-gateway --bench pipeline`.
//! Whole-request costs against the bare Pingora floor come from `gateway/benches/profile.sh`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_gateway::config::GatewayConfig;
use portcullis_gateway::pipeline::Pipeline;
use portcullis_gateway::pipeline::session::RequestInfo;
use serde_json::json;

const RULES: &str = r#"
- id: passthrough
  match: {url: "http://gw.example/<.*>", methods: [GET]}
  upstream: {url: "http://127.0.0.1:4460"}
  authenticators: [{handler: noop}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
- id: templated
  match: {url: "http://gw.example:8080/<[a-z]+>/<.*>", methods: [GET]}
  upstream: {url: "http://127.0.0.1:4460"}
  authenticators: [{handler: anonymous}]
  authorizer: {handler: allow}
  mutators:
    - handler: header
      config:
        headers:
          X-User: "{{ print .Subject }}"
          X-Section: "{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}"
"#;

fn pipeline() -> Pipeline {
    let doc = json!({
        "authenticators": {"noop": {"enabled": true}, "anonymous": {"enabled": true}},
        "authorizers": {"allow": {"enabled": true}},
        "mutators": {"noop": {"enabled": true}, "header": {"enabled": true}},
    });
    let config = GatewayConfig::from_value(&doc, "bench", Path::new("."))
        .unwrap_or_else(|e| panic!("config: {e}"));
    let pipeline = Pipeline::new(Arc::new(config)).unwrap_or_else(|e| panic!("pipeline: {e}"));
    let rules = portcullis_rules::parse_rules(RULES.as_bytes(), "bench")
        .unwrap_or_else(|e| panic!("rules: {e}"));
    let snapshot = pipeline
        .prepare(rules)
        .unwrap_or_else(|e| panic!("prepare: {e}"));
    pipeline.install(snapshot);
    pipeline
}

fn request(host: &str, path: &str) -> RequestInfo {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_str(host).unwrap_or_else(|e| panic!("{e}")),
    );
    headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
    RequestInfo {
        method: "GET".to_owned(),
        scheme: "http".to_owned(),
        host: host.to_owned(),
        path: path.to_owned(),
        query: None,
        headers,
        remote_addr: None,
        body: None,
    }
}

fn bench(c: &mut Criterion) {
    let pipeline = pipeline();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let mut group = c.benchmark_group("pipeline");
    for (name, req) in [
        ("noop_allow_noop", request("gw.example", "/orders/42")),
        (
            "anonymous_allow_header",
            request("gw.example:8080", "/orders/42"),
        ),
    ] {
        assert!(runtime.block_on(pipeline.decide(&req)).is_ok(), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| black_box(runtime.block_on(pipeline.decide(black_box(&req))).is_ok()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
