//! The KL term towards a reference model (METHODS.md section 5, approximate regularized
//! replay): `KL(p_ref ‖ p_θ)` on the step's batch, the reference being the initial model
//! (LoRA switched off, or a frozen copy under full fine-tuning) or the model at the current
//! stage's start (`kl_reference = "stage_start"`). Configured by `[objective]`'s `kl_*` keys.

use std::path::Path;

use backbone::CausalLm;
use burn::module::Module;
use finetune::{ForwardNeeds, KlDirection, KlReference, KlTokens, ObjectiveConfig, Reference};

use super::{LossContext, LossTerm, MethodPlugin, PassKind, PluginInit, Spent, StageContext};
use crate::EngineError;
use crate::method::TrainModeName;
use crate::params::TrainableSnapshot;

/// The KL plugin.
pub struct KlToReference {
    weight: f64,
    direction: KlDirection,
    tokens: KlTokens,
    /// The reference when it is not the adapters-off backbone: the frozen initial model (full
    /// fine-tuning) or the model at the stage's start.
    reference: Option<CausalLm>,
    /// With a stage-start reference: the trainable weights at the current stage's start
    /// (checkpointed, so a resumed or rolled-back run rebuilds the same reference).
    stage_start: Option<TrainableSnapshot>,
}

impl KlToReference {
    /// The plugin of `[objective]` for the model the run starts with.
    pub fn new(objective: &ObjectiveConfig, run: &PluginInit<'_>) -> Self {
        let initial = objective.kl_reference == KlReference::Initial;
        Self {
            weight: objective.kl_weight,
            direction: objective.kl_direction,
            tokens: objective.kl_tokens,
            reference: (initial && run.settings.mode == TrainModeName::Full)
                .then(|| run.model.valid()),
            stage_start: (!initial).then(|| TrainableSnapshot::of(run.model)),
        }
    }

    fn rebuild_reference(&mut self, model: &CausalLm) -> Result<(), EngineError> {
        if let Some(snapshot) = &self.stage_start {
            self.reference = Some(snapshot.restore(model.clone())?.valid());
        }
        Ok(())
    }
}

const STAGE_START: &str = "stage_start.safetensors";

impl MethodPlugin for KlToReference {
    fn name(&self) -> &str {
        "kl"
    }

    fn needs(&self) -> ForwardNeeds {
        ForwardNeeds {
            log_probs: true,
            all_positions: self.tokens == KlTokens::All,
        }
    }

    fn before_training_exp(&mut self, ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        if self.stage_start.is_some() {
            self.stage_start = Some(TrainableSnapshot::of(ctx.model));
            self.rebuild_reference(ctx.model)?;
        }
        Ok(())
    }

    fn before_backward(&mut self, ctx: &mut LossContext<'_>) -> Vec<LossTerm> {
        let reference = match &self.reference {
            Some(r) => Reference::Model(r),
            None => Reference::AdaptersOff,
        };
        let value =
            finetune::kl_to_reference(ctx.model, reference, ctx.batch, ctx.forward, self.direction);
        let spent = Spent {
            forwards: 1,
            backwards: 0,
            tokens: ctx.batch.tokens.real_tokens() as u64,
        };
        vec![LossTerm {
            name: "kl",
            value,
            weight: self.weight,
            extra: (PassKind::KlReference, spent),
        }]
    }

    fn save(&self, dir: &Path) -> Result<(), EngineError> {
        match &self.stage_start {
            Some(s) => s.save(&dir.join(STAGE_START)),
            None => Ok(()),
        }
    }

    fn load(&mut self, dir: &Path, model: &mut CausalLm) -> Result<(), EngineError> {
        if self.stage_start.is_some() {
            self.stage_start = Some(TrainableSnapshot::load(&dir.join(STAGE_START))?);
            self.rebuild_reference(model)?;
        }
        Ok(())
    }
}
