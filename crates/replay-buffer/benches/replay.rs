//! Criterion benchmarks: drawing 64 samples from a buffer of 1M (goal: at most 5 ms), and a
//! scheduler's per-step overhead.
//!
//! `cargo bench -p replay-buffer --bench replay -- --quick`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use replay_buffer::schedulers::{FixedIntervalConfig, LossDrivenConfig, MssrConfig};
use replay_buffer::{
    Buffer, Candidates, CapacityPolicy, HookPoint, InsertionPolicy, LossPrioritisedSampler, Replay,
    ReplayBuffer, ReplayBufferConfig, ReplayRng, SampleRef, Sampler, SchedulerConfig, Signals,
    SlotLoss, StrengthSampler, UniformSampler,
};
use std::hint::black_box;

/// A full buffer of `n` samples over 10 tasks, with varied losses and review steps.
fn buffer(n: usize) -> ReplayBuffer {
    let mut b = ReplayBufferConfig {
        capacity: CapacityPolicy::Total { capacity: n },
        insertion: InsertionPolicy::Reservoir,
        ..Default::default()
    }
    .init();
    for i in 0..n {
        let task = (i * 10 / n) as u32;
        b.offer(
            SampleRef::new(task, i as u32),
            (i % 97) as f32 * 0.03,
            (i % 5000) as u64,
            None,
        );
    }
    b
}

fn sampling(c: &mut Criterion) {
    let b = buffer(1_000_000);
    let mut rng = ReplayRng::seed_from_u64(0);
    let step = 6_000;
    c.bench_function("draw 64 of 1M: strength (MSSR)", |x| {
        x.iter(|| StrengthSampler::default().sample(&b, Candidates::All, 64, step, &mut rng))
    });
    c.bench_function("draw 64 of 1M: loss-prioritised", |x| {
        x.iter(|| LossPrioritisedSampler::default().sample(&b, Candidates::All, 64, step, &mut rng))
    });
    c.bench_function("draw 64 of 1M: uniform", |x| {
        x.iter(|| UniformSampler.sample(&b, Candidates::All, 64, step, &mut rng))
    });
    let mut w = Vec::new();
    c.bench_function(
        "strength weights of 1M (the single-pass method's work)",
        |x| x.iter(|| StrengthSampler::default().weights(&b, Candidates::All, step, &mut w)),
    );
    let task = b.task_slots(3).to_vec();
    c.bench_function("draw 64 of one task's 100k: strength (MSSR)", |x| {
        x.iter(|| {
            StrengthSampler::default().sample(&b, Candidates::Slots(&task), 64, step, &mut rng)
        })
    });
}

/// One engine step through every hook, with synthetic losses.
fn step(replay: &mut Replay<replay_buffer::AnyScheduler>, t: u64, losses: &mut Vec<SlotLoss>) {
    let passes = replay.wants(HookPoint::BeforeUpdate { step: t });
    let probe: Vec<SlotLoss> = passes
        .probe
        .iter()
        .flatten()
        .map(|&slot| SlotLoss { slot, loss: 0.7 })
        .collect();
    let d = replay.before_update(&Signals {
        step: t,
        probe_losses: &probe,
        ..Default::default()
    });
    losses.clear();
    for batch in &d.batches {
        losses.extend(batch.slots.iter().map(|&slot| SlotLoss {
            slot,
            loss: (t % 13) as f32 * 0.1,
        }));
    }
    replay.after_update(&Signals {
        step: t,
        replay_losses: losses,
        ..Default::default()
    });
    for j in 0..8 {
        replay.offer(SampleRef::new(10, (t * 8 + j) as u32), 0.3, t, None);
    }
    black_box(d);
}

fn scheduler_overhead(c: &mut Criterion) {
    let configs = [
        (
            "fixed interval",
            SchedulerConfig::FixedInterval(FixedIntervalConfig::default()),
        ),
        (
            "loss-driven",
            SchedulerConfig::LossDriven(LossDrivenConfig::default()),
        ),
        ("MSSR full", SchedulerConfig::Mssr(MssrConfig::default())),
    ];
    for (name, config) in configs {
        // 10 past tasks of 1000 samples each (a 10k buffer), task 10 being trained.
        let mut replay = Replay::new(buffer(10_000), config.init());
        for task in 0..10 {
            let slots = replay.buffer.task_slots(task).to_vec();
            let refs: Vec<SlotLoss> = slots
                .iter()
                .map(|&slot| SlotLoss { slot, loss: 0.5 })
                .collect();
            replay.after_training_exp(
                task,
                &Signals {
                    step: 5000,
                    probe_losses: &refs,
                    ..Default::default()
                },
            );
        }
        let mut t = 5000;
        let mut losses = Vec::new();
        c.bench_function(&format!("scheduler step, 10k buffer: {name}"), |x| {
            x.iter(|| {
                t += 1;
                step(&mut replay, t, &mut losses)
            })
        });
    }
}

criterion_group!(benches, sampling, scheduler_overhead);
criterion_main!(benches);
