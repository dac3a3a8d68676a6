//! Masking styles (common Chinese practice; GB/T 35273 and GB/T 37964 guidance). Every style keeps
//! the output free of the original except where it is meant to keep a part (first 6 / last 4 of
//! an ID, last 4 of a card). Characters are counted, not bytes: Chinese names mask correctly.

/// How a value is masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    /// Keep the first `head` and last `tail` characters, `*` between (ID card: 6 and 4).
    Keep { head: usize, tail: usize },
    /// Mobile: `138****5678` (a `+86` prefix is kept).
    Mobile,
    /// Bank card: last 4 only, `**** **** **** 1234` style without spaces.
    CardLast4,
    /// Name: family name kept (two characters for common compound surnames), `*` for the rest.
    Name,
    /// Address kept up to its district / county (区, 县, 旗, 市 after a province), then `****`.
    Address,
    /// E-mail: first character of the local part, `***`, the domain.
    Email,
    /// Everything replaced by `****` (length not revealed).
    Redact,
    /// A stable pseudonym: HMAC-SM3 under the profile's key, first 16 hex digits; equal inputs
    /// give equal outputs, so joins across responses still work.
    Sm3Hash { key: Key },
    /// Same length, every character `*`.
    SameLength,
}

/// A pseudonym key; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(redacted)")
    }
}

const COMPOUND_SURNAMES: [&str; 16] = [
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "令狐", "夏侯", "端木", "独孤",
];

fn stars(out: &mut String, mut n: usize) {
    const STARS: &str = "********************************";
    while n > 0 {
        let k = n.min(STARS.len());
        out.push_str(&STARS[..k]);
        n -= k;
    }
}

/// Byte offset of the `n`th character of `s` (or its length).
fn char_at(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

fn keep(s: &str, head: usize, tail: usize, out: &mut String) {
    // Numbers, the common case, are ASCII: bytes are characters.
    let ascii = s.is_ascii();
    let n = if ascii { s.len() } else { s.chars().count() };
    if n <= head + tail {
        // Too short to keep anything safely.
        return stars(out, n.max(1));
    }
    let (h, t) = if ascii {
        (head, n - tail)
    } else {
        (char_at(s, head), char_at(s, n - tail))
    };
    out.push_str(&s[..h]);
    stars(out, n - head - tail);
    out.push_str(&s[t..]);
}

fn address(s: &str, out: &mut String) {
    // Up to the first county-level unit after the province / city part.
    let markers = ['区', '县', '旗'];
    let cut = s
        .char_indices()
        .find(|(_, c)| markers.contains(c))
        .map(|(i, c)| i + c.len_utf8());
    if let Some(i) = cut.filter(|&i| i < s.len()) {
        out.push_str(&s[..i]);
    }
    out.push_str("****");
}

/// `mask_into` for a value of printable ASCII (`0x20..0x7f`), written as bytes: the common case
/// of ID, phone and card numbers, which then need no UTF-8 check and no character counting.
/// `false` (nothing written) when the value is not printable ASCII or the style reads characters
/// (names, addresses) or hashes.
pub fn mask_ascii_into(value: &[u8], style: &Style, out: &mut Vec<u8>) -> bool {
    fn printable(value: &[u8]) -> bool {
        value
            .iter()
            .fold(true, |ok, &b| ok & (0x20..0x7f).contains(&b))
    }
    fn stars(out: &mut Vec<u8>, n: usize) {
        out.resize(out.len() + n, b'*');
    }
    fn keep(s: &[u8], head: usize, tail: usize, out: &mut Vec<u8>) {
        let n = s.len();
        if n <= head + tail {
            return stars(out, n.max(1));
        }
        out.extend_from_slice(&s[..head]);
        stars(out, n - head - tail);
        out.extend_from_slice(&s[n - tail..]);
    }
    match style {
        // Styles that read characters or hash: turned down before the value is scanned.
        Style::Name | Style::Address | Style::Email | Style::Sm3Hash { .. } => return false,
        _ if !printable(value) => return false,
        Style::Keep { head, tail } => keep(value, *head, *tail, out),
        Style::Mobile => {
            let rest = match value.strip_prefix(b"+86") {
                Some(r) => {
                    out.extend_from_slice(b"+86");
                    let skip = r.iter().take_while(|&&b| b == b'-' || b == b' ').count();
                    &r[skip..]
                }
                None => value,
            };
            keep(rest, 3, 4, out)
        }
        Style::CardLast4 => keep(value, 0, 4, out),
        Style::Redact => out.extend_from_slice(b"****"),
        Style::SameLength => stars(out, value.len()),
    }
    true
}

/// Masks `value` in `style`.
pub fn mask(value: &str, style: &Style) -> String {
    let mut out = String::with_capacity(value.len());
    mask_into(value, style, &mut out);
    out
}

/// `mask`, appended to `out` (no allocation of its own: the streaming masker reuses one buffer).
pub fn mask_into(value: &str, style: &Style, out: &mut String) {
    match style {
        Style::Keep { head, tail } => keep(value, *head, *tail, out),
        Style::Mobile => {
            let rest = match value.strip_prefix("+86") {
                Some(r) => {
                    out.push_str("+86");
                    r.trim_start_matches(['-', ' '])
                }
                None => value,
            };
            keep(rest, 3, 4, out)
        }
        Style::CardLast4 => keep(value, 0, 4, out),
        Style::Name => {
            let n = value.chars().count();
            if n <= 1 {
                return out.push('*');
            }
            let surname = if n > 2 && COMPOUND_SURNAMES.iter().any(|s| value.starts_with(*s)) {
                2
            } else {
                1
            };
            let kept = surname.min(n - 1);
            out.push_str(&value[..char_at(value, kept)]);
            stars(out, n - kept);
        }
        Style::Address => address(value, out),
        Style::Email => match value.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() => {
                out.push_str(&local[..char_at(local, 1)]);
                out.push_str("***@");
                out.push_str(domain);
            }
            _ => out.push_str("****"),
        },
        Style::Redact => out.push_str("****"),
        Style::Sm3Hash { key } => {
            let mac = menwei_gm::hmac_sm3(&key.0, value.as_bytes());
            out.push_str(&hex::encode(&mac[..8]));
        }
        Style::SameLength => stars(out, value.chars().count()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_practice() {
        assert_eq!(
            mask("11010519491231002X", &Style::Keep { head: 6, tail: 4 }),
            "110105********002X"
        );
        assert_eq!(mask("13800138000", &Style::Mobile), "138****8000");
        assert_eq!(mask("+8613800138000", &Style::Mobile), "+86138****8000");
        assert_eq!(
            mask("6222020200112233446", &Style::CardLast4),
            "***************3446"
        );
        assert_eq!(mask("张三", &Style::Name), "张*");
        assert_eq!(mask("张三丰", &Style::Name), "张**");
        assert_eq!(mask("欧阳修远", &Style::Name), "欧阳**");
        assert_eq!(mask("欧阳", &Style::Name), "欧*");
        assert_eq!(mask("李", &Style::Name), "*");
        assert_eq!(
            mask("北京市东城区长安街53号829室", &Style::Address),
            "北京市东城区****"
        );
        assert_eq!(mask("某地", &Style::Address), "****");
        assert_eq!(mask("zhang@example.cn", &Style::Email), "z***@example.cn");
        assert_eq!(mask("anything", &Style::Redact), "****");
        assert_eq!(mask("张三", &Style::SameLength), "**");
        let k = Style::Sm3Hash {
            key: Key(b"profile-key".to_vec()),
        };
        assert_eq!(mask("13800138000", &k), mask("13800138000", &k));
        assert_ne!(mask("13800138000", &k), mask("13800138001", &k));
        assert_eq!(mask("13800138000", &k).len(), 16);
        assert!(
            !format!("{k:?}").contains("profile"),
            "the key is never printed"
        );
        // Too short to keep parts: all masked.
        assert_eq!(mask("123", &Style::Keep { head: 6, tail: 4 }), "***");
    }

    #[test]
    fn ascii_path_writes_what_the_text_path_does() {
        let styles = [
            Style::Keep { head: 6, tail: 4 },
            Style::Keep { head: 0, tail: 0 },
            Style::Mobile,
            Style::CardLast4,
            Style::Redact,
            Style::SameLength,
        ];
        let values = [
            "",
            "1",
            "123",
            "1234",
            "12345",
            "13800138000",
            "+8613800138000",
            "+86-138 0013 8000",
            "+86",
            "+86--",
            "11010519491231002X",
            "6222020200112233446",
            "a b~c",
            "0123456789",
        ];
        for style in &styles {
            for v in values {
                let mut bytes = Vec::new();
                assert!(
                    mask_ascii_into(v.as_bytes(), style, &mut bytes),
                    "{v} {style:?}"
                );
                assert_eq!(
                    String::from_utf8(bytes).unwrap(),
                    mask(v, style),
                    "{v} {style:?}"
                );
            }
        }
        let mut bytes = Vec::new();
        for (v, style) in [
            ("张三", Style::Keep { head: 1, tail: 0 }),
            ("tab\there", Style::Redact),
            ("del\u{7f}", Style::Redact),
            ("zhang@example.cn", Style::Email),
            ("Zhang San", Style::Name),
        ] {
            assert!(!mask_ascii_into(v.as_bytes(), &style, &mut bytes), "{v}");
        }
        assert!(
            bytes.is_empty(),
            "nothing written when the text path must be taken"
        );
    }
}
