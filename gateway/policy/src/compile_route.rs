//! `[[route]]` tables -> `RouteSpec`s: match validated, upstream resolved by name, and pairs of
//! routes that would match exactly the same requests refused (precedence must never be a coin toss).

use crate::compile::Ctx;
use crate::diag::{did_you_mean, Code, Declared, Diagnostics, Source};
use crate::raw::{self, PolicyFile};
use crate::router::{HostMatch, PathMatch, RouteSpec};
use std::collections::HashMap;

/// Validates a host pattern: a DNS name, optionally `*.` + name. Returns the compiled matcher.
pub(crate) fn host_pattern(h: &str) -> Result<HostMatch, String> {
    let lower = h.trim().to_ascii_lowercase();
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
    };
    if name.is_empty() || name.contains(':') {
        return Err("a host is a DNS name without port".into());
    }
    if !name.split('.').all(ok_label) {
        return Err("labels are letters, digits and `-`; `*` only as the whole first label".into());
    }
    Ok(if wild {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_string())
    })
}

fn method(m: raw::Method) -> http::Method {
    match m {
        raw::Method::GET => http::Method::GET,
        raw::Method::HEAD => http::Method::HEAD,
        raw::Method::POST => http::Method::POST,
        raw::Method::PUT => http::Method::PUT,
        raw::Method::DELETE => http::Method::DELETE,
        raw::Method::PATCH => http::Method::PATCH,
        raw::Method::OPTIONS => http::Method::OPTIONS,
    }
}

/// Names routes may refer to.
pub(crate) struct Names<'a> {
    pub upstreams: &'a HashMap<String, usize>,
    pub limits: &'a HashMap<String, usize>,
    pub limit_specs: &'a [crate::snapshot::LimitSpec],
    pub providers: &'a crate::compile_sso::Providers,
    pub apps: &'a HashMap<String, usize>,
    pub has_client_cas: bool,
    pub masks: &'a HashMap<String, usize>,
    pub wafs: &'a crate::compile_waf::Names,
}

pub(crate) fn compile(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    names: &Names<'_>,
    default_body: u64,
    diags: &mut Diagnostics,
) -> Vec<RouteSpec> {
    let mut out: Vec<RouteSpec> = Vec::new();
    let mut declared = Declared::new("route");
    for (src, f) in files {
        let source = &cx.sources[*src];
        for r in &f.route {
            let name = r.name.get_ref();
            let here = format!(
                "{}:{}",
                source.path.display(),
                source.line_col(r.name.span().start).0
            );
            let why = "route names appear in logs, metrics and `menwei explain` and must be unique";
            if !declared.first(source, &r.name, why, "rename one of them", diags) {
                continue;
            }
            let upstream = resolve_upstream(source, r, names.upstreams, diags);
            let limits = resolve_limits(source, r, names.limits, diags);
            let host = compile_host(source, r, diags);
            let path = compile_path(source, r, diags);
            let auth = crate::compile_sso::route_auth(
                source,
                r,
                names.providers,
                names.apps,
                names.has_client_cas,
                diags,
            );
            let mask = crate::compile_mask::route_mask(source, r, names.masks, diags);
            let waf = crate::compile_waf::route_waf(source, r, names.wafs, diags);
            let (
                Some(upstream),
                Some(host),
                Some(path),
                Some(limits),
                Some(auth),
                Ok(mask),
                Ok(waf),
            ) = (upstream, host, path, limits, auth, mask, waf)
            else {
                continue;
            };
            if auth.kind == raw::Auth::Public {
                let who = limits
                    .iter()
                    .filter_map(|&i| names.limit_specs.get(i))
                    .find(|l| l.needs_identity());
                if let Some(l) = who {
                    diags.at(
                        Code::Requires,
                        source,
                        r.name.span(),
                        format!("route `{name}` applies limit `{}`, keyed on who the caller is, but the route is public", l.name),
                        "user, app, department and claim keys come from a signed-in user or a bearer token",
                        "set auth = \"login\" or \"bearer\" on the route, or key the limit on client-ip".into(),
                    );
                    continue;
                }
            }
            let spec = RouteSpec {
                name: name.clone(),
                host,
                path,
                methods: r.methods.iter().copied().map(method).collect(),
                upstream,
                websocket: r.websocket.unwrap_or(true),
                max_body_bytes: r.max_body_bytes.map(|b| b.0).unwrap_or(default_body),
                limits,
                auth,
                mask,
                waf,
                origin: here,
                order: out.len(),
            };
            check_ambiguous(source, r, &spec, &out, diags);
            out.push(spec);
        }
    }
    out
}

fn resolve_upstream(
    source: &Source,
    r: &raw::Route,
    ups: &HashMap<String, usize>,
    diags: &mut Diagnostics,
) -> Option<usize> {
    let want = r.upstream.get_ref();
    if let Some(i) = ups.get(want) {
        return Some(*i);
    }
    let mut known: Vec<&str> = ups.keys().map(String::as_str).collect();
    known.sort_unstable();
    let fix = match did_you_mean(want, known.iter().copied()) {
        Some(s) => format!(
            "did you mean `{s}`? (defined upstreams: {})",
            known.join(", ")
        ),
        None if known.is_empty() => "define it with an [[upstream]] table".into(),
        None => format!("use one of the defined upstreams: {}", known.join(", ")),
    };
    diags.at(
        Code::Dangling,
        source,
        r.upstream.span(),
        format!("route `{}` forwards to upstream `{want}`, which is not defined", r.name.get_ref()),
        "a route forwards to an upstream declared by name in an [[upstream]] table of any policy file",
        fix,
    );
    None
}

fn resolve_limits(
    source: &Source,
    r: &raw::Route,
    known: &HashMap<String, usize>,
    diags: &mut Diagnostics,
) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let mut ok = true;
    for l in &r.limits {
        match known.get(l.get_ref()) {
            Some(&crate::compile_limit::INVALID) => ok = false,
            Some(i) => out.push(*i),
            None => {
                ok = false;
                let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
                names.sort_unstable();
                let fix = match did_you_mean(l.get_ref(), names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if names.is_empty() => {
                        "define it with a [[limit]] table (see docs/policies.md)".into()
                    }
                    None => format!("use one of the defined limits: {}", names.join(", ")),
                };
                diags.at(
                    Code::Dangling,
                    source,
                    l.span(),
                    format!(
                        "route `{}` applies limit `{}`, which is not defined",
                        r.name.get_ref(),
                        l.get_ref()
                    ),
                    "a route's limits name [[limit]] tables of any policy file",
                    fix,
                );
            }
        }
    }
    ok.then_some(out)
}

fn compile_host(source: &Source, r: &raw::Route, diags: &mut Diagnostics) -> Option<HostMatch> {
    let Some(h) = &r.host else {
        return Some(HostMatch::Any);
    };
    match host_pattern(h.get_ref()) {
        Ok(m) => Some(m),
        Err(why) => {
            diags.at(
                Code::Host,
                source,
                h.span(),
                format!(
                    "route `{}` has host `{}`: {why}",
                    r.name.get_ref(),
                    h.get_ref()
                ),
                "routes match the request's host name (without port), exactly or by `*.` suffix",
                "write `gov.example.cn` or `*.example.cn`, or leave host out to match any host"
                    .into(),
            );
            None
        }
    }
}

fn route_match_error(
    source: &Source,
    r: &raw::Route,
    what: String,
    fix: String,
    diags: &mut Diagnostics,
) {
    diags.at(
        Code::RouteMatch,
        source,
        r.name.span(),
        what,
        "a route matches by exactly one of `path` (exact), `prefix` or `regex`, on the normalised path",
        fix,
    );
}

fn compile_path(source: &Source, r: &raw::Route, diags: &mut Diagnostics) -> Option<PathMatch> {
    let name = r.name.get_ref();
    let given = [r.path.is_some(), r.prefix.is_some(), r.regex.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given != 1 {
        let what = if given == 0 {
            format!("route `{name}` has no path, prefix or regex")
        } else {
            format!("route `{name}` sets more than one of path, prefix, regex")
        };
        route_match_error(
            source,
            r,
            what,
            "keep exactly one, e.g. prefix = \"/echo/\"".into(),
            diags,
        );
        return None;
    }
    if let Some(re) = &r.regex {
        return Some(PathMatch::Regex(re.get_ref().0.clone()));
    }
    let (p, exact) = match (&r.path, &r.prefix) {
        (Some(p), _) => (p, true),
        (_, Some(p)) => (p, false),
        _ => return None,
    };
    let normal = crate::path::normalize(p.get_ref());
    match normal {
        Ok(n)
            if &n == p.get_ref()
                || (!exact && n.trim_end_matches('/') == p.get_ref().trim_end_matches('/')) =>
        {
            if exact {
                Some(PathMatch::Exact(n))
            } else {
                let trimmed = n.trim_end_matches('/');
                Some(PathMatch::Prefix(if trimmed.is_empty() {
                    "/".into()
                } else {
                    trimmed.to_string()
                }))
            }
        }
        Ok(n) => {
            diags.at(
                Code::RouteMatch,
                source,
                p.span(),
                format!("route `{name}` path `{}` is not in normal form", p.get_ref()),
                "requests are matched after normalisation, so a path that is not normal never matches",
                format!("write it as `{n}`"),
            );
            None
        }
        Err(e) => {
            diags.at(
                Code::RouteMatch,
                source,
                p.span(),
                format!("route `{name}` path `{}` is invalid: {e}", p.get_ref()),
                "requests whose paths are ambiguous are refused, so such a route could never match",
                "write an absolute path such as `/echo/`".into(),
            );
            None
        }
    }
}

fn same_path(a: &PathMatch, b: &PathMatch) -> bool {
    match (a, b) {
        (PathMatch::Exact(x), PathMatch::Exact(y))
        | (PathMatch::Prefix(x), PathMatch::Prefix(y)) => x == y,
        (PathMatch::Regex(x), PathMatch::Regex(y)) => x.as_str() == y.as_str(),
        _ => false,
    }
}

fn check_ambiguous(
    source: &Source,
    r: &raw::Route,
    spec: &RouteSpec,
    earlier: &[RouteSpec],
    diags: &mut Diagnostics,
) {
    let overlap = |o: &RouteSpec| {
        spec.methods.is_empty() == o.methods.is_empty()
            && (spec.methods.is_empty() || spec.methods.iter().any(|m| o.methods.contains(m)))
    };
    if let Some(o) = earlier
        .iter()
        .find(|o| o.host == spec.host && same_path(&o.path, &spec.path) && overlap(o))
    {
        diags.at(
            Code::Ambiguous,
            source,
            r.name.span(),
            format!("route `{}` matches the same host, path and methods as route `{}` ({})", spec.name, o.name, o.origin),
            "only the first of two identical routes could ever be used; the second would be dead policy",
            "remove one, or make them differ by host, path or methods".into(),
        );
    }
}
