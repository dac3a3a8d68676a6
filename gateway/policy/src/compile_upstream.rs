//! `[[upstream]]` tables -> `UpstreamSpec`s, indexed by name for routes to refer to.

use crate::compile::Ctx;
use crate::diag::{Code, Declared, Diagnostics};
use crate::raw::{self, Balance, HashOn, PolicyFile};
use crate::snapshot::{HealthSpec, UpstreamSpec};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub(crate) fn compile(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    diags: &mut Diagnostics,
) -> (Vec<UpstreamSpec>, HashMap<String, usize>) {
    let mut out = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut declared = Declared::new("upstream");
    for (src, f) in files {
        for u in &f.upstream {
            let source = &cx.sources[*src];
            let name = u.name.get_ref().clone();
            let why = "routes refer to upstreams by name, so names must be unique across all policy files";
            if !declared.first(
                source,
                &u.name,
                why,
                "rename one of them, or merge their backends into one [[upstream]]",
                diags,
            ) {
                continue;
            }
            if let Some(spec) = compile_one(cx, *src, u, diags) {
                by_name.insert(name, out.len());
                out.push(spec);
            }
        }
    }
    (out, by_name)
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !addr.contains(':') {
        return Err("it has no port".into());
    }
    match addr.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| "the name resolves to no address".into()),
        Err(e) => Err(format!("it does not resolve ({e})")),
    }
}

fn compile_one(
    cx: &Ctx,
    src: usize,
    u: &raw::Upstream,
    diags: &mut Diagnostics,
) -> Option<UpstreamSpec> {
    let source = &cx.sources[src];
    let name = u.name.get_ref();
    if u.backends.get_ref().is_empty() {
        diags.at(
            Code::Backend,
            source,
            u.backends.span(),
            format!("upstream `{name}` has no backends"),
            "an upstream forwards to at least one backend server",
            "list them as backends = [\"10.1.0.5:8080\", \"10.1.0.6:8080\"]".into(),
        );
    }
    let mut backends = Vec::new();
    for b in u.backends.get_ref() {
        match resolve(b.get_ref()) {
            Ok(a) => backends.push(a),
            Err(why) => diags.at(
                Code::Backend,
                source,
                b.span(),
                format!("backend `{}` of upstream `{name}` is not usable: {why}", b.get_ref()),
                "a backend is `ip:port` or `host:port`; host names are resolved when the policy loads",
                "write an address such as `10.1.0.5:8080`, or a host name that resolves here".into(),
            ),
        }
    }
    check_hash(cx, src, u, diags);
    let health = u
        .health
        .as_ref()
        .and_then(|h| compile_health(cx, src, name, h, diags));
    let passive = u.passive.clone().unwrap_or(raw::Passive {
        eject_after: None,
        eject_for: None,
    });
    let dur = |d: Option<crate::types::Duration>, default: u64| {
        d.map(|d| d.0).unwrap_or(Duration::from_secs(default))
    };
    Some(UpstreamSpec {
        name: name.clone(),
        backend_names: u
            .backends
            .get_ref()
            .iter()
            .map(|b| b.get_ref().clone())
            .collect(),
        backends,
        balance: u.balance,
        hash_on: u.hash_on.unwrap_or_default(),
        hash_header: u.hash_header.clone().map(|h| h.0),
        connect_timeout: dur(u.connect_timeout, 2),
        read_timeout: dur(u.read_timeout, 30),
        write_timeout: dur(u.write_timeout, 30),
        total_timeout: u.total_timeout.map(|d| d.0),
        retries: u.retries.unwrap_or(1),
        tls: u.tls,
        sni: u.sni.clone(),
        health,
        eject_after: passive.eject_after.unwrap_or(3),
        eject_for: dur(passive.eject_for, 10),
    })
}

fn check_hash(cx: &Ctx, src: usize, u: &raw::Upstream, diags: &mut Diagnostics) {
    let source = &cx.sources[src];
    let name = u.name.get_ref();
    let hashing = u.balance == Balance::ConsistentHash;
    if !hashing && (u.hash_on.is_some() || u.hash_header.is_some()) {
        diags.at(
            Code::Requires,
            source,
            u.name.span(),
            format!("upstream `{name}` sets hash_on / hash_header but balance is not consistent-hash"),
            "the hash key is only used by balance = \"consistent-hash\"; a setting that does nothing hides mistakes",
            "set balance = \"consistent-hash\", or remove hash_on / hash_header".into(),
        );
    }
    if u.hash_on == Some(HashOn::Header) && u.hash_header.is_none() {
        diags.at(
            Code::Requires,
            source,
            u.name.span(),
            format!("upstream `{name}` hashes on a header but names none"),
            "hash_on = \"header\" needs the header to hash",
            "add hash_header = \"X-Tenant-Id\" (for example)".into(),
        );
    }
}

fn compile_health(
    cx: &Ctx,
    src: usize,
    name: &str,
    h: &raw::Health,
    diags: &mut Diagnostics,
) -> Option<HealthSpec> {
    let path = h.path.get_ref();
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        diags.at(
            Code::InvalidValue,
            &cx.sources[src],
            h.path.span(),
            format!("health check path `{path}` of upstream `{name}` is not an absolute path"),
            "the health check sends `GET <path> HTTP/1.1` to each backend",
            "write it as `/healthz`".into(),
        );
        return None;
    }
    let interval = h
        .interval
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(2))
        .max(Duration::from_millis(100));
    let timeout = h
        .timeout
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(10));
    Some(HealthSpec {
        path: path.clone(),
        interval,
        timeout,
        healthy_after: h.healthy_after.unwrap_or(2).max(1),
        unhealthy_after: h.unhealthy_after.unwrap_or(2).max(1),
    })
}
