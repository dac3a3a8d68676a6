//! Per-request state shared across the pipeline's phases.

use crate::errors::Deny;
use crate::live::Live;
use crate::upstream::InflightGuard;
use menwei_policy::router::RouteSpec;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Everything one request carries from phase to phase.
pub struct Ctx {
    /// The policy this request is served with, pinned in `early_request_filter`.
    pub live: Option<Arc<Live>>,
    pub start: Instant,
    pub request_id: String,
    pub peer: Option<IpAddr>,
    pub peer_trusted: bool,
    /// The client after trusted-proxy resolution.
    pub client: Option<IpAddr>,
    /// `client` formatted once (logs, `X-Real-IP`, hashing).
    pub client_str: String,
    /// An IPv6 client's network (`[trust] ipv6_prefix`), under which it is counted, detected
    /// and banned; `None` when that is the address itself (IPv4).
    pub client_network: Option<String>,
    pub proto: &'static str,
    /// Lower-case host without port.
    pub host: String,
    /// The normalised path: matched and forwarded.
    pub path: String,
    /// Index into `live.snapshot.router.routes()`.
    pub route: Option<usize>,
    /// Index into `live.upstreams`.
    pub upstream: Option<usize>,
    /// Backends already tried for this request.
    pub tried: Vec<usize>,
    pub backend: Option<usize>,
    pub inflight: Option<InflightGuard>,
    pub first_attempt: Option<Instant>,
    /// The refusal written for this request, if any.
    pub deny: Option<Deny>,
    pub body_bytes: u64,
    pub upgrade: Option<http::HeaderValue>,
    /// In-flight slots of concurrency limits, released when the request ends.
    pub limit_guards: Vec<menwei_ratelimit::ConcurrencyGuard>,
    /// A `/.menwei/...` gateway endpoint.
    pub reserved: bool,
    /// The verified user or API client, when the route requires sign-in.
    pub identity: Option<menwei_sso::Identity>,
    /// The app that signed the request (`auth = "gm-signature"`).
    pub app_id: Option<String>,
    /// The verified SM2 client certificate (`auth = "gm-certificate"`).
    pub cert_identity: Option<menwei_gm::cert::CertIdentity>,
    /// The response being masked (`route.mask`).
    pub mask: Option<crate::masking::MaskState>,
    /// Why a masked route's answer was refused (alert rule, what was seen).
    pub mask_refused: Option<(&'static str, String)>,
    /// Request inspection (`route.waf`): verdict so far, and the body head still to inspect.
    pub waf: Option<crate::inspect::WafState>,
    /// The whole body, read before forwarding (inspection or a signature check); Pingora
    /// forwards it from its retry buffer.
    pub read_ahead: Option<Vec<u8>>,
}

impl Ctx {
    pub fn new() -> Self {
        Self {
            live: None,
            start: Instant::now(),
            request_id: String::new(),
            peer: None,
            peer_trusted: false,
            client: None,
            client_str: String::new(),
            client_network: None,
            proto: "http",
            host: String::new(),
            path: String::new(),
            route: None,
            upstream: None,
            tried: Vec::new(),
            backend: None,
            inflight: None,
            first_attempt: None,
            deny: None,
            body_bytes: 0,
            upgrade: None,
            limit_guards: Vec::new(),
            reserved: false,
            identity: None,
            app_id: None,
            cert_identity: None,
            mask: None,
            mask_refused: None,
            waf: None,
            read_ahead: None,
        }
    }

    /// The route this request matched.
    pub fn route_spec(&self) -> Option<&RouteSpec> {
        let live = self.live.as_ref()?;
        live.snapshot.router.routes().get(self.route?)
    }

    /// What the client is counted, detected and banned as: its address, or for IPv6 its
    /// network.
    pub fn client_key(&self) -> &str {
        self.client_network.as_deref().unwrap_or(&self.client_str)
    }

    /// The matched route's name, `-` when none.
    pub fn route_name(&self) -> &str {
        self.route_spec().map_or("-", |r| r.name.as_str())
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}
