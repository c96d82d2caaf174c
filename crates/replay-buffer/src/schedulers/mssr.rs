//! MSSR's scheduler: per-task replay intervals that expand while memory is strong and shrink
//! when forgetting shows (METHODS.md section 3).

use crate::rng::ReplayRng;
use serde::{Deserialize, Serialize};

use crate::buffer::ReplayBuffer;
use crate::sample::{SampleRef, Slot};
use crate::sampler::{Candidates, Sampler, StrengthSampler, UniformSampler};
use crate::scheduler::{
    EndLosses, ExtraPasses, HookPoint, PastTasks, ReplayBatch, ReplayDecision, ReplayReason,
    ReplaySize, Scheduler, Signals,
};

/// Which half of MSSR is on (the ablations of METHODS.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MssrVariant {
    /// Adaptive per-task intervals and strength-weighted sampling.
    #[default]
    Full,
    /// Strength-weighted sampling at a fixed interval: every `sampler_only_every` steps one
    /// batch drawn from all past tasks (our reading of "fixed interval": the fixed interleaved
    /// baseline with MSSR's sampler, so the two differ only in the sampler).
    SamplerOnly,
    /// Adaptive per-task intervals with uniform sampling within the task.
    SchedulerOnly,
}

/// How [`Mssr`] reads its strength thresholds `m_hi` and `m_lo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// Relative to how well the replayed samples were recalled when their task ended (our
    /// choice, the default): `m̄ ≥ relative_high · m̄_ref` grows the interval and
    /// `m̄ < relative_low · m̄_ref` shrinks it. `m̄_ref` is the strength the same lazy update
    /// would leave the batch at had every sample been recalled with its loss at its task's end
    /// (`l_end`, from a forward-only probe of the task's buffered samples when it ends, charged
    /// to the strategy): the mean of `exp(−(β·l̄_i + (1 − β)·l_end_i))`. After the update
    /// `R = 1`, so `m̄ / m̄_ref ≈ exp(−(1 − β) · (l − l_end))`: 1 when the task is recalled as
    /// well as when it ended, below 1 when it was forgotten since. It means the same on any
    /// loss scale.
    #[default]
    Relative,
    /// METHODS.md's literal form: `m̄ ≥ high_strength` grows, `m̄ < low_strength` shrinks.
    /// With SmolLM2-135M's 2-3 nat answer losses `m̄` is 0.05-0.15, so every interval shrinks
    /// to `I_min` (measured on the quick suite, 2026-12; docs/replay-strategies.md).
    Absolute,
}

/// Configuration of [`Mssr`]; defaults from METHODS.md section 3.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MssrConfig {
    /// Full, sampler-only or scheduler-only.
    pub variant: MssrVariant,
    /// `I_0`: a task's interval when it ends, in steps. Default 4.
    pub initial_interval: f64,
    /// `c_grow`: interval factor when `m̄ ≥ m_hi`. Default 1.5.
    pub grow: f64,
    /// `c_shrink`: interval factor when `m̄ < m_lo`. Default 0.5.
    pub shrink: f64,
    /// Whether the thresholds are relative (default) or absolute.
    pub thresholds: ThresholdMode,
    /// `m_hi` as a fraction of the reference, in the relative mode. Default 0.99: with
    /// `β = 0.7`, a batch whose loss rose by at most about 0.03 nat since its task ended.
    pub relative_high: f32,
    /// `m_lo` as a fraction of the reference, in the relative mode. Default 0.95: a batch whose
    /// loss rose by about 0.17 nat or more since its task ended.
    pub relative_low: f32,
    /// `m_hi` in the absolute mode. Default 0.6.
    pub high_strength: f32,
    /// `m_lo` in the absolute mode. Default 0.3.
    pub low_strength: f32,
    /// `I_min`. Default 1.
    pub min_interval: f64,
    /// `I_max`. Default 256.
    pub max_interval: f64,
    /// At most this many replay batches per step. Default 1.
    pub max_replay_batches: usize,
    /// Replay batch size `r·|B|`.
    pub size: ReplaySize,
    /// The strength sampler (`ε = 0.05`, temperature 1); unused by scheduler-only.
    pub sampler: StrengthSampler,
    /// Sampler-only's fixed period `K`. Default 4 (the fixed interleaved baseline's).
    pub sampler_only_every: u64,
    /// RNG seed.
    pub seed: u64,
}

impl Default for MssrConfig {
    fn default() -> Self {
        Self {
            variant: MssrVariant::Full,
            initial_interval: 4.0,
            grow: 1.5,
            shrink: 0.5,
            thresholds: ThresholdMode::Relative,
            relative_high: 0.99,
            relative_low: 0.95,
            high_strength: 0.6,
            low_strength: 0.3,
            min_interval: 1.0,
            max_interval: 256.0,
            max_replay_batches: 1,
            size: ReplaySize::default(),
            sampler: StrengthSampler::default(),
            sampler_only_every: 4,
            seed: 0,
        }
    }
}

impl MssrConfig {
    /// The scheduler.
    pub fn init(&self) -> Mssr {
        Mssr {
            config: *self,
            past: PastTasks::default(),
            clocks: Vec::new(),
            end_losses: EndLosses::default(),
            pending: Vec::new(),
            rng: ReplayRng::seed_from_u64(self.seed),
            scratch: Vec::new(),
        }
    }

    /// The interval update: `clamp(I · (m̄ ≥ m_hi ? c_grow : (m̄ < m_lo ? c_shrink : 1)),
    /// I_min, I_max)`, with the absolute thresholds `high_strength`/`low_strength`.
    pub fn next_interval(&self, interval: f64, mean_strength: f32) -> f64 {
        self.interval_update(
            interval,
            mean_strength,
            self.high_strength,
            self.low_strength,
        )
    }

    /// The same update in the relative mode, on the ratio `m̄ / m̄_ref`: grow at
    /// `relative_high` or above, shrink below `relative_low`.
    pub fn next_interval_relative(&self, interval: f64, ratio: f32) -> f64 {
        self.interval_update(interval, ratio, self.relative_high, self.relative_low)
    }

    fn interval_update(&self, interval: f64, m: f32, high: f32, low: f32) -> f64 {
        let factor = if m >= high {
            self.grow
        } else if m < low {
            self.shrink
        } else {
            1.0
        };
        (interval * factor).clamp(self.min_interval, self.max_interval)
    }

    fn adaptive(&self) -> bool {
        self.variant != MssrVariant::SamplerOnly
    }
}

/// The relative thresholds' reference `m̄_ref` of a batch of `slots`, taken before the update:
/// the mean strength the lazy update would leave them at (`R = 1`) had each been recalled with
/// its loss when its task ended, `exp(−(β·l̄_i + (1 − β)·l_end_i))`. A sample without an
/// end-of-task loss uses `l̄_i` for it.
fn reference_strength(
    buffer: &ReplayBuffer,
    slots: &[Slot],
    end_loss: impl Fn(Slot) -> Option<f32>,
) -> f32 {
    if slots.is_empty() {
        return 0.0;
    }
    let memory = buffer.memory();
    let beta = memory.config.loss_smoothing;
    let sum: f64 = slots
        .iter()
        .map(|&s| {
            let smoothed = memory.smoothed_loss[s as usize];
            let end = end_loss(s).unwrap_or(smoothed);
            (-(beta * smoothed + (1.0 - beta) * end)).exp() as f64
        })
        .sum();
    (sum / slots.len() as f64) as f32
}

/// The replay clock of one past task.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskClock {
    /// Task id.
    pub task: u32,
    /// `I_d`, in steps (fractional; the due step rounds it).
    pub interval: f64,
    /// `next_d`: the task is due at steps `t ≥ next_d`.
    pub next_due: u64,
    /// `m̄` after the task's last replay (its mean strength at its end before that).
    pub mean_strength: f32,
    /// `m̄ / m̄_ref` after the task's last replay: the batch's strength against the strength
    /// it would have had if recalled as well as when its task ended (1 before the first
    /// replay).
    #[serde(default = "one")]
    pub relative_strength: f32,
}

fn one() -> f32 {
    1.0
}

/// MSSR. Each past task `d` has an interval `I_d` and a due step `next_d`. At a step `t` with
/// due tasks, it serves at most `max_replay_batches` of them, weakest first, each with one
/// batch of that task's samples chosen by the strength sampler (uniformly for scheduler-only).
/// After the update, with `m̄` the batch's mean strength (post memory update), `I_d` is
/// grown, kept or shrunk and `next_d = t + round(I_d)`.
///
/// "Weakest first" ranks the due tasks by `m̄`, the mean strength of each task's last replay
/// batch after its update (METHODS.md's `m̄`), ties by task id. Our choices where METHODS.md
/// is silent: a task's clock starts when it ends (`next_d = t_end + I_0`, `m̄` = the mean
/// strength of its buffered samples then, so a task never replayed usually ranks first); due
/// tasks not served stay due. Per step this costs `O(tasks)` plus the sampler's draw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mssr {
    config: MssrConfig,
    past: PastTasks,
    clocks: Vec<TaskClock>,
    /// Each past task's buffered samples with their loss when the task ended (the relative
    /// thresholds' `l_end`), sorted by sample.
    #[serde(default)]
    end_losses: EndLosses,
    /// Batches scheduled in `before_update`, awaiting `after_update`: (task, slots, mean
    /// reference strength `m̄_ref` of those slots).
    pending: Vec<(Option<u32>, Vec<Slot>, f32)>,
    rng: ReplayRng,
    #[serde(skip)]
    scratch: Vec<Slot>,
}

impl Mssr {
    /// The configuration.
    pub fn config(&self) -> &MssrConfig {
        &self.config
    }

    /// The per-task clocks, in the order the tasks ended.
    pub fn clocks(&self) -> &[TaskClock] {
        &self.clocks
    }

    /// The loss of `sample` when its task ended, if it was probed then.
    pub fn end_loss(&self, sample: SampleRef) -> Option<f32> {
        self.end_losses.get(sample)
    }

    /// The strength a due task is ranked by ("weakest first"): `m̄ / m̄_ref` in the relative
    /// mode, `m̄` in the absolute one.
    fn rank_strength(&self, clock: &TaskClock) -> f32 {
        match self.config.thresholds {
            ThresholdMode::Relative => clock.relative_strength,
            ThresholdMode::Absolute => clock.mean_strength,
        }
    }

    fn draw(&mut self, buffer: &ReplayBuffer, candidates: Candidates<'_>, step: u64) -> Vec<Slot> {
        let k = self.config.size.samples();
        match self.config.variant {
            MssrVariant::SchedulerOnly => {
                UniformSampler.sample(buffer, candidates, k, step, &mut self.rng)
            }
            _ => self
                .config
                .sampler
                .sample(buffer, candidates, k, step, &mut self.rng),
        }
    }
}

impl Scheduler for Mssr {
    fn name(&self) -> &str {
        match self.config.variant {
            MssrVariant::Full => "mssr",
            MssrVariant::SamplerOnly => "mssr-sampler-only",
            MssrVariant::SchedulerOnly => "mssr-scheduler-only",
        }
    }

    fn wants(&mut self, at: HookPoint, buffer: &ReplayBuffer) -> ExtraPasses {
        // The relative thresholds' reference: each buffered sample's loss when its task ends.
        match at {
            HookPoint::AfterTrainingExp { task, .. }
                if self.config.adaptive() && self.config.thresholds == ThresholdMode::Relative =>
            {
                ExtraPasses {
                    probe: Some(buffer.task_slots(task).to_vec()),
                    evaluate: None,
                }
            }
            _ => ExtraPasses::none(),
        }
    }

    fn after_training_exp(&mut self, task: u32, signals: &Signals<'_>, buffer: &ReplayBuffer) {
        self.past.end(task);
        self.end_losses.record(buffer, signals.probe_losses);
        if self.clocks.iter().any(|c| c.task == task) {
            return;
        }
        let mean_strength = buffer
            .memory()
            .mean_strength(buffer.task_slots(task), signals.step)
            .unwrap_or(0.0);
        let interval = self
            .config
            .initial_interval
            .clamp(self.config.min_interval, self.config.max_interval);
        self.clocks.push(TaskClock {
            task,
            interval,
            next_due: signals.step + (interval.round() as u64).max(1),
            mean_strength,
            relative_strength: 1.0,
        });
    }

    fn before_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) -> ReplayDecision {
        let step = signals.step;
        self.pending.clear();
        if self.config.variant == MssrVariant::SamplerOnly {
            let every = self.config.sampler_only_every.max(1);
            let fits = signals.whole_batches(self.config.size.samples()) > 0;
            if self.past.is_empty() || !step.is_multiple_of(every) || !fits {
                return ReplayDecision::none();
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let candidates = self.past.slots(buffer, &mut scratch);
            let slots = self.draw(buffer, candidates, step);
            self.scratch = scratch;
            if slots.is_empty() {
                return ReplayDecision::none();
            }
            self.pending.push((None, slots.clone(), 0.0));
            return ReplayDecision {
                batches: vec![ReplayBatch::new(
                    buffer,
                    None,
                    slots,
                    ReplayReason::Interval { every },
                )],
            };
        }
        // Due tasks that have samples, as indices into `clocks`.
        let mut due: Vec<usize> = (0..self.clocks.len())
            .filter(|&i| {
                let c = &self.clocks[i];
                step >= c.next_due && !buffer.task_slots(c.task).is_empty()
            })
            .collect();
        if due.is_empty() {
            return ReplayDecision::none();
        }
        // Weakest first: lowest m̄ (relative or absolute, of the task's last replay batch),
        // ties by task id.
        due.sort_by(|&a, &b| {
            let (a, b) = (&self.clocks[a], &self.clocks[b]);
            self.rank_strength(a)
                .total_cmp(&self.rank_strength(b))
                .then(a.task.cmp(&b.task))
        });
        // Within the allowance, in whole batches: due tasks not served stay due, their clocks
        // untouched until they are.
        let fit = signals.whole_batches(self.config.size.samples());
        due.truncate(self.config.max_replay_batches.min(fit));
        let mut batches = Vec::with_capacity(due.len());
        for i in due {
            let clock = self.clocks[i];
            let slots = self.draw(
                buffer,
                Candidates::Slots(buffer.task_slots(clock.task)),
                step,
            );
            let reference = reference_strength(buffer, &slots, |s| self.end_loss(buffer.sample(s)));
            self.pending
                .push((Some(clock.task), slots.clone(), reference));
            batches.push(ReplayBatch::new(
                buffer,
                Some(clock.task),
                slots,
                ReplayReason::Due {
                    task: clock.task,
                    interval: clock.interval,
                    due_step: clock.next_due,
                    mean_strength: clock.mean_strength,
                },
            ));
        }
        ReplayDecision { batches }
    }

    fn after_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) {
        let step = signals.step;
        for (task, slots, before) in std::mem::take(&mut self.pending) {
            let Some(task) = task else { continue };
            // m̄ after the memory update (R = 1 for the replayed samples): METHODS.md.
            let Some(m) = buffer.memory().mean_strength(&slots, step) else {
                continue;
            };
            let relative = if before > 0.0 { m / before } else { 1.0 };
            let config = self.config;
            if let Some(c) = self.clocks.iter_mut().find(|c| c.task == task) {
                if config.adaptive() {
                    c.interval = match config.thresholds {
                        ThresholdMode::Relative => {
                            config.next_interval_relative(c.interval, relative)
                        }
                        ThresholdMode::Absolute => config.next_interval(c.interval, m),
                    };
                }
                c.mean_strength = m;
                c.relative_strength = relative;
                c.next_due = step + (c.interval.round() as u64).max(1);
            }
        }
    }
}

#[typetag::serde(name = "mssr")]
impl crate::strategy::StrategyConfig for MssrConfig {
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
        crate::strategy::check_period("min_interval", self.min_interval)
    }
}

#[typetag::serde(name = "mssr")]
impl crate::strategy::Strategy for Mssr {
    /// An `interval` line for a due task's batch: the task's clock after the decision.
    fn log_events(&self, batch: &ReplayBatch, step: u64) -> Vec<serde_json::Value> {
        let ReplayReason::Due { task, .. } = &batch.reason else {
            return Vec::new();
        };
        self.clocks()
            .iter()
            .filter(|c| c.task == *task)
            .map(|c| {
                serde_json::json!({"type": "interval", "step": step, "task": task, "interval": c.interval, "next_due": c.next_due,
                    "mean_strength": c.mean_strength, "relative_strength": c.relative_strength})
            })
            .take(1)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Buffer, CapacityPolicy, ReplayBufferConfig};
    use crate::sample::{SampleRef, SlotLoss};

    #[test]
    fn interval_update_matches_hand_computed_values() {
        let c = MssrConfig::default();
        // m̄ = 0.7 ≥ 0.6: 4 · 1.5 = 6
        assert_eq!(c.next_interval(4.0, 0.7), 6.0);
        // m̄ = 0.6 is "≥ m_hi": grows too, 6 · 1.5 = 9
        assert_eq!(c.next_interval(6.0, 0.6), 9.0);
        // 0.3 ≤ m̄ < 0.6: unchanged
        assert_eq!(c.next_interval(9.0, 0.45), 9.0);
        assert_eq!(c.next_interval(9.0, 0.3), 9.0);
        // m̄ = 0.2 < 0.3: 9 · 0.5 = 4.5
        assert_eq!(c.next_interval(9.0, 0.2), 4.5);
        // clamps: 200 · 1.5 = 300 → 256; 1 · 0.5 = 0.5 → 1
        assert_eq!(c.next_interval(200.0, 0.9), 256.0);
        assert_eq!(c.next_interval(1.0, 0.1), 1.0);
    }

    fn buffer() -> ReplayBuffer {
        buffer_with_loss(3, 0.1)
    }

    /// One engine step: decide, "train" with the given per-sample loss, record, adapt.
    fn step(s: &mut Mssr, b: &mut ReplayBuffer, t: u64, loss: f32) -> ReplayDecision {
        step_allowed(s, b, t, None, |_| loss)
    }

    #[test]
    fn task_is_first_due_initial_interval_after_its_end() {
        let mut b = buffer();
        let mut s = MssrConfig::default().init();
        s.after_training_exp(0, &Signals::at(100), &b);
        assert_eq!(s.clocks()[0].next_due, 104);
        for t in 101..104 {
            assert!(step(&mut s, &mut b, t, 0.1).batches.is_empty());
        }
        let d = step(&mut s, &mut b, 104, 0.1);
        assert_eq!(d.batches.len(), 1);
        assert_eq!(d.batches[0].task, Some(0));
        assert_eq!(d.batches[0].slots.len(), 8);
    }

    #[test]
    fn well_recalled_replay_grows_the_interval_and_poor_recall_shrinks_it() {
        let mut b = buffer();
        let mut s = MssrConfig::default().init();
        s.after_training_exp(0, &Signals::at(100), &b);
        // Replayed at 104 with loss 0.05: every replayed sample had l̄ = 0.1 → 0.7·0.1 +
        // 0.3·0.05 = 0.085 and R = 1 after the update, so m̄ = exp(-0.085) = 0.918, against
        // its reference exp(-0.1) = 0.905 a ratio of 1.015 ≥ 1 → I = 6, next = 110.
        step(&mut s, &mut b, 104, 0.05);
        assert_eq!(s.clocks()[0].interval, 6.0);
        assert_eq!(s.clocks()[0].next_due, 110);
        // At 110 every sample of the batch is replayed with loss 5: l̄ ≥ 0.7·0.085 + 0.3·5 =
        // 1.56, m̄ ≤ exp(-1.56) = 0.21, a ratio ≤ 0.23 < 0.95 → I = 3, next = 113.
        assert!(step(&mut s, &mut b, 109, 5.0).batches.is_empty());
        step(&mut s, &mut b, 110, 5.0);
        assert_eq!(s.clocks()[0].interval, 3.0);
        assert_eq!(s.clocks()[0].next_due, 113);
    }

    /// A buffer of `tasks` tasks with 16 samples each, all inserted with `loss`.
    fn buffer_with_loss(tasks: u32, loss: f32) -> ReplayBuffer {
        let mut b = ReplayBufferConfig {
            capacity: CapacityPolicy::PerTask { quota: 16 },
            ..Default::default()
        }
        .init();
        for task in 0..tasks {
            for i in 0..16 {
                b.offer(SampleRef::new(task, i), loss, 0, None);
            }
        }
        b
    }

    /// Like `step`, with an allowance, and a per-task loss.
    fn step_allowed(
        s: &mut Mssr,
        b: &mut ReplayBuffer,
        t: u64,
        allowance: Option<usize>,
        loss_of_task: impl Fn(u32) -> f32,
    ) -> ReplayDecision {
        let d = s.before_update(&Signals::at(t).with_allowance(allowance), b);
        let losses: Vec<SlotLoss> = d
            .batches
            .iter()
            .flat_map(|x| {
                let loss = loss_of_task(x.task.unwrap_or(u32::MAX)); // sampler-only: all past tasks
                x.slots.iter().map(move |&slot| SlotLoss { slot, loss })
            })
            .collect();
        b.record_replay(t, &losses);
        s.after_update(
            &Signals {
                step: t,
                replay_losses: &losses,
                ..Default::default()
            },
            b,
        );
        d
    }

    #[test]
    fn relative_thresholds_grow_a_retained_task_and_shrink_a_forgotten_one_at_a_real_loss_scale() {
        // Answer losses of 2.5 nats, as SmolLM2-135M gives: q = exp(-2.5) = 0.082, below the
        // absolute m_lo = 0.3 whatever happens.
        let mut b = buffer_with_loss(2, 2.5);
        let mut s = MssrConfig::default().init();
        s.after_training_exp(0, &Signals::at(0), &b);
        s.after_training_exp(1, &Signals::at(0), &b);
        // Step 4: both due, one batch per step, tie → task 0, recalled a little better than
        // when learnt (2.3): l̄ = 0.7·2.5 + 0.3·2.3 = 2.44, m̄ / m̄_ref = exp(0.06) = 1.06
        // ≥ relative_high = 1 → I = 4 · 1.5 = 6.
        let loss = |task: u32| if task == 0 { 2.3 } else { 4.0 };
        assert_eq!(
            step_allowed(&mut s, &mut b, 4, None, loss).batches[0].task,
            Some(0)
        );
        // Step 5: task 1, forgotten (4.0): l̄ = 0.7·2.5 + 0.3·4.0 = 2.95,
        // m̄ / m̄_ref = exp(-(2.95 - 2.5)) = 0.638 < 0.95 → I = 4 · 0.5 = 2.
        assert_eq!(
            step_allowed(&mut s, &mut b, 5, None, loss).batches[0].task,
            Some(1)
        );
        let c = s.clocks();
        assert_eq!((c[0].interval, c[0].next_due), (6.0, 10));
        assert_eq!((c[1].interval, c[1].next_due), (2.0, 7));
        assert!(
            (c[1].relative_strength - (-0.45f32).exp()).abs() < 1e-4,
            "{}",
            c[1].relative_strength
        );
        // The absolute form on the same stream shrinks both (m̄ ≈ 0.08 and 0.05 < 0.3).
        let mut b = buffer_with_loss(2, 2.5);
        let mut a = MssrConfig {
            thresholds: ThresholdMode::Absolute,
            ..Default::default()
        }
        .init();
        a.after_training_exp(0, &Signals::at(0), &b);
        a.after_training_exp(1, &Signals::at(0), &b);
        step_allowed(&mut a, &mut b, 4, None, loss);
        step_allowed(&mut a, &mut b, 5, None, loss);
        assert_eq!((a.clocks()[0].interval, a.clocks()[1].interval), (2.0, 2.0));
    }

    #[test]
    fn the_relative_reference_is_the_loss_at_the_tasks_end_not_at_insertion() {
        // Inserted mid-training at 2.5 nats, learnt to 1.0 by the task's end (the end-of-task
        // probe). A replay at 2.0 is recalled better than at insertion but 1 nat worse than
        // at the end: forgotten. m̄ = exp(-(0.7·2.5 + 0.3·2.0)) = exp(-2.35), m̄_ref =
        // exp(-(0.7·2.5 + 0.3·1.0)) = exp(-2.05): a ratio of exp(-0.3) = 0.74 < 0.95 → I = 2.
        let mut b = buffer_with_loss(1, 2.5);
        let mut s = MssrConfig::default().init();
        let at_end = HookPoint::AfterTrainingExp { task: 0, step: 0 };
        let probe = s.wants(at_end, &b).probe.unwrap();
        assert_eq!(probe.len(), 16);
        let losses: Vec<SlotLoss> = probe
            .iter()
            .map(|&slot| SlotLoss { slot, loss: 1.0 })
            .collect();
        s.after_training_exp(
            0,
            &Signals {
                probe_losses: &losses,
                ..Default::default()
            },
            &b,
        );
        step_allowed(&mut s, &mut b, 4, None, |_| 2.0);
        let c = s.clocks()[0];
        assert!(
            (c.relative_strength - (-0.3f32).exp()).abs() < 1e-4,
            "{c:?}"
        );
        assert_eq!(c.interval, 2.0);
        // Without the end-of-task losses the reference is the insertion loss: 2.0 < 2.5 reads
        // as recalled better, and the interval grows.
        let mut b = buffer_with_loss(1, 2.5);
        let mut s = MssrConfig::default().init();
        s.after_training_exp(0, &Signals::at(0), &b);
        step_allowed(&mut s, &mut b, 4, None, |_| 2.0);
        assert_eq!(s.clocks()[0].interval, 6.0);
    }

    #[test]
    fn the_relatively_weakest_due_task_is_served_first() {
        let mut b = buffer_with_loss(2, 2.5);
        let mut s = MssrConfig {
            initial_interval: 1.0,
            max_replay_batches: 2,
            ..Default::default()
        }
        .init();
        s.after_training_exp(0, &Signals::at(0), &b);
        s.after_training_exp(1, &Signals::at(0), &b);
        // Step 1 serves both: task 0 retained (2.3 → ratio 1.06, I = 1.5, due at 3), task 1
        // forgotten (4.0 → ratio 0.64, I = 1, due at 2).
        let loss = |task: u32| if task == 0 { 2.3 } else { 4.0 };
        assert_eq!(step_allowed(&mut s, &mut b, 1, None, loss).batches.len(), 2);
        assert_eq!((s.clocks()[0].next_due, s.clocks()[1].next_due), (3, 2));
        step_allowed(&mut s, &mut b, 2, None, loss);
        // Both due at 3, room for one batch: task 1, the weaker relative to its own reference,
        // goes before task 0 (whose id would win a tie).
        let d = step_allowed(&mut s, &mut b, 3, Some(8), loss);
        assert_eq!(d.batches.len(), 1);
        assert_eq!(d.batches[0].task, Some(1));
    }

    #[test]
    fn a_due_task_waits_for_an_allowance_of_a_whole_batch_and_keeps_its_clock() {
        let mut b = buffer();
        let mut s = MssrConfig {
            max_replay_batches: 2,
            ..Default::default()
        }
        .init();
        s.after_training_exp(0, &Signals::at(0), &b);
        s.after_training_exp(1, &Signals::at(0), &b);
        let before = s.clocks().to_vec();
        // Zero, then 7 < r·|B| = 8: nothing is replayed and the clocks do not move.
        for (t, allowance) in [(4, Some(0)), (5, Some(7))] {
            assert!(
                step_allowed(&mut s, &mut b, t, allowance, |_| 0.05)
                    .batches
                    .is_empty()
            );
            assert_eq!(s.clocks(), &before[..]);
        }
        // 12: one whole batch (task 0, the tie's first), task 1 stays due.
        let d = step_allowed(&mut s, &mut b, 6, Some(12), |_| 0.05);
        assert_eq!(d.batches.len(), 1);
        assert_eq!(d.num_samples(), 8);
        assert_eq!(d.batches[0].task, Some(0));
        // Recalled better than when buffered (0.05 < 0.1): m̄ / m̄_ref > 1 → grows from the
        // served step: 6 + round(6) = 12.
        assert_eq!((s.clocks()[0].interval, s.clocks()[0].next_due), (6.0, 12));
        assert_eq!(s.clocks()[1], before[1]);
        // 16: both batches allowed, but only task 1 is due.
        let d = step_allowed(&mut s, &mut b, 7, Some(16), |_| 0.05);
        assert_eq!(
            d.batches.iter().map(|x| x.task).collect::<Vec<_>>(),
            vec![Some(1)]
        );
        // Unlimited: both due again at 12 → two batches.
        let d = step_allowed(&mut s, &mut b, 13, None, |_| 0.05);
        assert_eq!(d.batches.len(), 2);
    }

    #[test]
    fn sampler_only_skips_a_period_step_whose_batch_does_not_fit() {
        let b = buffer();
        let mut s = MssrConfig {
            variant: MssrVariant::SamplerOnly,
            ..Default::default()
        }
        .init();
        s.after_training_exp(0, &Signals::at(0), &b);
        let d = s.before_update(&Signals::at(4).with_allowance(Some(7)), &b);
        assert!(d.batches.is_empty());
        let d = s.before_update(&Signals::at(8).with_allowance(Some(8)), &b);
        assert_eq!(d.num_samples(), 8);
    }

    #[test]
    fn serves_the_weakest_due_task_first_and_at_most_max_batches() {
        let mut b = buffer();
        // Make task 1 weak: replay its samples with a high loss.
        let weak: Vec<SlotLoss> = b
            .task_slots(1)
            .iter()
            .map(|&slot| SlotLoss { slot, loss: 3.0 })
            .collect();
        b.record_replay(0, &weak);
        let mut s = MssrConfig {
            thresholds: ThresholdMode::Absolute,
            ..Default::default()
        }
        .init();
        for task in 0..3 {
            s.after_training_exp(task, &Signals::at(10), &b);
        }
        let d = step(&mut s, &mut b, 14, 0.1);
        assert_eq!(d.batches.len(), 1);
        assert_eq!(d.batches[0].task, Some(1));
        // Tasks 0 and 2 stay due; equal strength, so the lower id goes first.
        assert_eq!(step(&mut s, &mut b, 15, 0.1).batches[0].task, Some(0));
        assert_eq!(step(&mut s, &mut b, 16, 0.1).batches[0].task, Some(2));
    }

    #[test]
    fn sampler_only_keeps_a_fixed_period_and_draws_from_all_past_tasks() {
        let mut b = buffer();
        let mut s = MssrConfig {
            variant: MssrVariant::SamplerOnly,
            ..Default::default()
        }
        .init();
        s.after_training_exp(0, &Signals::at(10), &b);
        s.after_training_exp(1, &Signals::at(10), &b);
        let steps: Vec<u64> = (11..=24)
            .filter(|&t| !step(&mut s, &mut b, t, 0.1).batches.is_empty())
            .collect();
        assert_eq!(steps, vec![12, 16, 20, 24]);
        let d = step(&mut s, &mut b, 28, 0.1);
        assert!(d.batches[0].samples.iter().all(|x| x.task < 2));
    }

    #[test]
    fn scheduler_only_adapts_intervals_too() {
        let mut b = buffer();
        let mut s = MssrConfig {
            variant: MssrVariant::SchedulerOnly,
            ..Default::default()
        }
        .init();
        s.after_training_exp(2, &Signals::at(0), &b);
        step(&mut s, &mut b, 4, 0.05);
        assert_eq!(s.clocks()[0].interval, 6.0);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::buffer::{Buffer, CapacityPolicy, ReplayBufferConfig};
    use crate::sample::{SampleRef, SlotLoss};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn intervals_stay_within_bounds(
            strengths in proptest::collection::vec(0.0f32..=1.0, 1..200),
            min in 1.0f64..8.0,
            span in 0.0f64..300.0,
            grow in 1.0f64..4.0,
            shrink in 0.05f64..1.0,
        ) {
            let c = MssrConfig {
                min_interval: min,
                max_interval: min + span,
                grow,
                shrink,
                ..Default::default()
            };
            let mut interval = c.initial_interval.clamp(c.min_interval, c.max_interval);
            for m in strengths {
                interval = c.next_interval(interval, m);
                prop_assert!(interval >= c.min_interval && interval <= c.max_interval);
            }
        }

        #[test]
        fn scheduler_intervals_stay_within_bounds_under_any_losses(
            losses in proptest::collection::vec(0.0f32..6.0, 50..300),
            min in 1.0f64..4.0,
            span in 0.0f64..64.0,
            seed in 0u64..100,
        ) {
            let mut b = ReplayBufferConfig {
                capacity: CapacityPolicy::PerTask { quota: 12 },
                ..Default::default()
            }
            .init();
            for task in 0..3 {
                for i in 0..12 {
                    b.offer(SampleRef::new(task, i), 0.2, 0, None);
                }
            }
            let config = MssrConfig {
                min_interval: min,
                max_interval: min + span,
                initial_interval: 4.0,
                seed,
                ..Default::default()
            };
            let mut s = config.init();
            for task in 0..3 {
                s.after_training_exp(task, &Signals::at(0), &b);
            }
            for (t, &loss) in losses.iter().enumerate() {
                let step = t as u64 + 1;
                let d = s.before_update(&Signals::at(step), &b);
                let replayed: Vec<SlotLoss> = d
                    .batches
                    .iter()
                    .flat_map(|x| x.slots.iter().map(|&slot| SlotLoss { slot, loss }))
                    .collect();
                b.record_replay(step, &replayed);
                s.after_update(&Signals { step, replay_losses: &replayed, ..Default::default() }, &b);
                for c in s.clocks() {
                    prop_assert!(c.interval >= min && c.interval <= min + span, "{c:?}");
                    prop_assert!(c.next_due > step || d.batches.iter().all(|x| x.task != Some(c.task)));
                }
            }
        }
    }
}
