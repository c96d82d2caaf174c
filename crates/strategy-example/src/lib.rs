//! A replay strategy that lives outside `replay-buffer` and `continual`: **recent-task
//! replay**, every `every` steps one replay batch drawn uniformly from the buffered samples of
//! the `recent_tasks` most recently finished tasks. A deliberately simple strategy (it forgets
//! older tasks on purpose); what it shows is the shape of a strategy of one's own:
//!
//! - the configuration ([`RecentTaskConfig`]) is any serde data, here with a `String`, and
//!   holds neither the replay batch size nor a seed: the engine passes both in
//!   [`StrategyInit`];
//! - the state ([`RecentTask`]) implements [`Scheduler`] and serialises with serde, so a
//!   checkpoint restores it;
//! - `#[typetag::serde(name = "recent_task")]` on the two trait impls is the whole
//!   registration: a method file selects it with `[replay.scheduler] kind = "recent_task"`
//!   in any program that links this crate (`methods/recent-task.toml`);
//! - [`Strategy::log_events`] writes its own lines into the run's `log.jsonl`.
//!
//! ```
//! use replay_buffer::{ReplaySize, StrategyConfig, StrategyInit};
//! use strategy_example::RecentTaskConfig;
//!
//! let config: Box<dyn StrategyConfig> =
//!     toml::from_str("kind = \"recent_task\"\nevery = 3\n").unwrap();
//! let run = StrategyInit { size: ReplaySize::default(), seed: 7, validation_records: 8 };
//! let strategy = config.init(&run);
//! assert_eq!(replay_buffer::Scheduler::name(&*strategy), "recent-task");
//! # let _ = RecentTaskConfig::default();
//! ```

use replay_buffer::{
    Candidates, PastTasks, ReplayBatch, ReplayBuffer, ReplayDecision, ReplayReason, ReplayRng,
    ReplaySize, Sampler, Scheduler, Signals, Slot, Strategy, StrategyConfig, StrategyConfigError,
    StrategyInit, UniformSampler,
};
use serde::{Deserialize, Serialize};

/// Configuration of [`RecentTask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecentTaskConfig {
    /// Replay at every step `t` with `t % every == 0` (2).
    pub every: u64,
    /// How many of the most recently finished tasks to draw from (1).
    pub recent_tasks: usize,
    /// A label for the log's replay reasons ("recent task").
    pub label: String,
}

impl Default for RecentTaskConfig {
    fn default() -> Self {
        Self {
            every: 2,
            recent_tasks: 1,
            label: "recent task".into(),
        }
    }
}

#[typetag::serde(name = "recent_task")]
impl StrategyConfig for RecentTaskConfig {
    fn init(&self, run: &StrategyInit) -> Box<dyn Strategy> {
        Box::new(RecentTask {
            config: self.clone(),
            size: run.size,
            past: PastTasks::default(),
            rng: ReplayRng::seed_from_u64(run.seed),
        })
    }

    fn check(&self, _run: &StrategyInit) -> Result<(), StrategyConfigError> {
        if self.every == 0 {
            return Err(StrategyConfigError::new("every", "= 0 must be at least 1"));
        }
        if self.recent_tasks == 0 {
            return Err(StrategyConfigError::new(
                "recent_tasks",
                "= 0 must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Recent-task replay in a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecentTask {
    config: RecentTaskConfig,
    size: ReplaySize,
    past: PastTasks,
    rng: ReplayRng,
}

impl RecentTask {
    /// The tasks it draws from now: the last `recent_tasks` finished ones.
    pub fn recent(&self) -> &[u32] {
        let tasks = self.past.tasks();
        &tasks[tasks.len().saturating_sub(self.config.recent_tasks)..]
    }
}

impl Scheduler for RecentTask {
    fn name(&self) -> &str {
        "recent-task"
    }

    fn after_training_exp(&mut self, task: u32, _: &Signals<'_>, _: &ReplayBuffer) {
        self.past.end(task);
    }

    fn before_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) -> ReplayDecision {
        let size = self.size.samples();
        // Whole batches only, within the engine's allowance (the replay budget).
        if self.past.is_empty()
            || !signals.step.is_multiple_of(self.config.every)
            || signals.whole_batches(size) == 0
        {
            return ReplayDecision::none();
        }
        let slots: Vec<Slot> = self
            .recent()
            .iter()
            .flat_map(|&t| buffer.task_slots(t).iter().copied())
            .collect();
        let drawn = UniformSampler.sample(
            buffer,
            Candidates::Slots(&slots),
            size,
            signals.step,
            &mut self.rng,
        );
        if drawn.is_empty() {
            return ReplayDecision::none();
        }
        let reason = ReplayReason::Custom {
            label: self.config.label.clone(),
            value: self.recent().len() as f64,
        };
        ReplayDecision {
            batches: vec![ReplayBatch::new(buffer, None, drawn, reason)],
        }
    }
}

#[typetag::serde(name = "recent_task")]
impl Strategy for RecentTask {
    fn log_events(&self, batch: &ReplayBatch, step: u64) -> Vec<serde_json::Value> {
        vec![serde_json::json!({
            "type": "recent_task", "step": step, "tasks": self.recent(), "n": batch.slots.len(),
        })]
    }
}
