//! Server certificates chosen by SNI from the policy being served, so that a certificate change
//! is a policy reload, not a restart. Exact names beat `*.` wildcards (longest suffix first); with
//! no match (or no SNI) the certificate marked `default`, else the first one, is served.

use crate::live::Store;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

pub struct SniResolver {
    pub store: Arc<Store>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

/// Chooses among `(hosts, default, key)` for a server name.
pub fn choose<'a>(
    certs: &'a [menwei_policy::snapshot::CertSpec],
    sni: Option<&str>,
) -> Option<&'a Arc<CertifiedKey>> {
    if let Some(name) = sni.map(|s| s.to_ascii_lowercase()) {
        if let Some(c) = certs.iter().find(|c| c.hosts.contains(&name)) {
            return Some(&c.key);
        }
        let wild = certs
            .iter()
            .filter_map(|c| {
                c.hosts
                    .iter()
                    .filter_map(|h| h.strip_prefix('*'))
                    .filter(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
                    .map(|s| s.len())
                    .max()
                    .map(|len| (len, c))
            })
            .max_by_key(|(len, _)| *len);
        if let Some((_, c)) = wild {
            return Some(&c.key);
        }
    }
    certs
        .iter()
        .find(|c| c.default)
        .or_else(|| certs.first())
        .map(|c| &c.key)
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let live = self.store.current();
        choose(&live.snapshot.certificates, hello.server_name()).cloned()
    }
}
