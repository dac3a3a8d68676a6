#![no_main]
//! The streaming masker on arbitrary bytes cut at arbitrary places (the first byte picks the
//! chunk size and the profile: with a path rule, or field rules alone, whose rules the masker
//! remembers per name): it never panics, any chunking gives the same bytes, and whatever serde_json
//! accepts as JSON comes out as JSON.
use libfuzzer_sys::fuzz_target;
use menwei_mask::json::{Case, FieldRule, JsonMasker, JsonPath, Matcher, Pattern, Profile};
use menwei_mask::Style;

fuzz_target!(|data: &[u8]| {
    let Some((&n, body)) = data.split_first() else {
        return;
    };
    let p = if n & 2 == 0 {
        Profile {
            rules: vec![
                FieldRule::field(Pattern::parse("name").unwrap(), Style::Name),
                FieldRule {
                    matcher: Matcher::Path(JsonPath::parse("$..a[*].b").unwrap()),
                    case: Case::Insensitive,
                    style: Style::Redact,
                },
            ],
            detect: true,
            numbers: n & 1 == 1,
        }
    } else {
        Profile {
            rules: vec![
                FieldRule::field(Pattern::parse("name").unwrap(), Style::Name),
                FieldRule::field(Pattern::parse("*phone").unwrap(), Style::Mobile),
                FieldRule {
                    matcher: Matcher::Field(Pattern::parse("id").unwrap()),
                    case: Case::Sensitive,
                    style: Style::Keep { head: 1, tail: 1 },
                },
                FieldRule::field(Pattern::parse("c*").unwrap(), Style::CardLast4),
            ],
            detect: n & 1 == 1,
            numbers: n & 1 == 1,
        }
    };
    let run = |size: usize| {
        let mut m = JsonMasker::new(&p);
        let mut out = Vec::new();
        for c in body.chunks(size.max(1)) {
            m.push(&p, c, &mut out);
        }
        let ok = m.finish(&p, &mut out).is_ok();
        (out, ok)
    };
    let (whole, ok) = run(body.len());
    let (pieces, ok2) = run(usize::from(n >> 2));
    assert_eq!(whole, pieces);
    assert_eq!(ok, ok2);
    if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        assert!(ok, "valid JSON refused");
        serde_json::from_slice::<serde_json::Value>(&whole).expect("valid JSON out");
    }
});
