//! A simulated continual run where every buffered sample's true recall decays along a known
//! forgetting curve and recovers when it is rehearsed. It drives the strategies exactly as the
//! engine would (through [`Replay`]) and compares MSSR with fixed interleaved replay at the
//! same replayed-sample budget.

use replay_buffer::memory_strength::MemoryConfig;
use replay_buffer::schedulers::{FixedIntervalConfig, MssrConfig, MssrVariant, ThresholdMode};
use replay_buffer::{
    CapacityPolicy, HookPoint, InsertionPolicy, Replay, ReplayBufferConfig, ReplaySize, SampleRef,
    SamplerKind, Scheduler, SchedulerConfig, Signals, SlotLoss, StrengthSampler,
};

const TASKS: u32 = 5;
const STEPS_PER_TASK: u64 = 400;
const QUOTA: u32 = 40;
/// Loss of a perfectly recalled sample.
const BASE_LOSS: f32 = 0.05;

/// The hidden truth about one sample: its recall is `exp(-(t - last)/stability)`; a
/// rehearsal at recall `r` resets it to 1 and multiplies the stability by `1 + (1 - r)`
/// (spacing effect: rehearsing a nearly forgotten sample helps most).
#[derive(Clone, Copy)]
struct Truth {
    stability: f64,
    last: u64,
}

impl Truth {
    fn recall(&self, t: u64) -> f64 {
        (-((t - self.last) as f64) / self.stability).exp()
    }
}

/// The simulated world: true stabilities are log-uniform in `[lo, lo·ratio]` steps, times a
/// per-task factor (some tasks are forgotten faster than others).
#[derive(Clone, Copy)]
struct World {
    lo: f64,
    ratio: f64,
    task_scale: [f64; TASKS as usize],
}

const DEFAULT_WORLD: World = World {
    lo: 20.0,
    ratio: 100.0,
    task_scale: [1.0; TASKS as usize],
};

impl World {
    /// Deterministic true stability of a sample.
    fn stability(&self, s: SampleRef) -> f64 {
        let mut x = ((s.task as u64) << 32) | s.index as u64;
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        self.lo * self.ratio.powf(u) * self.task_scale[s.task as usize]
    }
}

struct Outcome {
    mean_recall: f64,
    replayed_samples: u64,
    replay_batches: u64,
}

/// Five tasks of 400 steps; each task offers one sample per step to a first-k buffer with a
/// quota of 40 per task. Returns the mean true recall of the buffered past-task samples,
/// averaged over every step that has a past task.
fn run(config: SchedulerConfig, world: World, memory: MemoryConfig) -> Outcome {
    let buffer = ReplayBufferConfig {
        capacity: CapacityPolicy::PerTask {
            quota: QUOTA as usize,
        },
        insertion: InsertionPolicy::FirstK,
        memory,
        seed: 1,
    }
    .init();
    let mut replay = Replay::new(buffer, config.init());
    let mut truth: Vec<Option<Truth>> = vec![None; (TASKS * QUOTA) as usize];
    let id = |s: SampleRef| (s.task * QUOTA + s.index) as usize;
    let (mut recall_sum, mut recall_steps) = (0.0, 0u64);
    let mut step = 0u64;
    for task in 0..TASKS {
        replay.before_training_exp(task);
        for k in 0..STEPS_PER_TASK {
            step += 1;
            let passes = replay.wants(HookPoint::BeforeUpdate { step });
            assert!(passes.is_empty(), "these strategies need no extra passes");
            let decision = replay.before_update(&Signals::at(step));
            // "Train": each replayed sample's loss is -ln(recall) from its own forward pass,
            // then rehearsal restores it.
            let mut losses = Vec::new();
            for batch in &decision.batches {
                for (&slot, &sample) in batch.slots.iter().zip(&batch.samples) {
                    let t = truth[id(sample)]
                        .as_mut()
                        .expect("only past samples replay");
                    let r = t.recall(step);
                    losses.push(SlotLoss {
                        slot,
                        loss: BASE_LOSS + (-r.ln()) as f32,
                    });
                    t.stability *= 1.0 + (1.0 - r);
                    t.last = step;
                }
            }
            replay.after_update(&Signals {
                step,
                replay_losses: &losses,
                ..Default::default()
            });
            replay.offer(SampleRef::new(task, k as u32), BASE_LOSS, step, None);
            // Mean recall over every buffered sample of a past task.
            let past: Vec<f64> = truth.iter().flatten().map(|t| t.recall(step)).collect();
            if !past.is_empty() {
                recall_sum += past.iter().sum::<f64>() / past.len() as f64;
                recall_steps += 1;
            }
        }
        // The task ends: its samples are fully learned now and start to fade.
        for &slot in replay.buffer.task_slots(task) {
            let s = replay.buffer.sample(slot);
            truth[id(s)] = Some(Truth {
                stability: world.stability(s),
                last: step,
            });
        }
        // A probe at the task's end (MSSR's relative thresholds ask for one) finds every sample
        // fully learned.
        let probe: Vec<SlotLoss> = replay
            .wants(HookPoint::AfterTrainingExp { task, step })
            .probe
            .unwrap_or_default()
            .into_iter()
            .map(|slot| SlotLoss {
                slot,
                loss: BASE_LOSS,
            })
            .collect();
        replay.after_training_exp(
            task,
            &Signals {
                step,
                probe_losses: &probe,
                ..Default::default()
            },
        );
    }
    Outcome {
        mean_recall: recall_sum / recall_steps as f64,
        replayed_samples: replay.cost.replayed_samples,
        replay_batches: replay.cost.replay_batches,
    }
}

const SIZE: ReplaySize = ReplaySize {
    batch_size: 8,
    ratio: 1.0,
};

/// MSSR's constants and the memory model's: METHODS.md's defaults, or thresholds on the scale
/// of the post-update strength.
#[derive(Clone, Copy)]
struct Setting {
    mssr: MssrConfig,
    memory: MemoryConfig,
}

fn defaults() -> Setting {
    Setting {
        mssr: MssrConfig {
            size: SIZE,
            thresholds: ThresholdMode::Absolute,
            ..Default::default()
        },
        memory: MemoryConfig::default(),
    }
}

/// `m̄` is measured after the memory update, where `R = 1` and `m̄ = mean exp(-l̄)`: with
/// `β = 0` (no loss smoothing) it is the batch's mean recall quality, and `m_hi = 0.8`,
/// `m_lo = 0.5` grow the interval only when the batch was recalled well (mean loss below
/// about 0.22) and shrink it when recall was poor (above about 0.69). Chosen after seeing
/// the defaults fail here, so this is a demonstration, not a validation.
fn post_update_scale() -> Setting {
    Setting {
        mssr: MssrConfig {
            size: SIZE,
            thresholds: ThresholdMode::Absolute,
            high_strength: 0.8,
            low_strength: 0.5,
            ..Default::default()
        },
        memory: MemoryConfig {
            loss_smoothing: 0.0,
            ..Default::default()
        },
    }
}

struct Comparison {
    mssr: Outcome,
    /// Fixed interleaved replay, uniform sampling.
    fixed: Outcome,
    /// Fixed interleaved replay with MSSR's sampler (MSSR's sampler-only ablation).
    sampler_only: Outcome,
    every: u64,
}

/// Full MSSR, then fixed interleaved replay with the same number of batches of the same size,
/// spread evenly over the steps that have past tasks (`every = floor(steps / batches)`) and
/// capped at exactly MSSR's count. The spread is even only while `every ≥ 2`.
fn compare(world: World, setting: Setting) -> Comparison {
    let mssr = run(SchedulerConfig::Mssr(setting.mssr), world, setting.memory);
    let replay_steps = (TASKS as u64 - 1) * STEPS_PER_TASK;
    let every = (replay_steps / mssr.replay_batches.max(1)).max(1);
    let fixed = |sampler| {
        let config = FixedIntervalConfig {
            every,
            size: SIZE,
            sampler,
            max_batches: Some(mssr.replay_batches),
            seed: 0,
        };
        run(
            SchedulerConfig::FixedInterval(config),
            world,
            setting.memory,
        )
    };
    let fixed_uniform = fixed(SamplerKind::Uniform);
    let sampler_only = fixed(SamplerKind::Strength(StrengthSampler::default()));
    Comparison {
        mssr,
        fixed: fixed_uniform,
        sampler_only,
        every,
    }
}

fn print(c: &Comparison) {
    let every = c.every;
    for (name, o) in [
        ("MSSR full".to_string(), &c.mssr),
        (format!("fixed K={every}, uniform"), &c.fixed),
        (
            format!("fixed K={every}, MSSR sampler (sampler-only)"),
            &c.sampler_only,
        ),
    ] {
        println!(
            "{name:<40} mean recall {:.4} with {} replayed samples ({} batches)",
            o.mean_recall, o.replayed_samples, o.replay_batches
        );
    }
}

#[test]
fn mssr_sampler_keeps_mean_recall_higher_than_fixed_interval_replay_at_equal_budget() {
    let c = compare(DEFAULT_WORLD, defaults());
    let none = run(
        SchedulerConfig::None,
        DEFAULT_WORLD,
        MemoryConfig::default(),
    );
    let scheduler_only = run(
        SchedulerConfig::Mssr(MssrConfig {
            variant: MssrVariant::SchedulerOnly,
            size: SIZE,
            ..Default::default()
        }),
        DEFAULT_WORLD,
        MemoryConfig::default(),
    );
    println!(
        "METHODS.md defaults; true stabilities log-uniform in [20, 2000]; 5 tasks x 400 steps"
    );
    println!(
        "no replay:                               mean recall {:.4}",
        none.mean_recall
    );
    print(&c);
    println!(
        "MSSR scheduler-only                      mean recall {:.4} with {} replayed samples",
        scheduler_only.mean_recall, scheduler_only.replayed_samples
    );
    assert!(c.every >= 2, "the fixed schedule must be evenly spread");
    assert_eq!(
        c.fixed.replayed_samples, c.mssr.replayed_samples,
        "equal budget"
    );
    assert_eq!(
        c.sampler_only.replayed_samples, c.mssr.replayed_samples,
        "equal budget"
    );
    assert!(none.mean_recall < c.mssr.mean_recall);
    assert!(none.mean_recall < c.fixed.mean_recall);
    // MSSR's strength sampler beats uniform sampling at the same schedule and budget.
    assert!(
        c.sampler_only.mean_recall > c.fixed.mean_recall,
        "sampler-only {:.4} vs fixed {:.4}",
        c.sampler_only.mean_recall,
        c.fixed.mean_recall
    );
}

#[test]
fn mssr_schedule_on_the_post_update_scale_keeps_recall_higher_than_fixed_interval_replay() {
    let c = compare(DEFAULT_WORLD, post_update_scale());
    println!("m_hi = 0.8, m_lo = 0.5, beta = 0; true stabilities log-uniform in [20, 2000]");
    print(&c);
    assert!(c.every >= 2, "the fixed schedule must be evenly spread");
    assert_eq!(
        c.fixed.replayed_samples, c.mssr.replayed_samples,
        "equal budget"
    );
    assert!(
        c.mssr.mean_recall > c.fixed.mean_recall,
        "MSSR {:.4} vs fixed {:.4}",
        c.mssr.mean_recall,
        c.fixed.mean_recall
    );
}

/// The claim of issue 5 for full MSSR with METHODS.md's default constants. It does not hold
/// in this simulation (full MSSR 0.6270 vs fixed uniform 0.6648 at 544 replayed samples
/// each; MSSR's sampler on the fixed schedule: 0.7068), nor in any of the 18 worlds of
/// `explore_worlds`: the interval rule grows `I_d` after almost every early replay, because
/// `m̄` is measured after the memory update, where `R = 1` and `m̄ = mean exp(-l̄)` stays
/// above `m_hi = 0.6` unless the batch's smoothed loss passes about 0.51. So the budget is
/// spent in massed replays right after each task ends (intervals 4, 6, 9, 13.5, ...), while
/// recall is still high. Kept, ignored, as a record; run it with
/// `cargo test -p replay-buffer --test simulation -- --ignored`.
#[test]
#[ignore = "does not hold with METHODS.md's defaults, see the doc comment"]
fn mssr_full_keeps_mean_recall_higher_than_fixed_interval_replay_at_equal_budget() {
    let c = compare(DEFAULT_WORLD, defaults());
    assert!(
        c.mssr.mean_recall > c.fixed.mean_recall,
        "MSSR {:.4} vs fixed {:.4}",
        c.mssr.mean_recall,
        c.fixed.mean_recall
    );
}

/// Prints the comparison over 18 worlds (stability ranges, per-task fragility), for both
/// settings, as markdown rows for docs/replay-strategies.md.
/// `cargo test -p replay-buffer --test simulation explore -- --ignored --nocapture`
#[test]
#[ignore = "a table for docs/replay-strategies.md, not a check"]
fn explore_worlds() {
    let scales: [[f64; 5]; 3] = [
        [1.0; 5],
        [1.0, 20.0, 1.0, 20.0, 1.0],
        [20.0, 1.0, 20.0, 1.0, 1.0],
    ];
    let ranges = [
        (2.0, 100.0),
        (5.0, 100.0),
        (20.0, 100.0),
        (50.0, 100.0),
        (5.0, 10.0),
        (50.0, 10.0),
    ];
    for (name, setting) in [
        ("defaults", defaults()),
        ("post-update scale", post_update_scale()),
    ] {
        let mut wins = 0;
        for task_scale in scales {
            for (lo, ratio) in ranges {
                let c = compare(
                    World {
                        lo,
                        ratio,
                        task_scale,
                    },
                    setting,
                );
                wins += (c.mssr.mean_recall > c.fixed.mean_recall) as u32;
                let scale: Vec<String> = task_scale.iter().map(|x| x.to_string()).collect();
                println!(
                    "| {name} | {} | {lo}..{} | {} | {}{} | {:.4} | {:.4} | {:.4} |",
                    scale.join(" "),
                    lo * ratio,
                    c.mssr.replayed_samples,
                    c.every,
                    if c.every < 2 {
                        " (not evenly spread)"
                    } else {
                        ""
                    },
                    c.mssr.mean_recall,
                    c.fixed.mean_recall,
                    c.sampler_only.mean_recall
                );
            }
        }
        println!("{name}: MSSR full beats fixed uniform in {wins} of 18 worlds");
    }
}

#[test]
fn schedulers_are_usable_as_trait_objects() {
    // The engine may hold a user strategy as Box<dyn Scheduler>.
    let s: Box<dyn Scheduler> = Box::new(MssrConfig::default().init());
    let replay = Replay::new(ReplayBufferConfig::default().init(), s);
    assert_eq!(replay.scheduler.name(), "mssr");
}

/// MSSR's default relative thresholds adapt the replay rate to how fast the world forgets:
/// where every sample's true stability is 10x longer, it replays less (1280 against 4128 replayed
/// samples on 2026-12-07; at equal budget it keeps mean recall at 0.940 against fixed
/// interleaved replay's 0.936).
#[test]
fn mssr_with_relative_thresholds_replays_less_where_memories_last_longer() {
    let setting = Setting {
        mssr: MssrConfig {
            size: SIZE,
            ..Default::default()
        },
        memory: MemoryConfig::default(),
    };
    let c = compare(DEFAULT_WORLD, setting);
    println!("relative thresholds (defaults: m_hi = 0.99, m_lo = 0.95 of the reference)");
    print(&c);
    let slow = World {
        task_scale: [10.0; TASKS as usize],
        ..DEFAULT_WORLD
    };
    let slow = run(SchedulerConfig::Mssr(setting.mssr), slow, setting.memory);
    println!(
        "stabilities x10: MSSR full mean recall {:.4} with {} replayed samples",
        slow.mean_recall, slow.replayed_samples
    );
    assert!(
        // 1280 against 4128 on 2026-12-07.
        slow.replayed_samples * 2 < c.mssr.replayed_samples,
        "{} vs {}",
        slow.replayed_samples,
        c.mssr.replayed_samples
    );
}
