//! `menwei explain`: an operator's dry run of one request against a policy directory.

use menwei_policy::router::{HostMatch, Match};
use std::path::Path;
use std::process::ExitCode;

fn split_url(url: &str) -> (Option<String>, String) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) => match r.find('/') {
            Some(i) => (Some(r[..i].to_string()), r[i..].to_string()),
            None => (Some(r.to_string()), "/".to_string()),
        },
        None => (None, url.to_string()),
    }
}

fn host_of(url_host: Option<String>, headers: &[String]) -> String {
    let from_header = headers.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("host")
            .then(|| v.trim().to_string())
    });
    let raw = url_host.or(from_header).unwrap_or_default();
    let no_port = match raw.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h.to_string(),
        _ => raw,
    };
    no_port.trim_end_matches('.').to_ascii_lowercase()
}

fn describe_host(h: &HostMatch) -> String {
    match h {
        HostMatch::Any => "any host".into(),
        HostMatch::Exact(x) => format!("host {x}"),
        HostMatch::Suffix(s) => format!("host *{s}"),
    }
}

/// Prints the decision; exit 0 when a route matches, 2 when none, 1 when the policy is invalid.
pub fn explain(dir: &Path, method: &str, url: &str, headers: &[String]) -> ExitCode {
    let snap = match menwei_policy::load(dir) {
        Ok(s) => s,
        Err(d) => {
            print!("{d}");
            println!(
                "{}: {} error(s); fix the policy first (menwei check)",
                dir.display(),
                d.len()
            );
            return ExitCode::from(1);
        }
    };
    let Ok(method) = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        println!("`{method}` is not an HTTP method");
        return ExitCode::from(1);
    };
    let (url_host, target) = split_url(url);
    let host = host_of(url_host, headers);
    let path_only = target.split('?').next().unwrap_or("/");
    println!("request:   {method} host={host:?} target={target}");
    println!("policy:    {} (sha256 {})", dir.display(), snap.sha256);
    let path = match menwei_policy::path::normalize(path_only) {
        Ok(p) => p,
        Err(e) => {
            println!("path:      refused with 400 MW-REQ-002: {e}");
            return ExitCode::from(2);
        }
    };
    println!("path:      {path_only} normalises to {path} (matched and forwarded)");
    if path == "/.menwei" || path.starts_with("/.menwei/") {
        println!("result:    reserved gateway path, never forwarded (404 MW-ROUTE-003)");
        return ExitCode::from(2);
    }
    println!("routes, in precedence order (first match wins):");
    for (i, c) in snap
        .router
        .explain(&host, &path, &method)
        .iter()
        .enumerate()
    {
        let r = c.route;
        let methods = if r.methods.is_empty() {
            "all methods".to_string()
        } else {
            r.methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "  {:>2}. {:<20} {:<28} {:<22} {:<14} {}",
            i + 1,
            r.name,
            r.path.describe(),
            describe_host(&r.host),
            methods,
            c.verdict
        );
    }
    match snap.router.find(&host, &path, &method) {
        Match::Route(_, r) => {
            let Some(u) = snap.upstream(r.upstream) else {
                return ExitCode::from(1);
            };
            println!("result:    route `{}` ({})", r.name, r.origin);
            println!(
                "upstream:  `{}` balance={:?} backends={}",
                u.name,
                u.balance,
                u.backend_names.join(", ")
            );
            println!(
                "           connect {:?}, read {:?}, total {}, retries {}, health checks {}",
                u.connect_timeout,
                u.read_timeout,
                u.total_timeout
                    .map(|t| format!("{t:?}"))
                    .unwrap_or_else(|| "none".into()),
                u.retries,
                u.health
                    .as_ref()
                    .map(|h| format!("GET {} every {:?}", h.path, h.interval))
                    .unwrap_or_else(|| "off".into())
            );
            println!(
                "limits:    body {} bytes; websocket {}",
                r.max_body_bytes,
                if r.websocket {
                    "passed through"
                } else {
                    "refused"
                }
            );
            println!("access:    {}", describe_auth(&snap, r));
            if let Some(m) = r.mask.and_then(|i| snap.masks.get(i)) {
                println!(
                    "masking:   profile `{}`: {} field rule(s), detectors {}, originals for roles [{}], up to {} bytes",
                    m.name,
                    m.profile.rules.len(),
                    if m.profile.detect { "on" } else { "off" },
                    m.unmask_roles.join(", "),
                    m.max_body
                );
            }
            match r.waf.and_then(|i| snap.wafs.get(i)) {
                Some(w) => {
                    println!(
                        "inspect:   profile `{}`: mode {:?}, paranoia {}, threshold {}, body inspected up to {} bytes, {} exclusion(s)",
                        w.name,
                        w.mode,
                        w.config.paranoia,
                        w.config.threshold,
                        w.max_body,
                        w.config.exclusions.len()
                    );
                    if let Ok(engine) = menwei_waf::shared() {
                        let mut pairs: Vec<(&str, &[u8])> = headers
                            .iter()
                            .filter_map(|h| h.split_once(':'))
                            .map(|(k, v)| (k.trim(), v.trim().as_bytes()))
                            .collect();
                        if !pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
                            pairs.push(("host", host.as_bytes()));
                        }
                        let req = menwei_waf::Request {
                            method: method.as_str(),
                            uri: target.as_bytes(),
                            headers: pairs,
                            // As the operator typed them.
                            names_lower: false,
                            body: None,
                            body_truncated: false,
                        };
                        let v = engine.inspect(&w.config, &req);
                        let hits: Vec<String> = v
                            .hits
                            .iter()
                            .map(|h| {
                                format!(
                                    "{} {} ({}) in {}",
                                    h.rule,
                                    h.category.name(),
                                    h.what,
                                    h.target
                                )
                            })
                            .collect();
                        println!(
                            "           this request scores {}{}{}",
                            v.score,
                            if v.attack {
                                ": an attack, "
                            } else {
                                ": passes"
                            },
                            if v.attack {
                                if w.mode == menwei_policy::raw::WafMode::Block {
                                    "refused with 403 MW-WAF-001"
                                } else {
                                    "logged (detect mode)"
                                }
                            } else {
                                ""
                            }
                        );
                        for h in hits {
                            println!("           - {h}");
                        }
                    }
                }
                None => println!("inspect:   none (no [[waf]] profile applies)"),
            }
            let rate: Vec<String> = r
                .limits
                .iter()
                .filter_map(|&i| snap.rate_limits.get(i))
                .map(|l| {
                    let when = if l.needs_identity() {
                        "after sign-in"
                    } else {
                        "before sign-in"
                    };
                    let key: Vec<String> = l.key.iter().map(describe_key).collect();
                    format!(
                        "`{}` {} burst {} per {} ({when}, {:?})",
                        l.name,
                        l.rate,
                        l.burst,
                        key.join("+"),
                        l.scope
                    )
                })
                .collect();
            if !rate.is_empty() {
                println!("rate:      {}", rate.join("; "));
            }
            println!(
                "headers:   client headers starting with {} are removed; forwarding headers are believed only from {}",
                snap.trust.identity_prefixes.join(", "),
                if snap.trust.proxies.is_empty() {
                    "nobody (no [trust] proxies)".to_string()
                } else {
                    snap.trust.proxies.iter().map(|c| c.0.to_string()).collect::<Vec<_>>().join(", ")
                }
            );
            ExitCode::SUCCESS
        }
        Match::MethodNotAllowed(m) => {
            let allow: Vec<_> = m.iter().map(|m| m.as_str()).collect();
            println!("result:    405 MW-ROUTE-002, Allow: {}", allow.join(", "));
            ExitCode::from(2)
        }
        Match::NotFound => {
            println!("result:    no route: 404 MW-ROUTE-001");
            ExitCode::from(2)
        }
    }
}

/// Who may use the route, in words.
fn describe_auth(snap: &menwei_policy::Snapshot, r: &menwei_policy::router::RouteSpec) -> String {
    use menwei_policy::raw::Auth;
    let provider = r
        .auth
        .provider
        .and_then(|i| snap.sso.as_ref()?.providers.get(i))
        .map(|p| format!("provider `{}` ({})", p.name, p.issuer))
        .unwrap_or_default();
    let require: Vec<String> = r
        .auth
        .require
        .iter()
        .map(|q| {
            format!(
                "{} {} of [{}]",
                q.claim,
                if q.all { "all" } else { "any" },
                q.values.join(", ")
            )
        })
        .collect();
    let require = if require.is_empty() {
        String::new()
    } else {
        format!("; requires {}", require.join(" and "))
    };
    match r.auth.kind {
        Auth::Public => "public: anyone, no identity".into(),
        Auth::Login => format!(
            "sign-in with {provider}: session cookie or bearer token; browsers without one are sent to sign in, API clients get 401{require}"
        ),
        Auth::Bearer => format!("bearer token of {provider} (401 without){require}"),
        Auth::GmCertificate => format!(
            "SM2 client certificate from a trusted TLCP terminator, checked against [gm] client_ca_files{require}"
        ),
        Auth::GmSignature => {
            let apps: Vec<&str> = snap
                .gm
                .as_ref()
                .map(|g| {
                    if r.auth.apps.is_empty() {
                        g.apps.iter().map(|a| a.id.as_str()).collect()
                    } else {
                        r.auth
                            .apps
                            .iter()
                            .filter_map(|&i| g.apps.get(i).map(|a| a.id.as_str()))
                            .collect()
                    }
                })
                .unwrap_or_default();
            format!(
                "requests signed (MENWEI-SM2 / MENWEI-HMAC-SM3) by app {}; body up to 64 KiB checked before forwarding{require}",
                apps.join(", ")
            )
        }
    }
}

fn describe_key(k: &menwei_policy::snapshot::KeyPart) -> String {
    use menwei_policy::snapshot::KeyPart;
    match k {
        KeyPart::ClientIp => "client-ip".into(),
        KeyPart::Route => "route".into(),
        KeyPart::Header(h) => format!("header:{h}"),
        KeyPart::User => "user".into(),
        KeyPart::App => "app".into(),
        KeyPart::Claim(c) => format!("claim:{c}"),
    }
}
