//! Behavioural detection: counts of a signal per key (client address, user, app) over a sliding
//! window (two fixed buckets, the previous one weighted by how much of it still overlaps), or of
//! distinct values (users seen from one address: credential stuffing). A rule trips once per
//! window when its threshold is reached; the caller alerts and may ban the key. Memory is bounded:
//! idle keys expire, and at most [`MAX_KEYS`] are tracked.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys tracked at most (over all rules).
pub const MAX_KEYS: u64 = 200_000;

/// What the gateway observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// 401 from a route, or a sign-in that failed at the provider.
    AuthFailure,
    /// 404.
    NotFound,
    /// 429 from a rate limit.
    RateLimited,
    /// A refused SM2 / HMAC-SM3 request signature.
    SignatureFailure,
    /// A request scored as an attack by inspection.
    Attack,
    /// Personal values masked in responses (bulk exfiltration); the amount is the count.
    MaskedValues,
    /// A successful sign-in or token; the value is the user (distinct users per key).
    SignIn,
}

impl Signal {
    pub const ALL: [(&'static str, Signal); 7] = [
        ("auth-failure", Signal::AuthFailure),
        ("not-found", Signal::NotFound),
        ("rate-limited", Signal::RateLimited),
        ("signature-failure", Signal::SignatureFailure),
        ("attack", Signal::Attack),
        ("masked-values", Signal::MaskedValues),
        ("distinct-users", Signal::SignIn),
    ];

    pub fn parse(s: &str) -> Option<Signal> {
        Signal::ALL.iter().find(|(n, _)| *n == s).map(|(_, x)| *x)
    }

    pub fn name(self) -> &'static str {
        Signal::ALL
            .iter()
            .find(|(_, x)| *x == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Who a rule counts per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    ClientIp,
    User,
    App,
}

impl KeyKind {
    /// The ban-list prefix for this kind of key.
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::ClientIp => "ip",
            KeyKind::User => "user",
            KeyKind::App => "app",
        }
    }
}

/// A compiled `[[detect]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub signal: Signal,
    pub key: KeyKind,
    pub threshold: u64,
    pub window: Duration,
    /// Ban the key for this long when the rule trips.
    pub ban: Option<Duration>,
    pub severity: crate::Severity,
}

/// The keys of one observation.
#[derive(Debug, Default, Clone)]
pub struct Keys<'a> {
    pub ip: Option<&'a str>,
    pub user: Option<&'a str>,
    pub app: Option<&'a str>,
}

/// A rule that tripped.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    pub rule: Rule,
    /// `ip:203.0.113.7`, `user:alice`...
    pub key: String,
    pub count: u64,
}

#[derive(Debug)]
struct Counter {
    start: Instant,
    current: u64,
    previous: u64,
    distinct: HashSet<String>,
    previous_distinct: usize,
    tripped_until: Option<Instant>,
}

impl Counter {
    fn new() -> Counter {
        Counter {
            start: Instant::now(),
            current: 0,
            previous: 0,
            distinct: HashSet::new(),
            previous_distinct: 0,
            tripped_until: None,
        }
    }

    /// Rolls the buckets forward and returns the sliding estimate's weight of the previous one.
    fn roll(&mut self, window: Duration, now: Instant) -> f64 {
        let mut elapsed = now.duration_since(self.start);
        if elapsed >= window * 2 {
            self.previous = 0;
            self.previous_distinct = 0;
            self.current = 0;
            self.distinct.clear();
            self.start = now;
            elapsed = Duration::ZERO;
        } else if elapsed >= window {
            self.previous = self.current;
            self.previous_distinct = self.distinct.len();
            self.current = 0;
            self.distinct.clear();
            self.start += window;
            elapsed -= window;
        }
        1.0 - elapsed.as_secs_f64() / window.as_secs_f64().max(0.001)
    }
}

pub struct Detector {
    rules: Vec<Rule>,
    counters: moka::sync::Cache<(usize, String), Arc<Mutex<Counter>>>,
}

impl Detector {
    pub fn new(rules: Vec<Rule>) -> Detector {
        let longest = rules
            .iter()
            .map(|r| r.window)
            .max()
            .unwrap_or(Duration::from_secs(60));
        Detector {
            rules,
            counters: moka::sync::Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_idle(longest * 2)
                .build(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Records `amount` of `signal` (with `value` for distinct counting) and returns the rules
    /// that tripped now.
    pub fn observe(
        &self,
        signal: Signal,
        keys: &Keys<'_>,
        amount: u64,
        value: Option<&str>,
    ) -> Vec<Trip> {
        let mut out = Vec::new();
        let now = Instant::now();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.signal != signal {
                continue;
            }
            let Some(k) = (match rule.key {
                KeyKind::ClientIp => keys.ip,
                KeyKind::User => keys.user,
                KeyKind::App => keys.app,
            }) else {
                continue;
            };
            let key = format!("{}:{k}", rule.key.prefix());
            let counter = self
                .counters
                .get_with((i, key.clone()), || Arc::new(Mutex::new(Counter::new())));
            let Ok(mut c) = counter.lock() else { continue };
            let weight = c.roll(rule.window, now);
            let count = if signal == Signal::SignIn {
                if let Some(v) = value {
                    if c.distinct.len() as u64 <= rule.threshold {
                        c.distinct.insert(v.to_string());
                    }
                }
                (c.previous_distinct as f64 * weight) as u64 + c.distinct.len() as u64
            } else {
                c.current = c.current.saturating_add(amount);
                (c.previous as f64 * weight) as u64 + c.current
            };
            let quiet = c.tripped_until.is_some_and(|t| now < t);
            if count >= rule.threshold && !quiet {
                c.tripped_until = Some(now + rule.window);
                out.push(Trip {
                    rule: rule.clone(),
                    key,
                    count,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn rule(signal: Signal, threshold: u64) -> Rule {
        Rule {
            name: "r".into(),
            signal,
            key: KeyKind::ClientIp,
            threshold,
            window: Duration::from_secs(60),
            ban: None,
            severity: Severity::Warning,
        }
    }

    #[test]
    fn trips_once_per_window_at_the_threshold() {
        let d = Detector::new(vec![rule(Signal::AuthFailure, 5)]);
        let k = Keys {
            ip: Some("203.0.113.7"),
            ..Keys::default()
        };
        let trips: Vec<usize> = (0..20)
            .map(|_| d.observe(Signal::AuthFailure, &k, 1, None).len())
            .collect();
        assert_eq!(trips.iter().sum::<usize>(), 1);
        assert_eq!(trips[4], 1, "the fifth failure trips");
        let other = Keys {
            ip: Some("198.51.100.1"),
            ..Keys::default()
        };
        assert!(d.observe(Signal::AuthFailure, &other, 1, None).is_empty());
        assert!(d.observe(Signal::NotFound, &k, 100, None).is_empty());
    }

    #[test]
    fn distinct_users_per_address() {
        let d = Detector::new(vec![rule(Signal::SignIn, 3)]);
        let k = Keys {
            ip: Some("203.0.113.7"),
            ..Keys::default()
        };
        for _ in 0..10 {
            assert!(d.observe(Signal::SignIn, &k, 1, Some("alice")).is_empty());
        }
        assert!(d.observe(Signal::SignIn, &k, 1, Some("bob")).is_empty());
        let t = d.observe(Signal::SignIn, &k, 1, Some("carol"));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key, "ip:203.0.113.7");
    }

    #[test]
    fn sliding_window_forgets() {
        let mut c = Counter::new();
        c.current = 10;
        let w = Duration::from_secs(10);
        c.start -= Duration::from_secs(15);
        let weight = c.roll(w, Instant::now());
        assert_eq!(c.previous, 10);
        assert!((weight - 0.5).abs() < 0.05);
        c.start -= Duration::from_secs(30);
        c.roll(w, Instant::now());
        assert_eq!((c.previous, c.current), (0, 0));
    }
}
