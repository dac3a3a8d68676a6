//! Instructions per masked document, for finding what is slow (timings on a shared machine are
//! noisy; callgrind counts are not). The profile is the demo's `citizen-pii`.
//!   cargo build --release -p menwei-mask --example timing
//!   valgrind --tool=callgrind --toggle-collect=timing::timed target/release/examples/timing FILE 20
#![allow(clippy::unwrap_used)]

use menwei_mask::json::{JsonMasker, Profile};

#[path = "shared/citizen_pii.rs"]
mod citizen_pii;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let doc = std::fs::read(&args[1]).unwrap();
    let rounds: usize = args.get(2).map(|r| r.parse().unwrap()).unwrap_or(100);
    let p = citizen_pii::profile();
    let start = std::time::Instant::now();
    let bytes = timed(&p, &doc, rounds);
    let el = start.elapsed();
    println!(
        "{rounds} documents of {} bytes, {:.1} us each, {:.0} MiB/s ({bytes} bytes out)",
        doc.len(),
        el.as_secs_f64() * 1e6 / rounds as f64,
        (doc.len() * rounds) as f64 / el.as_secs_f64() / (1 << 20) as f64
    );
}

/// The measured loop: the document in 16 KiB chunks, as Pingora hands them over.
#[inline(never)]
fn timed(p: &Profile, doc: &[u8], rounds: usize) -> usize {
    let mut n = 0;
    for _ in 0..rounds {
        let mut m = JsonMasker::new(p);
        let mut out = Vec::with_capacity(doc.len());
        for chunk in doc.chunks(16 * 1024) {
            m.push(p, chunk, &mut out);
        }
        m.finish(p, &mut out).unwrap();
        n += std::hint::black_box(out).len();
    }
    n
}
