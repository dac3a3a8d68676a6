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
    /// Bytes buffered per client connection before writing (Pingora's L4 write buffer).
    pub write_buffer: usize,
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
    /// Leading bits of an IPv6 client address that make one client (`[trust] ipv6_prefix`).
    pub ipv6_prefix: u8,
}

impl TrustSettings {
    /// The key a client is counted, detected and banned under, when it is not its address as
    /// written: an IPv6 client's network (`2001:db8:1:2::/64`). IPv4 clients, IPv4-mapped IPv6
    /// addresses and a prefix of 128 have none.
    pub fn client_network(&self, ip: std::net::IpAddr) -> Option<String> {
        match ip {
            std::net::IpAddr::V6(v6) if self.ipv6_prefix < 128 && v6.to_ipv4_mapped().is_none() => {
                Some(menwei_ratelimit::bans::ipv6_network(v6, self.ipv6_prefix))
            }
            _ => None,
        }
    }

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
    /// The signed-in user or API client (`sub`).
    User,
    /// The client application (`azp`, else `client_id`, of the token or session).
    App,
    /// Any claim by name or dotted path (`department`, `roles` resolve per provider).
    Claim(String),
}

impl KeyPart {
    /// Needs an authenticated identity (checked after sign-in, not before).
    pub fn is_identity(&self) -> bool {
        matches!(self, KeyPart::User | KeyPart::App | KeyPart::Claim(_))
    }
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
    /// Keyed on who the caller is: decided after authentication.
    pub fn needs_identity(&self) -> bool {
        self.key.iter().any(KeyPart::is_identity)
    }

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
    /// Redis Sentinel: the sentinels' URLs and the master's name.
    pub sentinel: Option<(Vec<String>, String)>,
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
    /// Single sign-on, when any `[sso]` or `[[provider]]` is configured.
    pub sso: Option<Arc<SsoSpec>>,
    /// Request signatures, when any `[[app]]` is configured.
    pub gm: Option<Arc<GmSpec>>,
    /// The audit log, when `[audit]` is configured.
    pub audit: Option<AuditSpec>,
    /// Masking profiles; routes refer to them by index.
    pub masks: Vec<MaskSpec>,
    /// `[[waf]]` profiles; routes hold indexes.
    pub wafs: Vec<WafSpec>,
    /// `[alerts]`: sinks, window, spool.
    pub alerts: menwei_alert::Config,
    /// `[[detect]]` rules.
    pub detect: Vec<menwei_alert::behaviour::Rule>,
    /// `[[ban]]`: standing bans from the policy.
    pub bans: PolicyBans,
    /// SHA-256 of the admin token (`[server] admin_token_file`).
    pub admin_token: Option<Secret<[u8; 32]>>,
    pub router: Router,
}

impl Snapshot {
    /// The upstream a route forwards to.
    pub fn upstream(&self, index: usize) -> Option<&UpstreamSpec> {
        self.upstreams.get(index)
    }
}

/// Secret bytes or text: never printed (Debug shows `[redacted]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(pub T);

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Token signature algorithms the gateway accepts (never `none`, never HMAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenAlg {
    RS256,
    ES256,
    EdDSA,
}

impl TokenAlg {
    pub const ALL: [TokenAlg; 3] = [TokenAlg::RS256, TokenAlg::ES256, TokenAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenAlg::RS256 => "RS256",
            TokenAlg::ES256 => "ES256",
            TokenAlg::EdDSA => "EdDSA",
        }
    }
}

/// Where a provider's tokens hold the claims that access rules and headers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPathSpec {
    pub roles: String,
    pub groups: String,
    pub department: String,
    pub name: String,
}

impl ClaimPathSpec {
    /// The dotted path of a claim as a rule or header names it: `roles`, `groups`,
    /// `department` and `name` go where the provider keeps them; anything else is a path as written.
    pub fn resolve<'a>(&'a self, claim: &'a str) -> &'a str {
        match claim {
            "roles" => &self.roles,
            "groups" => &self.groups,
            "department" => &self.department,
            "name" => &self.name,
            other => other,
        }
    }
}

/// A compiled `[[provider]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret<String>,
    pub scopes: Vec<String>,
    pub algorithms: Vec<TokenAlg>,
    pub audience: Vec<String>,
    pub resource: Option<String>,
    pub claims: ClaimPathSpec,
    pub refresh_before: Duration,
    pub leeway: Duration,
    pub jwks_refetch_interval: Duration,
    pub timeout: Duration,
    pub post_logout_redirect: String,
    pub forward_access_token: bool,
    /// SM2-signed tokens of this issuer: (alg, distinguishing id, encoding).
    pub sm2_tokens: Option<(String, String, crate::raw::SigEncoding)>,
    /// Opaque bearer tokens are introspected (RFC 7662), answers kept at most this long.
    pub introspection: Option<Duration>,
}

/// `[sso]` compiled, with the providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSpec {
    pub cookie_name: String,
    pub session_key: Secret<[u8; 32]>,
    /// The key signing identity assertions: PKCS#8 DER of a P-256 key (ES256) or PKCS#8 PEM of
    /// an SM2 key (SM2).
    pub assertion_key: Secret<Vec<u8>>,
    pub assertion_alg: crate::raw::AssertionAlg,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub login_timeout: Duration,
    pub assertion_ttl: Duration,
    pub store: crate::raw::SessionStore,
    pub cipher: crate::raw::SessionCipher,
    /// Header to backends and the claim it carries.
    pub headers: Vec<(http::HeaderName, String)>,
    pub providers: Vec<ProviderSpec>,
}

/// Who may use a route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteAuth {
    pub kind: crate::raw::Auth,
    /// Index into `SsoSpec::providers` (set for `login` and `bearer`).
    pub provider: Option<usize>,
    pub require: Vec<Requirement>,
    /// For `gm-signature`: indexes into `GmSpec::apps` allowed (empty: all).
    pub apps: Vec<usize>,
}

/// How an app proves a request is its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppKey {
    /// SM2 public key as `04||x||y` hex, with its distinguishing id and signature encoding.
    Sm2 {
        public_hex: String,
        distid: String,
        encoding: crate::raw::SigEncoding,
    },
    /// HMAC-SM3 shared secret.
    Hmac(Secret<Vec<u8>>),
}

/// A compiled `[[app]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub id: String,
    pub key: AppKey,
    pub department: Option<String>,
}

/// `[gm]` and the apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmSpec {
    pub max_skew: Duration,
    pub nonce_store: crate::raw::SessionStore,
    pub apps: Vec<AppSpec>,
    pub client_cert_header: Option<http::HeaderName>,
    /// CA certificates (PEM or DER bytes) checked at load, and their distinguishing id.
    pub client_cas: Vec<Vec<u8>>,
    /// Their revocation lists (PEM or DER bytes), signatures checked at load.
    pub client_crls: Vec<Vec<u8>>,
    pub client_ca_distid: String,
}

/// One `[[route.require]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// As written (`roles`, `department`, or a dotted path); resolved per provider.
    pub claim: String,
    pub values: Vec<String>,
    /// All values must be present (else at least one).
    pub all: bool,
}

/// `[audit]` compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSpec {
    pub file: PathBuf,
    pub fsync_interval: Duration,
}

/// A compiled `[[mask]]` profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSpec {
    pub name: String,
    pub profile: menwei_mask::json::Profile,
    pub unmask_roles: Vec<String>,
    pub max_body: u64,
    pub on_overflow: crate::raw::OnOverflow,
}

/// A compiled `[[waf]]` profile.
#[derive(Debug, Clone)]
pub struct WafSpec {
    pub name: String,
    pub mode: crate::raw::WafMode,
    pub config: menwei_waf::Config,
    /// Most body bytes inspected.
    pub max_body: u64,
}

/// Standing bans from `[[ban]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyBans {
    pub nets: Vec<(ipnet::IpNet, String)>,
    pub users: std::collections::HashMap<String, String>,
}

impl PolicyBans {
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.users.is_empty()
    }

    /// The reason an address is banned, if it is.
    pub fn ip(&self, ip: std::net::IpAddr) -> Option<&str> {
        self.nets
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, r)| r.as_str())
    }

    pub fn user(&self, sub: &str) -> Option<&str> {
        self.users.get(sub).map(String::as_str)
    }
}
