//! Learning without Forgetting (Li & Hoiem 2017), for a language model: while training task
//! `k ≥ 1`, the model's output distributions on the current task's inputs are distilled
//! towards those of the model as it was when the task started (the previous stages'
//! weights, kept as a snapshot of the trainable parameters, i.e. the adapter under LoRA):
//!
//! ```text
//! λ · T² · KL(softmax(z_prev / T) ‖ softmax(z_θ / T))
//! ```
//!
//! averaged over the answer positions of the batch's task samples (the positions where the
//! model produces its outputs; our choice of positions). The teacher costs one forward of
//! the batch per step, charged to the method. The first task trains without the term.

use std::path::Path;

use backbone::CausalLm;
use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use finetune::ForwardNeeds;
use serde::{Deserialize, Serialize};

use super::{
    LossContext, LossTerm, MethodPlugin, PassKind, PluginConfig, PluginInit, Spent, StageContext,
};
use crate::EngineError;
use crate::params::TrainableSnapshot;

/// `[[plugins]] kind = "lwf"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LwfConfig {
    /// `λ`, the distillation term's weight (1, as Li & Hoiem's `λ_o`).
    pub weight: f64,
    /// `T`, the temperature (2, as Li & Hoiem).
    pub temperature: f64,
}

impl Default for LwfConfig {
    fn default() -> Self {
        Self {
            weight: 1.0,
            temperature: 2.0,
        }
    }
}

#[typetag::serde(name = "lwf")]
impl PluginConfig for LwfConfig {
    fn init(&self, _run: &PluginInit<'_>) -> Result<Box<dyn MethodPlugin>, EngineError> {
        Ok(Box::new(Lwf {
            config: self.clone(),
            teacher: None,
        }))
    }

    fn check(&self) -> Result<(), (String, String)> {
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(("weight".into(), format!("{} must be >= 0", self.weight)));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err((
                "temperature".into(),
                format!("{} must be > 0", self.temperature),
            ));
        }
        Ok(())
    }
}

/// The previous stages' model: its trainable weights (checkpointed) and the frozen copy built
/// from them.
struct Teacher {
    weights: TrainableSnapshot,
    model: CausalLm,
}

/// The LwF plugin.
pub struct Lwf {
    config: LwfConfig,
    teacher: Option<Teacher>,
}

const TEACHER: &str = "teacher.safetensors";

impl Lwf {
    fn teacher_from(weights: TrainableSnapshot, model: &CausalLm) -> Result<Teacher, EngineError> {
        let frozen = weights.restore(model.clone())?.valid();
        Ok(Teacher {
            weights,
            model: frozen,
        })
    }
}

impl MethodPlugin for Lwf {
    fn name(&self) -> &str {
        "lwf"
    }

    fn needs(&self) -> ForwardNeeds {
        ForwardNeeds {
            log_probs: true,
            all_positions: false,
        }
    }

    fn before_training_exp(&mut self, ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        self.teacher = if ctx.task == 0 {
            None
        } else {
            Some(Self::teacher_from(
                TrainableSnapshot::of(ctx.model),
                ctx.model,
            )?)
        };
        Ok(())
    }

    fn before_backward(&mut self, ctx: &mut LossContext<'_>) -> Vec<LossTerm> {
        let Some(teacher) = &self.teacher else {
            return Vec::new();
        };
        let student = ctx.forward.log_probs.clone().expect("asked for in needs()");
        // The answer positions of the task's own samples (replayed rows, if any, excluded).
        let rows: Vec<i64> = ctx
            .forward
            .positions()
            .enumerate()
            .filter(|(_, (row, _, answer))| *answer && *row < ctx.task_rows)
            .map(|(i, _)| i as i64)
            .collect();
        if rows.is_empty() {
            return Vec::new();
        }
        let device = student.device();
        let n = rows.len();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
        let teacher_lp = finetune::log_probs_like(&teacher.model, ctx.batch, ctx.forward);
        let value = finetune::distillation_kl(
            student.select(0, idx.clone()),
            teacher_lp.select(0, idx),
            self.config.temperature,
        );
        let spent = Spent {
            forwards: 1,
            backwards: 0,
            tokens: ctx.batch.tokens.real_tokens() as u64,
        };
        vec![LossTerm {
            name: "lwf",
            value,
            weight: self.config.weight,
            extra: (PassKind::Plugin, spent),
        }]
    }

    fn save(&self, dir: &Path) -> Result<(), EngineError> {
        match &self.teacher {
            Some(t) => t.weights.save(&dir.join(TEACHER)),
            None => Ok(()),
        }
    }

    fn load(&mut self, dir: &Path, model: &mut CausalLm) -> Result<(), EngineError> {
        let path = dir.join(TEACHER);
        self.teacher = if path.is_file() {
            Some(Self::teacher_from(TrainableSnapshot::load(&path)?, model)?)
        } else {
            None
        };
        Ok(())
    }
}
