//! The in-process store: one atomic TAT (and one in-flight counter) per key, in a bounded
//! concurrent cache. Keys idle longer than a full refill are evicted (their state would be
//! "full burst" again anyway), and the number of keys is capped, so memory stays bounded under a
//! flood of distinct keys (an evicted key simply starts again from a full burst).

use crate::gcra::{Decision, Gcra};
use moka::sync::Cache;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Nanoseconds on a process-local monotonic clock (never 0, so a fresh TAT of 0 means "idle").
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// One named limit's local state.
pub struct LocalLimiter {
    pub gcra: Gcra,
    tats: Cache<String, Arc<AtomicU64>>,
    concurrency: Option<(u32, Cache<String, Arc<AtomicU32>>)>,
}

/// A concurrency limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtLimit;

/// Holds one in-flight slot of a concurrency limit until dropped.
#[derive(Debug)]
pub struct ConcurrencyGuard(Arc<AtomicU32>);

impl Drop for ConcurrencyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LocalLimiter {
    /// `max_keys` bounds memory; `concurrency` caps requests in flight per key.
    pub fn new(gcra: Gcra, max_keys: u64, concurrency: Option<u32>) -> Self {
        let idle = Duration::from_nanos(gcra.interval_ns.saturating_mul(gcra.burst))
            .max(Duration::from_secs(1));
        let tats = Cache::builder()
            .max_capacity(max_keys)
            .time_to_idle(idle)
            .build();
        let concurrency = concurrency.map(|max| {
            // In-flight counters must outlive their requests: idle eviction only after a long quiet time.
            (
                max,
                Cache::builder()
                    .max_capacity(max_keys)
                    .time_to_idle(Duration::from_secs(600))
                    .build(),
            )
        });
        Self {
            gcra,
            tats,
            concurrency,
        }
    }

    /// The rate decision for `key` now.
    pub fn check(&self, key: &str) -> Decision {
        self.check_at(key, now_ns())
    }

    pub fn check_at(&self, key: &str, now: u64) -> Decision {
        let tat = match self.tats.get(key) {
            Some(t) => t,
            None => self
                .tats
                .get_with(key.to_string(), || Arc::new(AtomicU64::new(0))),
        };
        self.gcra.check(&tat, now)
    }

    /// Gives back one admission of `key` (see `Gcra::refund`).
    pub fn refund(&self, key: &str) {
        if let Some(tat) = self.tats.get(key) {
            self.gcra.refund(&tat);
        }
    }

    /// Takes an in-flight slot for `key` (`Ok(None)` when the limit has no concurrency cap);
    /// `Err(AtLimit)` when the key already has `concurrency` requests in flight.
    pub fn acquire(&self, key: &str) -> Result<Option<ConcurrencyGuard>, AtLimit> {
        let Some((max, cache)) = &self.concurrency else {
            return Ok(None);
        };
        let counter = cache.get_with(key.to_string(), || Arc::new(AtomicU32::new(0)));
        let prev = counter.fetch_add(1, Ordering::AcqRel);
        if prev >= *max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return Err(AtLimit);
        }
        Ok(Some(ConcurrencyGuard(counter)))
    }

    /// Keys currently tracked (approximate; for metrics and tests).
    pub fn tracked_keys(&self) -> u64 {
        self.tats.run_pending_tasks();
        self.tats.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::Rate;

    #[test]
    fn keys_are_independent() {
        let l = LocalLimiter::new(Gcra::new(Rate::parse("1/m").unwrap(), 2), 1000, None);
        let t = 5_000_000_000;
        assert!(matches!(l.check_at("a", t), Decision::Allow { .. }));
        assert!(matches!(l.check_at("a", t), Decision::Allow { .. }));
        assert!(matches!(l.check_at("a", t), Decision::Deny { .. }));
        assert!(matches!(l.check_at("b", t), Decision::Allow { .. }));
    }

    #[test]
    fn concurrency_slots_are_returned() {
        let l = LocalLimiter::new(
            Gcra::new(Rate::parse("1000/s").unwrap(), 100),
            1000,
            Some(2),
        );
        let a = l.acquire("k").unwrap();
        let b = l.acquire("k").unwrap();
        assert!(l.acquire("k").is_err());
        drop(a);
        assert!(l.acquire("k").is_ok());
        drop(b);
    }

    #[test]
    fn memory_is_bounded() {
        let l = LocalLimiter::new(Gcra::new(Rate::parse("1/s").unwrap(), 1), 1000, None);
        for i in 0..20_000 {
            let _ = l.check_at(&format!("k{i}"), 1);
        }
        assert!(l.tracked_keys() <= 1000, "{}", l.tracked_keys());
    }
}
