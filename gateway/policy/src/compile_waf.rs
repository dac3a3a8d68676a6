//! `[[waf]]` profiles -> `WafSpec`s; a route's `waf` (or the default profile) resolved.

use crate::compile::Ctx;
use crate::diag::{did_you_mean, Code, Declared, Diagnostics, Source};
use crate::raw::{self, PolicyFile};
use crate::snapshot::WafSpec;
use menwei_waf::{Category, Config, ExcludedRule, Exclusion};
use std::collections::HashMap;

/// Largest body a profile may inspect.
const MAX_INSPECTED_BODY: u64 = 1024 * 1024;
/// Default inspected body: what Pingora can hold back and still forward (its retry buffer).
pub const DEFAULT_INSPECTED_BODY: u64 = 64 * 1024;

/// Profiles by name (`usize::MAX`: declared but invalid) and the default profile.
#[derive(Debug, Default)]
pub struct Names {
    by_name: HashMap<String, usize>,
    default: Option<usize>,
}

pub(crate) fn compile(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    diags: &mut Diagnostics,
) -> (Vec<WafSpec>, Names) {
    let mut out = Vec::new();
    let mut names = Names::default();
    let mut declared = Declared::new("waf");
    let mut default_at: Option<String> = None;
    let engine = match menwei_waf::shared() {
        Ok(e) => Some(e),
        Err(e) => {
            diags.file(
                Code::InvalidValue,
                cx.dir,
                format!("the inspection rules did not compile: {e}"),
                "this is a defect of menwei itself, not of the policy",
                "report it; meanwhile set mode = \"off\" on every [[waf]] profile".into(),
            );
            None
        }
    };
    for (src, f) in files {
        let source = &cx.sources[*src];
        for w in &f.waf {
            let why = "routes refer to inspection profiles by name";
            if !declared.first(source, &w.name, why, "rename one of them", diags) {
                continue;
            }
            let name = w.name.get_ref().clone();
            let mut ok = true;
            let paranoia = match &w.paranoia {
                Some(p) if !(1..=4).contains(p.get_ref()) => {
                    ok = false;
                    diags.at(
                        Code::InvalidValue,
                        source,
                        p.span(),
                        format!("waf `{name}`: paranoia {} is out of range", p.get_ref()),
                        "paranoia levels run from 1 (fewest false positives) to 4 (most rules)",
                        "use 1 unless you have tuned exclusions for a higher level".into(),
                    );
                    1
                }
                Some(p) => *p.get_ref(),
                None => 1,
            };
            let threshold = match &w.threshold {
                Some(t) if *t.get_ref() == 0 => {
                    ok = false;
                    diags.at(
                        Code::InvalidValue,
                        source,
                        t.span(),
                        format!("waf `{name}`: threshold 0 would refuse every request"),
                        "the threshold is the anomaly score at which a request counts as an attack",
                        "use 5 (one critical rule), or more to need several rules".into(),
                    );
                    5
                }
                Some(t) => *t.get_ref(),
                None => 5,
            };
            let max_body = w.max_body.map(|b| b.0).unwrap_or(DEFAULT_INSPECTED_BODY);
            if max_body > MAX_INSPECTED_BODY {
                ok = false;
                diags.at(
                    Code::InvalidValue,
                    source,
                    w.name.span(),
                    format!("waf `{name}`: max_body {max_body} bytes is more than 1MiB"),
                    "inspected bodies are held in memory per request",
                    "set max_body = \"64KiB\" (the default) or up to \"1MiB\"".into(),
                );
            }
            let mut exclusions = Vec::new();
            for e in &w.exclude {
                let rule = match (&e.rule, &e.category) {
                    (Some(id), None) => {
                        if engine.is_some_and(|en| !en.knows(*id)) {
                            ok = false;
                            diags.at(
                                Code::Dangling,
                                source,
                                w.name.span(),
                                format!("waf `{name}` excludes rule {id}, which does not exist"),
                                "rule ids are the numbers shown in logs, alerts and `menwei explain`",
                                "copy the id from a log line or alert".into(),
                            );
                        }
                        ExcludedRule::Id(*id)
                    }
                    (None, Some(c)) => match Category::parse(c.get_ref()) {
                        Some(cat) => ExcludedRule::Category(cat),
                        None => {
                            ok = false;
                            let all = Category::ALL.map(Category::name);
                            let fix = match did_you_mean(c.get_ref(), all.iter().copied()) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => format!("use one of: {}", all.join(", ")),
                            };
                            diags.at(
                                Code::InvalidValue,
                                source,
                                c.span(),
                                format!("waf `{name}`: unknown category `{}`", c.get_ref()),
                                "an exclusion names a rule id or one of the rule categories",
                                fix,
                            );
                            continue;
                        }
                    },
                    _ => {
                        ok = false;
                        diags.at(
                            Code::InvalidValue,
                            source,
                            w.name.span(),
                            format!("waf `{name}`: an exclusion needs exactly one of `rule` and `category`"),
                            "each [[waf.exclude]] switches off one rule or one category",
                            "write rule = 942100 or category = \"sqli\" (plus name = \"field\" to limit it)".into(),
                        );
                        continue;
                    }
                };
                exclusions.push(Exclusion {
                    rule,
                    name: e.name.clone(),
                });
            }
            if w.default {
                if let Some(first) = &default_at {
                    ok = false;
                    diags.at(
                        Code::Duplicate,
                        source,
                        w.name.span(),
                        format!("waf `{name}` and waf `{first}` both say default = true"),
                        "routes without a `waf` key use the one default profile",
                        "keep default = true on one profile only".into(),
                    );
                }
                default_at = Some(name.clone());
            }
            if !ok {
                names.by_name.insert(name, usize::MAX);
                continue;
            }
            let mut config = Config {
                paranoia,
                threshold,
                exclusions,
                ..Config::default()
            };
            if let Some(m) = &w.methods {
                config.methods = m.iter().map(|m| m.to_ascii_uppercase()).collect();
            }
            if let Some(c) = &w.content_types {
                config.content_types = c.iter().map(|c| c.to_ascii_lowercase()).collect();
            }
            if w.default {
                names.default = Some(out.len());
            }
            names.by_name.insert(name.clone(), out.len());
            out.push(WafSpec {
                name,
                mode: w.mode,
                config,
                max_body,
            });
        }
    }
    (out, names)
}

/// A route's `waf` (or the default profile), resolved.
pub(crate) fn route_waf(
    source: &Source,
    r: &raw::Route,
    names: &Names,
    diags: &mut Diagnostics,
) -> Result<Option<usize>, ()> {
    let Some(w) = &r.waf else {
        return Ok(names.default);
    };
    match names.by_name.get(w.get_ref()) {
        Some(&usize::MAX) => Err(()),
        Some(i) => Ok(Some(*i)),
        None => {
            let mut known: Vec<&str> = names.by_name.keys().map(String::as_str).collect();
            known.sort_unstable();
            let fix = match did_you_mean(w.get_ref(), known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => "define it with a [[waf]] table".into(),
                None => format!("use one of the defined profiles: {}", known.join(", ")),
            };
            diags.at(
                Code::Dangling,
                source,
                w.span(),
                format!(
                    "route `{}` is inspected by profile `{}`, which is not defined",
                    r.name.get_ref(),
                    w.get_ref()
                ),
                "a route's waf names a [[waf]] table of any policy file",
                fix,
            );
            Err(())
        }
    }
}
