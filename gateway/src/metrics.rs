//! Prometheus metrics, served as text on the API port at `/metrics`.
//!
//! Names follow `portcullis_gateway_<what>_<unit>`: requests by service/rule/decision/status,
//! pipeline latency histograms, the loaded rule set (size, reloads, reload errors) and cache
//! hit/miss counters. Small and dependency-free: counters are atomics behind a map that is
//! only locked to find (or create) a series.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Per-bucket counts (not cumulative: one atomic add per observation); rendering sums them.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| secs <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Request counts of one service: rule id → (decision, status) → count. Nested maps so that a
/// request is counted with borrowed keys (no allocation once its rule has been seen).
type RequestCounts = BTreeMap<String, BTreeMap<(&'static str, u16), u64>>;

/// The gateway's metrics.
pub struct Metrics {
    requests: Mutex<BTreeMap<&'static str, RequestCounts>>,
    /// Decision latency of the `decisions` and the `proxy` service (fixed: no lock per request).
    latency: [(&'static str, Histogram); 2],
    cache: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    rules_loaded: AtomicU64,
    rule_reloads: AtomicU64,
    rule_reload_errors: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            latency: [
                ("decisions", Histogram::default()),
                ("proxy", Histogram::default()),
            ],
            cache: Mutex::default(),
            rules_loaded: AtomicU64::default(),
            rule_reloads: AtomicU64::default(),
            rule_reload_errors: AtomicU64::default(),
        }
    }
}

impl Metrics {
    /// Records one decided request. `service` is `proxy` or `decisions`.
    pub fn request(
        &self,
        service: &'static str,
        rule_id: &str,
        granted: bool,
        status: u16,
        elapsed: Duration,
    ) {
        let decision = if granted { "allow" } else { "deny" };
        if let Ok(mut map) = self.requests.lock() {
            let rules = map.entry(service).or_default();
            let counts = match rules.get_mut(rule_id) {
                Some(counts) => counts,
                None => rules.entry(rule_id.to_owned()).or_default(),
            };
            *counts.entry((decision, status)).or_default() += 1;
        }
        if let Some((_, h)) = self.latency.iter().find(|(name, _)| *name == service) {
            h.observe(elapsed);
        }
    }

    /// Records a cache lookup.
    pub fn cache(&self, cache: &'static str, hit: bool) {
        if let Ok(mut map) = self.cache.lock() {
            *map.entry((cache, if hit { "hit" } else { "miss" }))
                .or_default() += 1;
        }
    }

    /// A rule set of `size` rules was installed.
    pub fn rules_installed(&self, size: usize) {
        self.rules_loaded.store(size as u64, Ordering::Relaxed);
        self.rule_reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// A reload was rejected (the last good set keeps serving).
    pub fn rules_rejected(&self) {
        self.rule_reload_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of rejected reloads so far.
    pub fn rule_reload_errors(&self) -> u64 {
        self.rule_reload_errors.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP portcullis_gateway_requests_total Requests decided, by service, rule, decision and status."
        );
        let _ = writeln!(out, "# TYPE portcullis_gateway_requests_total counter");
        if let Ok(map) = self.requests.lock() {
            for (service, rules) in map.iter() {
                for (rule, counts) in rules {
                    for ((decision, status), n) in counts {
                        let _ = writeln!(
                            out,
                            "portcullis_gateway_requests_total{{service=\"{}\",rule=\"{}\",decision=\"{decision}\",status=\"{status}\"}} {n}",
                            escape(service),
                            escape(rule)
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP portcullis_gateway_decision_duration_seconds Time spent in the access pipeline."
        );
        let _ = writeln!(
            out,
            "# TYPE portcullis_gateway_decision_duration_seconds histogram"
        );
        {
            for (service, h) in self
                .latency
                .iter()
                .filter(|(_, h)| h.count.load(Ordering::Relaxed) > 0)
            {
                let service = escape(service);
                let mut cumulative = 0;
                for (i, bound) in BUCKETS.iter().enumerate() {
                    cumulative += h.buckets[i].load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "portcullis_gateway_decision_duration_seconds_bucket{{service=\"{service}\",le=\"{bound}\"}} {cumulative}"
                    );
                }
                let count = h.count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "portcullis_gateway_decision_duration_seconds_bucket{{service=\"{service}\",le=\"+Inf\"}} {count}"
                );
                let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "portcullis_gateway_decision_duration_seconds_sum{{service=\"{service}\"}} {sum}"
                );
                let _ = writeln!(
                    out,
                    "portcullis_gateway_decision_duration_seconds_count{{service=\"{service}\"}} {count}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP portcullis_gateway_cache_requests_total Cache lookups by cache and result."
        );
        let _ = writeln!(
            out,
            "# TYPE portcullis_gateway_cache_requests_total counter"
        );
        if let Ok(map) = self.cache.lock() {
            for ((cache, result), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "portcullis_gateway_cache_requests_total{{cache=\"{cache}\",result=\"{result}\"}} {n}"
                );
            }
        }
        for (name, help, kind, value) in [
            (
                "portcullis_gateway_rules",
                "Rules in the serving rule set.",
                "gauge",
                &self.rules_loaded,
            ),
            (
                "portcullis_gateway_rule_reloads_total",
                "Rule sets installed.",
                "counter",
                &self.rule_reloads,
            ),
            (
                "portcullis_gateway_rule_reload_errors_total",
                "Rule sets rejected (last good set kept).",
                "counter",
                &self.rule_reload_errors,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.request("proxy", "r\"1", true, 200, Duration::from_micros(300));
        m.request("proxy", "r\"1", true, 200, Duration::from_millis(2));
        m.cache("jwt", true);
        m.rules_installed(3);
        let text = m.render();
        assert!(text.contains("portcullis_gateway_requests_total{service=\"proxy\",rule=\"r\\\"1\",decision=\"allow\",status=\"200\"} 2"), "{text}");
        assert!(text.contains(
            "portcullis_gateway_decision_duration_seconds_bucket{service=\"proxy\",le=\"0.0005\"} 1"
        ));
        assert!(
            text.contains(
                "portcullis_gateway_decision_duration_seconds_count{service=\"proxy\"} 2"
            )
        );
        assert!(
            text.contains(
                "portcullis_gateway_cache_requests_total{cache=\"jwt\",result=\"hit\"} 1"
            )
        );
        assert!(text.contains("portcullis_gateway_rules 3"));
    }
}
