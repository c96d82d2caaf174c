//! Online EWC (Kirkpatrick et al. 2017; the online form of Schwarz et al. 2018): after each
//! task a diagonal Fisher `F` over the trainable parameters and the parameters `θ*` are kept;
//! the next tasks add
//!
//! ```text
//! (λ/2) · Σ_i F_i (θ_i − θ*_i)²       with F ← γ·F + F_task,  θ* ← θ at the task's end
//! ```
//!
//! `F_task` is the empirical Fisher: the mean over `fisher_samples` of the task's training
//! samples of the squared gradient of each sample's own SFT loss (one forward and backward
//! per sample, charged to the method). The samples are spread evenly over the task's
//! training records. PyTorch computes the same `F_task` on the LoRA fixture model
//! (`tests/fixtures/make_ewc_fisher.py`, test `ewc_fisher`).

use std::path::Path;

use backbone::CausalLm;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use finetune::SftBatch;
use serde::{Deserialize, Serialize};

use super::trainable::{ParamVec, for_each_trainable};
use super::{
    LossContext, LossTerm, MethodPlugin, PassKind, PluginConfig, PluginInit, Spent, StageContext,
};
use crate::EngineError;

/// `[[plugins]] kind = "ewc"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EwcConfig {
    /// `λ`, the penalty's weight (1e4, our choice for LoRA on SmolLM2-135M: there the mean
    /// Fisher entry is 6e-7 after one task and 1.3e-4 accumulated over eleven, and the penalty
    /// weighs up to 0.6 against an SFT loss of 1-2; docs/baselines.md).
    pub lambda: f64,
    /// `γ`, the decay of earlier tasks' Fisher (1: every task counts fully).
    pub gamma: f64,
    /// Training samples per task the Fisher is estimated on (32).
    pub fisher_samples: usize,
}

impl Default for EwcConfig {
    fn default() -> Self {
        Self {
            lambda: 1e4,
            gamma: 1.0,
            fisher_samples: 32,
        }
    }
}

#[typetag::serde(name = "ewc")]
impl PluginConfig for EwcConfig {
    fn init(&self, _run: &PluginInit<'_>) -> Result<Box<dyn MethodPlugin>, EngineError> {
        Ok(Box::new(Ewc {
            config: self.clone(),
            importance: None,
        }))
    }

    fn check(&self) -> Result<(), (String, String)> {
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(("lambda".into(), format!("{} must be >= 0", self.lambda)));
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(("gamma".into(), format!("{} is outside [0, 1]", self.gamma)));
        }
        if self.fisher_samples == 0 {
            return Err(("fisher_samples".into(), "must be at least 1".into()));
        }
        Ok(())
    }
}

/// What EWC keeps after a task: the accumulated Fisher and the anchor `θ*`.
struct Importance {
    fisher: ParamVec,
    anchor: ParamVec,
}

/// The EWC plugin.
pub struct Ewc {
    config: EwcConfig,
    importance: Option<Importance>,
}

/// The empirical diagonal Fisher of `model`'s trainable parameters over `batches`: the mean
/// of the squared gradients of each batch's mean SFT loss (one sample per batch gives the
/// per-sample Fisher).
pub fn diagonal_fisher(model: &CausalLm, batches: &[SftBatch]) -> ParamVec {
    let mut sum: Option<Vec<Tensor<1>>> = None;
    for b in batches {
        let loss = finetune::sft_loss(model, b).mean;
        let grads = GradientsParams::from_grads(loss.backward(), model);
        let g = ParamVec::grads(model, &grads);
        let sq = g.0.into_iter().map(|t| t.square());
        sum = Some(match sum {
            None => sq.collect(),
            Some(acc) => acc.into_iter().zip(sq).map(|(a, s)| a + s).collect(),
        });
    }
    let n = batches.len().max(1) as f64;
    ParamVec(
        sum.unwrap_or_default()
            .into_iter()
            .map(|t| t.div_scalar(n))
            .collect(),
    )
}

/// `fisher_samples` indices spread evenly over `0..n`.
fn spread(n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    (0..k).map(|i| i * n / k).collect()
}

const FISHER: &str = "fisher.safetensors";
const ANCHOR: &str = "anchor.safetensors";

impl MethodPlugin for Ewc {
    fn name(&self) -> &str {
        "ewc"
    }

    fn after_training_exp(&mut self, ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        let samples = ctx.data.training_samples(ctx.task);
        let batches: Vec<SftBatch> = spread(samples.len(), self.config.fisher_samples)
            .into_iter()
            .map(|i| ctx.data.batch(&samples[i..=i]))
            .collect();
        let fisher = diagonal_fisher(ctx.model, &batches);
        *ctx.spent = Spent {
            forwards: ctx.spent.forwards + batches.len() as u64,
            backwards: ctx.spent.backwards + batches.len() as u64,
            tokens: ctx.spent.tokens
                + batches
                    .iter()
                    .map(|b| b.tokens.real_tokens() as u64)
                    .sum::<u64>(),
        };
        let fisher = match self.importance.take() {
            None => fisher,
            Some(old) => ParamVec(
                old.fisher
                    .0
                    .into_iter()
                    .zip(fisher.0)
                    .map(|(f, n)| f.mul_scalar(self.config.gamma) + n)
                    .collect(),
            ),
        };
        let mean = fisher
            .0
            .iter()
            .map(|f| f64::from(f.clone().sum().into_scalar::<f32>()))
            .sum::<f64>()
            / fisher.0.iter().map(|f| f.dims()[0]).sum::<usize>().max(1) as f64;
        ctx.log.push(
            serde_json::json!({"type": "ewc", "step": ctx.step, "task": ctx.task,
            "fisher_samples": batches.len(), "mean_fisher": mean}),
        );
        self.importance = Some(Importance {
            fisher,
            anchor: ParamVec::values(ctx.model),
        });
        Ok(())
    }

    fn before_backward(&mut self, ctx: &mut LossContext<'_>) -> Vec<LossTerm> {
        let Some(imp) = &self.importance else {
            return Vec::new();
        };
        let mut i = 0;
        let mut total: Option<Tensor<1>> = None;
        for_each_trainable(ctx.model, |_, theta| {
            let d = theta - imp.anchor.0[i].clone();
            let t = (imp.fisher.0[i].clone() * d.clone() * d).sum();
            total = Some(match total.take() {
                None => t,
                Some(acc) => acc + t,
            });
            i += 1;
        });
        let Some(total) = total else {
            return Vec::new();
        };
        vec![LossTerm {
            name: "ewc",
            value: total.mul_scalar(0.5),
            weight: self.config.lambda,
            extra: (PassKind::Plugin, Spent::default()),
        }]
    }

    fn save(&self, dir: &Path) -> Result<(), EngineError> {
        if let Some(imp) = &self.importance {
            imp.fisher.save(&dir.join(FISHER))?;
            imp.anchor.save(&dir.join(ANCHOR))?;
        }
        Ok(())
    }

    fn load(&mut self, dir: &Path, model: &mut CausalLm) -> Result<(), EngineError> {
        let device = model.device();
        self.importance = if dir.join(FISHER).is_file() {
            Some(Importance {
                fisher: ParamVec::load(&dir.join(FISHER), &device)?,
                anchor: ParamVec::load(&dir.join(ANCHOR), &device)?,
            })
        } else {
            None
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_samples_are_spread_over_the_task() {
        assert_eq!(spread(10, 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(spread(3, 8), vec![0, 1, 2]);
        assert_eq!(spread(64, 1), vec![0]);
    }
}
