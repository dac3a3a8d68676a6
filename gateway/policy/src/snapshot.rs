//! The compiled policy: immutable, validated, versioned. The gateway serves every request from
//! exactly one `Snapshot`; a reload builds a new one beside it and swaps.

use crate::raw::{Balance, HashOn};
use crate::router::Router;
use crate::types::Cidr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Settings that only take effect at start (listeners, threads, admin address). A reload that
/// changes them is reported as "restart required", never silently ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartSettings {
    pub threads: usize,
    pub admin: SocketAddr,
    pub upstream_keepalive_pool: usize,
    pub listeners: Vec<ListenerSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub addr: SocketAddr,
    pub tls: bool,
    pub h2c: bool,
}

/// A certificate ready to serve; the chain and key were parsed and checked to match at load.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub name: String,
    pub hosts: Vec<String>,
    pub default: bool,
    pub key: Arc<rustls::sign::CertifiedKey>,
}

#[derive(Debug, Clone)]
pub struct TrustSettings {
    pub proxies: Vec<Cidr>,
    /// Lower-case prefixes of client headers that are always removed.
    pub identity_prefixes: Vec<String>,
    pub request_id_header: http::HeaderName,
}

impl TrustSettings {
    /// Whether a peer address is a configured trusted proxy.
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.proxies.iter().any(|c| c.contains(ip))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    pub max_header_bytes: u64,
    pub max_headers: usize,
    pub max_uri_bytes: u64,
    pub max_body_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct HealthSpec {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_after: u32,
    pub unhealthy_after: u32,
}

#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: String,
    pub backends: Vec<SocketAddr>,
    /// The backend addresses as written (host names kept for logs and TLS SNI).
    pub backend_names: Vec<String>,
    pub balance: Balance,
    pub hash_on: HashOn,
    pub hash_header: Option<http::HeaderName>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub total_timeout: Option<Duration>,
    pub retries: u8,
    pub tls: bool,
    pub sni: Option<String>,
    pub health: Option<HealthSpec>,
    pub eject_after: u32,
    pub eject_for: Duration,
}

/// One part of a rate-limit key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    ClientIp,
    Route,
    Header(http::HeaderName),
}

/// A compiled `[[limit]]`.
#[derive(Debug, Clone)]
pub struct LimitSpec {
    pub name: String,
    pub key: Vec<KeyPart>,
    pub rate: menwei_ratelimit::Rate,
    pub burst: u64,
    pub concurrency: Option<u32>,
    pub max_keys: u64,
    pub scope: crate::raw::Scope,
    pub on_store_error: crate::raw::OnStoreError,
}

impl LimitSpec {
    /// Two specs with the same fingerprint can share counters across a reload.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{:?}|{:?}|{}|{:?}|{}|{:?}",
            self.name, self.key, self.rate, self.burst, self.concurrency, self.max_keys, self.scope
        )
    }
}

/// `[state]`: the cluster store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSpec {
    pub redis_url: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// `file:line:col` of the `redis` key, for problems found later (unreachable at start).
    pub origin: String,
}

/// One compiled policy set.
#[derive(Debug)]
pub struct Snapshot {
    /// Assigned by the store: 1 for the first policy served, +1 per successful reload.
    pub version: u64,
    /// SHA-256 over every policy file's name and bytes, in name order, and the certificate and
    /// key files they name.
    pub sha256: String,
    pub loaded_at: SystemTime,
    pub files: Vec<PathBuf>,
    pub restart: RestartSettings,
    pub grace_period: Duration,
    pub certificates: Vec<CertSpec>,
    pub trust: TrustSettings,
    pub limits: LimitSettings,
    pub access_log: bool,
    pub upstreams: Vec<UpstreamSpec>,
    /// Named rate limits (`[[limit]]`); routes refer to them by index.
    pub rate_limits: Vec<LimitSpec>,
    pub state: Option<StateSpec>,
    pub router: Router,
}

impl Snapshot {
    /// The upstream a route forwards to.
    pub fn upstream(&self, index: usize) -> Option<&UpstreamSpec> {
        self.upstreams.get(index)
    }
}
