//! Criterion benchmark: the lazy update of 1M per-sample states, and computing 1M strengths.
//!
//! `cargo bench -p memory-strength --bench memory_update -- --quick`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use memory_strength::MemoryConfig;
use std::hint::black_box;

const N: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let mut memory = MemoryConfig::default().init();
    for i in 0..N {
        memory.insert((i % 97) as f32 * 0.05, (i % 1000) as u64);
    }
    let indices: Vec<usize> = (0..N).collect();
    let losses: Vec<f32> = (0..N).map(|i| (i % 89) as f32 * 0.03).collect();
    let mut step = 2_000u64;
    c.bench_function("update_after_replay 1M states", |b| {
        b.iter(|| {
            step += 1;
            memory.update_after_replay(black_box(&indices), black_box(&losses), step);
        })
    });
    let mut out = Vec::with_capacity(N);
    c.bench_function("strengths of 1M states", |b| {
        b.iter(|| {
            memory.strengths_into(None, black_box(step + 100), &mut out);
            black_box(&out);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
