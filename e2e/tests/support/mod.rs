//! Helpers shared by the propagation suites (cluster and local).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

/// The spec of a rule matching `/{prefix}/…` on any loopback gateway port and setting
/// `X-Rule-Tag: {tag}`: valid both as a `Rule` CR spec and as an Oathkeeper rule (plus `id`).
pub fn rule_spec(prefix: &str, upstream: u16, tag: &str) -> Value {
    json!({
        "match": {"url": format!("http://127.0.0.1:<[0-9]+>/{prefix}/<.*>"), "methods": ["GET"]},
        "upstream": {"url": format!("http://127.0.0.1:{upstream}")},
        "authenticators": [{"handler": "anonymous"}],
        "authorizer": {"handler": "allow"},
        "mutators": [{"handler": "header", "config": {"headers": {"X-Rule-Tag": tag}}}],
    })
}

/// Polls `/decisions` on the gateway API `api` until the rule for `prefix` answers with `tag`;
/// returns the instant it first did.
pub async fn wait_decision(
    http: &reqwest::Client,
    api: &str,
    prefix: &str,
    tag: &str,
    deadline: Instant,
) -> Result<Instant> {
    let url = format!("{api}/decisions/{prefix}/x");
    loop {
        let resp = http
            .get(&url)
            .header("X-Forwarded-Host", "127.0.0.1:4455")
            .header("X-Forwarded-Proto", "http")
            .send()
            .await;
        let now = Instant::now();
        if let Ok(resp) = resp
            && resp.status().is_success()
            && resp
                .headers()
                .get("x-rule-tag")
                .and_then(|v| v.to_str().ok())
                == Some(tag)
        {
            return Ok(now);
        }
        if now > deadline {
            bail!("{api} never decided {prefix} with {tag}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until every gateway in `apis` decides `prefix` with `tag`; returns how long after
/// `since` the first and the last one did.
pub async fn wait_all_gateways(
    http: &reqwest::Client,
    apis: &[String],
    prefix: &str,
    tag: &str,
    since: Instant,
    patience: Duration,
) -> Result<(Duration, Duration)> {
    let deadline = since + patience;
    let waits = apis
        .iter()
        .map(|api| wait_decision(http, api, prefix, tag, deadline));
    let mut seen = Vec::with_capacity(apis.len());
    for result in futures::future::join_all(waits).await {
        seen.push(result? - since);
    }
    seen.sort();
    Ok((seen[0], seen[seen.len() - 1]))
}

/// Percentile (nearest rank) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// The propagation report: p50/p99/max to the first and to the last gateway.
pub fn report(
    rules: usize,
    gateways: usize,
    mut first: Vec<Duration>,
    mut all: Vec<Duration>,
) -> Value {
    first.sort();
    all.sort();
    let stats = |d: &[Duration]| json!({"p50": percentile_ms(d, 50.0), "p99": percentile_ms(d, 99.0), "max": percentile_ms(d, 100.0)});
    json!({
        "rules": rules,
        "gateways": gateways,
        "changes": first.len(),
        "first_gateway_ms": stats(&first),
        "all_gateways_ms": stats(&all),
    })
}

/// Prints `report` and writes it to `$CARGO_TARGET_TMPDIR/{file}`.
pub fn publish_report(what: &str, report: &Value, file: &str) -> Result<()> {
    println!("{what}: {report:#}");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    std::fs::write(&out, serde_json::to_vec_pretty(report)?)?;
    println!("written to {}", out.display());
    Ok(())
}
