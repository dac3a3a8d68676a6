//! `[[certificate]]` tables: PEM files read, parsed and checked (the key must match the
//! certificate) at load, so that a broken certificate is a policy error, never a failed handshake.

use crate::compile::Ctx;
use crate::diag::{Code, Declared, Diagnostics, Source};
use crate::raw::PolicyFile;
use crate::snapshot::CertSpec;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use toml::Spanned;

/// Compiles every `[[certificate]]`; the bytes of the files read go into `digest`, so that a
/// renewed certificate changes the snapshot's hash (and a reload applies it).
pub(crate) fn compile(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    diags: &mut Diagnostics,
    digest: &mut Sha256,
) -> Vec<CertSpec> {
    let mut out: Vec<CertSpec> = Vec::new();
    let mut declared = Declared::new("certificate");
    for (src, f) in files {
        let source = &cx.sources[*src];
        for c in &f.certificate {
            let name = c.name.get_ref();
            let why = "certificate names identify them in logs and must be unique";
            if !declared.first(source, &c.name, why, "rename one of them", diags) {
                continue;
            }
            let hosts = host_list(source, c, diags);
            if c.default && out.iter().any(|o| o.default) {
                diags.at(
                    Code::Tls,
                    source,
                    c.name.span(),
                    format!("certificate `{name}` is marked default, but another one already is"),
                    "one certificate is served when no SNI name matches",
                    "keep `default = true` on one certificate only".into(),
                );
            }
            if let Some(key) = load_pair(cx, source, &c.cert, &c.key, diags, digest) {
                out.push(CertSpec {
                    name: name.clone(),
                    hosts,
                    default: c.default,
                    key,
                });
            }
        }
    }
    out
}

fn host_list(source: &Source, c: &crate::raw::Certificate, diags: &mut Diagnostics) -> Vec<String> {
    let mut out = Vec::new();
    for h in &c.hosts {
        match crate::compile_route::host_pattern(h) {
            Ok(_) => out.push(h.to_ascii_lowercase()),
            Err(why) => diags.at(
                Code::Host,
                source,
                c.name.span(),
                format!("certificate `{}` lists host `{h}`: {why}", c.name.get_ref()),
                "SNI names are DNS names, optionally with one leading `*.`",
                "write `gov.example.cn` or `*.example.cn`".into(),
            ),
        }
    }
    out
}

fn read(
    cx: &Ctx,
    source: &Source,
    path: &Spanned<String>,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Vec<u8>> {
    let full = cx.dir.join(path.get_ref());
    match std::fs::read(&full) {
        Ok(b) => Some(b),
        Err(e) => {
            diags.at(
                Code::CertFile,
                source,
                path.span(),
                format!("cannot read {what} file `{}`: {e}", full.display()),
                "certificate and key paths are relative to the policy directory (or absolute)",
                "create it (for development: certs/make-dev-certs.sh) or correct the path".into(),
            );
            None
        }
    }
}

fn cert_error(source: &Source, path: &Spanned<String>, what: String, diags: &mut Diagnostics) {
    diags.at(
        Code::CertFile,
        source,
        path.span(),
        what,
        "certificates are PEM chains (leaf first); keys are PEM PKCS#8, PKCS#1 or SEC1",
        "regenerate the pair, or check that cert and key belong together".into(),
    );
}

fn load_pair(
    cx: &Ctx,
    source: &Source,
    cert: &Spanned<String>,
    key: &Spanned<String>,
    diags: &mut Diagnostics,
    digest: &mut Sha256,
) -> Option<Arc<rustls::sign::CertifiedKey>> {
    let cert_pem = read(cx, source, cert, "certificate", diags);
    let key_pem = read(cx, source, key, "key", diags);
    let (cert_pem, key_pem) = (cert_pem?, key_pem?);
    digest.update(&cert_pem);
    digest.update(&key_pem);
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        cert_error(
            source,
            cert,
            format!("`{}` holds no PEM certificate", cert.get_ref()),
            diags,
        );
        return None;
    }
    let Ok(private) = PrivateKeyDer::from_pem_slice(&key_pem) else {
        cert_error(
            source,
            key,
            format!("`{}` holds no PEM private key", key.get_ref()),
            diags,
        );
        return None;
    };
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, private, &provider) {
        Ok(k) => Some(Arc::new(k)),
        Err(e) => {
            cert_error(
                source,
                key,
                format!(
                    "certificate `{}` and key `{}` are not a usable pair: {e}",
                    cert.get_ref(),
                    key.get_ref()
                ),
                diags,
            );
            None
        }
    }
}
