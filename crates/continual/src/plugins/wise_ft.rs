//! WiSE-FT between stages: after each stage `θ_k ← (1 − α)·θ_{k−1} + α·θ_k` over the trained
//! parameters, `θ_{k−1}` being the weights the stage started from. Configured by
//! `[wise_ft] alpha`.

use std::path::Path;

use backbone::CausalLm;

use super::{MethodPlugin, StageContext};
use crate::EngineError;
use crate::params::TrainableSnapshot;

/// The WiSE-FT plugin.
pub struct WiseFtPlugin {
    alpha: f64,
    /// The trainable weights at the current stage's start (checkpointed).
    stage_start: TrainableSnapshot,
}

impl WiseFtPlugin {
    /// The plugin for a run starting from `model`.
    pub fn new(alpha: f64, model: &CausalLm) -> Self {
        Self {
            alpha,
            stage_start: TrainableSnapshot::of(model),
        }
    }
}

const STAGE_START: &str = "stage_start.safetensors";

impl MethodPlugin for WiseFtPlugin {
    fn name(&self) -> &str {
        "wise_ft"
    }

    fn before_training_exp(&mut self, ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        self.stage_start = TrainableSnapshot::of(ctx.model);
        Ok(())
    }

    fn after_training_exp(&mut self, ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        let moved = self.stage_start.distance(&TrainableSnapshot::of(ctx.model));
        *ctx.model = self
            .stage_start
            .interpolate(ctx.model.clone(), self.alpha)?;
        // How far the stage moved the weights, and how far the interpolation kept: α times it.
        let kept = self.stage_start.distance(&TrainableSnapshot::of(ctx.model));
        ctx.log.push(
            serde_json::json!({"type": "wise_ft", "step": ctx.step, "task": ctx.task,
            "alpha": self.alpha, "moved": moved, "kept": kept}),
        );
        Ok(())
    }

    fn save(&self, dir: &Path) -> Result<(), EngineError> {
        self.stage_start.save(&dir.join(STAGE_START))
    }

    fn load(&mut self, dir: &Path, _model: &mut CausalLm) -> Result<(), EngineError> {
        self.stage_start = TrainableSnapshot::load(&dir.join(STAGE_START))?;
        Ok(())
    }
}
