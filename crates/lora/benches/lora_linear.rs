//! Criterion benchmark: one adapted projection of SmolLM2-135M's size (2048 tokens = batch 8 ×
//! 256, 576 → 1536, rank 8) on the CPU (Flex), forward + backward to the adapter factors:
//! - `ours`: `x·W + s·((x·A)·B)` ([`LoraLinear::forward`]);
//! - `dense`: `x·(W + s·A·B)`, the dense update formed on every forward (Burn 0.22's
//!   `apply_lora`);
//! - `base`: `x·W` alone (the floor: what the frozen layer costs);
//! - `sgemm`: the plain `[2048, 576]·[576, 1536]` product, to read the others against.
//!
//! `cargo bench -p lora --bench lora_linear` (release profile: builds Burn once more), or in the
//! workspace's dev profile, whose dependencies are optimised and share the test build:
//! `cargo test -p lora --bench lora_linear -- --bench`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use lora::{LoraLinear, LoraSettings};

const TOKENS: usize = 2048;
const D_IN: usize = 576;
const D_OUT: usize = 1536;

fn layer(device: &Device) -> LoraLinear {
    let w = Tensor::<2>::random([D_IN, D_OUT], Distribution::Normal(0.0, 0.02), device);
    let mut l = LoraLinear::new(w, None);
    l.add_adapter("bench", &LoraSettings::default(), device);
    // A non-zero B, as after a few steps.
    let b = Tensor::<2>::random([8, D_OUT], Distribution::Normal(0.0, 0.02), device).require_grad();
    l.adapters[0].b = l.adapters[0].b.clone().map(|_| b);
    l
}

/// Forward and backward, then read one value back so the work is done.
fn step(y: Tensor<2>, factor: &Tensor<2>) {
    let grads = y.sum().backward();
    let g = factor.grad(&grads).expect("the factor has a gradient");
    let _ = g.slice([0..1, 0..1]).into_scalar::<f32>();
}

fn bench(c: &mut Criterion) {
    let device = Device::flex().autodiff();
    let l = layer(&device);
    let x = Tensor::<2>::random([TOKENS, D_IN], Distribution::Default, &device);
    let mut g = c.benchmark_group("lora 2048x576->1536 r8, fwd+bwd");
    g.sample_size(20);
    g.bench_function("ours x·W + s·(x·A)·B", |b| {
        b.iter(|| {
            let y = l.forward(x.clone());
            step(y, &l.adapters[0].a.val());
        })
    });
    g.bench_function("dense x·(W + s·A·B)", |b| {
        b.iter(|| {
            let ad = &l.adapters[0];
            let w = l.weight.val()
                + ad.a
                    .val()
                    .matmul(ad.b.val())
                    .mul_scalar(ad.settings.scale());
            let y = x.clone().matmul(w);
            step(y, &ad.a.val());
        })
    });
    g.bench_function("base x·W, forward only", |b| {
        b.iter(|| {
            let y = x.clone().matmul(l.weight.val());
            let _ = y.slice([0..1, 0..1]).into_scalar::<f32>();
        })
    });
    g.finish();

    let flex = Device::flex();
    let a = Tensor::<2>::random([TOKENS, D_IN], Distribution::Default, &flex);
    let w = Tensor::<2>::random([D_IN, D_OUT], Distribution::Default, &flex);
    let mut g = c.benchmark_group("sgemm");
    g.sample_size(20);
    g.throughput(criterion::Throughput::Elements(
        (2 * TOKENS * D_IN * D_OUT) as u64,
    ));
    g.bench_function("2048x576x1536 (elements = FLOPs)", |b| {
        b.iter(|| {
            let y = a.clone().matmul(w.clone());
            let _ = y.slice([0..1, 0..1]).into_scalar::<f32>();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
