//! Every masked output of a set of documents, to diff two builds of the masker before a change
//! that must not alter what it writes: each file under four profiles (the demo's, one with path
//! rules, one masking numbers, detectors alone), whole and cut into chunks of 1, 3, 7 and 4096
//! bytes, with the counts and the end result.
//!   cargo run --release -p menwei-mask --example dump -- FILE... > before.txt
#![allow(clippy::unwrap_used)]

use menwei_mask::json::{Case, FieldRule, JsonMasker, JsonPath, Matcher, Pattern, Profile};
use menwei_mask::Style;

#[path = "shared/citizen_pii.rs"]
mod citizen_pii;

fn profiles() -> Vec<(&'static str, Profile)> {
    let demo = citizen_pii::profile();
    let mut paths = demo.clone();
    paths.rules.insert(
        0,
        FieldRule {
            matcher: Matcher::Path(JsonPath::parse("$.data[*].note").unwrap()),
            case: Case::Sensitive,
            style: Style::SameLength,
        },
    );
    paths.rules.push(FieldRule {
        matcher: Matcher::Path(JsonPath::parse("$..contact").unwrap()),
        case: Case::Insensitive,
        style: Style::Redact,
    });
    paths.rules.push(FieldRule::field(
        Pattern::parse("remark*").unwrap(),
        Style::Email,
    ));
    let mut numbers = demo.clone();
    numbers.numbers = true;
    let detectors = Profile {
        rules: Vec::new(),
        detect: true,
        numbers: false,
    };
    vec![
        ("demo", demo),
        ("paths", paths),
        ("numbers", numbers),
        ("detectors", detectors),
    ]
}

fn main() {
    let profiles = profiles();
    for file in std::env::args().skip(1) {
        let doc = std::fs::read(&file).unwrap();
        for (name, p) in &profiles {
            for size in [doc.len().max(1), 1, 3, 7, 4096] {
                let mut m = JsonMasker::new(p);
                let mut out = Vec::new();
                for chunk in doc.chunks(size) {
                    m.push(p, chunk, &mut out);
                }
                let end = m.finish(p, &mut out);
                println!(
                    "{file} {name} {size}: {:?} {:?}\n{}",
                    m.stats,
                    end,
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }
}
