//! Rule matching cost per request at 10, 1 000 and 10 000 rules (regexp and glob).
//!
//! Run: `CARGO_TARGET_DIR=/work/target-gw cargo bench -p portcullis-gateway --bench matching`.
//! The cost must stay flat as rules grow: the compiled index only evaluates the rules whose
//! literal text fits the URL.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_rules::{Handler, MatchingStrategy, Rule, RuleMatch, RuleSet, Upstream};

fn rule(id: usize, url: String) -> Rule {
    Rule {
        id: format!("rule-{id}"),
        version: None,
        description: None,
        matcher: RuleMatch {
            url,
            methods: vec!["GET".to_owned(), "POST".to_owned()],
        },
        upstream: Upstream::default(),
        authenticators: vec![Handler::named("noop")],
        authorizer: Handler::named("allow"),
        mutators: vec![Handler::named("noop")],
        errors: Vec::new(),
    }
}

/// A realistic mix: per-service hosts, per-service paths with look-ahead, and scheme groups.
fn rules(n: usize, strategy: MatchingStrategy) -> Vec<Rule> {
    (0..n)
        .map(|i| {
            let url = match (strategy, i % 3) {
                (MatchingStrategy::Regexp, 0) => format!("http://svc{i}.example.com/api/<.*>"),
                (MatchingStrategy::Regexp, 1) => {
                    format!("http://shared.example.com/svc{i}/<(?!admin).*>")
                }
                (MatchingStrategy::Regexp, _) => format!("<https|http>://host{i}.example.com/<.*>"),
                (MatchingStrategy::Glob, 0) => format!("http://svc{i}.example.com/api/<**>"),
                (MatchingStrategy::Glob, 1) => format!("http://shared.example.com/svc{i}/<*>"),
                (MatchingStrategy::Glob, _) => {
                    format!("<{{https,http}}>://host{i}.example.com/<**>")
                }
            };
            rule(i, url)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    for strategy in [MatchingStrategy::Regexp, MatchingStrategy::Glob] {
        let mut group = c.benchmark_group(format!("find/{strategy:?}"));
        for n in [10usize, 1_000, 10_000] {
            let Ok(set) = RuleSet::compile(rules(n, strategy), strategy) else {
                panic!("benchmark rules must compile");
            };
            let last_of = |kind: usize| (0..n).rev().find(|i| i % 3 == kind).unwrap_or(0);
            let hit = format!("http://shared.example.com/svc{}/orders", last_of(1));
            let scheme_group = format!("https://host{}.example.com/x", last_of(2));
            for url in [&hit, &scheme_group] {
                assert!(
                    set.find("GET", url).is_ok(),
                    "benchmark URL must match: {url}"
                );
            }
            let miss = "http://unknown.example.com/nothing".to_owned();
            group.bench_with_input(BenchmarkId::new("hit_path_rule", n), &hit, |b, url| {
                b.iter(|| black_box(set.find("GET", url).is_ok()))
            });
            group.bench_with_input(
                BenchmarkId::new("hit_scheme_group_rule", n),
                &scheme_group,
                |b, url| b.iter(|| black_box(set.find("GET", url).is_ok())),
            );
            group.bench_with_input(BenchmarkId::new("miss", n), &miss, |b, url| {
                b.iter(|| black_box(set.find("GET", url).is_err()))
            });
        }
        group.finish();
    }
}

/// Rules that differ only after a `<port>` group (`http://127.0.0.1:<[0-9]+>/rNNNN/<.*>`): all
/// share their literal prefix, so the index must key them by their later literal.
fn port_group_rules(n: usize) -> Vec<Rule> {
    (0..n)
        .map(|i| rule(i, format!("http://127.0.0.1:<[0-9]+>/r{i:05}/<.*>")))
        .collect()
}

fn bench_shared_prefix(c: &mut Criterion) {
    let mut group = c.benchmark_group("find/shared_prefix_port_group");
    for n in [10usize, 1_000, 10_000] {
        let Ok(set) = RuleSet::compile(port_group_rules(n), MatchingStrategy::Regexp) else {
            panic!("benchmark rules must compile");
        };
        let hit = format!("http://127.0.0.1:4455/r{:05}/x", n / 2);
        assert!(set.find("GET", &hit).is_ok(), "benchmark URL must match");
        group.bench_with_input(BenchmarkId::new("hit", n), &hit, |b, url| {
            b.iter(|| black_box(set.find("GET", url).is_ok()))
        });
    }
    group.finish();
}

/// Building a rule set from a snapshot: from scratch, and reusing the previous set's patterns
/// when one rule of 1 000 changed (what every operator stream update costs a gateway).
fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile/1000_rules");
    group.sample_size(10);
    let rules = port_group_rules(1_000);
    let Ok(previous) = RuleSet::compile(rules.clone(), MatchingStrategy::Regexp) else {
        panic!("benchmark rules must compile");
    };
    let mut changed = rules.clone();
    changed[500].matcher.url = "http://127.0.0.1:<[0-9]+>/changed/<.*>".to_owned();
    group.bench_function("from_scratch", |b| {
        b.iter(|| black_box(RuleSet::compile(rules.clone(), MatchingStrategy::Regexp).is_ok()))
    });
    group.bench_function("one_changed_reusing_previous", |b| {
        b.iter(|| {
            black_box(
                RuleSet::compile_reusing(
                    changed.clone(),
                    MatchingStrategy::Regexp,
                    Some(&previous),
                )
                .is_ok(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_shared_prefix, bench_compile);
criterion_main!(benches);
