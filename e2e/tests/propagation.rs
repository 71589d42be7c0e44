//! Rule propagation from the operator's side to the first gateway decision, without an API
//! server: the operator's own evaluation (`RuleEvaluator`, as its reconcile runs it) and its
//! stream server (`portcullis-stream`) in this process, three real gateway processes subscribed
//! over loopback, 1 000 rules. The clock starts when the changed rule set reaches the evaluator
//! (the moment the operator's watch cache holds the change) and stops at the first — and the
//! last — gateway decision that uses it.
//!
//! Correctness is asserted (every change reaches all three gateways; the snapshot carries all
//! 1 000 rules); the timing is reported (printed and written to
//! `$CARGO_TARGET_TMPDIR/propagation-local.json`), never asserted. With a real API server,
//! `cluster.rs` measures the whole path from the API server's acceptance.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use portcullis_e2e::{Database, Stack, StackOptions, StreamEnv, binaries};
use portcullis_operator::evaluation::{Candidate, ObjectKey, RuleEvaluator};
use portcullis_rules::MatchingStrategy;
use portcullis_stream::{Publisher, StreamToken, TOPIC_IDENTITY_SCHEMAS, TOPIC_RULES};
use serde_json::Value;
use support::{publish_report, report, rule_spec, wait_all_gateways, wait_decision};

mod support;

const RULES: usize = 1000;
const CHANGES: usize = 30;
const PATIENCE: Duration = Duration::from_secs(60);
const TOKEN: &str = "propagation-stream-token";

fn candidate(index: usize, upstream: u16, tag: &str) -> Result<Candidate> {
    let name = format!("r{index:04}");
    let mut spec = rule_spec(&name, upstream, tag);
    spec["id"] = Value::from(format!("{name}.e2e"));
    Ok(Candidate {
        key: ObjectKey {
            group: "portcullis.dev".into(),
            namespace: "e2e".into(),
            name,
        },
        created: Some(i64::try_from(index)?),
        rule: serde_json::from_value(spec)?,
    })
}

/// What the operator's reconcile does on a change: evaluate every rule, publish the served ones.
fn evaluate_and_publish(
    evaluator: &RuleEvaluator,
    publisher: &Publisher,
    candidates: Vec<Candidate>,
) -> Result<usize> {
    let evaluation = evaluator.evaluate(candidates);
    let items = evaluation
        .served
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    let served = items.len();
    publisher.publish(TOPIC_RULES, items)?;
    Ok(served)
}

#[tokio::test]
async fn rule_change_reaches_three_gateways_with_1000_rules() -> Result<()> {
    let publisher = Publisher::new();
    let token = StreamToken::new(TOKEN).context("token")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let stream_addr = listener.local_addr()?;
    let router = portcullis_stream::server::router(publisher.clone(), token);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // The stack's demo upstream port is only known once it runs; the rules name it, so the
    // first snapshot is published with a placeholder and replaced before anything is measured.
    publisher.publish(TOPIC_IDENTITY_SCHEMAS, Vec::new())?;
    publisher.publish(TOPIC_RULES, Vec::new())?;
    let options = StackOptions {
        stream: Some(StreamEnv {
            url: format!("http://{stream_addr}/"),
            token: TOKEN.to_owned(),
        }),
        ..StackOptions::default()
    };
    let Some(stack) = Stack::start_with(&binaries!(), Database::Sqlite, options).await else {
        server.abort();
        return Ok(());
    };
    let upstream = stack.upstream;
    let evaluator = RuleEvaluator::new(MatchingStrategy::Regexp);
    let all_rules = |tag_of: &dyn Fn(usize) -> String| -> Result<Vec<Candidate>> {
        (0..RULES)
            .map(|i| candidate(i, upstream, &tag_of(i)))
            .collect()
    };
    let served = evaluate_and_publish(&evaluator, &publisher, all_rules(&|_| "t0".into())?)?;
    assert_eq!(served, RULES, "every generated rule is valid and served");

    let extra = [stack.add_gateway().await, stack.add_gateway().await];
    let apis = [
        format!("http://127.0.0.1:{}", stack.gateway_api),
        extra[0].api_url(""),
        extra[1].api_url(""),
    ];
    let http = reqwest::Client::new();
    for api in &apis {
        wait_decision(&http, api, "r0999", "t0", Instant::now() + PATIENCE).await?;
    }

    let target = RULES / 2;
    let prefix = format!("r{target:04}");
    let mut first = Vec::with_capacity(CHANGES);
    let mut all = Vec::with_capacity(CHANGES);
    for round in 1..=CHANGES {
        let tag = format!("t{round}");
        let candidates = all_rules(&|i| {
            if i == target {
                tag.clone()
            } else {
                "t0".into()
            }
        })?;
        let changed = Instant::now();
        evaluate_and_publish(&evaluator, &publisher, candidates)?;
        let (to_first, to_all) =
            wait_all_gateways(&http, &apis, &prefix, &tag, changed, PATIENCE).await?;
        first.push(to_first);
        all.push(to_all);
    }
    publish_report(
        "propagation (operator evaluation → gateway decision, no API server)",
        &report(RULES, apis.len(), first, all),
        "propagation-local.json",
    )?;
    server.abort();
    Ok(())
}
