//! Detectors. Each answers "is this whole value a ..." (`detect`) and `scan` finds them inside
//! free text. A candidate counts only when its check digit, date or prefix rules hold.

/// What a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Mainland resident ID (GB 11643): 18 characters with a valid check digit and birth date,
    /// or the legacy 15-digit form.
    IdCard,
    /// Mainland mobile number: `1[3-9]` + 9 digits, optionally `+86` / `86`.
    Mobile,
    /// Bank card: 13–19 digits with a card-scheme prefix, passing Luhn.
    BankCard,
    Email,
    /// Unified social credit code (GB 32100): 18 characters with a valid check character.
    Uscc,
    /// Chinese passport: `E` + 8 digits, `E` + letter + 7 digits, or `G` + 8 digits.
    Passport,
    /// Fixed-line number: area code `0` + 2–3 digits, `-`, 7–8 digits.
    FixedLine,
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";
/// Province-level codes (first two digits) in use.
const PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

fn digits(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

fn num(s: &[u8]) -> u32 {
    s.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

fn plausible_date(y: u32, m: u32, d: u32) -> bool {
    if !(1900..=2100).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= days
}

/// GB 11643 check character of the first 17 digits.
pub fn id_check_char(first17: &[u8]) -> Option<u8> {
    if first17.len() != 17 || !digits(first17) {
        return None;
    }
    let sum: u32 = first17
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    ID_CHECK.get((sum % 11) as usize).copied()
}

fn is_id_card(s: &[u8]) -> bool {
    match s.len() {
        18 => {
            let (body, check) = s.split_at(17);
            digits(body)
                && PROVINCES.contains(&(num(&body[..2]) as u8))
                && plausible_date(num(&body[6..10]), num(&body[10..12]), num(&body[12..14]))
                && id_check_char(body).is_some_and(|c| c == check[0].to_ascii_uppercase())
        }
        15 => {
            digits(s)
                && PROVINCES.contains(&(num(&s[..2]) as u8))
                && plausible_date(1900 + num(&s[6..8]), num(&s[8..10]), num(&s[10..12]))
        }
        _ => false,
    }
}

fn is_mobile(s: &[u8]) -> bool {
    let s = s
        .strip_prefix(b"+86")
        .or_else(|| s.strip_prefix(b"86").filter(|r| r.len() == 11))
        .unwrap_or(s);
    let s = s
        .strip_prefix(b"-")
        .or_else(|| s.strip_prefix(b" "))
        .unwrap_or(s);
    s.len() == 11 && s[0] == b'1' && (b'3'..=b'9').contains(&s[1]) && digits(s)
}

/// Luhn (ISO/IEC 7812) over a digit string.
pub fn luhn(s: &[u8]) -> bool {
    if s.is_empty() || !digits(s) {
        return false;
    }
    let sum: u32 = s
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn is_bank_card(s: &[u8]) -> bool {
    // Card-scheme prefixes (UnionPay 62/81, Visa 4, Mastercard 2/5, Amex/JCB/Diners 3, Discover
    // 6): a 13-digit millisecond timestamp (starts with 1) or an order number starting 0/1/7/8/9
    // is not a card even when Luhn happens to pass (1 in 10 would).
    (13..=19).contains(&s.len())
        && digits(s)
        && matches!(s[0], b'2'..=b'6')
        && !s.iter().all(|&c| c == s[0])
        && luhn(s)
}

fn is_email(s: &[u8]) -> bool {
    let Ok(t) = std::str::from_utf8(s) else {
        return false;
    };
    let Some((local, domain)) = t.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.');
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    local_ok && domain_ok
}

const USCC_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// GB 32100 check character of the first 17 characters.
pub fn uscc_check_char(first17: &[u8]) -> Option<u8> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in first17.iter().zip(USCC_WEIGHTS) {
        let v = USCC_CHARS.iter().position(|x| x == c)? as u32;
        sum += v * w;
    }
    let check = (31 - sum % 31) % 31;
    USCC_CHARS.get(check as usize).copied()
}

fn is_uscc(s: &[u8]) -> bool {
    // Registration authority (1-9, A, N, Y) and kind codes as GB 32100 assigns them, region code
    // digits, then the check character.
    s.len() == 18
        && matches!(s[0], b'1'..=b'9' | b'A' | b'N' | b'Y')
        && digits(&s[2..8])
        && uscc_check_char(&s[..17]).is_some_and(|c| c == s[17])
        // An 18-digit number that happens to pass is left to the ID-card detector.
        && !digits(s)
}

fn is_passport(s: &[u8]) -> bool {
    match s {
        [b'E' | b'G', rest @ ..] if rest.len() == 8 && digits(rest) => true,
        [b'E', l, rest @ ..] if l.is_ascii_uppercase() && *l != b'I' && *l != b'O' => {
            rest.len() == 7 && digits(rest)
        }
        _ => false,
    }
}

fn is_fixed_line(s: &[u8]) -> bool {
    let Some(pos) = s.iter().position(|&b| b == b'-') else {
        return false;
    };
    let (area, rest) = (&s[..pos], &s[pos + 1..]);
    (3..=4).contains(&area.len())
        && area[0] == b'0'
        && area.get(1).is_some_and(|&d| d != b'0')
        && digits(area)
        && (7..=8).contains(&rest.len())
        && digits(rest)
        && rest[0] != b'0'
}

/// What a whole value is, if it is personal data a detector knows.
pub fn detect(value: &str) -> Option<Kind> {
    let v = value.trim().as_bytes();
    if v.is_empty() || v.len() > 320 {
        return None;
    }
    if is_id_card(v) {
        Some(Kind::IdCard)
    } else if is_mobile(v) {
        Some(Kind::Mobile)
    } else if is_bank_card(v) {
        Some(Kind::BankCard)
    } else if is_uscc(v) {
        Some(Kind::Uscc)
    } else if is_passport(v) {
        Some(Kind::Passport)
    } else if is_fixed_line(v) {
        Some(Kind::FixedLine)
    } else if is_email(v) {
        Some(Kind::Email)
    } else {
        None
    }
}

/// Whether `text` could hold anything a detector finds: every kind needs an ASCII digit or an
/// `@`, so most text is cleared at a glance, without decoding or scanning it.
pub fn may_hold_personal(text: &[u8]) -> bool {
    text.iter().any(|c| c.is_ascii_digit() || *c == b'@')
}

/// Personal data inside free text: byte ranges and kinds, in order, not overlapping.
pub fn scan(text: &str) -> Vec<(std::ops::Range<usize>, Kind)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let token_byte = |c: u8| c.is_ascii_alphanumeric() || b"@._%+-".contains(&c);
    let mut i = 0;
    while i < b.len() {
        if !token_byte(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && token_byte(b[i]) {
            i += 1;
        }
        // Trailing punctuation is not part of the value ("call 13800138000.").
        let mut end = i;
        while end > start && b".-".contains(&b[end - 1]) {
            end -= 1;
        }
        let Some(tok) = text.get(start..end) else {
            continue;
        };
        if let Some(k) = detect(tok) {
            out.push((start..end, k));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_cards() {
        assert_eq!(detect("11010519491231002X"), Some(Kind::IdCard));
        assert_eq!(detect("11010519491231002x"), Some(Kind::IdCard));
        assert_eq!(detect("11010519900307777X"), Some(Kind::IdCard));
        // Wrong check digit: an order number, not an ID.
        assert_eq!(detect("110105194912310021"), None);
        // Bad date (Feb 30), bad province (99).
        assert_eq!(detect("110105194902300027"), None);
        assert_eq!(detect("990105194912310029"), None);
        // Legacy 15-digit.
        assert_eq!(detect("110105491231002"), Some(Kind::IdCard));
        assert_eq!(id_check_char(b"11010519491231002"), Some(b'X'));
    }

    #[test]
    fn phones_cards_and_others() {
        for m in [
            "13800138000",
            "+8613800138000",
            "8615912345678",
            "+86-13800138000",
        ] {
            assert_eq!(detect(m), Some(Kind::Mobile), "{m}");
        }
        assert_eq!(detect("12800138000"), None);
        assert_eq!(detect("6222021234567890123"), None, "fails Luhn");
        assert_eq!(detect("6222020200112233446"), Some(Kind::BankCard));
        assert_eq!(detect("4111111111111111"), Some(Kind::BankCard));
        // A millisecond timestamp that passes Luhn is still not a card.
        assert!(luhn(b"1763788800128"));
        assert_eq!(detect("1763788800128"), None);
        assert_eq!(detect("zhang.san@example.cn"), Some(Kind::Email));
        assert_eq!(detect("a@b"), None);
        assert_eq!(detect("91350100M000100Y43"), Some(Kind::Uscc));
        assert_eq!(detect("91350100M000100Y44"), None);
        assert_eq!(detect("E12345678"), Some(Kind::Passport));
        assert_eq!(detect("EA1234567"), Some(Kind::Passport));
        assert_eq!(detect("010-12345678"), Some(Kind::FixedLine));
        assert_eq!(detect("0755-8765432"), Some(Kind::FixedLine));
        assert_eq!(detect("2026-11-22"), None);
        assert_eq!(detect("order-20261122"), None);
    }

    #[test]
    fn scanning_text() {
        let t = "客户张三，身份证11010519491231002X，手机13800138000。订单号 110105194912310021，邮箱 z.s@example.cn.";
        let found: Vec<(&str, Kind)> = scan(t).into_iter().map(|(r, k)| (&t[r], k)).collect();
        assert_eq!(
            found,
            vec![
                ("11010519491231002X", Kind::IdCard),
                ("13800138000", Kind::Mobile),
                ("z.s@example.cn", Kind::Email),
            ]
        );
    }
}
