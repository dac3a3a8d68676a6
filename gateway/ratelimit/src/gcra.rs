//! GCRA decisions on one key's state (the TAT, in nanoseconds on the caller's clock).

use crate::rate::Rate;
use std::sync::atomic::{AtomicU64, Ordering};

/// One limit's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// T: nanoseconds per request at the steady rate.
    pub interval_ns: u64,
    /// Requests admitted at once from idle.
    pub burst: u64,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow {
        remaining: u64,
    },
    /// Refused; a request is admitted again after `retry_after_ns`.
    Deny {
        retry_after_ns: u64,
    },
}

impl Gcra {
    pub fn new(rate: Rate, burst: u64) -> Self {
        Self {
            interval_ns: rate.emission_interval_ns(),
            burst: burst.max(1),
        }
    }

    fn tolerance(&self) -> u64 {
        self.interval_ns.saturating_mul(self.burst)
    }

    /// Pure step: from the stored TAT and `now`, the decision and the TAT to store (if admitted).
    pub fn step(&self, tat: u64, now: u64) -> (Decision, Option<u64>) {
        let base = tat.max(now);
        let new_tat = base.saturating_add(self.interval_ns);
        let used = new_tat - now;
        if used > self.tolerance() {
            return (
                Decision::Deny {
                    retry_after_ns: used - self.tolerance(),
                },
                None,
            );
        }
        let remaining = (self.tolerance() - used) / self.interval_ns;
        (Decision::Allow { remaining }, Some(new_tat))
    }

    /// Lock-free decision on an atomic TAT (compare-and-swap loop, bounded by contention).
    pub fn check(&self, tat: &AtomicU64, now: u64) -> Decision {
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let (decision, next) = self.step(current, now);
            let Some(next) = next else { return decision };
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back one admission (another limit of the same request refused it), so that the
    /// limits of one request are all or nothing in process as they are in Redis.
    pub fn refund(&self, tat: &AtomicU64) {
        let _ = tat.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
            Some(t.saturating_sub(self.interval_ns))
        });
    }

    /// Seconds for the whole burst to refill (the `w` of `RateLimit-Policy`).
    pub fn window_secs(&self) -> u64 {
        self.tolerance().div_ceil(1_000_000_000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_rate() {
        let g = Gcra::new(Rate::parse("10/s").unwrap(), 5);
        let tat = AtomicU64::new(0);
        let t0 = 100 * S;
        let admitted = (0..20)
            .filter(|_| matches!(g.check(&tat, t0), Decision::Allow { .. }))
            .count();
        assert_eq!(admitted, 5);
        match g.check(&tat, t0) {
            Decision::Deny { retry_after_ns } => assert_eq!(retry_after_ns, S / 10),
            d => panic!("{d:?}"),
        }
        assert!(matches!(
            g.check(&tat, t0 + S / 10),
            Decision::Allow { remaining: 0 }
        ));
        assert!(matches!(g.check(&tat, t0 + S / 10), Decision::Deny { .. }));
        assert!(matches!(
            g.check(&tat, t0 + 10 * S),
            Decision::Allow { remaining: 4 }
        ));
    }

    #[test]
    fn refund_gives_one_admission_back() {
        let g = Gcra::new(Rate::parse("1/s").unwrap(), 2);
        let tat = AtomicU64::new(0);
        let t0 = 100 * S;
        assert!(matches!(g.check(&tat, t0), Decision::Allow { .. }));
        assert!(matches!(g.check(&tat, t0), Decision::Allow { .. }));
        assert!(matches!(g.check(&tat, t0), Decision::Deny { .. }));
        g.refund(&tat);
        assert!(matches!(g.check(&tat, t0), Decision::Allow { .. }));
        assert!(matches!(g.check(&tat, t0), Decision::Deny { .. }));
        // Never below zero.
        let fresh = AtomicU64::new(0);
        g.refund(&fresh);
        assert_eq!(fresh.load(Ordering::Relaxed), 0);
    }

    proptest! {
        #[test]
        fn never_more_than_burst_plus_rate_times_elapsed(
            per_sec in 1u64..1000,
            burst in 1u64..50,
            gaps in prop::collection::vec(0u64..20_000_000, 1..400),
        ) {
            let g = Gcra::new(Rate { count: per_sec, per: std::time::Duration::from_secs(1) }, burst);
            let tat = AtomicU64::new(0);
            let mut now = 1_000 * S;
            let mut admitted_at = Vec::new();
            for gap in gaps {
                now += gap;
                if matches!(g.check(&tat, now), Decision::Allow { .. }) {
                    admitted_at.push(now);
                }
            }
            // Every window [admitted_at[i], admitted_at[j]] holds at most burst + rate * elapsed.
            for i in 0..admitted_at.len() {
                for j in i..admitted_at.len() {
                    let elapsed = (admitted_at[j] - admitted_at[i]) as f64 / S as f64;
                    let count = (j - i + 1) as f64;
                    prop_assert!(count <= burst as f64 + per_sec as f64 * elapsed + 1e-6,
                        "{count} admitted in {elapsed}s with burst {burst} rate {per_sec}/s");
                }
            }
        }
    }
}
