//! Loss-driven replay: probe the buffer's loss every `K_probe` steps and replay when it rose.

use crate::rng::ReplayRng;
use serde::{Deserialize, Serialize};

use crate::buffer::ReplayBuffer;
use crate::sample::{SampleRef, Slot};
use crate::sampler::{Sampler, SamplerKind, UniformSampler};
use crate::scheduler::{
    EndLosses, ExtraPasses, HookPoint, PastTasks, ReplayBatch, ReplayDecision, ReplayReason,
    ReplaySize, Scheduler, Signals,
};

/// Configuration of [`LossDriven`] (METHODS.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LossDrivenConfig {
    /// `K_probe`: probe at every step `t` with `t % K_probe == 0`. Default 10.
    pub probe_every: u64,
    /// `n_probe`: buffered samples per probe, drawn uniformly from past tasks. Default 16.
    pub probe_size: usize,
    /// `δ_L`: trigger when the mean probe loss exceeds `(1 + δ_L) ×` the mean reference loss
    /// of the same samples. Default 0.1.
    pub relative_threshold: f32,
    /// `τ_L`: also trigger when the mean probe loss exceeds this absolute value. Default none.
    pub absolute_threshold: Option<f32>,
    /// Replay batch size `r·|B|`.
    pub size: ReplaySize,
    /// How the replay batch is drawn. Default uniform.
    pub sampler: SamplerKind,
    /// RNG seed.
    pub seed: u64,
}

impl Default for LossDrivenConfig {
    fn default() -> Self {
        Self {
            probe_every: 10,
            probe_size: 16,
            relative_threshold: 0.1,
            absolute_threshold: None,
            size: ReplaySize::default(),
            sampler: SamplerKind::Uniform,
            seed: 0,
        }
    }
}

impl LossDrivenConfig {
    /// The scheduler.
    pub fn init(&self) -> LossDriven {
        LossDriven {
            config: *self,
            past: PastTasks::default(),
            references: EndLosses::default(),
            rng: ReplayRng::seed_from_u64(self.seed),
            scratch: Vec::new(),
        }
    }
}

/// Loss-driven replay. At each task's end it asks for a forward pass over that task's
/// buffered samples and keeps their losses as references. Every `K_probe` steps it asks for a
/// forward pass over `n_probe` random past samples and, if their mean loss exceeds
/// `(1 + δ_L)` × their mean reference (or `τ_L`), replays one batch at that step.
///
/// It compares single noisy probes on purpose: reacting to noise is this baseline's known
/// weakness (METHODS.md), so nothing is smoothed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossDriven {
    config: LossDrivenConfig,
    past: PastTasks,
    /// Reference loss per sample, sorted by sample.
    references: EndLosses,
    rng: ReplayRng,
    #[serde(skip)]
    scratch: Vec<Slot>,
}

impl LossDriven {
    /// The configuration.
    pub fn config(&self) -> &LossDrivenConfig {
        &self.config
    }

    /// The reference loss of `sample` (its loss when its task ended), if recorded.
    pub fn reference(&self, sample: SampleRef) -> Option<f32> {
        self.references.get(sample)
    }
}

impl Scheduler for LossDriven {
    fn name(&self) -> &str {
        "loss-driven"
    }

    fn wants(&mut self, at: HookPoint, buffer: &ReplayBuffer) -> ExtraPasses {
        match at {
            HookPoint::AfterTrainingExp { task, .. } => ExtraPasses {
                probe: Some(buffer.task_slots(task).to_vec()),
                evaluate: None,
            },
            HookPoint::BeforeUpdate { step } => {
                if self.past.is_empty() || !step.is_multiple_of(self.config.probe_every.max(1)) {
                    return ExtraPasses::none();
                }
                let candidates = self.past.slots(buffer, &mut self.scratch);
                let probe = UniformSampler.sample(
                    buffer,
                    candidates,
                    self.config.probe_size,
                    step,
                    &mut self.rng,
                );
                ExtraPasses {
                    probe: (!probe.is_empty()).then_some(probe),
                    evaluate: None,
                }
            }
        }
    }

    fn after_training_exp(&mut self, task: u32, signals: &Signals<'_>, buffer: &ReplayBuffer) {
        self.past.end(task);
        self.references.record(buffer, signals.probe_losses);
    }

    fn before_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) -> ReplayDecision {
        let (mut probe, mut reference, mut n) = (0.0f64, 0.0f64, 0usize);
        for l in signals.probe_losses {
            if let Some(r) = self.reference(buffer.sample(l.slot)) {
                probe += l.loss as f64;
                reference += r as f64;
                n += 1;
            }
        }
        let size = self.config.size.samples();
        if n == 0 || signals.whole_batches(size) == 0 {
            return ReplayDecision::none();
        }
        let (probe, reference) = ((probe / n as f64) as f32, (reference / n as f64) as f32);
        let relative = (1.0 + self.config.relative_threshold) * reference;
        let threshold = if probe > relative {
            relative
        } else if let Some(tau) = self.config.absolute_threshold.filter(|&tau| probe > tau) {
            tau
        } else {
            return ReplayDecision::none();
        };
        let candidates = self.past.slots(buffer, &mut self.scratch);
        let slots =
            self.config
                .sampler
                .sample(buffer, candidates, size, signals.step, &mut self.rng);
        ReplayDecision {
            batches: vec![ReplayBatch::new(
                buffer,
                None,
                slots,
                ReplayReason::LossTrigger {
                    probe_loss: probe,
                    reference_loss: reference,
                    threshold,
                },
            )],
        }
    }
}

#[typetag::serde(name = "loss_driven")]
impl crate::strategy::StrategyConfig for LossDrivenConfig {
    fn init(&self, run: &crate::strategy::StrategyInit) -> Box<dyn crate::strategy::Strategy> {
        Box::new(
            Self {
                size: run.size,
                seed: run.seed,
                ..*self
            }
            .init(),
        )
    }

    fn check(
        &self,
        _: &crate::strategy::StrategyInit,
    ) -> Result<(), crate::strategy::StrategyConfigError> {
        crate::strategy::check_period("probe_every", self.probe_every as f64)
    }
}

#[typetag::serde(name = "loss_driven")]
impl crate::strategy::Strategy for LossDriven {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Buffer, CapacityPolicy, ReplayBufferConfig};
    use crate::sample::SlotLoss;

    fn setup() -> (ReplayBuffer, LossDriven) {
        let mut b = ReplayBufferConfig {
            capacity: CapacityPolicy::Total { capacity: 100 },
            ..Default::default()
        }
        .init();
        for i in 0..20 {
            b.offer(SampleRef::new(0, i), 0.5, 0, None);
        }
        let mut s = LossDrivenConfig::default().init();
        let at_end = HookPoint::AfterTrainingExp { task: 0, step: 99 };
        let slots = s.wants(at_end, &b).probe.unwrap();
        assert_eq!(slots.len(), 20);
        // Reference loss 1.0 for every sample of task 0.
        let refs: Vec<SlotLoss> = slots
            .iter()
            .map(|&slot| SlotLoss { slot, loss: 1.0 })
            .collect();
        s.after_training_exp(
            0,
            &Signals {
                step: 99,
                probe_losses: &refs,
                ..Default::default()
            },
            &b,
        );
        (b, s)
    }

    #[test]
    fn probes_only_every_k_probe_steps() {
        let (b, mut s) = setup();
        assert!(
            s.wants(HookPoint::BeforeUpdate { step: 101 }, &b)
                .is_empty()
        );
        let probe = s
            .wants(HookPoint::BeforeUpdate { step: 110 }, &b)
            .probe
            .unwrap();
        assert_eq!(probe.len(), 16);
    }

    #[test]
    fn triggers_only_above_one_plus_delta_times_reference() {
        let (b, mut s) = setup();
        let probe = s
            .wants(HookPoint::BeforeUpdate { step: 110 }, &b)
            .probe
            .unwrap();
        let signals = |loss: f32, v: &mut Vec<SlotLoss>| {
            *v = probe.iter().map(|&slot| SlotLoss { slot, loss }).collect();
        };
        let mut v = Vec::new();
        // Reference 1.0, δ_L = 0.1: the threshold is 1.1.
        signals(1.09, &mut v);
        let d = s.before_update(
            &Signals {
                step: 110,
                probe_losses: &v,
                ..Default::default()
            },
            &b,
        );
        assert!(d.batches.is_empty());
        signals(1.2, &mut v);
        let d = s.before_update(
            &Signals {
                step: 110,
                probe_losses: &v,
                ..Default::default()
            },
            &b,
        );
        assert_eq!(d.batches.len(), 1);
        match d.batches[0].reason {
            ReplayReason::LossTrigger {
                probe_loss,
                reference_loss,
                threshold,
            } => {
                assert!((probe_loss - 1.2).abs() < 1e-6);
                assert!((reference_loss - 1.0).abs() < 1e-6);
                assert!((threshold - 1.1).abs() < 1e-6);
            }
            ref r => panic!("unexpected reason {r:?}"),
        }
    }

    #[test]
    fn absolute_threshold_also_triggers() {
        let (b, _) = setup();
        let mut s = LossDrivenConfig {
            absolute_threshold: Some(0.8),
            ..Default::default()
        }
        .init();
        let slots = b.task_slots(0).to_vec();
        let refs: Vec<SlotLoss> = slots
            .iter()
            .map(|&slot| SlotLoss { slot, loss: 1.0 })
            .collect();
        s.after_training_exp(
            0,
            &Signals {
                probe_losses: &refs,
                ..Default::default()
            },
            &b,
        );
        let probe: Vec<SlotLoss> = slots[..4]
            .iter()
            .map(|&slot| SlotLoss { slot, loss: 0.9 })
            .collect();
        let d = s.before_update(
            &Signals {
                step: 10,
                probe_losses: &probe,
                ..Default::default()
            },
            &b,
        );
        assert_eq!(d.batches.len(), 1);
    }
}
