//! The replay strategy's side of a step: its extra passes, its decision within the paced
//! budget, the feedback after the update; and how the buffer and the strategy are built for a
//! run.

use burn::module::Module;
use replay_buffer::{
    ExtraPasses, HookPoint, ReplayDecision, SampleRef, Signals, SlotLoss, StrategyInit, TaskScore,
};

use super::data::validation_slice;
use super::{Run, RunConfig, mean, mix};
use crate::EngineError;
use crate::method::TrainSettings;
use crate::metrics::PassTokens;

impl Run<'_> {
    /// What to replay at `step`: the strategy's extra passes, then its decision within the
    /// allowance (returned with it, for the log). A decision over the allowance stops the run.
    pub(super) fn replay_decision(
        &mut self,
        step: u64,
    ) -> Result<(ReplayDecision, Option<usize>), EngineError> {
        let passes = self.state.replay.wants(HookPoint::BeforeUpdate { step });
        let (probe, scores) = self.extra_passes(&passes)?;
        let allowance = self.replay_allowance();
        let signals = Signals {
            step,
            probe_losses: &probe,
            scores: &scores,
            allowance,
            ..Default::default()
        };
        let decision = self.state.replay.before_update(&signals);
        if let Some(allowed) = allowance
            && decision.num_samples() > allowed
        {
            let scheduler = self.state.replay.scheduler.name().to_string();
            return Err(EngineError::OverAllowance {
                scheduler,
                step,
                decided: decision.num_samples(),
                allowed,
            });
        }
        Ok((decision, allowance))
    }

    /// After the update: the replayed samples' losses to the memory and the strategy, the
    /// task's samples offered to the buffer.
    pub(super) fn replay_feedback(
        &mut self,
        step: u64,
        decision: &ReplayDecision,
        task_samples: &[SampleRef],
        per_sample: &[f32],
    ) {
        let n_task = task_samples.len();
        let replay_losses: Vec<SlotLoss> = decision
            .batches
            .iter()
            .flat_map(|b| b.slots.iter().copied())
            .zip(&per_sample[n_task..])
            .map(|(slot, &loss)| SlotLoss { slot, loss })
            .collect();
        self.state.replay.after_update(&Signals {
            step,
            replay_losses: &replay_losses,
            train_loss: mean(&per_sample[..n_task]),
            ..Default::default()
        });
        for (&r, &l) in task_samples.iter().zip(per_sample) {
            self.state.replay.offer(r, l, step, None);
        }
    }

    /// The replayed samples the strategy may add at the coming step: the budget left, and with
    /// `replay_pacing = "even"` at most the elapsed share of it. By global step `t` (counted
    /// from 1) the run may have replayed `⌊budget · (t − t₁) / (T − t₁)⌋ + r·|B|` samples
    /// (never more than the budget), `t₁` being the end of the first task (the first step
    /// replay is possible), `T` the run's last step and `r·|B|` one replay batch: a strategy
    /// cannot spend it all early and train the last tasks without replay, and the slack of one
    /// batch lets a strategy that replays at the budget's own rate draw whole batches from its
    /// first replay on. `None`: no budget. The strategy decides within this allowance
    /// (`Signals::allowance`); nothing is cut after its decision.
    pub(super) fn replay_allowance(&self) -> Option<usize> {
        let s = &self.cfg.settings;
        let total: u64 = self.steps.iter().map(|&n| n as u64).sum();
        let batch = replay_size(s).samples() as u64;
        let allowed = replay_allowance(
            s.replay_budget?,
            s.replay_pacing,
            self.steps[0] as u64,
            total,
            self.state.global_step,
            batch,
        );
        Some(allowed.saturating_sub(self.state.cost.replayed_samples) as usize)
    }

    /// Probe forwards and validation evaluations a strategy asked for.
    pub(super) fn extra_passes(
        &mut self,
        passes: &ExtraPasses,
    ) -> Result<(Vec<SlotLoss>, Vec<TaskScore>), EngineError> {
        let mut probe = Vec::new();
        let mut scores = Vec::new();
        if let Some(slots) = &passes.probe
            && !slots.is_empty()
        {
            let refs: Vec<SampleRef> = slots
                .iter()
                .map(|&s| self.state.replay.buffer.sample(s))
                .collect();
            let batch = self.sft_batch(&refs);
            let model = self.model.as_ref().expect("model").valid();
            let per: Vec<f32> = finetune::sft_loss(&model, &batch)
                .per_sample
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32");
            probe = slots
                .iter()
                .zip(per)
                .map(|(&slot, loss)| SlotLoss { slot, loss })
                .collect();
            let c = &mut self.state.cost;
            c.probe_forwards += slots.len() as u64;
            c.forward_passes += 1;
            c.add_tokens(PassTokens {
                probe: batch.tokens.real_tokens() as u64,
                ..Default::default()
            });
        }
        if let Some(req) = &passes.evaluate {
            // Loading checked that the held-out records cover the request.
            let n = req
                .examples_per_task
                .min(self.cfg.settings.validation_records);
            let model = self.inference_model();
            for &t in &req.tasks {
                let task = &self.cfg.suite.tasks[t as usize];
                let records = validation_slice(task, n);
                let score = self.score_task(&model, task, &records)?;
                self.state.cost.strategy_eval_examples += records.len() as u64;
                scores.push(TaskScore {
                    task: t,
                    score: score as f32,
                });
            }
        }
        Ok((probe, scores))
    }
}

/// Replayed samples a run may have spent by the end of global step `step` (counted from 0;
/// see `Run::replay_allowance`): the whole `budget` unpaced, else its elapsed share after the
/// first task's `first_task_steps`, plus one replay batch, never more than the budget.
pub(crate) fn replay_allowance(
    budget: u64,
    pacing: crate::method::ReplayPacing,
    first_task_steps: u64,
    total_steps: u64,
    step: u64,
    batch: u64,
) -> u64 {
    if pacing != crate::method::ReplayPacing::Even {
        return budget;
    }
    let (t1, t) = (first_task_steps as f64, step as f64 + 1.0);
    let share = ((t - t1) / (total_steps as f64 - t1).max(1.0)).clamp(0.0, 1.0);
    ((budget as f64 * share).floor() as u64 + batch).min(budget)
}

/// The buffer: `buffer_per_task` entries per task unless the method file gives a capacity,
/// seeded by the run; `S0` from the run's `total_steps` when the method sets
/// `initial_stability_run_fraction`.
pub(super) fn buffer_config(
    cfg: &RunConfig,
    total_steps: usize,
) -> replay_buffer::ReplayBufferConfig {
    let replay = &cfg.method.replay;
    let mut b = replay.buffer.clone();
    if !replay.explicit_capacity {
        b.capacity = replay_buffer::CapacityPolicy::PerTask {
            quota: cfg.settings.buffer_per_task,
        };
    }
    if let Some(f) = replay.initial_stability_run_fraction {
        b.memory.initial_stability = ((f * total_steps as f64) as f32).max(b.memory.min_stability);
    }
    b.seed = mix(&[cfg.seed, 1]);
    b
}

/// One replay batch: the run's batch size times its replay ratio.
fn replay_size(s: &TrainSettings) -> replay_buffer::ReplaySize {
    replay_buffer::ReplaySize {
        batch_size: s.batch_size,
        ratio: s.replay_ratio,
    }
}

/// What the strategy is built with: the replay batch, a seed from the run's, the validation
/// records held out per task.
pub(super) fn strategy_init(cfg: &RunConfig) -> StrategyInit {
    StrategyInit {
        size: replay_size(&cfg.settings),
        seed: mix(&[cfg.seed, 2]),
        validation_records: cfg.settings.validation_records,
    }
}
