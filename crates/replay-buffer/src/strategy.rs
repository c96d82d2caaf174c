//! The open registry of replay strategies: a strategy is one file, selected by its `kind` from
//! a method file and restored by the same name from a checkpoint.
//!
//! A strategy is two types in one file:
//!
//! - a configuration, `#[typetag::serde(name = "my_kind")] impl StrategyConfig for MyConfig`,
//!   which is what `[replay.scheduler] kind = "my_kind"` deserialises into (any serde data: no
//!   `Copy`, no required fields);
//! - its state, `#[typetag::serde(name = "my_kind")] impl Strategy for MyScheduler`, a
//!   [`Scheduler`] that checkpoints with serde under the same name.
//!
//! The `#[typetag::serde]` attribute on each impl is the whole registration (the registry is
//! built at link time by `inventory`), so the file may live in `replay-buffer`, in the engine's
//! crate or in a researcher's own crate that links against them. The engine hands
//! [`StrategyConfig::init`] the replay batch size and the RNG seed of the run
//! ([`StrategyInit`]); a strategy never reads them from its own configuration.

use std::fmt::Debug;

use dyn_clone::DynClone;

use crate::scheduler::{ReplayBatch, ReplaySize, Scheduler};

/// What the engine tells a strategy when it builds one for a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrategyInit {
    /// One replay batch: the run's batch size times its replay ratio.
    pub size: ReplaySize,
    /// The strategy's RNG seed, derived from the run's seed.
    pub seed: u64,
    /// Records held out of training per task (the validation slice a strategy may evaluate).
    pub validation_records: usize,
}

/// A setting of a strategy's configuration that a run cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyConfigError {
    /// The setting, relative to the strategy's table (e.g. `every`).
    pub field: String,
    /// What is wrong with it and what to do, starting with its value (`= 0 must be at least
    /// 1`), so `{field} {message}` reads as one sentence.
    pub message: String,
}

impl StrategyConfigError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A replay strategy's configuration, named by `kind` in a method file.
#[typetag::serde(tag = "kind")]
pub trait StrategyConfig: Debug + DynClone + Send + Sync {
    /// The strategy, sized and seeded for a run.
    fn init(&self, run: &StrategyInit) -> Box<dyn Strategy>;

    /// Checks the configuration against a run before it starts (a zero period, a validation
    /// slice larger than the records held out, ...). The default accepts everything.
    fn check(&self, _run: &StrategyInit) -> Result<(), StrategyConfigError> {
        Ok(())
    }
}

dyn_clone::clone_trait_object!(StrategyConfig);

impl PartialEq for Box<dyn StrategyConfig> {
    /// Two configurations are equal when they serialise alike (kind and every field).
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

/// A replay strategy in a run: a [`Scheduler`] that checkpoints under its registered name.
#[typetag::serde(tag = "kind")]
pub trait Strategy: Scheduler + Debug + DynClone + Send {
    /// Log lines of the strategy's own about a batch it just decided to replay at `step` (MSSR
    /// writes the due task's interval and strength), each a JSON object with a `type`; the
    /// engine appends them to the run's `log.jsonl` right after the batch's `replay` line.
    fn log_events(&self, _batch: &ReplayBatch, _step: u64) -> Vec<serde_json::Value> {
        Vec::new()
    }

    /// Log lines of the strategy's own about the decision it made at `step`, whether or not it
    /// replayed (loss-driven replay writes each probe's loss against its threshold,
    /// accuracy-supervised replay each check's scores): what explains the budget a run spent,
    /// or left. The engine writes them after the step's `step` line, before its `replay` lines.
    fn step_events(&self, _step: u64) -> Vec<serde_json::Value> {
        Vec::new()
    }
}

dyn_clone::clone_trait_object!(Strategy);

/// A period that divides step counts must be at least 1 (zero is a division by zero mid-run).
pub fn check_period(field: &str, value: f64) -> Result<(), StrategyConfigError> {
    if value.is_nan() || value < 1.0 {
        return Err(StrategyConfigError::new(
            field,
            format!("= {value} must be at least 1"),
        ));
    }
    Ok(())
}
