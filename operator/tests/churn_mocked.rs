//! Bad input and churn at scale, through the same publish path the controllers run: thousands of
//! Rules of which many are broken in every way the CRD schema cannot catch, then apply/delete
//! loops. The good rules are always served, every bad one gets the right reason, and what the
//! operator keeps (the validation memo, the published snapshot) follows the live set instead of
//! growing with the history.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use portcullis_crds::{Handler, Rule};
use portcullis_operator::Context;
use portcullis_operator::evaluation::{ObjectKey, Reason};
use portcullis_operator::rule_controller::publish_rules;
use portcullis_stream::TOPIC_RULES;
use serde_json::json;
use support::{FakeApi, context, rule, synced_store};

/// How a generated rule is broken, if at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Good,
    BrokenRegex,
    UnknownHandler,
    NonObjectConfig,
    Huge,
}

const KINDS: [Kind; 5] = [
    Kind::Good,
    Kind::BrokenRegex,
    Kind::UnknownHandler,
    Kind::NonObjectConfig,
    Kind::Huge,
];

/// Rule `n`: every fifth is good, the others broken in turn (`Huge` is valid, only large).
fn generated(n: usize) -> (Rule, Kind) {
    let kind = KINDS[n % KINDS.len()];
    let url = match kind {
        Kind::BrokenRegex => format!("http://churn.example/r{n}/<[unclosed>"),
        _ => format!("http://churn.example/r{n}/<.*>"),
    };
    let mut rule = rule(&format!("r{n}"), i64::try_from(n).unwrap_or(0), &url);
    match kind {
        Kind::UnknownHandler => {
            rule.spec.authorizer = Some(Handler {
                handler: "opa_but_not_really".into(),
                config: None,
            });
        }
        Kind::NonObjectConfig => {
            rule.spec.authenticators = Some(vec![Handler {
                handler: "anonymous".into(),
                config: Some(json!(["not", "an", "object"])),
            }]);
        }
        Kind::Huge => {
            // 16 KiB of header templates: big, but valid.
            let headers: serde_json::Map<String, serde_json::Value> = (0..64)
                .map(|i| (format!("X-Big-{i}"), json!("x".repeat(256))))
                .collect();
            rule.spec.mutators = Some(vec![Handler {
                handler: "header".into(),
                config: Some(json!({"headers": headers})),
            }]);
        }
        Kind::Good | Kind::BrokenRegex => {}
    }
    (rule, kind)
}

fn served(ctx: &Context) -> BTreeSet<String> {
    ctx.publisher
        .current(TOPIC_RULES)
        .map(|s| {
            s.items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn with_rules(ctx: Arc<Context>, rules: &[Rule]) -> Result<Arc<Context>> {
    let mut inner = Arc::try_unwrap(ctx).map_err(|_| anyhow::anyhow!("context shared"))?;
    inner.rules = vec![synced_store(rules)];
    Ok(Arc::new(inner))
}

fn key(n: usize) -> ObjectKey {
    ObjectKey {
        group: "portcullis.dev".into(),
        namespace: "shop".into(),
        name: format!("r{n}"),
    }
}

#[tokio::test]
async fn thousands_of_rules_with_every_kind_of_bad_input() -> Result<()> {
    const N: usize = 3000;
    let api = FakeApi::default();
    let (rules, kinds): (Vec<Rule>, Vec<Kind>) = (0..N).map(generated).unzip();
    let ctx = context(&api, &rules, false);
    let (evaluation, _) = publish_rules(&ctx).await?;

    let expected: BTreeSet<String> = (0..N)
        .filter(|n| matches!(kinds[*n], Kind::Good | Kind::Huge))
        .map(|n| format!("r{n}.shop"))
        .collect();
    ensure!(served(&ctx) == expected, "served set differs");
    for (n, kind) in kinds.iter().enumerate() {
        let verdict = evaluation.verdicts.get(&key(n)).context("verdict")?;
        let want = match kind {
            Kind::Good | Kind::Huge => Reason::Valid,
            Kind::BrokenRegex => Reason::InvalidPattern,
            Kind::UnknownHandler => Reason::UnknownHandler,
            Kind::NonObjectConfig => Reason::InvalidHandlerConfig,
        };
        ensure!(
            verdict.reason == want,
            "r{n} ({kind:?}): {:?} {}",
            verdict.reason,
            verdict.message
        );
        if want != Reason::Valid {
            ensure!(!verdict.message.is_empty(), "r{n}: a rejection says why");
        }
    }
    ensure!(
        ctx.evaluator.remembered() == N,
        "one memo entry per live rule"
    );
    Ok(())
}

#[tokio::test]
async fn apply_delete_churn_keeps_good_rules_served_and_memory_bounded() -> Result<()> {
    const LIVE: usize = 300;
    const ROUNDS: usize = 20;
    const STEP: usize = 30;
    let api = FakeApi::default();
    // A window of LIVE rule numbers slides forward by STEP per round: STEP deleted, STEP created.
    let window = |round: usize| (round * STEP)..(round * STEP + LIVE);
    let rules_at = |round: usize| window(round).map(|n| generated(n).0).collect::<Vec<_>>();
    let mut ctx = context(&api, &rules_at(0), false);
    let mut last_version = 0;
    for round in 0..ROUNDS {
        ctx = with_rules(ctx, &rules_at(round))?;
        let (_, version) = publish_rules(&ctx).await?;
        ensure!(
            version > last_version,
            "round {round}: a change is a new version"
        );
        last_version = version;
        let expected: BTreeSet<String> = window(round)
            .filter(|n| matches!(generated(*n).1, Kind::Good | Kind::Huge))
            .map(|n| format!("r{n}.shop"))
            .collect();
        ensure!(
            served(&ctx) == expected,
            "round {round}: served set differs"
        );
        // Nothing accumulates: the memo holds the live rules only.
        ensure!(
            ctx.evaluator.remembered() == LIVE,
            "round {round}: memo has {} entries for {LIVE} live rules",
            ctx.evaluator.remembered()
        );
    }
    // Deleting everything serves an empty set (and says so with a new version).
    ctx = with_rules(ctx, &[])?;
    let (_, version) = publish_rules(&ctx).await?;
    ensure!(version > last_version);
    ensure!(served(&ctx).is_empty());
    ensure!(ctx.evaluator.remembered() == 0);
    Ok(())
}
