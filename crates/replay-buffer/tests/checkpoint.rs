//! Checkpointing: the whole replay state (buffer, per-sample memory, scheduler intervals, RNGs)
//! round-trips through serde, and the restored copy behaves identically from then on.

use replay_buffer::schedulers::{
    AccuracySupervisedConfig, FixedIntervalConfig, LossDrivenConfig, MssrConfig, MssrVariant,
};
use replay_buffer::{
    AnyScheduler, CapacityPolicy, HookPoint, InsertionPolicy, LossPrioritisedSampler, Replay,
    ReplayBufferConfig, ReplayDecision, SampleRef, SamplerKind, SchedulerConfig, Signals, SlotLoss,
    TaskScore, TeacherTopK,
};

/// A deterministic stand-in for the model: the loss of a sample at a step.
fn loss(s: SampleRef, step: u64) -> f32 {
    0.05 + ((s.task as u64 * 7 + s.index as u64 * 13 + step) % 23) as f32 * 0.1
}

/// A deterministic stand-in for evaluation: odd tasks degrade over time.
fn score(task: u32, step: u64) -> f32 {
    if task % 2 == 1 {
        0.8 - (step % 97) as f32 * 0.002
    } else {
        0.8
    }
}

/// One engine step through every hook; returns what the strategy asked for and decided.
fn engine_step(
    replay: &mut Replay<AnyScheduler>,
    task: u32,
    step: u64,
) -> (replay_buffer::ExtraPasses, ReplayDecision) {
    let passes = replay.wants(HookPoint::BeforeUpdate { step });
    let probe: Vec<SlotLoss> = passes
        .probe
        .iter()
        .flatten()
        .map(|&slot| SlotLoss {
            slot,
            loss: loss(replay.buffer.sample(slot), step),
        })
        .collect();
    let scores: Vec<TaskScore> = passes
        .evaluate
        .iter()
        .flat_map(|e| {
            e.tasks.iter().map(|&t| TaskScore {
                task: t,
                score: score(t, step),
            })
        })
        .collect();
    let signals = Signals {
        step,
        probe_losses: &probe,
        scores: &scores,
        ..Default::default()
    };
    let decision = replay.before_update(&signals);
    let replayed: Vec<SlotLoss> = decision
        .batches
        .iter()
        .flat_map(|b| b.slots.iter().zip(&b.samples))
        .map(|(&slot, &s)| SlotLoss {
            slot,
            loss: loss(s, step),
        })
        .collect();
    replay.after_update(&Signals {
        step,
        replay_losses: &replayed,
        ..Default::default()
    });
    for j in 0..4u32 {
        let s = SampleRef::new(task, (step as u32) * 4 + j);
        let teacher = (j == 0).then(|| TeacherTopK {
            k: 2,
            token_ids: vec![1, 2],
            log_probs: vec![-0.1, -2.5],
        });
        replay.offer(s, loss(s, step), step, teacher);
    }
    (passes, decision)
}

fn end_task(replay: &mut Replay<AnyScheduler>, task: u32, step: u64) {
    let passes = replay.wants(HookPoint::AfterTrainingExp { task, step });
    let probe: Vec<SlotLoss> = passes
        .probe
        .iter()
        .flatten()
        .map(|&slot| SlotLoss {
            slot,
            loss: loss(replay.buffer.sample(slot), step),
        })
        .collect();
    let scores: Vec<TaskScore> = passes
        .evaluate
        .iter()
        .flat_map(|e| {
            e.tasks.iter().map(|&t| TaskScore {
                task: t,
                score: 0.85,
            })
        })
        .collect();
    replay.after_training_exp(
        task,
        &Signals {
            step,
            probe_losses: &probe,
            scores: &scores,
            ..Default::default()
        },
    );
}

fn configs() -> Vec<SchedulerConfig> {
    vec![
        SchedulerConfig::None,
        SchedulerConfig::FixedInterval(FixedIntervalConfig {
            sampler: SamplerKind::LossPrioritised(LossPrioritisedSampler::default()),
            seed: 3,
            ..Default::default()
        }),
        SchedulerConfig::LossDriven(LossDrivenConfig {
            seed: 4,
            ..Default::default()
        }),
        SchedulerConfig::AccuracySupervised(AccuracySupervisedConfig {
            eval_every: 10,
            seed: 5,
            ..Default::default()
        }),
        SchedulerConfig::Mssr(MssrConfig {
            seed: 6,
            ..Default::default()
        }),
        SchedulerConfig::Mssr(MssrConfig {
            variant: MssrVariant::SamplerOnly,
            ..Default::default()
        }),
        SchedulerConfig::Mssr(MssrConfig {
            variant: MssrVariant::SchedulerOnly,
            ..Default::default()
        }),
    ]
}

#[test]
fn serialised_state_resumes_with_identical_future_behaviour() {
    for config in configs() {
        let buffer = ReplayBufferConfig {
            capacity: CapacityPolicy::Total { capacity: 64 },
            insertion: InsertionPolicy::Reservoir,
            seed: 9,
            ..Default::default()
        }
        .init();
        let mut original = Replay::new(buffer, config.init());
        // Tasks 0 and 1 done, task 2 half-way: checkpoint at step 250.
        let mut step = 0;
        for task in 0..3u32 {
            original.before_training_exp(task);
            for _ in 0..100 {
                step += 1;
                engine_step(&mut original, task, step);
                if step == 250 {
                    break;
                }
            }
            if step == 250 {
                break;
            }
            end_task(&mut original, task, step);
        }
        let json = serde_json::to_string(&original).unwrap();
        let mut restored: Replay<AnyScheduler> = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&restored).unwrap(), json);

        // Finish task 2, then task 3, on both copies.
        let mut replayed = 0;
        for task in 2..4u32 {
            if task == 3 {
                original.before_training_exp(task);
                restored.before_training_exp(task);
            }
            let last = if task == 2 { 300 } else { 400 };
            while step < last {
                step += 1;
                let a = engine_step(&mut original, task, step);
                let b = engine_step(&mut restored, task, step);
                assert_eq!(a, b, "{} diverged at step {step}", config_name(&config));
                replayed += a.1.num_samples();
            }
            end_task(&mut original, task, step);
            end_task(&mut restored, task, step);
        }
        assert_eq!(
            serde_json::to_string(&original).unwrap(),
            serde_json::to_string(&restored).unwrap()
        );
        if !matches!(config, SchedulerConfig::None) {
            assert!(replayed > 0, "{} never replayed", config_name(&config));
        }
    }
}

fn config_name(c: &SchedulerConfig) -> String {
    c.init().name().to_string()
}

use replay_buffer::Scheduler;

#[test]
fn same_seed_gives_same_run_and_other_seed_differs() {
    let run = |seed: u64| {
        let buffer = ReplayBufferConfig {
            seed,
            ..Default::default()
        }
        .init();
        let config = SchedulerConfig::Mssr(MssrConfig {
            seed,
            ..Default::default()
        });
        let mut replay = Replay::new(buffer, config.init());
        let mut decisions = Vec::new();
        let mut step = 0;
        for task in 0..3 {
            for _ in 0..300 {
                step += 1;
                decisions.push(engine_step(&mut replay, task, step).1);
            }
            end_task(&mut replay, task, step);
        }
        decisions
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn scheduler_config_reads_from_json() {
    let c: SchedulerConfig = serde_json::from_str(
        r#"{"kind": "mssr", "variant": "scheduler-only", "max_interval": 64}"#,
    )
    .unwrap();
    match c {
        SchedulerConfig::Mssr(m) => {
            assert_eq!(m.variant, MssrVariant::SchedulerOnly);
            assert_eq!(m.max_interval, 64.0);
            assert_eq!(m.initial_interval, 4.0);
        }
        _ => panic!("{c:?}"),
    }
    let c: SchedulerConfig = serde_json::from_str(r#"{"kind": "fixed_interval"}"#).unwrap();
    assert_eq!(
        c,
        SchedulerConfig::FixedInterval(FixedIntervalConfig::default())
    );
}
