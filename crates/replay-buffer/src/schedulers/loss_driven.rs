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
            last_probe: None,
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
    /// The outcome of the probe made at the last `before_update`, for its `probe` log line. Not
    /// checkpointed: the line is written at the step the probe was made.
    #[serde(skip)]
    last_probe: Option<ProbeOutcome>,
}

/// What one probe found, whether or not it triggered a replay: the `probe` line of `log.jsonl`
/// (`{"type": "probe", ...}` with these fields), which says why a run spent what it spent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeOutcome {
    /// Global step of the probe.
    pub step: u64,
    /// Probed samples that have a reference loss.
    pub samples: usize,
    /// Their mean loss now.
    pub probe_loss: f32,
    /// Their mean loss when their task ended.
    pub reference_loss: f32,
    /// `(1 + δ_L) ×` the reference.
    pub threshold: f32,
    /// `τ_L`, if set.
    pub absolute_threshold: Option<f32>,
    /// Whether the probe loss crossed a threshold.
    pub triggered: bool,
    /// Whether a batch was replayed: a trigger replays only when the paced budget allows a
    /// whole batch.
    pub replayed: bool,
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

    /// The probe made at the last `before_update`, if that step probed.
    pub fn last_probe(&self) -> Option<&ProbeOutcome> {
        self.last_probe.as_ref()
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
        self.last_probe = None;
        let (mut probe, mut reference, mut n) = (0.0f64, 0.0f64, 0usize);
        for l in signals.probe_losses {
            if let Some(r) = self.reference(buffer.sample(l.slot)) {
                probe += l.loss as f64;
                reference += r as f64;
                n += 1;
            }
        }
        if n == 0 {
            return ReplayDecision::none();
        }
        let size = self.config.size.samples();
        let (probe, reference) = ((probe / n as f64) as f32, (reference / n as f64) as f32);
        let relative = (1.0 + self.config.relative_threshold) * reference;
        let crossed = if probe > relative {
            Some(relative)
        } else {
            self.config.absolute_threshold.filter(|&tau| probe > tau)
        };
        let replays = crossed.is_some() && signals.whole_batches(size) > 0;
        self.last_probe = Some(ProbeOutcome {
            step: signals.step,
            samples: n,
            probe_loss: probe,
            reference_loss: reference,
            threshold: relative,
            absolute_threshold: self.config.absolute_threshold,
            triggered: crossed.is_some(),
            replayed: replays,
        });
        let Some(threshold) = crossed.filter(|_| replays) else {
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
impl crate::strategy::Strategy for LossDriven {
    /// A `probe` line for every probe, triggered or not (see [`ProbeOutcome`]).
    fn step_events(&self, step: u64) -> Vec<serde_json::Value> {
        self.last_probe
            .filter(|p| p.step == step)
            .map(|p| {
                let mut line = serde_json::to_value(p).expect("serialises");
                line["type"] = "probe".into();
                line
            })
            .into_iter()
            .collect()
    }
}

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
    fn every_probe_is_logged_with_its_outcome_triggered_or_not() {
        use crate::strategy::Strategy;
        let (b, mut s) = setup();
        let probe = s
            .wants(HookPoint::BeforeUpdate { step: 110 }, &b)
            .probe
            .unwrap();
        let losses = |loss: f32| -> Vec<SlotLoss> {
            probe.iter().map(|&slot| SlotLoss { slot, loss }).collect()
        };
        fn at(v: &[SlotLoss], allowance: Option<usize>) -> Signals<'_> {
            Signals {
                step: 110,
                probe_losses: v,
                ..Default::default()
            }
            .with_allowance(allowance)
        }
        // Below the 1.1 threshold: no replay, and the line says the probe did not trigger.
        let below = losses(1.05);
        assert!(s.before_update(&at(&below, None), &b).batches.is_empty());
        let line = s.step_events(110);
        assert_eq!(line.len(), 1);
        assert_eq!(line[0]["type"], "probe");
        assert_eq!(line[0]["samples"], 16);
        assert_eq!(line[0]["triggered"], false);
        assert_eq!(line[0]["replayed"], false);
        assert!((line[0]["probe_loss"].as_f64().unwrap() - 1.05).abs() < 1e-6);
        assert!((line[0]["threshold"].as_f64().unwrap() - 1.1).abs() < 1e-6);
        // Above it but with no whole batch left in the paced budget: triggered, not replayed.
        let above = losses(1.3);
        let size = s.config().size.samples();
        assert!(
            s.before_update(&at(&above, Some(size - 1)), &b)
                .batches
                .is_empty()
        );
        let line = s.step_events(110);
        assert_eq!(
            (&line[0]["triggered"], &line[0]["replayed"]),
            (&true.into(), &false.into())
        );
        // Above it with the allowance: triggered and replayed.
        assert_eq!(
            s.before_update(&at(&above, Some(size)), &b).batches.len(),
            1
        );
        assert_eq!(s.step_events(110)[0]["replayed"], true);
        // A step without a probe logs nothing, and the last probe's line is not repeated.
        assert!(s.before_update(&Signals::at(111), &b).batches.is_empty());
        assert!(s.step_events(111).is_empty() && s.step_events(110).is_empty());
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
