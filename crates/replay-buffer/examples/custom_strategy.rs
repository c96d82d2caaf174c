//! A replay strategy in one file, using only the public API of `replay-buffer`, registered
//! by name so a method file selects it (`[replay.scheduler] kind = "worst_task_first"`).
//!
//! "Worst task first": every `every` steps, probe a few buffered samples of each past task
//! (forward only), then replay one batch from the task whose probe loss rose most above the
//! loss it had when its training ended. Within that task, samples are drawn by MSSR's strength
//! sampler.
//!
//! Run with `cargo run -p replay-buffer --example custom_strategy`.

use replay_buffer::{
    Buffer, Candidates, CapacityPolicy, ExtraPasses, HookPoint, Replay, ReplayBatch,
    ReplayBufferConfig, ReplayDecision, ReplayReason, ReplayRng, ReplaySize, SampleRef, Sampler,
    Scheduler, Signals, SlotLoss, Strategy, StrategyConfig, StrategyConfigError, StrategyInit,
    StrengthSampler, UniformSampler,
};
use serde::{Deserialize, Serialize};

/// The strategy's settings: what `[replay.scheduler] kind = "worst_task_first"` in a method
/// file deserialises into. Any serde data; the replay batch size and the seed are not here, the
/// engine passes them to `init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorstTaskFirstConfig {
    /// Probe (and possibly replay) every this many steps.
    pub every: u64,
    /// Probed samples per past task.
    pub probe_per_task: usize,
}

impl Default for WorstTaskFirstConfig {
    fn default() -> Self {
        Self {
            every: 25,
            probe_per_task: 4,
        }
    }
}

// The registration: this attribute names the strategy for method files and checkpoints.
#[typetag::serde(name = "worst_task_first")]
impl StrategyConfig for WorstTaskFirstConfig {
    fn init(&self, run: &StrategyInit) -> Box<dyn Strategy> {
        Box::new(WorstTaskFirst {
            config: self.clone(),
            batch: run.size.samples(),
            ended: Vec::new(),
            rng: ReplayRng::seed_from_u64(run.seed),
        })
    }

    fn check(&self, _run: &StrategyInit) -> Result<(), StrategyConfigError> {
        replay_buffer::strategy::check_period("every", self.every as f64)
    }
}

/// The strategy's whole state; deriving serde makes it checkpointable with the buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorstTaskFirst {
    config: WorstTaskFirstConfig,
    /// Replay batch size (from the engine).
    batch: usize,
    /// (task, mean loss at the end of its training), in the order tasks ended.
    ended: Vec<(u32, f32)>,
    rng: ReplayRng,
}

// The same name for its state, so a checkpoint restores it.
#[typetag::serde(name = "worst_task_first")]
impl Strategy for WorstTaskFirst {}

/// Mean loss per task of the given per-sample losses.
fn mean_by_task(buffer: &replay_buffer::ReplayBuffer, losses: &[SlotLoss]) -> Vec<(u32, f32)> {
    let mut sums: Vec<(u32, f32, u32)> = Vec::new();
    for l in losses {
        let task = buffer.sample(l.slot).task;
        match sums.iter_mut().find(|s| s.0 == task) {
            Some(s) => {
                s.1 += l.loss;
                s.2 += 1;
            }
            None => sums.push((task, l.loss, 1)),
        }
    }
    sums.into_iter()
        .map(|(t, s, n)| (t, s / n as f32))
        .collect()
}

impl Scheduler for WorstTaskFirst {
    fn name(&self) -> &str {
        "worst-task-first"
    }

    fn wants(&mut self, at: HookPoint, buffer: &replay_buffer::ReplayBuffer) -> ExtraPasses {
        let probe = match at {
            // At a task's end: all its buffered samples, for the reference loss.
            HookPoint::AfterTrainingExp { task, .. } => buffer.task_slots(task).to_vec(),
            HookPoint::BeforeUpdate { step } if step % self.config.every == 0 => {
                let mut slots = Vec::new();
                for &(task, _) in &self.ended {
                    let candidates = Candidates::Slots(buffer.task_slots(task));
                    let k = self.config.probe_per_task;
                    slots.extend(UniformSampler.sample(buffer, candidates, k, step, &mut self.rng));
                }
                slots
            }
            HookPoint::BeforeUpdate { .. } => Vec::new(),
        };
        ExtraPasses {
            probe: (!probe.is_empty()).then_some(probe),
            evaluate: None,
        }
    }

    fn after_training_exp(
        &mut self,
        task: u32,
        signals: &Signals<'_>,
        buffer: &replay_buffer::ReplayBuffer,
    ) {
        let reference = mean_by_task(buffer, signals.probe_losses);
        let loss = reference.first().map_or(0.0, |r| r.1);
        self.ended.push((task, loss));
    }

    fn before_update(
        &mut self,
        signals: &Signals<'_>,
        buffer: &replay_buffer::ReplayBuffer,
    ) -> ReplayDecision {
        // The task whose probe loss rose most above its reference.
        let worst = mean_by_task(buffer, signals.probe_losses)
            .into_iter()
            .filter_map(|(task, loss)| {
                let reference = self.ended.iter().find(|e| e.0 == task)?.1;
                Some((task, loss - reference))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((task, rise)) = worst.filter(|w| w.1 > 0.0) else {
            return ReplayDecision::none();
        };
        // Decide within the engine's allowance (the paced replay budget): a whole batch or none.
        if signals.whole_batches(self.batch) == 0 {
            return ReplayDecision::none();
        }
        let candidates = Candidates::Slots(buffer.task_slots(task));
        let sampler = StrengthSampler::default();
        let slots = sampler.sample(buffer, candidates, self.batch, signals.step, &mut self.rng);
        let reason = ReplayReason::Custom {
            label: "loss-rise".into(),
            value: rise as f64,
        };
        ReplayDecision {
            batches: vec![ReplayBatch::new(buffer, Some(task), slots, reason)],
        }
    }
}

/// A toy model: loss of a sample at a step, rising with the time since its task ended.
fn toy_loss(sample: SampleRef, step: u64) -> f32 {
    let ended = (sample.task as u64 + 1) * 100;
    0.1 + step.saturating_sub(ended) as f32 * 0.002 * (1 + sample.task) as f32
}

fn main() {
    let buffer = ReplayBufferConfig {
        capacity: CapacityPolicy::PerTask { quota: 32 },
        ..Default::default()
    }
    .init();
    // What the engine does with `[replay.scheduler]` of a method file: look the kind up, then
    // size and seed the strategy for the run.
    let config: Box<dyn StrategyConfig> =
        toml::from_str("kind = \"worst_task_first\"\nevery = 25\nprobe_per_task = 4\n")
            .expect("a registered kind");
    let run = StrategyInit {
        size: ReplaySize {
            batch_size: 8,
            ratio: 1.0,
        },
        seed: 7,
        validation_records: 0,
    };
    config.check(&run).expect("valid settings");
    let mut replay = Replay::new(buffer, config.init(&run));
    let mut step = 0;
    for task in 0..3u32 {
        replay.before_training_exp(task);
        for i in 0..100u32 {
            step += 1;
            let passes = replay.wants(HookPoint::BeforeUpdate { step });
            let probe: Vec<SlotLoss> = passes
                .probe
                .iter()
                .flatten()
                .map(|&slot| SlotLoss {
                    slot,
                    loss: toy_loss(replay.buffer.sample(slot), step),
                })
                .collect();
            let decision = replay.before_update(&Signals {
                step,
                probe_losses: &probe,
                ..Default::default()
            });
            let mut replayed = Vec::new();
            for batch in &decision.batches {
                println!(
                    "step {step}: replay task {:?}, {:?}",
                    batch.task, batch.reason
                );
                for (&slot, &s) in batch.slots.iter().zip(&batch.samples) {
                    replayed.push(SlotLoss {
                        slot,
                        loss: toy_loss(s, step),
                    });
                }
            }
            replay.after_update(&Signals {
                step,
                replay_losses: &replayed,
                ..Default::default()
            });
            replay
                .buffer
                .offer(SampleRef::new(task, i), 0.1, step, None);
        }
        let passes = replay.wants(HookPoint::AfterTrainingExp { task, step });
        let probe: Vec<SlotLoss> = passes
            .probe
            .iter()
            .flatten()
            .map(|&slot| SlotLoss {
                slot,
                loss: toy_loss(replay.buffer.sample(slot), step),
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
    println!("cost: {:?}", replay.cost);
}
