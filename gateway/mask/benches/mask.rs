//! The masker against its floor: a plain serde_json parse + serialise of the same citizen JSON
//! (what any masker that builds a tree must pay at least), for 1 KiB, 16 KiB and 1 MiB documents.
//! Run with bench/mask.sh (figures in docs/benchmarks.md).
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use menwei_mask::detect::{id_check_char, luhn};
use menwei_mask::json::JsonMasker;
use std::hint::black_box;

#[path = "../examples/shared/citizen_pii.rs"]
mod citizen_pii;

/// Citizen records as the demo backend sends them (valid IDs, mobiles, cards), up to `size` bytes.
fn citizens(size: usize) -> Vec<u8> {
    let mut records = Vec::new();
    let mut len = 40;
    let mut i = 0u64;
    while len < size {
        let body = format!(
            "110105{:04}{:02}{:02}{:03}",
            1950 + i % 60,
            1 + i % 12,
            1 + i % 28,
            i % 1000
        );
        let id = format!("{body}{}", id_check_char(body.as_bytes()).unwrap() as char);
        let prefix = format!("622202{:012}", i * 7919);
        let card = (0..10)
            .map(|d| format!("{prefix}{d}"))
            .find(|c| luhn(c.as_bytes()))
            .unwrap();
        let r = serde_json::json!({
            "id": i, "name": "张三丰", "idCard": id, "mobile": format!("138{:08}", i % 100_000_000),
            "bankCard": card, "address": "北京市东城区长安街53号829室",
            "note": "预约办理社保卡补办，已核验", "updatedAt": 1763788800128u64 + i,
        });
        len += r.to_string().len() + 1;
        records.push(r);
        i += 1;
    }
    serde_json::json!({"code": 0, "count": records.len(), "data": records})
        .to_string()
        .into_bytes()
}

fn masking(c: &mut Criterion) {
    let p = citizen_pii::profile();
    let mut g = c.benchmark_group("mask");
    for (label, size) in [
        ("1KiB", 1024usize),
        ("16KiB", 16 * 1024),
        ("1MiB", 1024 * 1024),
    ] {
        let doc = citizens(size);
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("serde-parse-serialise", label),
            &doc,
            |b, d| {
                b.iter(|| {
                    let v: serde_json::Value = serde_json::from_slice(black_box(d)).unwrap();
                    serde_json::to_vec(&v).unwrap()
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("menwei-stream-16KiB-chunks", label),
            &doc,
            |b, d| {
                b.iter(|| {
                    let mut m = JsonMasker::new(&p);
                    let mut out = Vec::with_capacity(d.len());
                    for chunk in black_box(d).chunks(16 * 1024) {
                        m.push(&p, chunk, &mut out);
                    }
                    m.finish(&p, &mut out).unwrap();
                    out
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, masking);
criterion_main!(benches);
