//! [`Replay`]: a buffer and a scheduler, with the hooks called in the right order.

use serde::{Deserialize, Serialize};

use crate::buffer::{Buffer, Insertion, ReplayBuffer};
use crate::sample::{SampleRef, TeacherTopK};
use crate::scheduler::{ExtraPasses, HookPoint, ReplayDecision, Scheduler, Signals};

/// What a replay strategy has cost so far (METHODS.md section 1, "Cost").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplayCost {
    /// Replay batches scheduled.
    pub replay_batches: u64,
    /// Samples replayed.
    pub replayed_samples: u64,
    /// Probe forwards requested (one per sample).
    pub probe_forwards: u64,
    /// Evaluation examples requested (tasks × examples per task).
    pub eval_examples: u64,
}

/// A replay strategy's whole state: the buffer (with the per-sample memory), the scheduler
/// (with its intervals and RNG) and the cost counters. Serialise it to checkpoint.
///
/// The engine calls, per task `k`:
///
/// ```text
/// replay.before_training_exp(k)
/// for each step t:
///     passes = replay.wants(HookPoint::BeforeUpdate { step: t })   // run them if any
///     decision = replay.before_update(&Signals { step: t, probe_losses, scores, .. })
///     train on the task batch + decision.batches; collect per-sample replay losses
///     replay.after_update(&Signals { step: t, replay_losses, .. })
///     replay.offer(sample, loss, t, None) for the task batch's samples
/// passes = replay.wants(HookPoint::AfterTrainingExp { task: k, step })  // run them
/// replay.after_training_exp(k, &Signals { step, probe_losses, scores, .. })
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replay<S> {
    /// The buffer.
    pub buffer: ReplayBuffer,
    /// The scheduler.
    pub scheduler: S,
    /// Cost counters.
    pub cost: ReplayCost,
}

impl<S: Scheduler> Replay<S> {
    /// Combines a buffer and a scheduler.
    pub fn new(buffer: ReplayBuffer, scheduler: S) -> Self {
        Self {
            buffer,
            scheduler,
            cost: ReplayCost::default(),
        }
    }

    /// Training on `task` is about to start.
    pub fn before_training_exp(&mut self, task: u32) {
        self.scheduler.before_training_exp(task, &self.buffer);
    }

    /// The extra passes the scheduler needs before the hook at `at` (counted in the cost).
    pub fn wants(&mut self, at: HookPoint) -> ExtraPasses {
        let passes = self.scheduler.wants(at, &self.buffer);
        if let Some(p) = &passes.probe {
            self.cost.probe_forwards += p.len() as u64;
        }
        if let Some(e) = &passes.evaluate {
            self.cost.eval_examples += (e.tasks.len() * e.examples_per_task) as u64;
        }
        passes
    }

    /// Training on `task` has ended (with the results of the requested passes).
    pub fn after_training_exp(&mut self, task: u32, signals: &Signals<'_>) {
        self.scheduler
            .after_training_exp(task, signals, &self.buffer);
    }

    /// The replay batches for the update of `signals.step`.
    pub fn before_update(&mut self, signals: &Signals<'_>) -> ReplayDecision {
        let decision = self.scheduler.before_update(signals, &self.buffer);
        self.cost.replay_batches += decision.batches.len() as u64;
        self.cost.replayed_samples += decision.num_samples() as u64;
        decision
    }

    /// After the update: the lazy memory update from `signals.replay_losses`, then the
    /// scheduler's `after_update`.
    pub fn after_update(&mut self, signals: &Signals<'_>) {
        self.buffer
            .record_replay(signals.step, signals.replay_losses);
        self.scheduler.after_update(signals, &self.buffer);
    }

    /// Offers a trained sample to the buffer.
    pub fn offer(
        &mut self,
        sample: SampleRef,
        loss: f32,
        step: u64,
        teacher: Option<TeacherTopK>,
    ) -> Insertion {
        self.buffer.offer(sample, loss, step, teacher)
    }
}
