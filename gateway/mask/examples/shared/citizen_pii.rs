//! The demo's `citizen-pii` profile (policies/masking.toml) as the masker sees it, shared by the
//! criterion bench and the timing example.

use menwei_mask::json::{FieldRule, Pattern, Profile};
use menwei_mask::Style;

pub fn profile() -> Profile {
    let f = |n: &str, s: Style| FieldRule::field(Pattern::parse(n).unwrap(), s);
    Profile {
        rules: vec![
            f("name", Style::Name),
            f("idCard", Style::Keep { head: 6, tail: 4 }),
            f("mobile", Style::Mobile),
            f("bankCard", Style::CardLast4),
            f("*address", Style::Address),
        ],
        detect: true,
        numbers: false,
    }
}
