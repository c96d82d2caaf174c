//! The replay buffer: sample references, their memory state, capacity and insertion policies.

use memory_strength::{MemoryConfig, MemoryState};
use rand::Rng;

use crate::idmap::IdMap;
use crate::rng::ReplayRng;
use serde::{Deserialize, Serialize};

use crate::sample::{SampleRef, Slot, SlotLoss, TeacherTopK};

/// How many entries the buffer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CapacityPolicy {
    /// One pool of `capacity` entries shared by all tasks.
    Total {
        /// Maximum number of entries.
        capacity: usize,
    },
    /// Every task has its own quota of `quota` entries; the total grows with the tasks seen.
    PerTask {
        /// Maximum number of entries per task.
        quota: usize,
    },
    /// One shared pool whose capacity grows by `per_task` with every task seen, up to
    /// `max_total` (unbounded when `None`).
    Growing {
        /// Capacity added per task seen.
        per_task: usize,
        /// Upper bound on the total capacity.
        max_total: Option<usize>,
    },
}

impl Default for CapacityPolicy {
    fn default() -> Self {
        Self::Total { capacity: 1000 }
    }
}

/// What happens to an offered sample once its scope (the pool, or the task's quota) is full.
/// Until then every offered sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InsertionPolicy {
    /// Reservoir sampling (Vitter's algorithm R): the `n`-th offer of a scope replaces a
    /// uniformly chosen entry with probability `capacity / n`, so the buffer is a uniform
    /// sample of everything offered to that scope.
    #[default]
    Reservoir,
    /// Keep the first `capacity` offers, ignore the rest.
    FirstK,
    /// Each offer replaces a uniformly chosen entry of its scope with probability
    /// `replace_prob` (recency-biased).
    Random {
        /// Probability that an offer is stored once the scope is full.
        replace_prob: f64,
    },
}

/// Configuration of a [`ReplayBuffer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ReplayBufferConfig {
    /// Capacity policy. Default: a total of 1000 entries (our choice; METHODS.md leaves the
    /// capacity to the experiment).
    pub capacity: CapacityPolicy,
    /// Insertion policy. Default: reservoir.
    pub insertion: InsertionPolicy,
    /// Per-sample memory model (MSSR), updated for every entry.
    pub memory: MemoryConfig,
    /// Seed of the insertion RNG. Default 0.
    pub seed: u64,
}

impl ReplayBufferConfig {
    /// An empty buffer.
    pub fn init(&self) -> ReplayBuffer {
        ReplayBuffer {
            config: self.clone(),
            samples: Vec::new(),
            teachers: Vec::new(),
            memory: self.memory.init(),
            pos_in_task: Vec::new(),
            tasks: IdMap::default(),
            offered: 0,
            rng: ReplayRng::seed_from_u64(self.seed),
        }
    }
}

/// The outcome of [`Buffer::offer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Insertion {
    /// Stored in a new slot.
    Inserted(Slot),
    /// Stored in `slot`, evicting `evicted`.
    Replaced {
        /// The slot that now holds the offered sample.
        slot: Slot,
        /// The sample that was evicted.
        evicted: SampleRef,
    },
    /// Not stored.
    Rejected,
}

/// The storage side of a replay strategy (Avalanche's two-method buffer interface).
///
/// Invariant: after any call, every scope holds at most its capacity (the pool for
/// [`CapacityPolicy::Total`] and [`CapacityPolicy::Growing`], each task for
/// [`CapacityPolicy::PerTask`]).
pub trait Buffer {
    /// Offers a sample that was just trained at `step` with loss `loss`; the insertion policy
    /// decides whether it is stored.
    fn offer(
        &mut self,
        sample: SampleRef,
        loss: f32,
        step: u64,
        teacher: Option<TeacherTopK>,
    ) -> Insertion;

    /// Changes the capacity policy, evicting uniformly chosen entries where a scope is now
    /// over capacity.
    fn resize(&mut self, capacity: CapacityPolicy);
}

/// Per-task bookkeeping: the slots holding the task's samples, and how many were offered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct TaskSlots {
    /// Slots of this task's entries (unordered).
    slots: Vec<Slot>,
    /// Number of samples of this task offered so far.
    offered: u64,
}

/// A replay buffer of [`SampleRef`]s with optional teacher log-probs and the per-sample
/// [`MemoryState`], all as arrays indexed by [`Slot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayBuffer {
    config: ReplayBufferConfig,
    samples: Vec<SampleRef>,
    teachers: Vec<Option<TeacherTopK>>,
    memory: MemoryState,
    /// Position of each slot inside its task's `slots` list.
    pos_in_task: Vec<u32>,
    tasks: IdMap<TaskSlots>,
    /// Offers to the whole buffer.
    offered: u64,
    rng: ReplayRng,
}

impl ReplayBuffer {
    /// The configuration (with the current capacity policy).
    pub fn config(&self) -> &ReplayBufferConfig {
        &self.config
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Current total capacity (for per-task quotas: quota × tasks seen).
    pub fn capacity(&self) -> usize {
        let tasks = self.tasks.len();
        match self.config.capacity {
            CapacityPolicy::Total { capacity } => capacity,
            CapacityPolicy::PerTask { quota } => quota * tasks,
            CapacityPolicy::Growing {
                per_task,
                max_total,
            } => {
                let c = per_task * tasks;
                max_total.map_or(c, |m| c.min(m))
            }
        }
    }

    /// The sample stored in `slot`.
    pub fn sample(&self, slot: Slot) -> SampleRef {
        self.samples[slot as usize]
    }

    /// All stored samples, indexed by slot.
    pub fn samples(&self) -> &[SampleRef] {
        &self.samples
    }

    /// The teacher log-probs stored with `slot`, if any.
    pub fn teacher(&self, slot: Slot) -> Option<&TeacherTopK> {
        self.teachers[slot as usize].as_ref()
    }

    /// Per-sample memory state, indexed by slot.
    pub fn memory(&self) -> &MemoryState {
        &self.memory
    }

    /// Slots holding samples of `task` (empty if none).
    pub fn task_slots(&self, task: u32) -> &[Slot] {
        self.tasks.get(task).map_or(&[], |t| &t.slots)
    }

    /// Ids of the tasks ever offered, ascending.
    pub fn tasks(&self) -> impl Iterator<Item = u32> + '_ {
        self.tasks.keys()
    }

    /// Number of samples of `task` offered so far.
    pub fn offered(&self, task: u32) -> u64 {
        self.tasks.get(task).map_or(0, |t| t.offered)
    }

    /// The lazy MSSR memory update for the samples of a replay batch trained at `step`
    /// (see [`MemoryState::update_after_replay`]).
    pub fn record_replay(&mut self, step: u64, losses: &[SlotLoss]) {
        for l in losses {
            self.memory.update_one(l.slot as usize, l.loss, step);
        }
    }

    /// Removes the entry in `slot`; the last entry moves into `slot`.
    pub fn remove(&mut self, slot: Slot) -> SampleRef {
        let s = slot as usize;
        let removed = self.samples[s];
        self.unlink(slot);
        let last = (self.samples.len() - 1) as Slot;
        if last != slot {
            // The entry in `last` moves to `slot`: fix its task list.
            let moved_task = self.samples[last as usize].task;
            let pos = self.pos_in_task[last as usize];
            self.tasks.get_mut(moved_task).expect("task of entry").slots[pos as usize] = slot;
        }
        self.samples.swap_remove(s);
        self.teachers.swap_remove(s);
        self.pos_in_task.swap_remove(s);
        self.memory.swap_remove(s);
        removed
    }

    /// Removes `slot` from its task's list (the swap keeps the list dense).
    fn unlink(&mut self, slot: Slot) {
        let task = self.samples[slot as usize].task;
        let pos = self.pos_in_task[slot as usize] as usize;
        let list = &mut self.tasks.get_mut(task).expect("task of entry").slots;
        list.swap_remove(pos);
        if pos < list.len() {
            let moved = list[pos];
            self.pos_in_task[moved as usize] = pos as u32;
        }
    }

    fn link(&mut self, slot: Slot, task: u32) {
        let list = &mut self
            .tasks
            .get_or_insert_with(task, TaskSlots::default)
            .slots;
        self.pos_in_task[slot as usize] = list.len() as u32;
        list.push(slot);
    }

    fn push(
        &mut self,
        sample: SampleRef,
        loss: f32,
        step: u64,
        teacher: Option<TeacherTopK>,
    ) -> Slot {
        let slot = self.samples.len() as Slot;
        self.samples.push(sample);
        self.teachers.push(teacher);
        self.pos_in_task.push(0);
        self.memory.insert(loss, step);
        self.link(slot, sample.task);
        slot
    }

    fn overwrite(
        &mut self,
        slot: Slot,
        sample: SampleRef,
        loss: f32,
        step: u64,
        teacher: Option<TeacherTopK>,
    ) -> SampleRef {
        let evicted = self.samples[slot as usize];
        self.unlink(slot);
        self.samples[slot as usize] = sample;
        self.teachers[slot as usize] = teacher;
        self.memory.reset(slot as usize, loss, step);
        self.link(slot, sample.task);
        evicted
    }

    /// The scope an offer of `task` competes in: (entries in it, capacity, offers to it).
    fn scope(&self, task: u32) -> (usize, usize, u64) {
        match self.config.capacity {
            CapacityPolicy::PerTask { quota } => {
                let t = self.tasks.get(task).expect("offered task");
                (t.slots.len(), quota, t.offered)
            }
            _ => (self.len(), self.capacity(), self.offered),
        }
    }

    /// Slot of the `j`-th entry of the scope of `task`.
    fn scope_slot(&self, task: u32, j: usize) -> Slot {
        match self.config.capacity {
            CapacityPolicy::PerTask { .. } => self.task_slots(task)[j],
            _ => j as Slot,
        }
    }
}

impl Buffer for ReplayBuffer {
    fn offer(
        &mut self,
        sample: SampleRef,
        loss: f32,
        step: u64,
        teacher: Option<TeacherTopK>,
    ) -> Insertion {
        self.offered += 1;
        self.tasks
            .get_or_insert_with(sample.task, TaskSlots::default)
            .offered += 1;
        let (occupied, capacity, seen) = self.scope(sample.task);
        if occupied < capacity {
            return Insertion::Inserted(self.push(sample, loss, step, teacher));
        }
        if capacity == 0 {
            return Insertion::Rejected;
        }
        let victim = match self.config.insertion {
            InsertionPolicy::FirstK => None,
            InsertionPolicy::Reservoir => {
                // `seen` counts this offer: keep it with probability capacity / seen.
                let j = self.rng.random_range(0..seen) as usize;
                (j < occupied).then_some(j)
            }
            InsertionPolicy::Random { replace_prob } => self
                .rng
                .random_bool(if replace_prob.is_nan() {
                    0.0
                } else {
                    replace_prob.clamp(0.0, 1.0)
                })
                .then(|| self.rng.random_range(0..occupied)),
        };
        match victim {
            None => Insertion::Rejected,
            Some(j) => {
                let slot = self.scope_slot(sample.task, j);
                let evicted = self.overwrite(slot, sample, loss, step, teacher);
                Insertion::Replaced { slot, evicted }
            }
        }
    }

    fn resize(&mut self, capacity: CapacityPolicy) {
        self.config.capacity = capacity;
        match capacity {
            CapacityPolicy::PerTask { quota } => {
                let tasks: Vec<u32> = self.tasks.keys().collect();
                for task in tasks {
                    while self.task_slots(task).len() > quota {
                        let n = self.task_slots(task).len();
                        let j = self.rng.random_range(0..n);
                        self.remove(self.task_slots(task)[j]);
                    }
                }
            }
            _ => {
                while self.len() > self.capacity() {
                    let j = self.rng.random_range(0..self.len());
                    self.remove(j as Slot);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(capacity: CapacityPolicy, insertion: InsertionPolicy, seed: u64) -> ReplayBuffer {
        ReplayBufferConfig {
            capacity,
            insertion,
            seed,
            ..Default::default()
        }
        .init()
    }

    /// Every internal index agrees with the arrays.
    pub(crate) fn check_consistent(b: &ReplayBuffer) {
        assert_eq!(b.samples.len(), b.memory.len());
        assert_eq!(b.samples.len(), b.teachers.len());
        assert_eq!(b.samples.len(), b.pos_in_task.len());
        let mut count = 0;
        for (task, t) in b.tasks.iter() {
            for (pos, &slot) in t.slots.iter().enumerate() {
                assert_eq!(b.samples[slot as usize].task, task);
                assert_eq!(b.pos_in_task[slot as usize] as usize, pos);
            }
            count += t.slots.len();
        }
        assert_eq!(count, b.len());
    }

    #[test]
    fn first_k_keeps_the_first_offers() {
        let mut b = buffer(
            CapacityPolicy::Total { capacity: 3 },
            InsertionPolicy::FirstK,
            0,
        );
        for i in 0..10 {
            b.offer(SampleRef::new(0, i), 0.5, i as u64, None);
        }
        let idx: Vec<u32> = b.samples().iter().map(|s| s.index).collect();
        assert_eq!(idx, vec![0, 1, 2]);
    }

    #[test]
    fn per_task_quota_limits_each_task_separately() {
        let mut b = buffer(
            CapacityPolicy::PerTask { quota: 2 },
            InsertionPolicy::Reservoir,
            1,
        );
        for task in 0..3 {
            for i in 0..10 {
                b.offer(SampleRef::new(task, i), 0.5, 0, None);
            }
        }
        for task in 0..3 {
            assert_eq!(b.task_slots(task).len(), 2);
            assert_eq!(b.offered(task), 10);
        }
        assert_eq!(b.capacity(), 6);
        check_consistent(&b);
    }

    #[test]
    fn growing_capacity_adds_room_per_task() {
        let mut b = buffer(
            CapacityPolicy::Growing {
                per_task: 4,
                max_total: Some(10),
            },
            InsertionPolicy::Reservoir,
            2,
        );
        for task in 0..4 {
            for i in 0..20 {
                b.offer(SampleRef::new(task, i), 0.5, 0, None);
            }
            // 4, 8, then capped at 10.
            assert_eq!(b.len(), (4 * (task as usize + 1)).min(10));
        }
        check_consistent(&b);
    }

    #[test]
    fn replaced_slot_gets_fresh_memory_state() {
        let mut b = buffer(
            CapacityPolicy::Total { capacity: 1 },
            InsertionPolicy::Random { replace_prob: 1.0 },
            0,
        );
        b.offer(SampleRef::new(0, 0), 2.0, 0, None);
        b.record_replay(50, &[SlotLoss { slot: 0, loss: 0.1 }]);
        assert_eq!(b.memory().reviews[0], 1);
        let out = b.offer(SampleRef::new(1, 7), 0.3, 60, None);
        assert_eq!(
            out,
            Insertion::Replaced {
                slot: 0,
                evicted: SampleRef::new(0, 0)
            }
        );
        assert_eq!(b.memory().reviews[0], 0);
        assert_eq!(b.memory().last_review[0], 60);
        assert_eq!(b.memory().smoothed_loss[0], 0.3);
        assert!(b.task_slots(0).is_empty());
        assert_eq!(b.task_slots(1), &[0]);
    }

    #[test]
    fn remove_moves_last_entry_and_keeps_indices_consistent() {
        let mut b = buffer(
            CapacityPolicy::Total { capacity: 10 },
            InsertionPolicy::FirstK,
            0,
        );
        for i in 0..6 {
            b.offer(SampleRef::new(i % 2, i), i as f32, i as u64, None);
        }
        let removed = b.remove(1);
        assert_eq!(removed, SampleRef::new(1, 1));
        assert_eq!(b.sample(1), SampleRef::new(1, 5));
        assert_eq!(b.memory().smoothed_loss[1], 5.0);
        check_consistent(&b);
    }

    #[test]
    fn resize_evicts_down_to_the_new_capacity() {
        let mut b = buffer(
            CapacityPolicy::Total { capacity: 10 },
            InsertionPolicy::FirstK,
            0,
        );
        for i in 0..10 {
            b.offer(SampleRef::new(i % 3, i), 0.5, 0, None);
        }
        b.resize(CapacityPolicy::Total { capacity: 4 });
        assert_eq!(b.len(), 4);
        check_consistent(&b);
        b.resize(CapacityPolicy::PerTask { quota: 1 });
        assert!(b.tasks().all(|t| b.task_slots(t).len() <= 1));
        check_consistent(&b);
    }

    #[test]
    fn teacher_log_probs_travel_with_their_sample() {
        let mut b = buffer(
            CapacityPolicy::Total { capacity: 2 },
            InsertionPolicy::FirstK,
            0,
        );
        let t = TeacherTopK {
            k: 1,
            token_ids: vec![42],
            log_probs: vec![-0.5],
        };
        b.offer(SampleRef::new(0, 0), 0.5, 0, None);
        b.offer(SampleRef::new(0, 1), 0.5, 0, Some(t.clone()));
        b.remove(0);
        assert_eq!(b.teacher(0), Some(&t));
    }

    #[test]
    fn reservoir_insertion_is_uniform_chi_square() {
        // 4000 independent streams of 50 offers into a reservoir of 10: each offer should
        // end up stored with probability 10/50, i.e. 800 times. Chi-square with 49 degrees
        // of freedom; the 0.1% critical value is 85.35. Fixed seeds, so deterministic.
        let (streams, n, cap) = (4000u64, 50u32, 10usize);
        let mut counts = vec![0u64; n as usize];
        for s in 0..streams {
            let mut b = buffer(
                CapacityPolicy::Total { capacity: cap },
                InsertionPolicy::Reservoir,
                s,
            );
            for i in 0..n {
                b.offer(SampleRef::new(0, i), 0.5, 0, None);
            }
            for x in b.samples() {
                counts[x.index as usize] += 1;
            }
        }
        let expected = (streams * cap as u64) as f64 / n as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        println!("reservoir chi-square = {chi2:.2} (49 dof, 0.1% critical value 85.35)");
        assert!(chi2 < 85.35, "chi2 = {chi2}");
    }

    #[test]
    fn per_task_reservoir_is_uniform_within_a_task_chi_square() {
        // Task 1's stream of 20 into a quota of 5, interleaved with task 0: each of task 1's
        // offers is kept with probability 1/4 → 500 of 2000 streams. 19 dof, 0.1%: 43.82.
        let mut counts = [0u64; 20];
        for s in 0..2000u64 {
            let mut b = buffer(
                CapacityPolicy::PerTask { quota: 5 },
                InsertionPolicy::Reservoir,
                s,
            );
            for i in 0..20 {
                b.offer(SampleRef::new(0, i), 0.5, 0, None);
                b.offer(SampleRef::new(1, i), 0.5, 0, None);
            }
            for &slot in b.task_slots(1) {
                counts[b.sample(slot).index as usize] += 1;
            }
        }
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - 500.0).powi(2) / 500.0)
            .sum();
        assert!(chi2 < 43.82, "chi2 = {chi2}");
    }
}

#[cfg(test)]
mod proptests {
    use super::tests::check_consistent;
    use super::*;
    use proptest::prelude::*;

    fn policy() -> impl Strategy<Value = CapacityPolicy> {
        prop_oneof![
            (0usize..20).prop_map(|capacity| CapacityPolicy::Total { capacity }),
            (0usize..8).prop_map(|quota| CapacityPolicy::PerTask { quota }),
            (0usize..8, proptest::option::of(0usize..20)).prop_map(|(per_task, max_total)| {
                CapacityPolicy::Growing {
                    per_task,
                    max_total,
                }
            }),
        ]
    }

    fn insertion() -> impl Strategy<Value = InsertionPolicy> {
        prop_oneof![
            Just(InsertionPolicy::Reservoir),
            Just(InsertionPolicy::FirstK),
            (0.0f64..=1.0).prop_map(|replace_prob| InsertionPolicy::Random { replace_prob }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn capacity_and_quotas_are_never_exceeded(
            capacity in policy(),
            insertion in insertion(),
            seed in 0u64..1000,
            offers in proptest::collection::vec((0u32..4, 0u32..1000), 0..150),
            removals in proptest::collection::vec(0usize..1000, 0..5),
        ) {
            let mut b = ReplayBufferConfig { capacity, insertion, seed, ..Default::default() }.init();
            for (k, (task, index)) in offers.into_iter().enumerate() {
                b.offer(SampleRef::new(task, index), 0.5, k as u64, None);
                prop_assert!(b.len() <= b.capacity());
                if let CapacityPolicy::PerTask { quota } = capacity {
                    for t in b.tasks() {
                        prop_assert!(b.task_slots(t).len() <= quota);
                    }
                }
                if k % 37 == 36 {
                    for &r in &removals {
                        if !b.is_empty() {
                            b.remove((r % b.len()) as Slot);
                        }
                    }
                }
            }
            check_consistent(&b);
        }
    }
}
