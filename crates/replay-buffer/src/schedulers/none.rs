//! Sequential fine-tuning: never replay (the lower bound).

use serde::{Deserialize, Serialize};

use crate::buffer::ReplayBuffer;
use crate::scheduler::{ReplayDecision, Scheduler, Signals};

/// Never replays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoReplay {}

/// Configuration of [`NoReplay`] (`kind = "none"`, no settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoReplayConfig {}

#[typetag::serde(name = "none")]
impl crate::strategy::StrategyConfig for NoReplayConfig {
    fn init(&self, _: &crate::strategy::StrategyInit) -> Box<dyn crate::strategy::Strategy> {
        Box::new(NoReplay {})
    }
}

#[typetag::serde(name = "none")]
impl crate::strategy::Strategy for NoReplay {}

impl Scheduler for NoReplay {
    fn name(&self) -> &str {
        "none"
    }

    fn before_update(&mut self, _: &Signals<'_>, _: &ReplayBuffer) -> ReplayDecision {
        ReplayDecision::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::ReplayBufferConfig;

    #[test]
    fn no_replay_never_replays() {
        let b = ReplayBufferConfig::default().init();
        let mut s = NoReplay {};
        s.after_training_exp(0, &Signals::at(10), &b);
        assert!(s.before_update(&Signals::at(12), &b).batches.is_empty());
    }
}
