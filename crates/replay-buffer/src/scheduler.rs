//! Schedulers decide WHEN to replay: the trait the engine calls, and what flows through it.

use serde::{Deserialize, Serialize};

use crate::buffer::ReplayBuffer;
use crate::sample::{SampleRef, Slot, SlotLoss, TaskScore};

/// What the engine measured and passes to a hook. Fields a hook does not use stay empty.
///
/// - `step`: the global optimizer step (counted across tasks) of the hook.
/// - `replay_losses`: in [`Scheduler::after_update`], the per-sample losses of the replay
///   samples just trained, from the replay batch's own forward pass.
/// - `probe_losses`: the forward-only losses of the slots requested in
///   [`ExtraPasses::probe`].
/// - `scores`: the scores of the tasks requested in [`ExtraPasses::evaluate`].
/// - `train_loss`: the mean loss of the current task's batch, when known.
/// - `allowance`: in [`Scheduler::before_update`], how many samples the scheduler may replay
///   at this step (the engine's paced share of the replay budget, never more than the budget
///   left); `None` is unlimited. A scheduler decides within it: the engine never cuts a
///   decision afterwards, and refuses one that exceeds it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals<'a> {
    /// Global optimizer step.
    pub step: u64,
    /// Per-sample losses of the replayed samples (after the update's forward pass).
    pub replay_losses: &'a [SlotLoss],
    /// Results of the requested probe forwards.
    pub probe_losses: &'a [SlotLoss],
    /// Results of the requested evaluations.
    pub scores: &'a [TaskScore],
    /// Mean loss of the current task's batch.
    pub train_loss: Option<f32>,
    /// Samples the scheduler may replay at this step (`None`: unlimited).
    pub allowance: Option<usize>,
}

impl Signals<'_> {
    /// Signals carrying only the step.
    pub fn at(step: u64) -> Self {
        Self {
            step,
            ..Default::default()
        }
    }

    /// These signals with an allowance of `samples` replayed samples.
    pub fn with_allowance(self, samples: Option<usize>) -> Self {
        Self {
            allowance: samples,
            ..self
        }
    }

    /// How many whole replay batches of `batch_samples` fit in the allowance. The built-in
    /// schedulers replay whole batches only (our choice): a batch that does not fit waits for
    /// a later step, so a paced budget is spent as full `r·|B|` batches, never as a trickle of
    /// smaller ones.
    pub fn whole_batches(&self, batch_samples: usize) -> usize {
        self.allowance
            .map_or(usize::MAX, |a| a / batch_samples.max(1))
    }
}

/// The hook for which [`Scheduler::wants`] is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookPoint {
    /// Before the optimizer update of `step` (answers arrive in `before_update`'s signals).
    BeforeUpdate {
        /// Global step of the coming update.
        step: u64,
    },
    /// When training on `task` has ended at `step` (answers arrive in
    /// `after_training_exp`'s signals).
    AfterTrainingExp {
        /// The task that ended.
        task: u32,
        /// Global step of its last update.
        step: u64,
    },
}

/// An evaluation the scheduler asks for: score each task on a slice of its validation data
/// with the task's own metric.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EvalRequest {
    /// Tasks to score.
    pub tasks: Vec<u32>,
    /// Validation examples per task (the same fixed slice every time).
    pub examples_per_task: usize,
}

/// Extra passes the scheduler needs before a hook; the engine runs them, charges their cost to
/// the strategy, and passes the results in the hook's [`Signals`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ExtraPasses {
    /// Buffer slots to run a forward-only pass on (results in `Signals::probe_losses`).
    pub probe: Option<Vec<Slot>>,
    /// Tasks to evaluate (results in `Signals::scores`).
    pub evaluate: Option<EvalRequest>,
}

impl ExtraPasses {
    /// No extra pass.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether nothing is requested.
    pub fn is_empty(&self) -> bool {
        self.probe.is_none() && self.evaluate.is_none()
    }
}

/// Why a replay batch was scheduled, for the per-step log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplayReason {
    /// Fixed interleaved replay: every `every` steps.
    Interval {
        /// The period in steps.
        every: u64,
    },
    /// Loss-driven replay: the probe loss crossed its threshold.
    LossTrigger {
        /// Mean probe loss.
        probe_loss: f32,
        /// Mean reference loss of the probed samples (at their task's end).
        reference_loss: f32,
        /// The threshold that was exceeded.
        threshold: f32,
    },
    /// Accuracy-supervised replay: the task's score fell below its reference.
    AccuracyDrop {
        /// The task.
        task: u32,
        /// Its score at the last check.
        score: f32,
        /// Its post-stage reference score.
        reference: f32,
    },
    /// MSSR: the task's replay was due.
    Due {
        /// The task.
        task: u32,
        /// Its current interval `I_d` in steps.
        interval: f64,
        /// The step it became due (`next_d`).
        due_step: u64,
        /// Its mean strength `m̄` after its previous replay.
        mean_strength: f32,
    },
    /// A user-defined strategy's reason.
    Custom {
        /// A short label.
        label: String,
        /// A value worth logging.
        value: f64,
    },
}

/// One replay batch: which samples to train on now, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayBatch {
    /// The task the batch was drawn from, if it was drawn from a single task.
    pub task: Option<u32>,
    /// Buffer slots (valid until the buffer is next mutated: feed the losses back in
    /// `after_update` before offering new samples).
    pub slots: Vec<Slot>,
    /// The samples in those slots, for the engine to load.
    pub samples: Vec<SampleRef>,
    /// Why it was scheduled.
    pub reason: ReplayReason,
}

impl ReplayBatch {
    /// A batch of `slots` of `buffer`, resolving their sample references.
    pub fn new(
        buffer: &ReplayBuffer,
        task: Option<u32>,
        slots: Vec<Slot>,
        reason: ReplayReason,
    ) -> Self {
        let samples = slots.iter().map(|&s| buffer.sample(s)).collect();
        Self {
            task,
            slots,
            samples,
            reason,
        }
    }
}

/// The scheduler's answer for one step: zero or more replay batches to add to the update.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReplayDecision {
    /// Replay batches for this step (often none).
    pub batches: Vec<ReplayBatch>,
}

impl ReplayDecision {
    /// No replay at this step.
    pub fn none() -> Self {
        Self::default()
    }

    /// Total replayed samples.
    pub fn num_samples(&self) -> usize {
        self.batches.iter().map(|b| b.slots.len()).sum()
    }
}

/// A replay schedule: the engine calls these hooks (named as in Avalanche) around its fixed
/// training loop. Every hook but `before_update` has a no-op default.
///
/// Per task `k`:
/// 1. `before_training_exp(k)`.
/// 2. For every optimizer step `t`:
///    `wants(BeforeUpdate { step: t })` → the engine runs the requested probes/evaluations →
///    `before_update(signals)` → [`ReplayDecision`] → the engine trains the task batch plus
///    the replay batches → [`ReplayBuffer::record_replay`] (the MSSR memory update, done by
///    [`Replay`](crate::Replay)) → `after_update(signals with replay_losses)` → the engine
///    offers the step's samples to the buffer.
/// 3. `wants(AfterTrainingExp { task: k, step })` → passes → `after_training_exp(k, signals)`.
///
/// A scheduler only reads the buffer; [`Replay`](crate::Replay) calls the hooks in this order.
pub trait Scheduler {
    /// A short name for logs.
    fn name(&self) -> &str {
        "custom"
    }

    /// Training on `task` is about to start.
    fn before_training_exp(&mut self, _task: u32, _buffer: &ReplayBuffer) {}

    /// Training on `task` has ended at `signals.step`; `signals` holds the results of the
    /// extra passes requested for [`HookPoint::AfterTrainingExp`] (reference losses or
    /// scores).
    fn after_training_exp(&mut self, _task: u32, _signals: &Signals<'_>, _buffer: &ReplayBuffer) {}

    /// The extra passes (probe forwards, evaluations) needed before the hook at `at`.
    fn wants(&mut self, _at: HookPoint, _buffer: &ReplayBuffer) -> ExtraPasses {
        ExtraPasses::none()
    }

    /// Before the update of `signals.step`: which samples to replay in it, and why. The
    /// decision holds at most `signals.allowance` samples.
    fn before_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) -> ReplayDecision;

    /// After the update of `signals.step`, with the replayed samples' losses (the memory
    /// state in `buffer` already reflects them).
    fn after_update(&mut self, _signals: &Signals<'_>, _buffer: &ReplayBuffer) {}
}

impl<S: Scheduler + ?Sized> Scheduler for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn before_training_exp(&mut self, task: u32, buffer: &ReplayBuffer) {
        (**self).before_training_exp(task, buffer)
    }
    fn after_training_exp(&mut self, task: u32, signals: &Signals<'_>, buffer: &ReplayBuffer) {
        (**self).after_training_exp(task, signals, buffer)
    }
    fn wants(&mut self, at: HookPoint, buffer: &ReplayBuffer) -> ExtraPasses {
        (**self).wants(at, buffer)
    }
    fn before_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) -> ReplayDecision {
        (**self).before_update(signals, buffer)
    }
    fn after_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) {
        (**self).after_update(signals, buffer)
    }
}

/// How many samples a replay batch holds: `round(ratio · batch_size)`, at least 1
/// (METHODS.md's `r·|B|`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplaySize {
    /// `|B|`, the training batch size. Default 8 (our choice; the engine sets its own).
    pub batch_size: usize,
    /// `r`. Default 1.
    pub ratio: f32,
}

impl Default for ReplaySize {
    fn default() -> Self {
        Self {
            batch_size: 8,
            ratio: 1.0,
        }
    }
}

impl ReplaySize {
    /// Samples per replay batch.
    pub fn samples(&self) -> usize {
        ((self.ratio * self.batch_size as f32).round() as usize).max(1)
    }
}

/// Buffered samples' losses when their task ended, from the probe a scheduler asks for at
/// [`HookPoint::AfterTrainingExp`]: loss-driven replay's references and MSSR's `l_end`. Kept
/// sorted by sample (serialised as a plain list of `(sample, loss)` pairs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EndLosses {
    losses: Vec<(SampleRef, f32)>,
}

impl EndLosses {
    /// Records the finite probe losses of `probe` (slots of `buffer`), replacing earlier ones.
    pub fn record(&mut self, buffer: &ReplayBuffer, probe: &[SlotLoss]) {
        for l in probe.iter().filter(|l| l.loss.is_finite()) {
            let sample = buffer.sample(l.slot);
            match self.losses.binary_search_by(|(s, _)| s.cmp(&sample)) {
                Ok(i) => self.losses[i].1 = l.loss,
                Err(i) => self.losses.insert(i, (sample, l.loss)),
            }
        }
    }

    /// The loss of `sample` when its task ended, if recorded.
    pub fn get(&self, sample: SampleRef) -> Option<f32> {
        self.losses
            .binary_search_by(|(s, _)| s.cmp(&sample))
            .ok()
            .map(|i| self.losses[i].1)
    }
}

/// The tasks whose training has ended, in order (kept by the built-in schedulers: replay
/// draws only from past tasks, never from the task being trained).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PastTasks {
    tasks: Vec<u32>,
}

impl PastTasks {
    /// Marks `task` as ended (idempotent).
    pub fn end(&mut self, task: u32) {
        if !self.tasks.contains(&task) {
            self.tasks.push(task);
        }
    }

    /// The ended tasks, in the order they ended.
    pub fn tasks(&self) -> &[u32] {
        &self.tasks
    }

    /// Whether no task has ended yet.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Whether `task` has ended.
    pub fn contains(&self, task: u32) -> bool {
        self.tasks.contains(&task)
    }

    /// The buffer slots of past tasks: every slot when the buffer holds only past tasks,
    /// otherwise the concatenation of their slot lists (written to `scratch`).
    pub fn slots<'a>(
        &self,
        buffer: &ReplayBuffer,
        scratch: &'a mut Vec<Slot>,
    ) -> crate::Candidates<'a> {
        if buffer
            .tasks()
            .all(|t| self.contains(t) || buffer.task_slots(t).is_empty())
        {
            return crate::Candidates::All;
        }
        scratch.clear();
        for &t in &self.tasks {
            scratch.extend_from_slice(buffer.task_slots(t));
        }
        crate::Candidates::Slots(scratch)
    }
}
