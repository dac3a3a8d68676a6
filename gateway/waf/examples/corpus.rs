//! Runs the inspector over a JSON-lines corpus in-process (no gateway): per category, the share
//! of attack lines detected and of benign lines passed. For rule development; the end-to-end
//! measurement is `tools/waf-replay.py` against a running gateway.
//!
//! cargo run --release -p menwei-waf --example corpus -- FILE [--paranoia N] [--misses CATEGORY] [--fp]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use menwei_waf::{Config, Engine};
use std::collections::BTreeMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("corpus file");
    let opt = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let paranoia: u8 = opt("--paranoia").map(|p| p.parse().unwrap()).unwrap_or(1);
    let misses = opt("--misses");
    let show_fp = args.iter().any(|a| a == "--fp");
    let engine = Engine::new().unwrap();
    let cfg = Config {
        paranoia,
        ..Config::default()
    };
    let mut stats: BTreeMap<String, [u32; 4]> = BTreeMap::new();
    for line in menwei_waf::corpus::read(std::path::Path::new(path)).unwrap() {
        let d = &line.doc;
        let attack = d["expect"] == "attack";
        let pl = d["meta"]["paranoia_level"].as_u64().unwrap_or(1) as u8;
        if attack && pl > paranoia {
            continue;
        }
        let cat = d["category"].as_str().unwrap_or("?").to_string();
        let req = line.request();
        let v = engine.inspect(&cfg, &req);
        let s = stats.entry(cat.clone()).or_default();
        if attack {
            s[0] += 1;
            s[1] += v.attack as u32;
            if !v.attack && misses.as_deref().is_some_and(|m| m == cat || m == "all") {
                println!(
                    "MISS {} {} {:?} {:?}",
                    d["id"],
                    d["meta"]["desc"].as_str().unwrap_or(""),
                    d["uri"].as_str().unwrap_or(""),
                    d["body"].as_str().map(|b| &b[..b.len().min(150)])
                );
            }
        } else {
            s[2] += 1;
            s[3] += !v.attack as u32;
            if v.attack && show_fp {
                println!(
                    "FP {} {:?} {:?} {:?}",
                    d["id"],
                    v.hits
                        .iter()
                        .map(|h| (h.rule, h.target.clone(), h.evidence.clone()))
                        .collect::<Vec<_>>(),
                    d["uri"].as_str().unwrap_or(""),
                    d["body"].as_str().map(|b| &b[..b.len().min(100)])
                );
            }
        }
    }
    let (mut a, mut ad, mut b, mut bp) = (0, 0, 0, 0);
    println!(
        "{:<22} {:>8} {:>9} {:>8} {:>9}",
        "category", "attacks", "detected", "benign", "passed"
    );
    for (c, s) in &stats {
        println!(
            "{c:<22} {:>8} {:>8.1}% {:>8} {:>8.1}%",
            s[0],
            pct(s[1], s[0]),
            s[2],
            pct(s[3], s[2])
        );
        a += s[0];
        ad += s[1];
        b += s[2];
        bp += s[3];
    }
    println!(
        "{:<22} {a:>8} {:>8.1}% {b:>8} {:>8.1}%",
        "all",
        pct(ad, a),
        pct(bp, b)
    );
}

fn pct(n: u32, d: u32) -> f64 {
    if d == 0 {
        100.0
    } else {
        100.0 * f64::from(n) / f64::from(d)
    }
}
