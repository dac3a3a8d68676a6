//! Properties: every generated valid ID card, mobile and bank card is detected; an 18-digit
//! number with a wrong check digit never is; masking removes the hidden part.
#![allow(clippy::unwrap_used)]

use menwei_mask::detect::{id_check_char, luhn};
use menwei_mask::*;
use proptest::prelude::*;

fn id(region: u32, y: u32, m: u32, d: u32, seq: u32) -> String {
    let body = format!("{region:06}{y:04}{m:02}{d:02}{seq:03}");
    let c = id_check_char(body.as_bytes()).unwrap() as char;
    format!("{body}{c}")
}

proptest! {
    #[test]
    fn valid_ids_are_found_and_wrong_check_digits_are_not(
        prov in prop::sample::select(vec![11u32, 31, 44, 51, 65]),
        rest in 0u32..10_000, y in 1930u32..2020, m in 1u32..=12, d in 1u32..=28, seq in 0u32..1000,
        wrong in 0usize..10,
    ) {
        let good = id(prov * 10_000 + rest, y, m, d, seq);
        prop_assert_eq!(detect(&good), Some(Kind::IdCard));
        let masked = mask(&good, &Style::Keep { head: 6, tail: 4 });
        prop_assert!(!masked.contains(&good[6..14]), "birth date hidden");
        // Replace the check digit with another digit: never an ID.
        let check = good.as_bytes()[17];
        let other = b"0123456789"[wrong];
        if other != check {
            let bad = format!("{}{}", &good[..17], other as char);
            prop_assert_ne!(detect(&bad), Some(Kind::IdCard));
        }
    }

    #[test]
    fn mobiles_and_cards(second in 3u8..=9, rest in 0u64..1_000_000_000, card in 0u64..1_000_000_000_000u64) {
        let m = format!("1{second}{rest:09}");
        prop_assert_eq!(detect(&m), Some(Kind::Mobile));
        prop_assert!(!mask(&m, &Style::Mobile).contains(&m[3..7]));
        let prefix = format!("622202{card:012}");
        let c = (0..10).map(|d| format!("{prefix}{d}")).find(|c| luhn(c.as_bytes())).unwrap();
        prop_assert_eq!(detect(&c), Some(Kind::BankCard));
        prop_assert!(mask(&c, &Style::CardLast4).ends_with(&c[c.len() - 4..]));
        prop_assert!(!mask(&c, &Style::CardLast4).contains(&c[..6]));
    }

    #[test]
    fn never_panics(s in "\\PC{0,64}") {
        let _ = detect(&s);
        let _ = scan(&s);
        for st in [Style::Keep { head: 6, tail: 4 }, Style::Mobile, Style::CardLast4, Style::Name,
                   Style::Address, Style::Email, Style::Redact, Style::SameLength] {
            let _ = mask(&s, &st);
        }
    }
}
