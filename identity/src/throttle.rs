//! Login throttling (a Portcullis addition; OSS Kratos has none): failed logins are counted per
//! identifier and per client IP in a fixed window; past the limit the key is locked out for a
//! while and login answers 429. In memory and per replica, bounded in size.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits, from `selfservice.flows.login.throttle`.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Failures per identifier within `window` before a lockout.
    pub max_attempts: u32,
    /// Failures per client IP within `window` before a lockout.
    pub max_attempts_per_ip: u32,
    pub window: Duration,
    pub lockout: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_attempts: 10,
            max_attempts_per_ip: 100,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// At most this many keys are tracked; older entries are pruned first.
const MAX_KEYS: usize = 100_000;

/// Failure counters.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(identifier: &str, ip: Option<&str>) -> Vec<(String, bool)> {
        let mut keys = vec![(format!("id:{identifier}"), true)];
        if let Some(ip) = ip {
            keys.push((format!("ip:{ip}"), false));
        }
        keys
    }

    /// When locked, how long until the next attempt is allowed.
    pub fn locked(&self, identifier: &str, ip: Option<&str>, now: Instant) -> Option<Duration> {
        if !self.config.enabled {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        Self::keys(identifier, ip)
            .iter()
            .filter_map(|(k, _)| entries.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Records a failed attempt.
    pub fn failed(&self, identifier: &str, ip: Option<&str>, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_KEYS {
            let window = self.config.window;
            entries.retain(|_, e| {
                now.duration_since(e.window_start) < window
                    || e.locked_until.is_some_and(|u| u > now)
            });
        }
        for (key, per_identifier) in Self::keys(identifier, ip) {
            let limit = if per_identifier {
                self.config.max_attempts
            } else {
                self.config.max_attempts_per_ip
            };
            let entry = entries.entry(key).or_insert(Entry {
                window_start: now,
                failures: 0,
                locked_until: None,
            });
            if now.duration_since(entry.window_start) >= self.config.window {
                *entry = Entry {
                    window_start: now,
                    failures: 0,
                    locked_until: None,
                };
            }
            entry.failures = entry.failures.saturating_add(1);
            if entry.failures >= limit {
                entry.locked_until = Some(now + self.config.lockout);
            }
        }
    }

    /// A successful login clears the identifier's counter (not the IP's).
    pub fn succeeded(&self, identifier: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&format!("id:{identifier}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleConfig {
            enabled: true,
            max_attempts: 3,
            max_attempts_per_ip: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(120),
        })
    }

    #[test]
    fn identifier_is_locked_after_max_failures_until_lockout_ends() {
        let t = throttle();
        let start = Instant::now();
        for _ in 0..2 {
            t.failed("a@b.c", Some("10.0.0.1"), start);
        }
        assert_eq!(t.locked("a@b.c", Some("10.0.0.1"), start), None);
        t.failed("a@b.c", Some("10.0.0.1"), start);
        assert_eq!(
            t.locked("a@b.c", Some("10.0.0.2"), start),
            Some(Duration::from_secs(120))
        );
        assert_eq!(t.locked("other@b.c", Some("10.0.0.2"), start), None);
        assert_eq!(
            t.locked("a@b.c", None, start + Duration::from_secs(121)),
            None
        );
    }

    #[test]
    fn ip_is_locked_across_identifiers() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..5 {
            t.failed(&format!("user{i}@b.c"), Some("10.0.0.9"), now);
        }
        assert!(t.locked("fresh@b.c", Some("10.0.0.9"), now).is_some());
        assert!(t.locked("fresh@b.c", Some("10.0.0.8"), now).is_none());
    }

    #[test]
    fn success_resets_the_identifier_and_windows_expire() {
        let t = throttle();
        let now = Instant::now();
        t.failed("a@b.c", None, now);
        t.failed("a@b.c", None, now);
        t.succeeded("a@b.c");
        t.failed("a@b.c", None, now);
        assert!(t.locked("a@b.c", None, now).is_none());
        t.failed("a@b.c", None, now + Duration::from_secs(61));
        t.failed("a@b.c", None, now + Duration::from_secs(61));
        assert!(
            t.locked("a@b.c", None, now + Duration::from_secs(61))
                .is_none()
        );
    }
}
