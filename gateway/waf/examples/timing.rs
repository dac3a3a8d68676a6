//! Time per inspection over a JSON-lines file, in process (for finding what is slow).
//!   cargo run --release -p menwei-waf --example timing -- FILE [ROUNDS]
//! Instructions per inspection, steady and exact (this machine's timings are noisy):
//!   valgrind --tool=callgrind --toggle-collect=timing::timed target/release/examples/timing FILE 3
#![allow(clippy::unwrap_used, clippy::expect_used)]

use menwei_waf::{Config, Engine, Request};

/// As in the gateway (gateway/menwei/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(2).map(|r| r.parse().unwrap()).unwrap_or(5);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&args[1])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let engine = Engine::new().unwrap();
    let cfg = Config::default();
    let owned: Vec<Line> = lines
        .iter()
        .map(|d| {
            (
                d["method"].as_str().unwrap_or("GET").to_string(),
                d["uri"].as_str().unwrap_or("/").to_string(),
                d["headers"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
                d["body"].as_str().map(|b| b.as_bytes().to_vec()),
            )
        })
        .collect();
    let paranoia: u8 = std::env::var("PARANOIA")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let cfg = Config { paranoia, ..cfg };
    let mut hits = std::collections::BTreeMap::new();
    for (m, u, h, b) in &owned {
        let req = Request {
            method: m,
            uri: u.as_bytes(),
            headers: h.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect(),
            body: b.as_deref(),
            body_truncated: false,
        };
        for hit in engine.inspect(&cfg, &req).hits {
            *hits.entry(hit.rule).or_insert(0u32) += 1;
        }
    }
    println!("rules that fired (not necessarily an attack): {hits:?}");
    let start = std::time::Instant::now();
    let n = timed(&engine, &cfg, &owned, rounds);
    let el = start.elapsed();
    println!(
        "{n} inspections, {:.1} us each",
        el.as_secs_f64() * 1e6 / n as f64
    );
}

type Line = (String, String, Vec<(String, Vec<u8>)>, Option<Vec<u8>>);

/// The measured loop, after a first pass has warmed the lazy DFAs (a function of its own so
/// that `valgrind --tool=callgrind --toggle-collect=timing::timed` counts only it).
#[inline(never)]
fn timed(engine: &Engine, cfg: &Config, owned: &[Line], rounds: usize) -> usize {
    let mut n = 0;
    for _ in 0..rounds {
        for (m, u, h, b) in owned {
            let req = Request {
                method: m,
                uri: u.as_bytes(),
                headers: h.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect(),
                body: b.as_deref(),
                body_truncated: false,
            };
            std::hint::black_box(engine.inspect(cfg, &req));
            n += 1;
        }
    }
    n
}
