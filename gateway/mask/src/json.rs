//! Masking a JSON document by profile: field rules by name (exact, case-insensitive, or with a
//! leading / trailing `*`), then, when the profile enables them, the detectors on every other
//! string. This first version parses the whole (bounded) body; valid JSON in, valid JSON out,
//! keys kept in their order.

use crate::detect::{detect, scan, Kind};
use crate::style::{mask, Style};
use serde_json::Value;

/// A field-name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl Pattern {
    /// `idCard`, `*Phone`, `addr*` (matched case-insensitively).
    pub fn parse(p: &str) -> Result<Pattern, String> {
        let lower = p.to_ascii_lowercase();
        let stars = lower.matches('*').count();
        match (stars, lower.strip_prefix('*'), lower.strip_suffix('*')) {
            (0, _, _) if !lower.is_empty() => Ok(Pattern::Exact(lower)),
            (1, Some(rest), _) if !rest.is_empty() => Ok(Pattern::Suffix(rest.to_string())),
            (1, _, Some(rest)) if !rest.is_empty() => Ok(Pattern::Prefix(rest.to_string())),
            _ => Err(format!(
                "`{p}`: a field pattern is a name with at most one `*`, at its start or end"
            )),
        }
    }

    fn matches(&self, key: &str) -> bool {
        let k = key.to_ascii_lowercase();
        match self {
            Pattern::Exact(p) => k == *p,
            Pattern::Prefix(p) => k.starts_with(p.as_str()),
            Pattern::Suffix(p) => k.ends_with(p.as_str()),
        }
    }
}

/// One field rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    pub pattern: Pattern,
    pub style: Style,
}

/// A compiled masking profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub rules: Vec<FieldRule>,
    /// Run the detectors on strings no rule names.
    pub detect: bool,
}

/// The default style of what a detector found.
pub fn style_for(kind: Kind) -> Style {
    match kind {
        Kind::IdCard => Style::Keep { head: 6, tail: 4 },
        Kind::Mobile => Style::Mobile,
        Kind::BankCard => Style::CardLast4,
        Kind::Email => Style::Email,
        Kind::Uscc => Style::Keep { head: 2, tail: 4 },
        Kind::Passport => Style::Keep { head: 1, tail: 2 },
        Kind::FixedLine => Style::Keep { head: 4, tail: 2 },
    }
}

/// What masking did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Values masked by field rules.
    pub by_rule: usize,
    /// Values masked by detectors.
    pub by_detector: usize,
}

impl Profile {
    fn rule(&self, key: &str) -> Option<&FieldRule> {
        self.rules.iter().find(|r| r.pattern.matches(key))
    }

    fn walk(&self, v: &mut Value, rule: Option<&FieldRule>, stats: &mut Stats) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    let r = self.rule(k).or(rule);
                    self.walk(child, r, stats);
                }
            }
            Value::Array(items) => {
                for child in items {
                    self.walk(child, rule, stats);
                }
            }
            Value::String(s) => {
                if let Some(r) = rule {
                    *s = mask(s, &r.style);
                    stats.by_rule += 1;
                } else if self.detect {
                    if let Some(k) = detect(s) {
                        *s = mask(s, &style_for(k));
                        stats.by_detector += 1;
                    } else {
                        let (masked, n) = mask_text_counted(s);
                        if n > 0 {
                            *s = masked;
                            stats.by_detector += n;
                        }
                    }
                }
            }
            Value::Number(n) if rule.is_some() => {
                // A number under a rule (an ID sent as a number) is masked as a string.
                let text = n.to_string();
                if let Some(r) = rule {
                    *v = Value::String(mask(&text, &r.style));
                    stats.by_rule += 1;
                }
            }
            _ => {}
        }
    }

    /// Masks a JSON document. `Err` when it is not JSON (the caller decides what to send).
    pub fn mask_json(&self, body: &[u8]) -> Result<(Vec<u8>, Stats), String> {
        let mut v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let mut stats = Stats::default();
        self.walk(&mut v, None, &mut stats);
        let out = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
        Ok((out, stats))
    }
}

/// Masks every personal value the detectors find inside free text (log lines, alert evidence).
pub fn mask_text(s: &str) -> String {
    mask_text_counted(s).0
}

/// `mask_text`, and how many values it masked.
pub fn mask_text_counted(s: &str) -> (String, usize) {
    let found = scan(s);
    if found.is_empty() {
        return (s.to_string(), 0);
    }
    let n = found.len();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (r, k) in found {
        out.push_str(s.get(last..r.start).unwrap_or(""));
        out.push_str(&mask(s.get(r.clone()).unwrap_or(""), &style_for(k)));
        last = r.end;
    }
    out.push_str(s.get(last..).unwrap_or(""));
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile {
            rules: vec![
                FieldRule {
                    pattern: Pattern::parse("name").unwrap(),
                    style: Style::Name,
                },
                FieldRule {
                    pattern: Pattern::parse("*address").unwrap(),
                    style: Style::Address,
                },
                FieldRule {
                    pattern: Pattern::parse("idCard").unwrap(),
                    style: Style::Keep { head: 6, tail: 4 },
                },
            ],
            detect: true,
        }
    }

    #[test]
    fn rules_then_detectors_keys_in_order() {
        let doc = r#"{"code":0,"data":[{"name":"张三丰","idCard":"11010519491231002X","homeAddress":"北京市东城区长安街1号","mobile":"13800138000","note":"卡号6222020200112233446，订单110105194912310021","id":7}]}"#;
        let (out, stats) = profile().mask_json(doc.as_bytes()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            r#"{"code":0,"data":[{"name":"张**","idCard":"110105********002X","homeAddress":"北京市东城区****","mobile":"138****8000","note":"卡号***************3446，订单110105194912310021","id":7}]}"#
        );
        assert_eq!(
            stats,
            Stats {
                by_rule: 3,
                by_detector: 2
            }
        );
        // Masking twice equals masking once.
        let (again, _) = profile().mask_json(out.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(again).unwrap(), out);
    }

    #[test]
    fn numbers_under_rules_and_bad_input() {
        let (out, _) = profile()
            .mask_json(br#"{"idCard":110105194912310021}"#)
            .unwrap();
        assert_eq!(out, br#"{"idCard":"110105********0021"}"#);
        assert!(profile().mask_json(b"{not json").is_err());
        assert!(Pattern::parse("a*b").is_err());
        assert!(Pattern::parse("*").is_err());
    }
}
