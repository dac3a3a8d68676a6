//! `[sso]` and `[[provider]]` tables -> `SsoSpec`, and each route's `auth` / `provider` /
//! `require` -> `RouteAuth`. Key and secret files are read here (and hashed into the snapshot, so
//! a rotated key is a reload); a key readable by group or others is refused.

use crate::compile::Ctx;
use crate::diag::{did_you_mean, Code, Declared, Diagnostics, Source};
use crate::raw::{self, Auth, PolicyFile, SessionStore};
use crate::snapshot::{
    ClaimPathSpec, ProviderSpec, Requirement, RouteAuth, Secret, SsoSpec, TokenAlg,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

const DEFAULT_HEADERS: [(&str, &str); 4] = [
    ("x-user-id", "sub"),
    ("x-user-name", "name"),
    ("x-user-roles", "roles"),
    ("x-user-department", "department"),
];

/// Reads a key or secret file named in a policy; refuses one that others can read.
pub(crate) fn read_secret(
    cx: &Ctx,
    source: &Source,
    path: &Spanned<String>,
    what: &str,
    diags: &mut Diagnostics,
    digest: &mut Sha256,
) -> Option<Vec<u8>> {
    let full = cx.dir.join(path.get_ref());
    let fail = |diags: &mut Diagnostics, what_wrong: String, fix: String| {
        diags.at(
            Code::KeyFile,
            source,
            path.span(),
            what_wrong,
            "key and secret paths are relative to the policy directory (or absolute); only the gateway's user may read them",
            fix,
        );
    };
    let meta = match std::fs::metadata(&full) {
        Ok(m) => m,
        Err(e) => {
            fail(
                diags,
                format!("cannot read {what} `{}`: {e}", full.display()),
                "create it (for development: certs/make-dev-certs.sh) or correct the path".into(),
            );
            return None;
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            fail(
                diags,
                format!(
                    "{what} `{}` is readable by group or others (mode {mode:o})",
                    full.display()
                ),
                format!("run `chmod 600 {}`", full.display()),
            );
            return None;
        }
    }
    let _ = meta;
    match std::fs::read(&full) {
        Ok(b) => {
            digest.update(path.get_ref().as_bytes());
            digest.update(&b);
            Some(b)
        }
        Err(e) => {
            fail(
                diags,
                format!("cannot read {what} `{}`: {e}", full.display()),
                "make the file readable by the gateway's user".into(),
            );
            None
        }
    }
}

fn session_key(bytes: &[u8]) -> Option<[u8; 32]> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let raw = hex::decode(text).ok()?;
    raw.try_into().ok()
}

fn assertion_key(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{pem::PemObject, PrivateKeyDer};
    let der = match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(PrivateKeyDer::Pkcs8(k)) => k.secret_pkcs8_der().to_vec(),
        Ok(_) => return Err("the key is not PKCS#8 (`BEGIN PRIVATE KEY`)".into()),
        Err(_) => return Err("no PEM private key found".into()),
    };
    let rng = ring::rand::SystemRandom::new();
    ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &rng,
    )
    .map_err(|_| "the key is not a P-256 (prime256v1) EC key".to_string())?;
    Ok(der)
}

fn sm2_assertion_key(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let pem = std::str::from_utf8(bytes).map_err(|_| "not a PEM text file".to_string())?;
    menwei_gm::Sm2Private::from_pem(menwei_gm::DEFAULT_ID, pem).map_err(|e| e.to_string())?;
    Ok(bytes.to_vec())
}

fn loopback_host(h: &str) -> bool {
    matches!(h, "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

fn check_issuer(source: &Source, p: &raw::Provider, diags: &mut Diagnostics) -> Option<String> {
    let issuer = p.issuer.get_ref();
    let ok = match url::Url::parse(issuer) {
        Ok(u) if u.scheme() == "https" => u.host_str().is_some(),
        Ok(u) if u.scheme() == "http" => u.host_str().is_some_and(loopback_host),
        _ => false,
    };
    if !ok {
        diags.at(
            Code::InvalidValue,
            source,
            p.issuer.span(),
            format!("provider `{}` has issuer `{issuer}`, which is not an https URL", p.name.get_ref()),
            "tokens and the client secret travel to the provider; plain http is allowed only on loopback (development)",
            "write the issuer exactly as the provider's discovery document states it, e.g. https://idp.example.cn/realms/gov".into(),
        );
        return None;
    }
    Some(issuer.trim_end_matches('/').to_string())
}

fn algorithms(source: &Source, p: &raw::Provider, diags: &mut Diagnostics) -> Vec<TokenAlg> {
    let Some(list) = &p.algorithms else {
        return TokenAlg::ALL.to_vec();
    };
    let mut out = Vec::new();
    for a in list.get_ref() {
        match TokenAlg::ALL.iter().find(|t| t.as_str() == a) {
            Some(t) => out.push(*t),
            None => diags.at(
                Code::InvalidValue,
                source,
                list.span(),
                format!("provider `{}` lists algorithm `{a}`", p.name.get_ref()),
                "only asymmetric signatures prove a token came from the provider: `none` and HMAC (HS256...) are never accepted",
                "use any of RS256, ES256, EdDSA".into(),
            ),
        }
    }
    if out.is_empty() && list.get_ref().is_empty() {
        diags.at(
            Code::InvalidValue,
            source,
            list.span(),
            format!("provider `{}` accepts no algorithm", p.name.get_ref()),
            "with no algorithm no token can be verified",
            "remove `algorithms` (all of RS256, ES256, EdDSA) or list at least one".into(),
        );
    }
    out
}

/// Whether `p` can only ever mean a path on this site when used as a redirect `Location`:
/// one leading `/`, never `//` or a backslash (browsers read `/\evil` as `//evil`), and no
/// whitespace or control characters (browsers drop tabs and newlines, turning `/\t/evil` into
/// `//evil`).
pub fn same_origin_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn compile_provider(
    cx: &Ctx,
    source: &Source,
    p: &raw::Provider,
    diags: &mut Diagnostics,
    digest: &mut Sha256,
) -> Option<ProviderSpec> {
    let name = p.name.get_ref();
    let issuer = check_issuer(source, p, diags);
    let algorithms = algorithms(source, p, diags);
    let secret = read_secret(
        cx,
        source,
        &p.client_secret_file,
        "client secret file",
        diags,
        digest,
    )
    .and_then(|b| {
        let s = String::from_utf8(b).ok()?.trim().to_string();
        (!s.is_empty()).then_some(s)
    });
    if secret.is_none() && std::fs::metadata(cx.dir.join(p.client_secret_file.get_ref())).is_ok() {
        diags.at(
            Code::KeyFile,
            source,
            p.client_secret_file.span(),
            format!("provider `{name}`: the client secret file is empty or not text"),
            "the file holds the secret issued by the provider for this client",
            "write the secret (one line) into the file".into(),
        );
    }
    let leeway = p.leeway.map(|d| d.0).unwrap_or(Duration::from_secs(30));
    if leeway > Duration::from_secs(300) {
        diags.at(
            Code::InvalidValue,
            source,
            p.name.span(),
            format!("provider `{name}` has leeway {leeway:?}"),
            "leeway lets expired tokens through; more than a few minutes hides broken clocks",
            "use at most `5m` (default `30s`) and fix the clocks with NTP".into(),
        );
    }
    let post_logout = p.post_logout_redirect.clone().unwrap_or_else(|| "/".into());
    if !same_origin_path(&post_logout) {
        diags.at(
            Code::InvalidValue,
            source,
            p.name.span(),
            format!("provider `{name}` has post_logout_redirect `{post_logout}`"),
            "after logout the browser only ever goes back to this gateway (no open redirect)",
            "write a path on this site, like `/` or `/bye`".into(),
        );
    }
    let introspection_cache = p
        .introspection_cache
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(60));
    if introspection_cache > Duration::from_secs(600) {
        diags.at(
            Code::InvalidValue,
            source,
            p.name.span(),
            format!(
                "provider `{name}` keeps introspection answers for {}s",
                introspection_cache.as_secs()
            ),
            "a token revoked at the provider stays usable here for as long as its answer is kept",
            "use at most introspection_cache = \"10m\"".into(),
        );
    }
    let c = &p.claims;
    let mut scopes = p
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    Some(ProviderSpec {
        name: name.clone(),
        issuer: issuer?,
        client_id: p.client_id.clone(),
        client_secret: Secret(secret?),
        scopes,
        algorithms,
        audience: p
            .audience
            .clone()
            .unwrap_or_else(|| vec![p.client_id.clone()]),
        resource: p.resource.clone(),
        claims: ClaimPathSpec {
            roles: c.roles.clone().unwrap_or_else(|| "roles".into()),
            groups: c.groups.clone().unwrap_or_else(|| "groups".into()),
            department: c.department.clone().unwrap_or_else(|| "department".into()),
            name: c.name.clone().unwrap_or_else(|| "name".into()),
        },
        refresh_before: p
            .refresh_before
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(60)),
        leeway,
        jwks_refetch_interval: p
            .jwks_refetch_interval
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(60)),
        timeout: p.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(5)),
        post_logout_redirect: post_logout,
        forward_access_token: p.forward_access_token,
        sm2_tokens: p.sm2_tokens.as_ref().map(|t| {
            (
                t.alg.clone(),
                t.distid
                    .clone()
                    .unwrap_or_else(|| menwei_gm::DEFAULT_ID.to_string()),
                t.encoding,
            )
        }),
        introspection: p.introspect.then_some(introspection_cache),
    })
}

fn compile_headers(
    source: &Source,
    s: &raw::Sso,
    prefixes: &[String],
    diags: &mut Diagnostics,
) -> Vec<(http::HeaderName, String)> {
    let Some(h) = &s.headers else {
        return DEFAULT_HEADERS
            .iter()
            .map(|(n, c)| (http::HeaderName::from_static(n), c.to_string()))
            .collect();
    };
    let mut out = Vec::new();
    for (name, claim) in h.get_ref() {
        let lower = name.to_ascii_lowercase();
        match http::HeaderName::from_bytes(lower.as_bytes()) {
            Ok(n) if prefixes.iter().any(|p| lower.starts_with(p.as_str())) => {
                out.push((n, claim.clone()))
            }
            Ok(_) => diags.at(
                Code::InvalidValue,
                source,
                h.span(),
                format!("identity header `{name}` does not start with an identity prefix"),
                "only headers under [trust] identity_header_prefixes are stripped from clients, so any other name could be forged",
                format!("rename it to start with one of: {}", prefixes.join(", ")),
            ),
            Err(_) => diags.at(
                Code::InvalidValue,
                source,
                h.span(),
                format!("`{name}` is not a valid header name"),
                "header names are letters, digits and `-`",
                "write e.g. `X-User-Id`".into(),
            ),
        }
    }
    out
}

/// What routes need to know about sign-in.
pub(crate) struct Providers {
    pub by_name: HashMap<String, usize>,
    /// `[sso]` is configured and valid enough to refer to.
    pub present: bool,
}

pub(crate) fn compile(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    sso: Option<(usize, &Spanned<raw::Sso>)>,
    have_state: bool,
    prefixes: &[String],
    diags: &mut Diagnostics,
    digest: &mut Sha256,
) -> (Option<Arc<SsoSpec>>, Providers) {
    let mut providers = Vec::new();
    let mut by_name = HashMap::new();
    let mut declared = Declared::new("provider");
    let mut all_ok = true;
    for (src, f) in files {
        let source = &cx.sources[*src];
        for p in &f.provider {
            let why = "routes name the provider they sign users in with";
            if !declared.first(source, &p.name, why, "rename one of them", diags) {
                continue;
            }
            if sso.is_none() {
                diags.at(
                    Code::Requires,
                    source,
                    p.name.span(),
                    format!(
                        "provider `{}` is defined but there is no [sso] table",
                        p.name.get_ref()
                    ),
                    "sign-in needs a session key and an assertion key, set in [sso]",
                    "add [sso] with session_key_file and assertion_key_file (see docs/policies.md)"
                        .into(),
                );
            }
            match compile_provider(cx, source, p, diags, digest) {
                Some(spec) => {
                    by_name.insert(spec.name.clone(), providers.len());
                    providers.push(spec);
                }
                None => {
                    all_ok = false;
                    by_name.insert(p.name.get_ref().clone(), usize::MAX);
                }
            }
        }
    }
    let Some((src, s)) = sso else {
        return (
            None,
            Providers {
                by_name,
                present: false,
            },
        );
    };
    let source = &cx.sources[src];
    let st = s.get_ref();
    let key = read_secret(
        cx,
        source,
        &st.session_key_file,
        "session key file",
        diags,
        digest,
    );
    let session_key = key.as_deref().and_then(session_key);
    if key.is_some() && session_key.is_none() {
        diags.at(
            Code::KeyFile,
            source,
            st.session_key_file.span(),
            "the session key file does not hold 32 bytes as 64 hex characters".into(),
            "session cookies are sealed with AES-256-GCM, which takes a 256-bit key",
            "generate one with `openssl rand -hex 32 > FILE && chmod 600 FILE`".into(),
        );
    }
    let akey = read_secret(
        cx,
        source,
        &st.assertion_key_file,
        "assertion key file",
        diags,
        digest,
    );
    let assertion = akey.as_deref().map(|k| match st.assertion_alg {
        crate::raw::AssertionAlg::Es256 => assertion_key(k),
        crate::raw::AssertionAlg::Sm2 => sm2_assertion_key(k),
    });
    if let Some(Err(why)) = &assertion {
        let (what, fix) = match st.assertion_alg {
            crate::raw::AssertionAlg::Es256 => (
                "an ES256 JWT, signed with a P-256 key in PKCS#8",
                "generate one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out FILE && chmod 600 FILE`",
            ),
            crate::raw::AssertionAlg::Sm2 => (
                "an SM2-SM3 JWT (assertion_alg = \"sm2\"), signed with an SM2 key in PKCS#8",
                "generate one with `menwei keygen sm2 --out FILE`",
            ),
        };
        diags.at(
            Code::KeyFile,
            source,
            st.assertion_key_file.span(),
            format!("the assertion key is unusable: {why}"),
            &format!("the identity assertion to backends is {what}"),
            fix.into(),
        );
    }
    if st.store == SessionStore::Redis && !have_state {
        diags.at(
            Code::Requires,
            source,
            s.span(),
            "[sso] store = \"redis\" but no [state] redis is configured".into(),
            "sessions shared between replicas live in Redis",
            "add [state] with redis = \"redis://host:6379\", or use store = \"memory\"".into(),
        );
    }
    let cookie_name = st
        .cookie_name
        .as_ref()
        .map(|c| c.get_ref().clone())
        .unwrap_or_else(|| "menwei_session".into());
    if cookie_name.is_empty()
        || cookie_name.starts_with("__")
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        let span = st.cookie_name.as_ref().map_or(s.span(), |c| c.span());
        diags.at(
            Code::InvalidValue,
            source,
            span,
            format!("cookie_name `{cookie_name}` is not usable"),
            "cookie names are letters, digits, `_` and `-`; the gateway adds `__Host-` itself over TLS",
            "write e.g. cookie_name = \"gov_session\"".into(),
        );
    }
    let headers = compile_headers(source, st, prefixes, diags);
    let dur = |d: Option<crate::types::Duration>, default: u64| {
        d.map(|d| d.0).unwrap_or(Duration::from_secs(default))
    };
    let spec = match (session_key, assertion) {
        (Some(k), Some(Ok(a))) if all_ok => Some(Arc::new(SsoSpec {
            cookie_name,
            session_key: Secret(k),
            assertion_key: Secret(a),
            assertion_alg: st.assertion_alg,
            idle_timeout: dur(st.idle_timeout, 30 * 60),
            absolute_timeout: dur(st.absolute_timeout, 8 * 3600),
            login_timeout: dur(st.login_timeout, 600),
            assertion_ttl: dur(st.assertion_ttl, 60),
            store: st.store,
            cipher: st.cipher,
            headers,
            providers,
        })),
        _ => None,
    };
    (
        spec,
        Providers {
            by_name,
            present: true,
        },
    )
}

/// A route's `auth`, `provider` and `require`, checked against the providers.
pub(crate) fn route_auth(
    source: &Source,
    r: &raw::Route,
    providers: &Providers,
    apps: &HashMap<String, usize>,
    has_client_cas: bool,
    diags: &mut Diagnostics,
) -> Option<RouteAuth> {
    let name = r.name.get_ref();
    let kind = r.auth.as_ref().map(|a| *a.get_ref()).unwrap_or_default();
    let mut require = Vec::new();
    let mut ok = true;
    for q in &r.require {
        let (values, all) = match (&q.any, &q.all) {
            (Some(v), None) if !v.is_empty() => (v.clone(), false),
            (None, Some(v)) if !v.is_empty() => (v.clone(), true),
            _ => {
                ok = false;
                diags.at(
                    Code::InvalidValue,
                    source,
                    q.claim.span(),
                    format!("route `{name}` requires claim `{}` without a non-empty `any` or `all` (or with both)", q.claim.get_ref()),
                    "a requirement says which values the claim must hold: at least one (`any`) or every one (`all`)",
                    "write e.g. { claim = \"roles\", any = [\"staff\", \"auditor\"] }".into(),
                );
                continue;
            }
        };
        require.push(Requirement {
            claim: q.claim.get_ref().clone(),
            values,
            all,
        });
    }
    if kind == Auth::GmCertificate {
        if !has_client_cas {
            let span = r.auth.as_ref().map_or(r.name.span(), |a| a.span());
            diags.at(
                Code::Requires,
                source,
                span,
                format!(
                    "route `{name}` checks SM2 client certificates but [gm] has no client_ca_files"
                ),
                "a client certificate is checked against the SM2 CAs the gateway trusts",
                "set [gm] client_cert_header and client_ca_files (see docs/policies.md)".into(),
            );
            return None;
        }
        return ok.then_some(RouteAuth {
            kind,
            provider: None,
            require,
            apps: Vec::new(),
        });
    }
    if kind != Auth::GmSignature {
        if let Some(a) = r.apps.first() {
            diags.at(
                Code::Requires,
                source,
                a.span(),
                format!("route `{name}` lists apps but its auth is not gm-signature"),
                "apps sign their requests; only auth = \"gm-signature\" checks those signatures",
                "set auth = \"gm-signature\" or remove `apps`".into(),
            );
            return None;
        }
    }
    if kind == Auth::GmSignature {
        if apps.is_empty() {
            let span = r.auth.as_ref().map_or(r.name.span(), |a| a.span());
            diags.at(
                Code::Requires,
                source,
                span,
                format!("route `{name}` checks request signatures but no [[app]] is configured"),
                "a signed request is checked against the key of the app that signed it",
                "add an [[app]] with id and public_key_file (see docs/gm-signature.md)".into(),
            );
            return None;
        }
        let mut idx = Vec::new();
        for a in &r.apps {
            match apps.get(a.get_ref()) {
                Some(&usize::MAX) => ok = false,
                Some(i) => idx.push(*i),
                None => {
                    ok = false;
                    let mut known: Vec<&str> = apps.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let fix = match did_you_mean(a.get_ref(), known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("use one of the defined apps: {}", known.join(", ")),
                    };
                    diags.at(
                        Code::Dangling,
                        source,
                        a.span(),
                        format!(
                            "route `{name}` allows app `{}`, which is not defined",
                            a.get_ref()
                        ),
                        "a route's apps name [[app]] tables of any policy file",
                        fix,
                    );
                }
            }
        }
        return ok.then_some(RouteAuth {
            kind,
            provider: None,
            require,
            apps: idx,
        });
    }
    if kind == Auth::Public {
        if let Some(first) = r.require.first() {
            diags.at(
                Code::Requires,
                source,
                first.claim.span(),
                format!("route `{name}` has requirements on claims but auth is public"),
                "claims come from a signed-in user or a bearer token; a public route has neither",
                "set auth = \"login\" or auth = \"bearer\" on the route".into(),
            );
            return None;
        }
        return Some(RouteAuth::default());
    }
    if !providers.present && providers.by_name.is_empty() {
        let span = r.auth.as_ref().map_or(r.name.span(), |a| a.span());
        diags.at(
            Code::Requires,
            source,
            span,
            format!("route `{name}` needs sign-in but no [[provider]] is configured"),
            "users sign in at an OpenID provider that the gateway trusts",
            "add [sso] and a [[provider]] (see docs/policies.md), or set auth = \"public\"".into(),
        );
        return None;
    }
    let provider = match &r.provider {
        Some(p) => match providers.by_name.get(p.get_ref()) {
            Some(&usize::MAX) => return None,
            Some(i) => *i,
            None => {
                let mut known: Vec<&str> = providers.by_name.keys().map(String::as_str).collect();
                known.sort_unstable();
                let fix = match did_you_mean(p.get_ref(), known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("use one of the defined providers: {}", known.join(", ")),
                };
                diags.at(
                    Code::Dangling,
                    source,
                    p.span(),
                    format!(
                        "route `{name}` signs in with provider `{}`, which is not defined",
                        p.get_ref()
                    ),
                    "a route's provider names a [[provider]] table of any policy file",
                    fix,
                );
                return None;
            }
        },
        None if providers.by_name.len() == 1 => {
            let i = providers.by_name.values().next().copied().unwrap_or(0);
            if i == usize::MAX {
                return None;
            }
            i
        }
        None => {
            let span = r.auth.as_ref().map_or(r.name.span(), |a| a.span());
            let mut known: Vec<&str> = providers.by_name.keys().map(String::as_str).collect();
            known.sort_unstable();
            diags.at(
                Code::Requires,
                source,
                span,
                format!("route `{name}` needs sign-in but does not say which provider"),
                "with several providers configured, each route names the one it uses",
                format!("add provider = \"...\" (one of: {})", known.join(", ")),
            );
            return None;
        }
    };
    ok.then_some(RouteAuth {
        kind,
        provider: Some(provider),
        require,
        apps: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::same_origin_path;
    use std::os::unix::fs::PermissionsExt;

    /// What an assertion key file may hold: a P-256 key in PKCS#8, and nothing else, each refusal
    /// saying why. (Throw-away keys made for this test by `openssl genpkey`.)
    #[test]
    fn assertion_keys_are_pkcs8_p256() {
        const P256_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5TNl9N3/IhMveb3K
Zn4yZ1w6cCryplDo8QXdACimws6hRANCAAS3LFLcB73sJnyatZxALcqlgvPCwvQo
HyXKfZKR2rax7A6G3mbwsvOKmSt8GidFu3QM11tjv8+hlb6i/svtbNvn
-----END PRIVATE KEY-----
";
        const P256_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIOUzZfTd/yITL3m9ymZ+MmdcOnAq8qZQ6PEF3QAopsLOoAoGCCqGSM49
AwEHoUQDQgAEtyxS3Ae97CZ8mrWcQC3KpYLzwsL0KB8lyn2Skdq2sewOht5m8LLz
ipkrfBonRbt0DNdbY7/PoZW+ov7L7Wzb5w==
-----END EC PRIVATE KEY-----
";
        const ED25519_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINMRhRaInJCaK9nX9WSeogi14OehzVcm6OwYi8MbpDB9
-----END PRIVATE KEY-----
";
        let der = super::assertion_key(P256_PKCS8.as_bytes()).unwrap();
        assert_eq!(der.len(), 138, "the PKCS#8 document itself");
        // Text before the key is skipped, as in any PEM bundle.
        let bundled = format!("# assertion key\n{P256_PKCS8}");
        assert_eq!(super::assertion_key(bundled.as_bytes()).unwrap(), der);
        let why = |pem: &str| super::assertion_key(pem.as_bytes()).unwrap_err();
        assert!(why(P256_SEC1).contains("not PKCS#8"), "{}", why(P256_SEC1));
        assert!(why(ED25519_PKCS8).contains("not a P-256"));
        assert!(why("").contains("no PEM private key"));
        assert!(
            why("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n")
                .contains("no PEM private key")
        );
    }

    /// A policy with [sso] whose key files are written with `mode`.
    fn load_with_mode(mode: u32) -> Result<crate::Snapshot, crate::Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, text: &str, mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        put("session.key", &"0f".repeat(32), mode);
        put("secret", "s3cret", 0o600);
        let ec = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .output()
            .unwrap()
            .stdout;
        let ec = String::from_utf8(ec).unwrap();
        put("assertion.key", &ec, 0o600);
        put(
            "p.toml",
            r#"
[[listener]]
name = "l"
addr = "127.0.0.1:18080"
[[upstream]]
name = "u"
backends = ["127.0.0.1:19001"]
[[route]]
name = "r"
prefix = "/"
upstream = "u"
auth = "login"
[sso]
session_key_file = "session.key"
assertion_key_file = "assertion.key"
[[provider]]
name = "idp"
issuer = "https://idp.example.cn"
client_id = "c"
client_secret_file = "secret"
"#,
            0o644,
        );
        crate::load(dir.path())
    }

    #[test]
    fn key_files_readable_by_others_are_refused() {
        let s = load_with_mode(0o600).unwrap();
        let sso = s.sso.as_ref().unwrap();
        assert_eq!(sso.session_key.0, [0x0f; 32]);
        assert_eq!(format!("{:?}", sso.session_key), "[redacted]");
        assert_eq!(s.router.routes()[0].auth.provider, Some(0));
        let err = load_with_mode(0o644).unwrap_err().to_string();
        assert!(
            err.contains("MW-POL-017") && err.contains("chmod 600"),
            "{err}"
        );
        assert!(!err.contains("0f0f"), "key material never printed");
    }

    #[test]
    fn only_paths_on_this_site() {
        for ok in ["/", "/app/x?next=https://evil.example/", "/a%2F%2Fb"] {
            assert!(same_origin_path(ok), "{ok}");
        }
        for bad in [
            "",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil",
            "https://evil.example/",
            "evil",
            "/a b",
        ] {
            assert!(!same_origin_path(bad), "{bad:?}");
        }
    }
}
