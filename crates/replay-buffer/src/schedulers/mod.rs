//! The built-in schedulers, and [`SchedulerConfig`] / [`AnyScheduler`] to pick one from a
//! configuration file.

mod accuracy;
mod fixed;
mod loss_driven;
mod mssr;
mod none;

pub use accuracy::{AccuracySupervised, AccuracySupervisedConfig, CheckedTask};
pub use fixed::{FixedInterval, FixedIntervalConfig};
pub use loss_driven::{LossDriven, LossDrivenConfig, ProbeOutcome};
pub use mssr::{Mssr, MssrConfig, MssrVariant, TaskClock, ThresholdMode};
pub use none::{NoReplay, NoReplayConfig};

use serde::{Deserialize, Serialize};

use crate::buffer::ReplayBuffer;
use crate::scheduler::{ExtraPasses, HookPoint, ReplayDecision, ReplaySize, Scheduler, Signals};

/// Which built-in scheduler to run, with its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchedulerConfig {
    /// Sequential fine-tuning, no replay.
    None,
    /// Fixed interleaved replay.
    FixedInterval(FixedIntervalConfig),
    /// Loss-driven replay.
    LossDriven(LossDrivenConfig),
    /// Accuracy-supervised replay.
    AccuracySupervised(AccuracySupervisedConfig),
    /// MSSR (full, sampler-only or scheduler-only).
    Mssr(MssrConfig),
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self::Mssr(MssrConfig::default())
    }
}

impl SchedulerConfig {
    /// Sets the replay batch size and the RNG seed of whichever scheduler this is (an engine
    /// sizes replay batches from its own batch size and seeds every run).
    pub fn set_size_and_seed(&mut self, size: ReplaySize, seed: u64) {
        let (s, r) = match self {
            Self::None => return,
            Self::FixedInterval(c) => (&mut c.size, &mut c.seed),
            Self::LossDriven(c) => (&mut c.size, &mut c.seed),
            Self::AccuracySupervised(c) => (&mut c.size, &mut c.seed),
            Self::Mssr(c) => (&mut c.size, &mut c.seed),
        };
        *s = size;
        *r = seed;
    }

    /// The scheduler.
    pub fn init(&self) -> AnyScheduler {
        match self {
            Self::None => AnyScheduler::None(NoReplay {}),
            Self::FixedInterval(c) => AnyScheduler::FixedInterval(c.init()),
            Self::LossDriven(c) => AnyScheduler::LossDriven(c.init()),
            Self::AccuracySupervised(c) => AnyScheduler::AccuracySupervised(c.init()),
            Self::Mssr(c) => AnyScheduler::Mssr(c.init()),
        }
    }
}

/// One of the built-in schedulers (serialisable, so it checkpoints with its state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum AnyScheduler {
    None(NoReplay),
    FixedInterval(FixedInterval),
    LossDriven(LossDriven),
    AccuracySupervised(AccuracySupervised),
    Mssr(Mssr),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyScheduler::None($s) => $e,
            AnyScheduler::FixedInterval($s) => $e,
            AnyScheduler::LossDriven($s) => $e,
            AnyScheduler::AccuracySupervised($s) => $e,
            AnyScheduler::Mssr($s) => $e,
        }
    };
}

impl Scheduler for AnyScheduler {
    fn name(&self) -> &str {
        dispatch!(self, s => s.name())
    }
    fn before_training_exp(&mut self, task: u32, buffer: &ReplayBuffer) {
        dispatch!(self, s => s.before_training_exp(task, buffer))
    }
    fn after_training_exp(&mut self, task: u32, signals: &Signals<'_>, buffer: &ReplayBuffer) {
        dispatch!(self, s => s.after_training_exp(task, signals, buffer))
    }
    fn wants(&mut self, at: HookPoint, buffer: &ReplayBuffer) -> ExtraPasses {
        dispatch!(self, s => s.wants(at, buffer))
    }
    fn before_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) -> ReplayDecision {
        dispatch!(self, s => s.before_update(signals, buffer))
    }
    fn after_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) {
        dispatch!(self, s => s.after_update(signals, buffer))
    }
}
