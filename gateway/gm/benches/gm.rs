//! SM3, SM4-GCM, SM2 sign and verify: the operations a signed request costs. Compare with
//! OpenSSL in the same run with bench/gm.sh (figures in docs/benchmarks.md).
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use menwei_gm::*;
use std::hint::black_box;

fn hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("sm3");
    for size in [1024usize, 8192] {
        let data = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| sm3(black_box(d)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("sm4-gcm-seal");
    let key = [7u8; 16];
    let nonce = [9u8; 12];
    for size in [1024usize, 8192] {
        let data = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| sm4gcm::seal(&key, &nonce, b"", black_box(d)))
        });
    }
    g.finish();
}

fn signatures(c: &mut Criterion) {
    let k = Sm2Private::generate(DEFAULT_ID).unwrap();
    let p = k.public();
    // About the size of a canonical string of a signed request.
    let msg = vec![0x61u8; 256];
    let sig = k.sign(&msg, SigEncoding::Der);
    c.bench_function("sm2-sign", |b| {
        b.iter(|| k.sign(black_box(&msg), SigEncoding::Der))
    });
    c.bench_function("sm2-verify", |b| {
        b.iter(|| p.verify(black_box(&msg), &sig, SigEncoding::Der).unwrap())
    });
}

criterion_group!(benches, hashing, signatures);
criterion_main!(benches);
