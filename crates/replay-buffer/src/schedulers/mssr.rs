//! MSSR's scheduler: per-task replay intervals that expand while memory is strong and shrink
//! when forgetting shows (METHODS.md section 3).

use crate::rng::ReplayRng;
use serde::{Deserialize, Serialize};

use crate::buffer::ReplayBuffer;
use crate::sample::Slot;
use crate::sampler::{Candidates, Sampler, StrengthSampler, UniformSampler};
use crate::scheduler::{
    PastTasks, ReplayBatch, ReplayDecision, ReplayReason, ReplaySize, Scheduler, Signals,
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
    /// `m_hi`. Default 0.6.
    pub high_strength: f32,
    /// `m_lo`. Default 0.3.
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
            pending: Vec::new(),
            rng: ReplayRng::seed_from_u64(self.seed),
            scratch: Vec::new(),
        }
    }

    /// The interval update: `clamp(I · (m̄ ≥ m_hi ? c_grow : (m̄ < m_lo ? c_shrink : 1)),
    /// I_min, I_max)`.
    pub fn next_interval(&self, interval: f64, mean_strength: f32) -> f64 {
        let factor = if mean_strength >= self.high_strength {
            self.grow
        } else if mean_strength < self.low_strength {
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
    /// Batches scheduled in `before_update`, awaiting `after_update`: (task, slots).
    pending: Vec<(Option<u32>, Vec<Slot>)>,
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

    fn after_training_exp(&mut self, task: u32, signals: &Signals<'_>, buffer: &ReplayBuffer) {
        self.past.end(task);
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
        });
    }

    fn before_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) -> ReplayDecision {
        let step = signals.step;
        self.pending.clear();
        if self.config.variant == MssrVariant::SamplerOnly {
            let every = self.config.sampler_only_every.max(1);
            if self.past.is_empty() || !step.is_multiple_of(every) {
                return ReplayDecision::none();
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let candidates = self.past.slots(buffer, &mut scratch);
            let slots = self.draw(buffer, candidates, step);
            self.scratch = scratch;
            if slots.is_empty() {
                return ReplayDecision::none();
            }
            self.pending.push((None, slots.clone()));
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
        // Weakest first: lowest m̄ (of the task's last replay batch), ties by task id.
        due.sort_by(|&a, &b| {
            let (a, b) = (&self.clocks[a], &self.clocks[b]);
            a.mean_strength
                .total_cmp(&b.mean_strength)
                .then(a.task.cmp(&b.task))
        });
        due.truncate(self.config.max_replay_batches);
        let mut batches = Vec::with_capacity(due.len());
        for i in due {
            let clock = self.clocks[i];
            let slots = self.draw(
                buffer,
                Candidates::Slots(buffer.task_slots(clock.task)),
                step,
            );
            self.pending.push((Some(clock.task), slots.clone()));
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
        for (task, slots) in std::mem::take(&mut self.pending) {
            let Some(task) = task else { continue };
            // m̄ after the memory update (R = 1 for the replayed samples): METHODS.md.
            let Some(m) = buffer.memory().mean_strength(&slots, step) else {
                continue;
            };
            let config = self.config;
            if let Some(c) = self.clocks.iter_mut().find(|c| c.task == task) {
                if config.adaptive() {
                    c.interval = config.next_interval(c.interval, m);
                }
                c.mean_strength = m;
                c.next_due = step + (c.interval.round() as u64).max(1);
            }
        }
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
        let mut b = ReplayBufferConfig {
            capacity: CapacityPolicy::PerTask { quota: 16 },
            ..Default::default()
        }
        .init();
        for task in 0..3 {
            for i in 0..16 {
                b.offer(SampleRef::new(task, i), 0.1, 0, None);
            }
        }
        b
    }

    /// One engine step: decide, "train" with the given per-sample loss, record, adapt.
    fn step(s: &mut Mssr, b: &mut ReplayBuffer, t: u64, loss: f32) -> ReplayDecision {
        let d = s.before_update(&Signals::at(t), b);
        let losses: Vec<SlotLoss> = d
            .batches
            .iter()
            .flat_map(|x| x.slots.iter().map(|&slot| SlotLoss { slot, loss }))
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
        // Replayed at 104 with loss 0.1: every replayed sample had l̄ = 0.1 → 0.7·0.1+0.3·0.1
        // = 0.1 and R = 1 after the update, so m̄ = exp(-0.1) = 0.905 ≥ 0.6 → I = 6,
        // next = 110.
        step(&mut s, &mut b, 104, 0.1);
        assert_eq!(s.clocks()[0].interval, 6.0);
        assert_eq!(s.clocks()[0].next_due, 110);
        // At 110 every sample of the batch is replayed with loss 5: l̄ ≥ 0.7·0.1 + 0.3·5 =
        // 1.57, m̄ ≤ exp(-1.57) = 0.208 < 0.3 → I = 3, next = 113.
        assert!(step(&mut s, &mut b, 109, 5.0).batches.is_empty());
        step(&mut s, &mut b, 110, 5.0);
        assert_eq!(s.clocks()[0].interval, 3.0);
        assert_eq!(s.clocks()[0].next_due, 113);
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
        let mut s = MssrConfig::default().init();
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
        step(&mut s, &mut b, 4, 0.1);
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
