//! The replay allowance is an input to every built-in scheduler's decision: a scheduler never
//! replays more than it is allowed at a step, replays whole `r·|B|` batches only, and its cost
//! counts exactly what it replayed. Driven as the engine drives them (through [`Replay`]), with
//! signals that make every scheduler want to replay at every step.

use proptest::prelude::*;
use replay_buffer::schedulers::{
    AccuracySupervisedConfig, FixedIntervalConfig, LossDrivenConfig, MssrConfig, MssrVariant,
};
use replay_buffer::{
    Buffer, CapacityPolicy, ExtraPasses, HookPoint, Replay, ReplayBufferConfig, ReplayDecision,
    ReplaySize, SampleRef, SchedulerConfig, Signals, SlotLoss, TaskScore,
};

const BATCH: usize = 4;

fn size() -> ReplaySize {
    ReplaySize {
        batch_size: BATCH,
        ratio: 1.0,
    }
}

/// Every scheduler, configured to want replay as often as it can.
fn eager_schedulers() -> Vec<SchedulerConfig> {
    vec![
        SchedulerConfig::FixedInterval(FixedIntervalConfig {
            every: 1,
            size: size(),
            ..Default::default()
        }),
        SchedulerConfig::LossDriven(LossDrivenConfig {
            probe_every: 1,
            probe_size: 4,
            size: size(),
            ..Default::default()
        }),
        SchedulerConfig::AccuracySupervised(AccuracySupervisedConfig {
            eval_every: 1,
            eval_examples: 2,
            max_replay_batches: 3,
            size: size(),
            ..Default::default()
        }),
        SchedulerConfig::Mssr(MssrConfig {
            initial_interval: 1.0,
            max_replay_batches: 3,
            size: size(),
            ..Default::default()
        }),
        SchedulerConfig::Mssr(MssrConfig {
            variant: MssrVariant::SamplerOnly,
            sampler_only_every: 1,
            size: size(),
            ..Default::default()
        }),
        SchedulerConfig::Mssr(MssrConfig {
            variant: MssrVariant::SchedulerOnly,
            initial_interval: 1.0,
            max_replay_batches: 3,
            size: size(),
            ..Default::default()
        }),
    ]
}

/// Three ended tasks of 16 buffered samples each; references: loss 1.0, score 0.9.
fn ended_replay(config: &SchedulerConfig) -> Replay<replay_buffer::AnyScheduler> {
    let mut buffer = ReplayBufferConfig {
        capacity: CapacityPolicy::PerTask { quota: 16 },
        ..Default::default()
    }
    .init();
    for task in 0..3 {
        for i in 0..16 {
            buffer.offer(SampleRef::new(task, i), 1.0, 0, None);
        }
    }
    let mut replay = Replay::new(buffer, config.init());
    for task in 0..3 {
        replay.before_training_exp(task);
        let passes = replay.wants(HookPoint::AfterTrainingExp { task, step: 0 });
        let (probe, scores) = answer(passes, 1.0, 0.9);
        replay.after_training_exp(
            task,
            &Signals {
                probe_losses: &probe,
                scores: &scores,
                ..Default::default()
            },
        );
    }
    replay
}

/// The engine's answers to requested passes: every probed slot at `loss`, every evaluated task
/// at `score`.
fn answer(passes: ExtraPasses, loss: f32, score: f32) -> (Vec<SlotLoss>, Vec<TaskScore>) {
    let probe = passes.probe.unwrap_or_default();
    let tasks = passes.evaluate.map(|e| e.tasks).unwrap_or_default();
    (
        probe
            .into_iter()
            .map(|slot| SlotLoss { slot, loss })
            .collect(),
        tasks
            .into_iter()
            .map(|task| TaskScore { task, score })
            .collect(),
    )
}

/// One engine step at `step` with `allowance`: the requested passes answered with a risen loss
/// and fallen scores (so every scheduler wants to replay), the decision, the feedback.
fn engine_step(
    replay: &mut Replay<replay_buffer::AnyScheduler>,
    step: u64,
    allowance: Option<usize>,
) -> ReplayDecision {
    let passes = replay.wants(HookPoint::BeforeUpdate { step });
    let (probe, scores) = answer(passes, 3.0, 0.1);
    let signals = Signals {
        step,
        probe_losses: &probe,
        scores: &scores,
        ..Default::default()
    }
    .with_allowance(allowance);
    let decision = replay.before_update(&signals);
    let losses: Vec<SlotLoss> = decision
        .batches
        .iter()
        .flat_map(|b| b.slots.iter().map(|&slot| SlotLoss { slot, loss: 3.0 }))
        .collect();
    replay.after_update(&Signals {
        step,
        replay_losses: &losses,
        ..Default::default()
    });
    decision
}

#[test]
fn every_scheduler_replays_nothing_at_a_zero_or_sub_batch_allowance() {
    for config in eager_schedulers() {
        let mut replay = ended_replay(&config);
        for (step, allowance) in [(1, 0), (2, BATCH - 1), (3, 0)] {
            let d = engine_step(&mut replay, step, Some(allowance));
            assert!(
                d.batches.is_empty(),
                "{config:?} at allowance {allowance}: {d:?}"
            );
        }
        assert_eq!(replay.cost.replayed_samples, 0, "{config:?}");
        assert_eq!(replay.cost.replay_batches, 0, "{config:?}");
        // The same scheduler replays a whole batch once one fits.
        let d = engine_step(&mut replay, 4, Some(BATCH));
        assert_eq!(d.num_samples(), BATCH, "{config:?}");
        assert_eq!(replay.cost.replayed_samples, BATCH as u64, "{config:?}");
    }
}

#[test]
fn a_partial_allowance_gives_the_whole_batches_that_fit() {
    // Schedulers that may replay several batches a step get ⌊allowance / r·|B|⌋ of them.
    for config in eager_schedulers() {
        let multi = match &config {
            SchedulerConfig::AccuracySupervised(c) => c.max_replay_batches,
            SchedulerConfig::Mssr(c) if c.variant != MssrVariant::SamplerOnly => {
                c.max_replay_batches
            }
            _ => 1,
        };
        let mut replay = ended_replay(&config);
        let d = engine_step(&mut replay, 1, Some(2 * BATCH + 3));
        assert_eq!(d.batches.len(), multi.min(2), "{config:?}");
        assert!(
            d.batches.iter().all(|b| b.slots.len() == BATCH),
            "{config:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the allowances, a decision never exceeds its step's allowance, every batch is
    /// whole, and the cost counts exactly the samples decided.
    #[test]
    fn decisions_never_exceed_the_allowance_and_cost_counts_what_was_replayed(
        allowances in proptest::collection::vec(proptest::option::of(0usize..14), 1..40),
        which in 0usize..6,
    ) {
        let config = &eager_schedulers()[which];
        let mut replay = ended_replay(config);
        let mut total = 0u64;
        for (i, &allowance) in allowances.iter().enumerate() {
            let d = engine_step(&mut replay, i as u64 + 1, allowance);
            if let Some(a) = allowance {
                prop_assert!(d.num_samples() <= a, "{config:?}: {} > {a}", d.num_samples());
            }
            prop_assert!(d.batches.iter().all(|b| b.slots.len() == BATCH));
            total += d.num_samples() as u64;
        }
        prop_assert_eq!(replay.cost.replayed_samples, total);
    }
}
