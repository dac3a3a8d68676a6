//! Memory per tracked key of the local store: resident set size before and after tracking N
//! distinct keys (default 1,000,000). `cargo run --release -p menwei-ratelimit --example memory`.

use menwei_ratelimit::{Gcra, LocalLimiter, Rate};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rate = Rate::parse("1/m").unwrap_or(Rate {
        count: 1,
        per: std::time::Duration::from_secs(60),
    });
    let limiter = LocalLimiter::new(Gcra::new(rate, 40), n * 2, None);
    let before = rss_kib();
    for i in 0..n {
        // Keys shaped like client addresses; a slow rate keeps them from expiring while measured.
        let key = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        let _ = limiter.check(&key);
    }
    let tracked = limiter.tracked_keys();
    let after = rss_kib();
    let per_key = (after.saturating_sub(before) * 1024) as f64 / tracked.max(1) as f64;
    println!(
        "keys tracked: {tracked}; RSS {before} KiB -> {after} KiB; {per_key:.0} bytes per key"
    );
}
