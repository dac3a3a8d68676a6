//! `[[mask]]` profiles -> `MaskSpec`s, by name for routes.

use crate::compile::Ctx;
use crate::diag::{did_you_mean, Code, Declared, Diagnostics, Source};
use crate::raw::{self, MaskStyle, PolicyFile};
use crate::snapshot::MaskSpec;
use menwei_mask::json::{FieldRule, Pattern, Profile};
use menwei_mask::Style;
use std::collections::HashMap;

fn style(s: MaskStyle) -> Style {
    match s {
        MaskStyle::IdCard => Style::Keep { head: 6, tail: 4 },
        MaskStyle::Mobile => Style::Mobile,
        MaskStyle::BankCard => Style::CardLast4,
        MaskStyle::Name => Style::Name,
        MaskStyle::Address => Style::Address,
        MaskStyle::Email => Style::Email,
        MaskStyle::Redact => Style::Redact,
        MaskStyle::SameLength => Style::SameLength,
    }
}

pub(crate) fn compile(
    cx: &Ctx,
    files: &[(usize, PolicyFile)],
    diags: &mut Diagnostics,
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
            let mut rules = Vec::new();
            let mut ok = true;
            for field in &m.fields {
                match Pattern::parse(field.name.get_ref()) {
                    Ok(pattern) => rules.push(FieldRule {
                        pattern,
                        style: style(field.style),
                    }),
                    Err(why) => {
                        ok = false;
                        diags.at(
                            Code::InvalidValue,
                            source,
                            field.name.span(),
                            format!("mask `{}`: {why}", m.name.get_ref()),
                            "field rules match JSON field names, case-insensitively",
                            "write e.g. name = \"idCard\" or name = \"*Phone\"".into(),
                        );
                    }
                }
            }
            let name = m.name.get_ref().clone();
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
