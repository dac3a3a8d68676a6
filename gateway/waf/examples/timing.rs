//! Time per inspection over a JSON-lines file, in process (for finding what is slow).
//!   cargo run --release -p menwei-waf --example timing -- FILE [ROUNDS]
//! Instructions per inspection, steady and exact (this machine's timings are noisy):
//!   valgrind --tool=callgrind --toggle-collect=timing::timed target/release/examples/timing FILE 3
//! What inspection costs once the rest of a request's work has pushed it out of the caches:
//!   POLLUTE_KB=1024 target/release/examples/timing FILE 20
//! and how many code and data lines it then fetches from beyond the second-level cache, counted:
//!   bench/waf-footprint.sh
//! Every line's full verdict (score, rules, targets, evidence), to diff two builds of the engine
//! before a change that must not alter detection:
//!   DUMP=1 PARANOIA=4 target/release/examples/timing FILE 0 > before.txt
//! (DUMP=2: the verdicts of a second pass, which the per-thread memories must not change.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use menwei_waf::corpus::{self, Line};
use menwei_waf::{Config, Engine};

/// As in the gateway (gateway/menwei/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(2).map(|r| r.parse().unwrap()).unwrap_or(5);
    let lines = corpus::read(std::path::Path::new(&args[1])).unwrap();
    let engine = Engine::new().unwrap();
    let paranoia: u8 = std::env::var("PARANOIA")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let cfg = Config {
        paranoia,
        ..Config::default()
    };
    if let Some(dump) = std::env::var_os("DUMP") {
        // DUMP=2: the second pass, with the per-thread memories filled by the first.
        if dump == "2" {
            for line in &lines {
                engine.inspect(&cfg, &line.request());
            }
        }
        for line in &lines {
            let v = engine.inspect(&cfg, &line.request());
            println!("{} {} {:?}", line.doc["id"], v.score, v.hits);
        }
    }
    let mut hits = std::collections::BTreeMap::new();
    for line in &lines {
        for hit in engine.inspect(&cfg, &line.request()).hits {
            *hits.entry(hit.rule).or_insert(0u32) += 1;
        }
    }
    println!("rules that fired (not necessarily an attack): {hits:?}");
    // POLLUTE_KB=N: after each inspection, touch N KiB of other memory (one byte per cache
    // line), as the rest of a gateway's work on a request does; the time reported leaves out the
    // touching itself. Shows what inspection costs when its code and tables are no longer in the
    // caches.
    let pollute_kb: usize = std::env::var("POLLUTE_KB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut junk = vec![1u8; pollute_kb * 1024];
    let start = std::time::Instant::now();
    let (n, polluting) = timed(&engine, &cfg, &lines, rounds, &mut junk);
    let el = start.elapsed().saturating_sub(polluting);
    println!(
        "{n} inspections, {:.1} us each{}",
        el.as_secs_f64() * 1e6 / n as f64,
        if pollute_kb > 0 {
            format!(" ({pollute_kb} KiB of other memory touched between them)")
        } else {
            String::new()
        }
    );
}

/// The measured loop, after a first pass has warmed the lazy DFAs (a function of its own so
/// that `valgrind --tool=callgrind --toggle-collect=timing::timed` counts only it).
#[inline(never)]
fn timed(
    engine: &Engine,
    cfg: &Config,
    lines: &[Line],
    rounds: usize,
    junk: &mut [u8],
) -> (usize, std::time::Duration) {
    let mut n = 0;
    let mut polluting = std::time::Duration::ZERO;
    for _ in 0..rounds {
        for line in lines {
            std::hint::black_box(engine.inspect(cfg, &line.request()));
            n += 1;
            if !junk.is_empty() {
                let t = std::time::Instant::now();
                pollute(junk);
                polluting += t.elapsed();
            }
        }
    }
    (n, polluting)
}

/// Touches one byte per cache line of `junk` (a function of its own, so that
/// bench/waf-footprint.sh can take its own counts out of the loop's).
#[inline(never)]
fn pollute(junk: &mut [u8]) {
    for b in junk.iter_mut().step_by(64) {
        *b = b.wrapping_add(1);
    }
    std::hint::black_box(&junk);
}
