//! Upstream groups at run time: backend state (health, ejection, in-flight count) and the choice
//! of a backend. Backend state is keyed by (upstream name, address) and carried across policy
//! reloads, so that a reload neither forgets that a backend is down nor resets its counters.

use menwei_policy::raw::Balance;
use menwei_policy::snapshot::UpstreamSpec;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Milliseconds on a process-local monotonic clock.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The run-time state of one backend.
#[derive(Debug)]
pub struct BackendState {
    pub addr: SocketAddr,
    /// As written in the policy (host names kept, for SNI and logs).
    pub name: String,
    /// Result of active health checks; true until a check says otherwise.
    healthy: AtomicBool,
    /// Passive ejection: no traffic before this time (`now_ms`).
    ejected_until: AtomicU64,
    failures: AtomicU32,
    pub(crate) check_ok: AtomicU32,
    pub(crate) check_fail: AtomicU32,
    pub(crate) next_check: AtomicU64,
    inflight: AtomicUsize,
}

impl BackendState {
    pub fn new(addr: SocketAddr, name: String) -> Self {
        Self {
            addr,
            name,
            healthy: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            check_ok: AtomicU32::new(0),
            check_fail: AtomicU32::new(0),
            next_check: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
        }
    }

    /// Healthy by active checks and not passively ejected.
    pub fn available(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self.ejected_until.load(Ordering::Relaxed) <= now_ms()
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn set_healthy(&self, v: bool) -> bool {
        self.healthy.swap(v, Ordering::Relaxed) != v
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// A real request to this backend failed (connect error, timeout, reset). Returns true when
    /// this failure ejected it.
    pub fn record_failure(&self, spec: &UpstreamSpec) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if spec.eject_after > 0 && n >= spec.eject_after {
            self.failures.store(0, Ordering::Relaxed);
            let until = now_ms() + spec.eject_for.as_millis() as u64;
            self.ejected_until.store(until, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A real request got a response head from this backend.
    pub fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }
}

/// Counts a request in flight on a backend for as long as it lives.
#[derive(Debug)]
pub struct InflightGuard(Arc<BackendState>);

impl InflightGuard {
    pub fn new(b: Arc<BackendState>) -> Self {
        b.inflight.fetch_add(1, Ordering::Relaxed);
        Self(b)
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An upstream group built from a snapshot's `UpstreamSpec`.
pub struct UpstreamGroup {
    pub spec: UpstreamSpec,
    pub backends: Vec<Arc<BackendState>>,
    rr: AtomicUsize,
    ring: Option<pingora_ketama::Continuum>,
}

impl UpstreamGroup {
    /// `state_for` returns the carried-over state of a backend (or a new one).
    pub fn new(
        spec: UpstreamSpec,
        mut state_for: impl FnMut(&str, SocketAddr, &str) -> Arc<BackendState>,
    ) -> Self {
        let backends: Vec<_> = spec
            .backends
            .iter()
            .zip(&spec.backend_names)
            .map(|(a, n)| state_for(&spec.name, *a, n))
            .collect();
        let ring = (spec.balance == Balance::ConsistentHash).then(|| {
            let buckets: Vec<_> = spec
                .backends
                .iter()
                .map(|a| pingora_ketama::Bucket::new(*a, 1))
                .collect();
            pingora_ketama::Continuum::new(&buckets)
        });
        Self {
            spec,
            backends,
            rr: AtomicUsize::new(0),
            ring,
        }
    }

    /// Picks an available backend not in `tried`. `key` is the consistent-hash key.
    pub fn select(&self, key: &[u8], tried: &[usize]) -> Option<usize> {
        let ok = |i: usize| !tried.contains(&i) && self.backends[i].available();
        match self.spec.balance {
            Balance::RoundRobin => self.round_robin(ok),
            Balance::LeastConnections => self.least_connections(ok),
            Balance::ConsistentHash => self.hashed(key, ok),
        }
    }

    fn round_robin(&self, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.backends.len();
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find(|i| ok(*i))
    }

    fn least_connections(&self, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.backends.len();
        // Start at a rotating offset so that ties are spread instead of always hitting backend 0.
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| ok(*i))
            .min_by_key(|i| self.backends[*i].inflight())
    }

    fn hashed(&self, key: &[u8], ok: impl Fn(usize) -> bool) -> Option<usize> {
        let ring = self.ring.as_ref()?;
        let mut idx = ring.node_idx(key);
        // Walk the ring at most a bounded number of points to find the next available backend.
        for _ in 0..(self.backends.len() * 160).max(1) {
            let addr = ring.get_addr(&mut idx)?;
            if let Some(i) = self.spec.backends.iter().position(|a| a == addr) {
                if ok(i) {
                    return Some(i);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use menwei_policy::raw::HashOn;
    use std::time::Duration;

    fn spec(balance: Balance, n: u16) -> UpstreamSpec {
        let backends: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 10000 + i)))
            .collect();
        UpstreamSpec {
            name: "u".into(),
            backend_names: backends.iter().map(|b| b.to_string()).collect(),
            backends,
            balance,
            hash_on: HashOn::ClientIp,
            hash_header: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            total_timeout: None,
            retries: 1,
            tls: false,
            sni: None,
            health: None,
            eject_after: 2,
            eject_for: Duration::from_secs(60),
        }
    }

    fn group(balance: Balance, n: u16) -> UpstreamGroup {
        UpstreamGroup::new(spec(balance, n), |_, a, name| {
            Arc::new(BackendState::new(a, name.into()))
        })
    }

    #[test]
    fn round_robin_cycles_and_skips() {
        let g = group(Balance::RoundRobin, 3);
        let picks: Vec<_> = (0..6).map(|_| g.select(b"", &[]).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        g.backends[1].set_healthy(false);
        assert!((0..6).all(|_| g.select(b"", &[]).unwrap() != 1));
        assert_eq!(g.select(b"", &[0, 2]), None);
    }

    #[test]
    fn least_connections_prefers_idle() {
        let g = group(Balance::LeastConnections, 3);
        let _a = InflightGuard::new(g.backends[0].clone());
        let _b = InflightGuard::new(g.backends[1].clone());
        assert_eq!(g.select(b"", &[]), Some(2));
        drop(_a);
        assert_ne!(g.select(b"", &[]), Some(1));
    }

    #[test]
    fn consistent_hash_is_sticky_and_fails_over() {
        let g = group(Balance::ConsistentHash, 4);
        let first = g.select(b"10.1.2.3", &[]).unwrap();
        assert!((0..20).all(|_| g.select(b"10.1.2.3", &[]) == Some(first)));
        g.backends[first].set_healthy(false);
        let other = g.select(b"10.1.2.3", &[]).unwrap();
        assert_ne!(other, first);
        let spread: std::collections::HashSet<_> = (0..200)
            .map(|i| g.select(format!("k{i}").as_bytes(), &[]).unwrap())
            .collect();
        assert!(spread.len() >= 3);
    }

    #[test]
    fn passive_ejection() {
        let g = group(Balance::RoundRobin, 2);
        assert!(!g.backends[0].record_failure(&g.spec));
        assert!(g.backends[0].record_failure(&g.spec));
        assert!(!g.backends[0].available());
        assert!((0..4).all(|_| g.select(b"", &[]) == Some(1)));
    }
}
