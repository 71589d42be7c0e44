//! Prometheus metrics (`/admin/metrics/prometheus`, also `/metrics` on the admin port): counters
//! of logins, registrations and whoami checks by outcome, named `portcullis_identity_*`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// One counter family: name, help text, label name, and (label value, count) pairs.
type Family<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, u64)>);

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub logins_succeeded: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_throttled: AtomicU64,
    pub registrations_succeeded: AtomicU64,
    pub registrations_failed: AtomicU64,
    pub whoami_active: AtomicU64,
    pub whoami_unauthorized: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let families: [Family<'_>; 3] = [
            (
                "portcullis_identity_logins_total",
                "Password login submissions by result.",
                "result",
                vec![
                    ("success", get(&self.logins_succeeded)),
                    ("failure", get(&self.logins_failed)),
                    ("throttled", get(&self.logins_throttled)),
                ],
            ),
            (
                "portcullis_identity_registrations_total",
                "Registration submissions by result.",
                "result",
                vec![
                    ("success", get(&self.registrations_succeeded)),
                    ("failure", get(&self.registrations_failed)),
                ],
            ),
            (
                "portcullis_identity_whoami_total",
                "Session checks by result.",
                "result",
                vec![
                    ("active", get(&self.whoami_active)),
                    ("unauthorized", get(&self.whoami_unauthorized)),
                ],
            ),
        ];
        for (name, help, label, values) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (value_label, value) in values {
                let _ = writeln!(out, "{name}{{{label}=\"{value_label}\"}} {value}");
            }
        }
        out
    }
}

/// whoami's session cache, appended to [`Metrics::render`] when the cache is on.
pub fn render_whoami_cache(stats: &crate::store::WhoamiCacheStats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP portcullis_identity_whoami_cache_lookups_total whoami session cache lookups by result.\n\
         # TYPE portcullis_identity_whoami_cache_lookups_total counter\n\
         portcullis_identity_whoami_cache_lookups_total{{result=\"hit\"}} {}\n\
         portcullis_identity_whoami_cache_lookups_total{{result=\"miss\"}} {}",
        stats.hits, stats.misses
    );
    let _ = writeln!(
        out,
        "# HELP portcullis_identity_whoami_cache_live 1 while the cache serves (its change notifications are being received).\n\
         # TYPE portcullis_identity_whoami_cache_live gauge\n\
         portcullis_identity_whoami_cache_live {}",
        u8::from(stats.live)
    );
    let _ = writeln!(
        out,
        "# HELP portcullis_identity_whoami_cache_entries Sessions held by the whoami cache.\n\
         # TYPE portcullis_identity_whoami_cache_entries gauge\n\
         portcullis_identity_whoami_cache_entries {}",
        stats.entries
    );
    let _ = writeln!(
        out,
        "# HELP portcullis_identity_whoami_cache_listens_total Times the cache started listening for changes (1 + reconnects).\n\
         # TYPE portcullis_identity_whoami_cache_listens_total counter\n\
         portcullis_identity_whoami_cache_listens_total {}",
        stats.listens
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.logins_succeeded);
        let text = m.render();
        assert!(text.contains("# TYPE portcullis_identity_logins_total counter"));
        assert!(text.contains("portcullis_identity_logins_total{result=\"success\"} 1"));
        assert!(text.contains("portcullis_identity_whoami_total{result=\"active\"} 0"));
    }
}
