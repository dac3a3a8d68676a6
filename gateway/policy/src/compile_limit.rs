//! `[[limit]]` tables -> `LimitSpec`s, indexed by name for routes to refer to.

use crate::compile::Ctx;
use crate::diag::{did_you_mean, Code, Declared, Diagnostics, Source};
use crate::raw::{Limit, PolicyFile};
use crate::snapshot::{KeyPart, LimitSpec};
use std::collections::HashMap;
use toml::Spanned;

/// Index recorded for a limit that is declared but did not compile.
pub(crate) const INVALID: usize = usize::MAX;
const KEY_KINDS: &str = "client-ip, route, header:<Name>, user, app, department, claim:<name>";

pub(crate) fn compile(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    diags: &mut Diagnostics,
) -> (Vec<LimitSpec>, HashMap<String, usize>) {
    let mut out = Vec::new();
    let mut by_name = HashMap::new();
    let mut declared = Declared::new("limit");
    for (src, f) in files {
        let source = &cx.sources[*src];
        for l in &f.limit {
            let name = l.name.get_ref();
            let why =
                "routes refer to limits by name, so names must be unique across all policy files";
            if !declared.first(source, &l.name, why, "rename one of them", diags) {
                continue;
            }
            match compile_one(source, l, diags) {
                Some(spec) => {
                    by_name.insert(name.clone(), out.len());
                    out.push(spec);
                }
                // Declared but invalid: its own diagnostics say why; routes naming it stay quiet.
                None => {
                    by_name.insert(name.clone(), INVALID);
                }
            }
        }
    }
    (out, by_name)
}

fn invalid(
    source: &Source,
    span: std::ops::Range<usize>,
    what: String,
    why: &str,
    fix: String,
    diags: &mut Diagnostics,
) {
    diags.at(Code::InvalidValue, source, span, what, why, fix);
}

fn key_part(
    source: &Source,
    limit: &str,
    p: &Spanned<String>,
    diags: &mut Diagnostics,
) -> Option<KeyPart> {
    let raw = p.get_ref().trim();
    let why = "a limit counts requests separately per key; the key is made of these parts";
    match raw {
        "client-ip" => return Some(KeyPart::ClientIp),
        "route" => return Some(KeyPart::Route),
        "user" => return Some(KeyPart::User),
        "app" => return Some(KeyPart::App),
        "department" => return Some(KeyPart::Claim("department".into())),
        _ => {}
    }
    if let Some(c) = raw.strip_prefix("claim:") {
        let c = c.trim();
        if !c.is_empty() && !c.starts_with('.') && !c.ends_with('.') {
            return Some(KeyPart::Claim(c.to_string()));
        }
        invalid(
            source,
            p.span(),
            format!("limit `{limit}` keys on `{raw}`, which names no claim"),
            why,
            "write e.g. `claim:department` or `claim:realm_access.roles`".into(),
            diags,
        );
        return None;
    }
    if let Some(h) = raw.strip_prefix("header:") {
        return match http::HeaderName::from_bytes(h.trim().as_bytes()) {
            Ok(n) => Some(KeyPart::Header(n)),
            Err(_) => {
                invalid(
                    source,
                    p.span(),
                    format!("limit `{limit}` keys on `{raw}`, which is not a valid header name"),
                    why,
                    "write e.g. `header:X-Api-Key`".into(),
                    diags,
                );
                None
            }
        };
    }
    let fix = match did_you_mean(raw, ["client-ip", "route", "user", "app", "department"]) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("use one of: {KEY_KINDS}"),
    };
    invalid(
        source,
        p.span(),
        format!("limit `{limit}` has unknown key kind `{raw}`"),
        why,
        fix,
        diags,
    );
    None
}

fn compile_one(source: &Source, l: &Limit, diags: &mut Diagnostics) -> Option<LimitSpec> {
    let name = l.name.get_ref();
    let before = diags.len();
    if l.key.get_ref().is_empty() {
        invalid(
            source,
            l.key.span(),
            format!("limit `{name}` has an empty key"),
            "an empty key would count every client together",
            format!("give at least one part: {KEY_KINDS}"),
            diags,
        );
    }
    let key: Vec<KeyPart> = l
        .key
        .get_ref()
        .iter()
        .filter_map(|p| key_part(source, name, p, diags))
        .collect();
    let rate = match menwei_ratelimit::Rate::parse(l.rate.get_ref()) {
        Ok(r) => Some(r),
        Err(why) => {
            invalid(
                source,
                l.rate.span(),
                format!("limit `{name}`: {why}"),
                "the steady rate is a whole number of requests per second, minute, hour or day",
                "write e.g. rate = \"20/s\"".into(),
                diags,
            );
            None
        }
    };
    let burst = *l.burst.get_ref();
    if burst < 1 {
        invalid(
            source,
            l.burst.span(),
            format!("limit `{name}` has burst {burst}"),
            "burst is how many requests are admitted at once from idle; below 1 nothing would ever pass",
            "set burst to at least 1 (often 1-2 seconds' worth of the rate)".into(),
            diags,
        );
    }
    if l.concurrency == Some(0) {
        invalid(
            source,
            l.name.span(),
            format!("limit `{name}` has concurrency 0"),
            "concurrency caps requests in flight per key; 0 would refuse everything",
            "remove it or set at least 1".into(),
            diags,
        );
    }
    if diags.len() != before {
        return None;
    }
    Some(LimitSpec {
        name: name.clone(),
        key,
        rate: rate?,
        burst: burst as u64,
        concurrency: l.concurrency,
        max_keys: l.max_keys.unwrap_or(1_000_000).max(1),
        scope: l.scope,
        on_store_error: l.on_store_error,
    })
}
