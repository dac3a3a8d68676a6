//! The per-thread memories of clean values and libinjection verdicts never change a verdict: the
//! same requests inspected again (memories warm) give exactly the same rule ids and score, at
//! every paranoia level, and an attack in a header or a path is caught however often it comes,
//! as is an attack in the arguments of a path seen clean before.
#![allow(clippy::unwrap_used)]

use menwei_waf::corpus::{self, Line};
use menwei_waf::{Config, Engine, Request};

fn engine() -> &'static Engine {
    menwei_waf::shared().unwrap()
}

fn lines(file: &str) -> Vec<Line> {
    let path = format!("{}/../../tests/waf/{file}", env!("CARGO_MANIFEST_DIR"));
    corpus::read(std::path::Path::new(&path)).unwrap()
}

fn verdicts(lines: &[Line], paranoia: u8) -> Vec<(Vec<u32>, u32, bool)> {
    let cfg = Config {
        paranoia,
        ..Config::default()
    };
    lines
        .iter()
        .map(|line| {
            let v = engine().inspect(&cfg, &line.request());
            let mut ids = v.rule_ids();
            ids.sort_unstable();
            (ids, v.score, v.attack)
        })
        .collect()
}

#[test]
fn a_second_pass_with_warm_memories_gives_the_same_verdicts() {
    let mut all = lines("crs-sample.jsonl");
    all.extend(lines("benign.jsonl"));
    for paranoia in 1..=4 {
        let first = verdicts(&all, paranoia);
        let second = verdicts(&all, paranoia);
        for (i, (a, b)) in first.iter().zip(&second).enumerate() {
            assert_eq!(a, b, "line {i} at paranoia {paranoia}: {:?}", all[i].uri());
        }
    }
}

#[test]
fn a_repeated_attack_in_a_header_is_caught_every_time() {
    let cfg = Config::default();
    let req = |ua: &'static [u8], cookie: &'static [u8]| Request {
        method: "GET",
        uri: b"/portal/index.html",
        headers: vec![
            ("Host", b"zwfw.example.gov.cn"),
            ("User-Agent", ua),
            ("Cookie", cookie),
        ],
        names_lower: false,
        body: None,
        body_truncated: false,
    };
    let benign = req(
        b"Mozilla/5.0 (X11; Linux x86_64)",
        b"lang=zh-CN; theme=light",
    );
    let attacks = [
        req(
            b"sqlmap/1.7.2#stable (https://sqlmap.org)",
            b"lang=zh-CN; theme=light",
        ),
        req(
            b"Mozilla/5.0 (X11; Linux x86_64)",
            b"lang=zh-CN; theme=' or 1=1--",
        ),
        req(
            b"Mozilla/5.0 (X11; Linux x86_64)",
            b"lang=zh-CN; theme=<script>alert(1)</script>",
        ),
    ];
    for _ in 0..3 {
        assert!(!engine().inspect(&cfg, &benign).attack);
        for a in &attacks {
            assert!(engine().inspect(&cfg, a).attack, "{:?}", a.headers);
        }
    }
}

#[test]
fn a_repeated_path_is_inspected_as_before() {
    let cfg = Config::default();
    let get = |uri: &'static [u8]| Request {
        method: "GET",
        uri,
        headers: vec![("Host", b"zwfw.example.gov.cn")],
        names_lower: false,
        body: None,
        body_truncated: false,
    };
    let benign = get(b"/api/v2/cases?page=2");
    let attacks = [
        // The clean path again, the attack in its arguments.
        get(b"/api/v2/cases?page=2%27%20union%20select%20password%20from%20users--"),
        // The attack in the path itself, repeated.
        get(b"/api/v2/cases/..%2f..%2f..%2fetc%2fpasswd"),
        get(b"/api/v2/%3Cscript%3Ealert(1)%3C/script%3E"),
    ];
    for _ in 0..3 {
        assert!(!engine().inspect(&cfg, &benign).attack);
        for a in &attacks {
            let v = engine().inspect(&cfg, a);
            assert!(
                v.attack,
                "{:?}: {:?}",
                String::from_utf8_lossy(a.uri),
                v.rule_ids()
            );
        }
    }
}
