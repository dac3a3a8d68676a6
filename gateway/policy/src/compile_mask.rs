//! `[[mask]]` profiles -> `MaskSpec`s, by name for routes. Each rule names a field or a JSON path
//! (compiled here, with located diagnostics); the `pseudonym` style reads the profile's key file.

use crate::compile::Ctx;
use crate::diag::{did_you_mean, Code, Declared, Diagnostics, Source};
use crate::raw::{self, MaskCase, MaskField, MaskStyle, PolicyFile};
use crate::snapshot::MaskSpec;
use menwei_mask::json::{Case, FieldRule, JsonPath, Matcher, Pattern, Profile};
use menwei_mask::Style;
use sha2::Sha256;
use std::collections::HashMap;

/// The style of a rule; `Err` is what is wrong with it.
fn style(f: &MaskField, key: Option<&[u8]>) -> Result<Style, String> {
    let keep = |head: usize, tail: usize| Style::Keep {
        head: f.keep_head.unwrap_or(head),
        tail: f.keep_tail.unwrap_or(tail),
    };
    let s = *f.style.get_ref();
    let keeps = matches!(s, MaskStyle::IdCard | MaskStyle::SameLength);
    if !keeps && (f.keep_head.is_some() || f.keep_tail.is_some()) {
        return Err(
            "`keep_head` / `keep_tail` apply to the `id-card` and `same-length` styles only".into(),
        );
    }
    Ok(match s {
        MaskStyle::IdCard => keep(6, 4),
        MaskStyle::SameLength if f.keep_head.is_some() || f.keep_tail.is_some() => keep(0, 0),
        MaskStyle::SameLength => Style::SameLength,
        MaskStyle::Mobile => Style::Mobile,
        MaskStyle::BankCard => Style::CardLast4,
        MaskStyle::Name => Style::Name,
        MaskStyle::Address => Style::Address,
        MaskStyle::Email => Style::Email,
        MaskStyle::Redact => Style::Redact,
        MaskStyle::Pseudonym => {
            match key {
                Some(k) => Style::Sm3Hash {
                    key: menwei_mask::style::Key(k.to_vec()),
                },
                None => return Err(
                    "the `pseudonym` style needs the profile's `pseudonym_key_file` (a secret key)"
                        .into(),
                ),
            }
        }
    })
}

/// One rule, or the diagnostic it earns.
fn rule(
    source: &Source,
    profile: &str,
    f: &MaskField,
    key: Option<&[u8]>,
    diags: &mut Diagnostics,
) -> Option<FieldRule> {
    let case = match f.case {
        MaskCase::Insensitive => Case::Insensitive,
        MaskCase::Sensitive => Case::Sensitive,
    };
    let matcher = match (&f.name, &f.path) {
        (Some(n), None) => Pattern::parse(n.get_ref())
            .map(Matcher::Field)
            .map_err(|why| {
                (
                    n.span(),
                    why,
                    "write e.g. name = \"idCard\" or name = \"*Phone\"",
                )
            }),
        (None, Some(p)) => JsonPath::parse(p.get_ref())
            .map(Matcher::Path)
            .map_err(|why| {
                (
                    p.span(),
                    why,
                    "write e.g. path = \"$.data[*].idCard\" or path = \"$..phone\"",
                )
            }),
        (Some(n), Some(_)) => Err((
            n.span(),
            "a rule has both `name` and `path`".into(),
            "keep one: `name` matches a field anywhere, `path` one place in the document",
        )),
        (None, None) => Err((
            f.style.span(),
            "a rule has neither `name` nor `path`".into(),
            "add name = \"<field>\" or path = \"$.<path>\"",
        )),
    };
    let matcher = match matcher {
        Ok(m) => m,
        Err((span, why, fix)) => {
            diags.at(
                Code::InvalidValue,
                source,
                span,
                format!("mask `{profile}`: {why}"),
                "a rule names a JSON field (case-insensitive, one `*` at its start or end) or a JSON path",
                fix.into(),
            );
            return None;
        }
    };
    match style(f, key) {
        Ok(style) => Some(FieldRule {
            matcher,
            case,
            style,
        }),
        Err(why) => {
            diags.at(
                Code::InvalidValue,
                source,
                f.style.span(),
                format!("mask `{profile}`: {why}"),
                "each style takes only the settings it uses",
                match f.style.get_ref() {
                    MaskStyle::Pseudonym => "add pseudonym_key_file = \"<file>\" to the profile (e.g. openssl rand -hex 32 > mask.key; chmod 600 mask.key)".into(),
                    _ => "remove keep_head / keep_tail, or use style = \"id-card\"".into(),
                },
            );
            None
        }
    }
}

pub(crate) fn compile(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    diags: &mut Diagnostics,
    digest: &mut Sha256,
) -> (Vec<MaskSpec>, HashMap<String, usize>) {
    let mut out = Vec::new();
    let mut by_name = HashMap::new();
    let mut declared = Declared::new("mask");
    for (src, f) in files {
        let source = &cx.sources[*src];
        for m in &f.mask {
            let why = "routes refer to masking profiles by name";
            if !declared.first(source, &m.name, why, "rename one of them", diags) {
                continue;
            }
            let name = m.name.get_ref().clone();
            let mut ok = true;
            let key = match &m.pseudonym_key_file {
                None => None,
                Some(path) => {
                    let bytes = crate::compile_sso::read_secret(
                        cx,
                        source,
                        path,
                        "pseudonym key",
                        diags,
                        digest,
                    );
                    match bytes {
                        Some(b) if b.trim_ascii().len() >= 16 => Some(b.trim_ascii().to_vec()),
                        Some(_) => {
                            diags.at(
                                Code::KeyFile,
                                source,
                                path.span(),
                                format!("mask `{name}`: the pseudonym key is shorter than 16 bytes"),
                                "a short key lets anyone who guesses it reverse pseudonyms of ID numbers and phones",
                                "write a long random key, e.g. openssl rand -hex 32 > mask.key".into(),
                            );
                            ok = false;
                            None
                        }
                        None => {
                            ok = false;
                            None
                        }
                    }
                }
            };
            let mut rules = Vec::new();
            for field in &m.fields {
                match rule(source, &name, field, key.as_deref(), diags) {
                    Some(r) => rules.push(r),
                    // A missing key was already reported at the key file.
                    None => ok = false,
                }
            }
            if !ok {
                by_name.insert(name, usize::MAX);
                continue;
            }
            by_name.insert(name.clone(), out.len());
            out.push(MaskSpec {
                name,
                profile: Profile {
                    rules,
                    detect: m.detect.unwrap_or(true),
                    numbers: m.numbers,
                },
                unmask_roles: m.unmask_roles.clone(),
                max_body: m.max_body.map(|b| b.0).unwrap_or(1024 * 1024),
                on_overflow: m.on_overflow,
            });
        }
    }
    (out, by_name)
}

/// A route's `mask`, resolved.
pub(crate) fn route_mask(
    source: &Source,
    r: &raw::Route,
    masks: &HashMap<String, usize>,
    diags: &mut Diagnostics,
) -> Result<Option<usize>, ()> {
    let Some(m) = &r.mask else {
        return Ok(None);
    };
    match masks.get(m.get_ref()) {
        Some(&usize::MAX) => Err(()),
        Some(i) => Ok(Some(*i)),
        None => {
            let mut known: Vec<&str> = masks.keys().map(String::as_str).collect();
            known.sort_unstable();
            let fix = match did_you_mean(m.get_ref(), known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => "define it with a [[mask]] table".into(),
                None => format!("use one of the defined profiles: {}", known.join(", ")),
            };
            diags.at(
                Code::Dangling,
                source,
                m.span(),
                format!(
                    "route `{}` masks with profile `{}`, which is not defined",
                    r.name.get_ref(),
                    m.get_ref()
                ),
                "a route's mask names a [[mask]] table of any policy file",
                fix,
            );
            Err(())
        }
    }
}
