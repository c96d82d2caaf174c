//! Fixed interleaved replay: every `K` steps, one replay batch drawn from the buffer.

use crate::rng::ReplayRng;
use serde::{Deserialize, Serialize};

use crate::buffer::ReplayBuffer;
use crate::sample::Slot;
use crate::sampler::{Sampler, SamplerKind};
use crate::scheduler::{
    PastTasks, ReplayBatch, ReplayDecision, ReplayReason, ReplaySize, Scheduler, Signals,
};

/// Configuration of [`FixedInterval`] (METHODS.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FixedIntervalConfig {
    /// `K`: replay at every step `t` with `t % K == 0`. Default 4.
    pub every: u64,
    /// Replay batch size `r·|B|` (default `r = 1`).
    pub size: ReplaySize,
    /// How samples are drawn. Default uniform (with [`SamplerKind::Strength`] this is MSSR's
    /// sampler-only ablation).
    pub sampler: SamplerKind,
    /// Stop after this many replay batches (for equal-budget comparisons). Default none.
    pub max_batches: Option<u64>,
    /// RNG seed.
    pub seed: u64,
}

impl Default for FixedIntervalConfig {
    fn default() -> Self {
        Self {
            every: 4,
            size: ReplaySize::default(),
            sampler: SamplerKind::Uniform,
            max_batches: None,
            seed: 0,
        }
    }
}

impl FixedIntervalConfig {
    /// The scheduler.
    pub fn init(&self) -> FixedInterval {
        FixedInterval {
            config: *self,
            past: PastTasks::default(),
            batches: 0,
            rng: ReplayRng::seed_from_u64(self.seed),
            scratch: Vec::new(),
        }
    }
}

/// Fixed interleaved replay: every `K` steps, one batch drawn from all past tasks' samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedInterval {
    config: FixedIntervalConfig,
    past: PastTasks,
    batches: u64,
    rng: ReplayRng,
    #[serde(skip)]
    scratch: Vec<Slot>,
}

impl FixedInterval {
    /// The configuration.
    pub fn config(&self) -> &FixedIntervalConfig {
        &self.config
    }

    /// Replay batches scheduled so far.
    pub fn batches(&self) -> u64 {
        self.batches
    }
}

impl Scheduler for FixedInterval {
    fn name(&self) -> &str {
        "fixed-interval"
    }

    fn after_training_exp(&mut self, task: u32, _: &Signals<'_>, _: &ReplayBuffer) {
        self.past.end(task);
    }

    fn before_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) -> ReplayDecision {
        let every = self.config.every.max(1);
        let budget_left = self.config.max_batches.is_none_or(|m| self.batches < m);
        let size = self.config.size.samples();
        // A step of the period whose batch does not fit the allowance is skipped, not shrunk.
        if self.past.is_empty()
            || !signals.step.is_multiple_of(every)
            || !budget_left
            || signals.whole_batches(size) == 0
        {
            return ReplayDecision::none();
        }
        let candidates = self.past.slots(buffer, &mut self.scratch);
        let slots =
            self.config
                .sampler
                .sample(buffer, candidates, size, signals.step, &mut self.rng);
        if slots.is_empty() {
            return ReplayDecision::none();
        }
        self.batches += 1;
        ReplayDecision {
            batches: vec![ReplayBatch::new(
                buffer,
                None,
                slots,
                ReplayReason::Interval { every },
            )],
        }
    }
}

#[typetag::serde(name = "fixed_interval")]
impl crate::strategy::StrategyConfig for FixedIntervalConfig {
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
        crate::strategy::check_period("every", self.every as f64)
    }
}

#[typetag::serde(name = "fixed_interval")]
impl crate::strategy::Strategy for FixedInterval {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Buffer, CapacityPolicy, ReplayBufferConfig};
    use crate::sample::SampleRef;

    fn buffer() -> ReplayBuffer {
        let mut b = ReplayBufferConfig {
            capacity: CapacityPolicy::PerTask { quota: 20 },
            ..Default::default()
        }
        .init();
        for task in 0..2 {
            for i in 0..20 {
                b.offer(SampleRef::new(task, i), 0.5, 0, None);
            }
        }
        b
    }

    #[test]
    fn replays_every_k_steps_from_past_tasks_only() {
        let b = buffer();
        let mut s = FixedIntervalConfig::default().init();
        // Nothing to replay before a task has ended.
        assert!(s.before_update(&Signals::at(4), &b).batches.is_empty());
        s.after_training_exp(0, &Signals::at(10), &b);
        let steps: Vec<u64> = (11..=20)
            .filter(|&t| !s.before_update(&Signals::at(t), &b).batches.is_empty())
            .collect();
        assert_eq!(steps, vec![12, 16, 20]);
        // Task 1 is still being trained: its buffered samples are never replayed.
        let d = s.before_update(&Signals::at(24), &b);
        assert_eq!(d.batches[0].slots.len(), 8);
        assert!(d.batches[0].samples.iter().all(|x| x.task == 0));
    }

    #[test]
    fn budget_cap_stops_replay() {
        let b = buffer();
        let mut s = FixedIntervalConfig {
            every: 1,
            max_batches: Some(3),
            ..Default::default()
        }
        .init();
        s.after_training_exp(0, &Signals::at(0), &b);
        let n = (1..10)
            .filter(|&t| !s.before_update(&Signals::at(t), &b).batches.is_empty())
            .count();
        assert_eq!(n, 3);
    }
}
