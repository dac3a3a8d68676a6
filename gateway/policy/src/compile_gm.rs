//! `[gm]` and `[[app]]` tables -> `GmSpec`: each app's SM2 public key (parsed and checked to be a
//! point on the curve) or HMAC-SM3 secret (a file only the gateway may read).

use crate::compile::Ctx;
use crate::diag::{Code, Declared, Diagnostics};
use crate::raw::{self, PolicyFile, SessionStore};
use crate::snapshot::{AppKey, AppSpec, GmSpec, Secret};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

pub(crate) fn compile(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    gm: Option<(usize, &Spanned<raw::Gm>)>,
    have_state: bool,
    diags: &mut Diagnostics,
    digest: &mut Sha256,
) -> (Option<Arc<GmSpec>>, HashMap<String, usize>) {
    let mut apps = Vec::new();
    let mut by_id = HashMap::new();
    let mut declared = Declared::new("app");
    let mut ok = true;
    for (src, f) in files {
        let source = &cx.sources[*src];
        for a in &f.app {
            let why = "apps are found by the id they sign with";
            if !declared.first(source, &a.id, why, "give each app its own id", diags) {
                continue;
            }
            let id = a.id.get_ref();
            let distid = a
                .distid
                .clone()
                .unwrap_or_else(|| menwei_gm::DEFAULT_ID.to_string());
            let key = match (&a.public_key_file, &a.hmac_secret_file) {
                (Some(p), None) => {
                    let full = cx.dir.join(p.get_ref());
                    match std::fs::read(&full) {
                        Ok(bytes) => {
                            digest_update(digest, &bytes);
                            match menwei_gm::Sm2Public::parse(&distid, &bytes) {
                                Ok(k) => Some(AppKey::Sm2 {
                                    public_hex: k.to_hex(),
                                    distid,
                                    encoding: a.signature_encoding,
                                }),
                                Err(e) => {
                                    diags.at(
                                        Code::KeyFile,
                                        source,
                                        p.span(),
                                        format!("app `{id}`: {e}"),
                                        "an app's key is an SM2 public key: PEM (BEGIN PUBLIC KEY), DER, or hex 04||x||y",
                                        "export it with `openssl pkey -pubout` or `menwei keygen sm2`".into(),
                                    );
                                    None
                                }
                            }
                        }
                        Err(e) => {
                            diags.at(
                                Code::KeyFile,
                                source,
                                p.span(),
                                format!(
                                    "app `{id}`: cannot read public key `{}`: {e}",
                                    full.display()
                                ),
                                "key paths are relative to the policy directory (or absolute)",
                                "correct the path or install the app's public key there".into(),
                            );
                            None
                        }
                    }
                }
                (None, Some(p)) => crate::compile_sso::read_secret(
                    cx,
                    source,
                    p,
                    "HMAC secret file",
                    diags,
                    digest,
                )
                .and_then(|b| {
                    let s = String::from_utf8_lossy(&b).trim().as_bytes().to_vec();
                    if s.len() < 16 {
                        diags.at(
                            Code::KeyFile,
                            source,
                            p.span(),
                            format!("app `{id}`: the HMAC secret is {} bytes", s.len()),
                            "a short shared secret can be guessed",
                            "use at least 16 bytes, e.g. `openssl rand -hex 32`".into(),
                        );
                        return None;
                    }
                    Some(AppKey::Hmac(Secret(s)))
                }),
                _ => {
                    diags.at(
                        Code::InvalidValue,
                        source,
                        a.id.span(),
                        format!("app `{id}` needs exactly one of public_key_file and hmac_secret_file"),
                        "an app signs with SM2 (a public key here) or HMAC-SM3 (a shared secret here)",
                        "keep one of the two".into(),
                    );
                    None
                }
            };
            match key {
                Some(key) => {
                    by_id.insert(id.clone(), apps.len());
                    apps.push(AppSpec {
                        id: id.clone(),
                        key,
                        department: a.department.clone(),
                    });
                }
                None => {
                    ok = false;
                    by_id.insert(id.clone(), usize::MAX);
                }
            }
        }
    }
    let settings = gm.map(|(_, g)| g.get_ref().clone()).unwrap_or_default();
    if let (Some((src, g)), SessionStore::Redis, false) = (gm, settings.nonce_store, have_state) {
        diags.at(
            Code::Requires,
            &cx.sources[src],
            g.span(),
            "[gm] nonce_store = \"redis\" but no [state] redis is configured".into(),
            "nonces shared between replicas live in Redis",
            "add [state] with redis = \"redis://host:6379\", or use nonce_store = \"memory\""
                .into(),
        );
    }
    let ca_distid = settings
        .client_ca_distid
        .clone()
        .unwrap_or_else(|| menwei_gm::DEFAULT_ID.to_string());
    let mut client_cas = Vec::new();
    let mut client_crls = Vec::new();
    if let Some((src, _)) = gm {
        let source = &cx.sources[src];
        let (cas, cas_ok) = read_parsed(
            cx,
            source,
            &settings.client_ca_files,
            digest,
            diags,
            FileKey {
                what: "is not a usable SM2 CA certificate",
                why: "client certificates are checked against SM2 CA certificates (SM3withSM2, PEM or DER)",
                fix: "export the CA certificate from the CA (e.g. `openssl x509 -in ca.pem`) and correct the path",
            },
            |b| menwei_gm::cert::Sm2Ca::new(b, &ca_distid),
        );
        let parsed: Vec<menwei_gm::cert::Sm2Ca> = cas.iter().map(|(_, ca)| ca.clone()).collect();
        let (crls, crls_ok) = read_parsed(
            cx,
            source,
            &settings.client_crl_files,
            digest,
            diags,
            FileKey {
                what: "is not a usable revocation list",
                why: "a client CA's CRL (SM3withSM2, PEM or DER) tells which of its certificates are revoked",
                fix: "fetch the CA's current CRL (its CRL distribution point), check it with `openssl crl -in FILE -noout -text`, and correct the path",
            },
            |b| menwei_gm::cert::Crl::new(b, &parsed),
        );
        ok &= cas_ok && crls_ok;
        client_cas = cas.into_iter().map(|(b, _)| b).collect();
        client_crls = crls.into_iter().map(|(b, _)| b).collect();
        if settings.client_cert_header.is_some() == settings.client_ca_files.is_empty() {
            ok = false;
            diags.at(
                Code::Requires,
                source,
                gm.map_or(0..0, |(_, g)| g.span()),
                "[gm] client_cert_header and client_ca_files go together".into(),
                "a certificate passed in the header is checked against the CAs",
                "set both, or neither".into(),
            );
        }
    }
    if apps.is_empty() && by_id.is_empty() && client_cas.is_empty() {
        return (None, by_id);
    }
    let spec = ok.then(|| {
        Arc::new(GmSpec {
            max_skew: settings
                .max_skew
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(300)),
            nonce_store: settings.nonce_store,
            apps,
            client_cert_header: settings.client_cert_header.clone().map(|h| h.0),
            client_cas,
            client_crls,
            client_ca_distid: ca_distid,
        })
    });
    (spec, by_id)
}

/// What a diagnostic says about a file of one `[gm]` key that does not parse.
struct FileKey<'a> {
    what: &'a str,
    why: &'a str,
    fix: &'a str,
}

/// The files of one `[gm]` key: read relative to the policy directory, hashed into the digest,
/// and parsed. Each file that cannot be read or parsed is a diagnostic at its place in the
/// policy. The files that parsed, and whether all did.
fn read_parsed<T>(
    cx: &Ctx,
    source: &crate::diag::Source,
    files: &[Spanned<String>],
    digest: &mut Sha256,
    diags: &mut Diagnostics,
    key: FileKey<'_>,
    parse: impl Fn(&[u8]) -> Result<T, String>,
) -> (Vec<(Vec<u8>, T)>, bool) {
    let mut out = Vec::with_capacity(files.len());
    let mut ok = true;
    for f in files {
        let full = cx.dir.join(f.get_ref());
        let problem = match std::fs::read(&full) {
            Ok(b) => {
                digest_update(digest, &b);
                match parse(&b) {
                    Ok(t) => {
                        out.push((b, t));
                        None
                    }
                    Err(e) => Some(format!("`{}` {}: {e}", full.display(), key.what)),
                }
            }
            Err(e) => Some(format!("cannot read `{}`: {e}", full.display())),
        };
        if let Some(what) = problem {
            ok = false;
            diags.at(
                Code::CertFile,
                source,
                f.span(),
                what,
                key.why,
                key.fix.into(),
            );
        }
    }
    (out, ok)
}

fn digest_update(d: &mut Sha256, b: &[u8]) {
    use sha2::Digest;
    d.update(b);
}
