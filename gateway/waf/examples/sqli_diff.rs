//! Compares menwei's libinjection SQL check (`menwei_waf::sqli`) with libinjectionrs' on every
//! value of a JSON-lines corpus: each string of each line (request target, header values, body),
//! its `&`- and `=`-separated parts, each URL-decoded once and twice, and every prefix of the
//! shorter ones; and its XSS check (`menwei_waf::xss`, the contexts that apply) with
//! libinjectionrs' `detect_xss` (all five) on the same values. Prints each disagreement and
//! exits non-zero if there is any.
//!   cargo run --release -p menwei-waf --example sqli_diff -- ../shared/corpora/waf/crs-v4.28.0.jsonl
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn main() {
    let path = std::env::args().nth(1).expect("a JSON-lines file");
    let lines = menwei_waf::corpus::read(std::path::Path::new(&path)).unwrap();
    let mut values = BTreeSet::new();
    for line in &lines {
        let mut found = Vec::new();
        strings(&line.doc, &mut found);
        for s in found {
            let once = String::from_utf8_lossy(&menwei_waf::normalize::url_decode(s.as_bytes()))
                .into_owned();
            let twice =
                String::from_utf8_lossy(&menwei_waf::normalize::url_decode(once.as_bytes()))
                    .into_owned();
            for v in [s, once, twice] {
                for part in v.split(['&', '=']) {
                    values.insert(part.to_string());
                }
                values.insert(v);
            }
        }
    }
    let mut prefixes = BTreeSet::new();
    for v in values.iter().filter(|v| v.len() <= 200) {
        for (i, _) in v.char_indices() {
            prefixes.insert(v[..i].to_string());
        }
    }
    values.extend(prefixes);
    let (mut n, mut differ, mut flagged) = (0usize, 0usize, 0usize);
    let (mut xss_differ, mut xss_flagged) = (0usize, 0usize);
    for v in &values {
        let ours = menwei_waf::xss::is_xss(v.as_bytes());
        let theirs = libinjectionrs::detect_xss(v.as_bytes()).is_injection();
        xss_flagged += usize::from(theirs);
        if ours != theirs {
            xss_differ += 1;
            println!("XSS differs (ours {ours}, libinjectionrs {theirs}): {v:?}");
        }
        let ours = menwei_waf::sqli::is_sqli(v);
        let theirs =
            libinjectionrs::SqliState::new(v.as_bytes(), libinjectionrs::SqliFlags::FLAG_NONE)
                .detect();
        n += 1;
        flagged += usize::from(theirs);
        if ours != theirs {
            differ += 1;
            println!("differ (ours {ours}, libinjectionrs {theirs}): {v:?}");
        }
    }
    println!("{n} values, {xss_flagged} XSS by libinjectionrs, {xss_differ} verdicts differ");
    println!("{n} values, {flagged} SQL injection by libinjectionrs, {differ} verdicts differ");
    if differ > 0 || xss_differ > 0 {
        std::process::exit(1);
    }
}
