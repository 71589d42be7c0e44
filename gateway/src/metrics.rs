//! Prometheus metrics, served as text on the API port at `/metrics`.
//!
//! Names follow `portcullis_gateway_<what>_<unit>`: requests by service/rule/decision/status,
//! pipeline latency histograms, the loaded rule set (size, reloads, reload errors) and cache
//! hit/miss counters. Small and dependency-free. Request counters live in one
//! [`RuleCounters`] per rule id, which the compiled rule set holds: counting a request is a few
//! atomic operations, no lock and no map lookup (the proxy counts every request it serves).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// [`BUCKETS`] in nanoseconds (an observation is placed without floating point).
const BUCKETS_NANOS: [u64; BUCKETS.len()] = {
    let mut nanos = [0; BUCKETS.len()];
    let mut i = 0;
    while i < BUCKETS.len() {
        nanos[i] = (BUCKETS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    nanos
};

/// Per-bucket counts (not cumulative: one atomic add per observation); rendering sums them.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_NANOS.iter().position(|bound| nanos <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(nanos / 1_000, Ordering::Relaxed);
    }
}

/// The part of the gateway that decided a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// The `/decisions` API.
    Decisions,
    /// The proxy port.
    Proxy,
}

impl Service {
    const ALL: [Service; 2] = [Service::Decisions, Service::Proxy];

    /// The `service` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Decisions => "decisions",
            Service::Proxy => "proxy",
        }
    }
}

/// One series of a rule, packed: bit 17 the service, bit 16 allow, the low bits the status;
/// plus one, so that 0 marks a free slot.
fn series_key(service: Service, granted: bool, status: u16) -> u32 {
    ((service as u32) << 17 | u32::from(granted) << 16 | u32::from(status)) + 1
}

fn series_of(key: u32) -> (Service, &'static str, u16) {
    let raw = key - 1;
    let service = Service::ALL[(raw >> 17) as usize & 1];
    let decision = if raw & (1 << 16) != 0 {
        "allow"
    } else {
        "deny"
    };
    (service, decision, (raw & 0xffff) as u16)
}

/// Series a rule counts without a lock; a rule that sees more (service, decision, status)
/// combinations than this counts the rest in its locked overflow map.
const SLOTS: usize = 8;

#[derive(Default)]
struct Slot {
    key: AtomicU32,
    count: AtomicU64,
}

/// The request counters of one rule id. Shared by every rule set that has a rule of that id, so
/// counts go on across reloads; `""` counts requests that matched no rule.
pub struct RuleCounters {
    id: String,
    slots: [Slot; SLOTS],
    overflow: Mutex<BTreeMap<u32, u64>>,
}

impl std::fmt::Debug for RuleCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleCounters")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl RuleCounters {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            slots: Default::default(),
            overflow: Mutex::default(),
        }
    }

    /// The rule id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn count(&self, key: u32) {
        for slot in &self.slots {
            let current = slot.key.load(Ordering::Acquire);
            let mine = current == key
                || (current == 0
                    && match slot
                        .key
                        .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => true,
                        Err(other) => other == key,
                    });
            if mine {
                slot.count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if let Ok(mut overflow) = self.overflow.lock() {
            *overflow.entry(key).or_default() += 1;
        }
    }

    /// Every series with its count.
    fn series(&self) -> Vec<(u32, u64)> {
        let mut out: Vec<(u32, u64)> = self
            .slots
            .iter()
            .map(|slot| {
                (
                    slot.key.load(Ordering::Acquire),
                    slot.count.load(Ordering::Relaxed),
                )
            })
            .filter(|(key, count)| *key != 0 && *count > 0)
            .collect();
        if let Ok(overflow) = self.overflow.lock() {
            out.extend(overflow.iter().map(|(key, count)| (*key, *count)));
        }
        out
    }
}

/// The gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    /// Rule id → its counters (entries stay when a rule goes: counters never go back).
    rules: Mutex<BTreeMap<String, Arc<RuleCounters>>>,
    /// Decision latency, by [`Service`] (fixed: no lock per request).
    latency: [Histogram; 2],
    cache: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    rules_loaded: AtomicU64,
    rule_reloads: AtomicU64,
    rule_reload_errors: AtomicU64,
}

impl Metrics {
    /// The counters of rule `rule_id` (created on first use), for [`Metrics::record`].
    pub fn counters(&self, rule_id: &str) -> Arc<RuleCounters> {
        let mut rules = match self.rules.lock() {
            Ok(rules) => rules,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(counters) = rules.get(rule_id) {
            return Arc::clone(counters);
        }
        let counters = Arc::new(RuleCounters::new(rule_id));
        rules.insert(rule_id.to_owned(), Arc::clone(&counters));
        counters
    }

    /// Records one decided request of rule `rule_id` (`""`: no rule matched).
    pub fn request(
        &self,
        service: Service,
        rule_id: &str,
        granted: bool,
        status: u16,
        elapsed: Duration,
    ) {
        self.record(&self.counters(rule_id), service, granted, status, elapsed);
    }

    /// Records one decided request with the rule's counters at hand (no lock, no lookup).
    pub fn record(
        &self,
        counters: &RuleCounters,
        service: Service,
        granted: bool,
        status: u16,
        elapsed: Duration,
    ) {
        counters.count(series_key(service, granted, status));
        self.latency[service as usize].observe(elapsed);
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
        let rules: Vec<Arc<RuleCounters>> = match self.rules.lock() {
            Ok(rules) => rules.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut series = BTreeMap::new();
        for counters in &rules {
            for (key, n) in counters.series() {
                let (service, decision, status) = series_of(key);
                series.insert((service, counters.id(), decision, status), n);
            }
        }
        for ((service, rule, decision, status), n) in series {
            let _ = writeln!(
                out,
                "portcullis_gateway_requests_total{{service=\"{}\",rule=\"{}\",decision=\"{decision}\",status=\"{status}\"}} {n}",
                service.as_str(),
                escape(rule)
            );
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
            for (service, h) in Service::ALL
                .iter()
                .zip(&self.latency)
                .filter(|(_, h)| h.count.load(Ordering::Relaxed) > 0)
            {
                let service = service.as_str();
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
        m.request(
            Service::Proxy,
            "r\"1",
            true,
            200,
            Duration::from_micros(300),
        );
        m.request(Service::Proxy, "r\"1", true, 200, Duration::from_millis(2));
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

    #[test]
    fn bucket_bounds_and_series_keys_round_trip() {
        assert_eq!(
            BUCKETS_NANOS,
            [
                100_000,
                250_000,
                500_000,
                1_000_000,
                2_500_000,
                5_000_000,
                10_000_000,
                25_000_000,
                50_000_000,
                100_000_000,
                250_000_000,
                500_000_000,
                1_000_000_000,
                2_500_000_000,
            ]
        );
        for service in Service::ALL {
            for granted in [false, true] {
                for status in [0, 200, 404, 599, u16::MAX] {
                    let (s, decision, st) = series_of(series_key(service, granted, status));
                    assert_eq!((s, decision == "allow", st), (service, granted, status));
                }
            }
        }
    }

    #[test]
    fn every_series_of_a_rule_is_counted_past_its_slots() {
        let m = Metrics::default();
        let statuses: Vec<u16> = (200..200 + 2 * SLOTS as u16).collect();
        for (i, status) in statuses.iter().enumerate() {
            for _ in 0..=i {
                m.request(Service::Decisions, "r", i % 2 == 0, *status, Duration::ZERO);
            }
        }
        let text = m.render();
        for (i, status) in statuses.iter().enumerate() {
            let decision = if i % 2 == 0 { "allow" } else { "deny" };
            let line = format!(
                "portcullis_gateway_requests_total{{service=\"decisions\",rule=\"r\",decision=\"{decision}\",status=\"{status}\"}} {}\n",
                i + 1
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn counters_are_shared_by_rule_id_and_exact_across_threads() {
        let m = Arc::new(Metrics::default());
        let a = m.counters("a");
        assert!(Arc::ptr_eq(&a, &m.counters("a")));
        assert_eq!(a.id(), "a");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    let counters = m.counters("a");
                    for i in 0..1000u16 {
                        // Every thread claims slots for the same few series at once.
                        let status = 200 + (i + t) % 3;
                        m.record(&counters, Service::Proxy, true, status, Duration::ZERO);
                    }
                })
            })
            .collect();
        for thread in threads {
            assert!(thread.join().is_ok());
        }
        let text = m.render();
        let counts: Vec<u64> = (200..203)
            .map(|status| {
                let prefix = format!(
                    "portcullis_gateway_requests_total{{service=\"proxy\",rule=\"a\",decision=\"allow\",status=\"{status}\"}} "
                );
                text.lines()
                    .filter_map(|line| line.strip_prefix(prefix.as_str()))
                    .map(|n| n.parse::<u64>().unwrap_or(0))
                    .sum()
            })
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), 4000, "{text}");
        // Each series is one line, not split over several slots.
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("portcullis_gateway_requests_total{"))
                .count(),
            3,
            "{text}"
        );
        assert!(text.contains(
            "portcullis_gateway_decision_duration_seconds_count{service=\"proxy\"} 4000"
        ));
    }
}
