//! Properties: every generated valid ID card, mobile and bank card is detected; an 18-digit
//! number with a wrong check digit never is; masking removes the hidden part.
#![allow(clippy::unwrap_used)]

use menwei_mask::detect::{id_check_char, luhn};
use menwei_mask::json;
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
        // The middle four are hidden (compared whole: the tail may repeat them, as in 13081818181).
        prop_assert_eq!(mask(&m, &Style::Mobile), format!("{}****{}", &m[..3], &m[7..]));
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

/// A generated document and the sensitive values placed in it.
fn document() -> impl Strategy<Value = (serde_json::Value, Vec<String>)> {
    use serde_json::{json, Value};
    let sensitive = (
        0u32..10_000,
        1930u32..2020,
        1u32..=12,
        1u32..=28,
        0u32..1000,
        3u8..=9,
        0u64..1_000_000_000,
    )
        .prop_map(|(rest, y, m, d, seq, second, mob)| {
            vec![
                id(110_000 + rest % 10_000, y, m, d, seq),
                format!("1{second}{mob:09}"),
            ]
        });
    let plain = prop_oneof![
        "[a-z]{0,8}".prop_map(Value::from),
        "[\\u4e00-\\u9fa5]{1,6}".prop_map(Value::from),
        // Order numbers with 18 digits and timestamps: never masked.
        (0u64..1_000_000_000).prop_map(|n| Value::from(format!("ORD{n:015}"))),
        // At most 10 digits: a number that is a whole document goes through the detectors.
        any::<i32>().prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ];
    let leaf = prop_oneof![
        3 => plain.prop_map(|v| (v, Vec::new())),
        1 => sensitive.clone().prop_map(|s| (Value::from(s[0].clone()), vec![s[0].clone()])),
        1 => sensitive.prop_map(|s| (json!({"mobile": s[1], "note": format!("电话{}", s[1])}), vec![s[1].clone()])),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|items| {
                let mut all = Vec::new();
                let arr = items
                    .into_iter()
                    .map(|(v, s)| {
                        all.extend(s);
                        v
                    })
                    .collect();
                (Value::Array(arr), all)
            }),
            prop::collection::vec(("[a-zA-Z]{1,6}", inner), 0..6).prop_map(|items| {
                let mut all = Vec::new();
                let mut map = serde_json::Map::new();
                for (k, (v, s)) in items {
                    if !map.contains_key(&k) {
                        all.extend(s);
                        map.insert(k, v);
                    }
                }
                (Value::Object(map), all)
            }),
        ]
    })
}

fn detect_only() -> json::Profile {
    json::Profile {
        rules: vec![json::FieldRule::field(
            json::Pattern::parse("secret").unwrap(),
            Style::Redact,
        )],
        detect: true,
        numbers: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_documents_are_masked_completely_and_stably(
        (doc, secrets) in document(), chunk in 1usize..40, pretty in any::<bool>(),
    ) {
        let p = detect_only();
        let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { doc.to_string() };
        let (out, _) = p.mask_json(text.as_bytes()).unwrap();
        let out_text = String::from_utf8(out.clone()).unwrap();
        // Valid JSON out, nothing sensitive left.
        let masked: serde_json::Value = serde_json::from_str(&out_text).unwrap();
        for s in &secrets {
            prop_assert!(!out_text.contains(s.as_str()), "{} survived in {}", s, out_text);
        }
        // Masking twice equals masking once.
        let (again, _) = p.mask_json(&out).unwrap();
        prop_assert_eq!(&again, &out);
        // Any chunking gives the same bytes.
        let mut m = json::JsonMasker::new(&p);
        let mut streamed = Vec::new();
        for c in text.as_bytes().chunks(chunk) {
            m.push(&p, c, &mut streamed);
        }
        prop_assert!(m.finish(&p, &mut streamed).is_ok());
        prop_assert_eq!(&streamed, &out);
        // Without anything sensitive, the document is untouched.
        if secrets.is_empty() {
            prop_assert_eq!(&masked, &doc);
        }
    }

    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_never_panic_nor_leak(
        prefix in prop::collection::vec(any::<u8>(), 0..64), chunk in 1usize..9,
        second in 3u8..=9, rest in 0u64..1_000_000_000,
    ) {
        let p = detect_only();
        let mobile = format!("1{second}{rest:09}");
        let mut body = prefix;
        body.extend_from_slice(format!(" \"{mobile}\" {mobile} ").as_bytes());
        let mut m = json::JsonMasker::new(&p);
        let mut out = Vec::new();
        for c in body.chunks(chunk) {
            m.push(&p, c, &mut out);
        }
        let _ = m.finish(&p, &mut out);
        prop_assert!(!String::from_utf8_lossy(&out).contains(&mobile));
    }
}
