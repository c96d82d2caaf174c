//! O-LoRA (Wang et al. 2023, "Orthogonal Subspace Learning for Language Model Continual
//! Learning", EMNLP Findings; official code cmnfriend/O-LoRA): each task trains a new LoRA
//! adapter; the earlier tasks' adapters stay in the forward pass, frozen; the new adapter's
//! `A` is pushed orthogonal to the earlier ones':
//!
//! ```text
//! λ₁ · Σ_layers Σ |A_prevᵀ · A_new|  +  λ₂ · Σ_layers (‖A_new‖ + ‖B_new‖)
//! ```
//!
//! with `A_prev` the earlier tasks' `A` side by side (`[in, r·k]`; ours are stored `[in, r]`,
//! PEFT's `[r, in]`, so this is the official `|lora_A · loranew_Aᵀ|`) and `‖·‖` the Frobenius
//! norm (the official code's `torch.norm(p, p=2)`, not squared). Defaults as the official
//! scripts: `λ₁ = 0.5`, `λ₂ = 0`.
//!
//! "Frozen and in the forward pass" is done exactly by folding each finished adapter into the
//! frozen base weight (`W ← W + s·A·B`) at its task's end and starting a fresh adapter (same
//! name, new parameter ids so the optimizer's moments start afresh). The finished factors are
//! the plugin's checkpoint state; a resumed run folds them in again. When the stream ends
//! (`after_training`) the folds come out of the frozen weights and every task's adapter goes
//! side by side into one of rank `r·K`, so the run's final `adapter/` on the bare backbone is
//! the trained model (`cargo xtask rescore` scores it). O-LoRA needs `mode = "lora"`.

use std::collections::BTreeMap;
use std::path::Path;

use backbone::CausalLm;
use backbone::weights::HostTensor;
use burn::tensor::{Tensor, TensorData};
use lora::{LoraAdapter, LoraTargets};
use serde::{Deserialize, Serialize};

use super::{
    LossContext, LossTerm, MethodPlugin, PassKind, PluginConfig, PluginInit, Spent, StageContext,
};
use crate::EngineError;
use crate::engine::ADAPTER;
use crate::method::TrainModeName;
use crate::params::TrainableSnapshot;

/// `[[plugins]] kind = "olora"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OloraConfig {
    /// `λ₁`, the orthogonality term's weight (0.5).
    pub orthogonal_weight: f64,
    /// `λ₂`, the weight of the new factors' norms (0).
    pub l2_weight: f64,
}

impl Default for OloraConfig {
    fn default() -> Self {
        Self {
            orthogonal_weight: 0.5,
            l2_weight: 0.0,
        }
    }
}

#[typetag::serde(name = "olora")]
impl PluginConfig for OloraConfig {
    fn init(&self, run: &PluginInit<'_>) -> Result<Box<dyn MethodPlugin>, EngineError> {
        if run.settings.mode != TrainModeName::Lora {
            return Err(EngineError::config(
                run.origin,
                "plugins: O-LoRA trains one LoRA adapter per task: set training.mode = \"lora\" (the method file's [train] table)".into(),
            ));
        }
        Ok(Box::new(Olora {
            seed: crate::engine::mix(&[run.seed, 0x01_02A]),
            config: self.clone(),
            finished: Vec::new(),
            previous_a: BTreeMap::new(),
        }))
    }

    fn check(&self) -> Result<(), (String, String)> {
        for (field, w) in [
            ("orthogonal_weight", self.orthogonal_weight),
            ("l2_weight", self.l2_weight),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err((field.into(), format!("{w} must be >= 0")));
            }
        }
        Ok(())
    }
}

/// The O-LoRA plugin.
pub struct Olora {
    /// Seeds each new adapter's random `A` (from the run's seed and the task), so a resumed
    /// run draws the same adapters as an uninterrupted one.
    seed: u64,
    config: OloraConfig,
    /// Per finished task: its adapter's factors `[a, b]` per layer, in layer order.
    finished: Vec<TrainableSnapshot>,
    /// Per layer path: the finished tasks' `A` side by side, `[in, r·k]`.
    previous_a: BTreeMap<String, Tensor<2>>,
}

/// `Σ |A_prevᵀ · A_new|` over the layers that have earlier factors, and
/// `Σ (‖A_new‖ + ‖B_new‖)` over all: O-LoRA's two terms, unweighted.
pub fn olora_terms(
    previous_a: &BTreeMap<String, Tensor<2>>,
    new: &[(String, Tensor<2>, Tensor<2>)],
) -> (Option<Tensor<1>>, Option<Tensor<1>>) {
    let add = |acc: Option<Tensor<1>>, t: Tensor<1>| Some(acc.map_or(t.clone(), |a| a + t));
    let (mut orth, mut l2) = (None, None);
    for (path, a, b) in new {
        if let Some(prev) = previous_a.get(path) {
            // [r·k, in] · [in, r] → [r·k, r]
            orth = add(orth, prev.clone().transpose().matmul(a.clone()).abs().sum());
        }
        l2 = add(
            l2,
            a.clone().square().sum().sqrt() + b.clone().square().sum().sqrt(),
        );
    }
    (orth, l2)
}

fn host(t: Tensor<2>) -> HostTensor {
    HostTensor {
        shape: t.dims().to_vec(),
        data: t
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32"),
    }
}

/// A saved `[rows, cols]` factor as a tensor on `device`.
fn on_device(h: &HostTensor, device: &burn::tensor::Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(h.data.clone(), [h.shape[0], h.shape[1]]),
        device,
    )
}

impl Olora {
    /// Adds (`sign = 1`) or removes (`sign = −1`) one finished task's `s·A·B` per layer to or
    /// from the frozen base weights, and appends its `A`s to (or drops them from)
    /// `previous_a`.
    fn fold(&mut self, model: &mut CausalLm, factors: &TrainableSnapshot, sign: f64) {
        let device = model.device();
        let mut i = 0;
        let previous_a = &mut self.previous_a;
        model.for_each_linear_mut(&mut |path, layer| {
            let Some(current) = layer.adapter(ADAPTER) else {
                return;
            };
            let scale = current.settings.scale();
            let tensor = |h: &HostTensor| on_device(h, &device);
            let (a, b) = (
                tensor(&factors.tensors[2 * i]),
                tensor(&factors.tensors[2 * i + 1]),
            );
            i += 1;
            let delta = a.clone().matmul(b).mul_scalar(scale * sign);
            let w = layer.weight.val().detach() + delta;
            layer.weight = layer.weight.clone().map(|_| w);
            let prev = previous_a.remove(path);
            let rank = a.dims()[1];
            let kept = match (prev, sign > 0.0) {
                (Some(prev), true) => Some(Tensor::cat(vec![prev, a], 1)),
                (None, true) => Some(a),
                (Some(prev), false) => {
                    let [d_in, cols] = prev.dims();
                    (cols > rank).then(|| prev.slice([0..d_in, 0..cols - rank]))
                }
                (None, false) => None,
            };
            if let Some(k) = kept {
                previous_a.insert(path.to_string(), k);
            }
        });
    }

    /// Gives every adapted layer the adapter of task `task`: a fresh one (`fresh`), or the
    /// current values under that task's parameter ids (a resume, whose values were restored).
    fn adapter_for_task(&self, model: &mut CausalLm, task: usize, fresh: bool) {
        let device = model.device();
        if fresh {
            device.seed(crate::engine::mix(&[self.seed, task as u64]));
        }
        model.for_each_linear_mut(&mut |path, layer| {
            let Some(current) = layer.adapter(ADAPTER) else {
                return;
            };
            let settings = current.settings.clone();
            let values = (current.a.val().detach(), current.b.val().detach());
            // New ids per task, so the optimizer's moments start afresh for the new adapter;
            // the first task keeps the ids the engine gave its adapter.
            let id_name = match task {
                0 => ADAPTER.to_string(),
                k => format!("{ADAPTER}@task{k}"),
            };
            let ids = Some(lora::adapter_param_ids(path, &id_name));
            let [d_in, d_out] = layer.dims();
            layer.insert_adapter(if fresh {
                LoraAdapter::init(ADAPTER, &settings, d_in, d_out, &device, ids)
            } else {
                LoraAdapter::new(ADAPTER, settings, values.0, values.1, ids)
            });
        });
    }

    /// The current adapter's factors `[a, b]` per layer, in layer order.
    fn current_factors(model: &CausalLm) -> TrainableSnapshot {
        let mut tensors = Vec::new();
        model.for_each_linear(&mut |_, layer| {
            if let Some(a) = layer.adapter(ADAPTER) {
                tensors.push(host(a.a.val().detach()));
                tensors.push(host(a.b.val().detach()));
            }
        });
        TrainableSnapshot { tensors }
    }
}

/// Replaces every adapted layer's adapter by the finished tasks' adapters side by side: `A`s
/// concatenated to `[in, r·K]`, `B`s to `[r·K, out]`, so `x·A·B = Σ_k x·A_k·B_k`; the scale is
/// kept (`alpha` times `K`, or `√K` under rsLoRA). A PEFT adapter of rank `r·K` that gives the
/// bare backbone what the folds gave it. Nothing changes when no task finished.
pub fn install_side_by_side(model: &mut CausalLm, finished: &[TrainableSnapshot]) {
    if finished.is_empty() {
        return;
    }
    let device = model.device();
    let k = finished.len();
    let mut i = 0;
    model.for_each_linear_mut(&mut |_, layer| {
        let Some(current) = layer.adapter(ADAPTER) else {
            return;
        };
        let tensor = |h: &HostTensor| on_device(h, &device);
        // K × [in, r] → [in, r·K]; K × [r, out] → [r·K, out]
        let a = Tensor::cat(
            finished.iter().map(|f| tensor(&f.tensors[2 * i])).collect(),
            1,
        );
        let b = Tensor::cat(
            finished
                .iter()
                .map(|f| tensor(&f.tensors[2 * i + 1]))
                .collect(),
            0,
        );
        i += 1;
        let mut settings = current.settings.clone();
        settings.alpha *= if settings.use_rslora {
            (k as f64).sqrt()
        } else {
            k as f64
        };
        settings.rank *= k;
        layer.insert_adapter(LoraAdapter::new(ADAPTER, settings, a, b, None));
    });
}

impl MethodPlugin for Olora {
    fn name(&self) -> &str {
        "olora"
    }

    fn before_backward(&mut self, ctx: &mut LossContext<'_>) -> Vec<LossTerm> {
        let mut new = Vec::new();
        ctx.model.for_each_linear(&mut |path, layer| {
            if let Some(a) = layer.adapter(ADAPTER) {
                new.push((path.to_string(), a.a.val(), a.b.val()));
            }
        });
        let (orth, l2) = olora_terms(&self.previous_a, &new);
        let term = |name, value, weight| LossTerm {
            name,
            value,
            weight,
            extra: (PassKind::Plugin, Spent::default()),
        };
        let mut terms = Vec::new();
        if let Some(o) = orth {
            terms.push(term("olora_orth", o, self.config.orthogonal_weight));
        }
        if let Some(l) = l2.filter(|_| self.config.l2_weight > 0.0) {
            terms.push(term("olora_l2", l, self.config.l2_weight));
        }
        terms
    }

    fn after_training_exp(&mut self, ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        let factors = Self::current_factors(ctx.model);
        self.fold(ctx.model, &factors, 1.0);
        self.adapter_for_task(ctx.model, ctx.task + 1, true);
        self.finished.push(factors);
        ctx.log.push(
            serde_json::json!({"type": "olora", "step": ctx.step, "task": ctx.task,
            "folded_adapters": self.finished.len()}),
        );
        Ok(())
    }

    /// The saved adapter must be the whole trained model over the bare backbone: the folds come
    /// out of the frozen weights again and every finished task's factors go side by side into
    /// one adapter of rank `r·K` (the same `s·Σ A_k·B_k`; see [`install_side_by_side`]).
    fn after_training(&mut self, model: &mut CausalLm) -> Result<(), EngineError> {
        let finished = std::mem::take(&mut self.finished);
        for factors in finished.iter().rev() {
            self.fold(model, factors, -1.0);
        }
        install_side_by_side(model, &finished);
        Ok(())
    }

    fn save(&self, dir: &Path) -> Result<(), EngineError> {
        for (k, f) in self.finished.iter().enumerate() {
            f.save(&dir.join(format!("task-{k:03}.safetensors")))?;
        }
        Ok(())
    }

    fn load(&mut self, dir: &Path, model: &mut CausalLm) -> Result<(), EngineError> {
        let mut saved = Vec::new();
        while dir
            .join(format!("task-{:03}.safetensors", saved.len()))
            .is_file()
        {
            let path = dir.join(format!("task-{:03}.safetensors", saved.len()));
            saved.push(TrainableSnapshot::load(&path)?);
        }
        // A resumed run's model has no fold yet; a rolled-back one may hold one more than the
        // checkpoint (a divergence after a task's fold): take it out again (exact up to
        // rounding), then fold what is missing.
        while self.finished.len() > saved.len() {
            let last = self.finished.pop().expect("non-empty");
            self.fold(model, &last, -1.0);
        }
        for factors in saved.into_iter().skip(self.finished.len()) {
            self.fold(model, &factors, 1.0);
            self.finished.push(factors);
        }
        self.adapter_for_task(model, self.finished.len(), false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn t2(values: &[f32], rows: usize, cols: usize) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [rows, cols]),
            &Device::flex(),
        )
    }

    fn value(t: Option<Tensor<1>>) -> f32 {
        t.unwrap().into_scalar::<f32>()
    }

    #[test]
    fn the_losses_match_hand_computed_values() {
        // One layer, in = 2, r = 1. A_prev = [[1], [2]], A_new = [[3], [-1]], B_new = [[4, 0, 3]].
        // A_prevᵀ·A_new = 1·3 + 2·(−1) = 1 → |1| = 1.
        // ‖A_new‖ = √(9 + 1) = √10, ‖B_new‖ = √(16 + 9) = 5.
        let prev = BTreeMap::from([("l0".to_string(), t2(&[1.0, 2.0], 2, 1))]);
        let new = vec![(
            "l0".to_string(),
            t2(&[3.0, -1.0], 2, 1),
            t2(&[4.0, 0.0, 3.0], 1, 3),
        )];
        let (orth, l2) = olora_terms(&prev, &new);
        assert!((value(orth) - 1.0).abs() < 1e-6);
        assert!((value(l2) - (10f32.sqrt() + 5.0)).abs() < 1e-5);
        // Two earlier tasks side by side ([in, 2]) against a rank-2 new A: the sum of
        // |entries| of the 2×2 product. A_prev = [[1, 0], [0, 1]], A_new = [[1, -2], [3, 4]]:
        // the product is A_new itself, Σ|·| = 1 + 2 + 3 + 4 = 10.
        let prev = BTreeMap::from([("l0".to_string(), t2(&[1.0, 0.0, 0.0, 1.0], 2, 2))]);
        let new = vec![(
            "l0".to_string(),
            t2(&[1.0, -2.0, 3.0, 4.0], 2, 2),
            t2(&[0.0, 0.0], 2, 1),
        )];
        assert!((value(olora_terms(&prev, &new).0) - 10.0).abs() < 1e-6);
        // A layer without earlier factors adds to the norms only; no earlier task, no orth.
        let (orth, l2) = olora_terms(&BTreeMap::new(), &new);
        assert!(orth.is_none());
        assert!((value(l2) - 30f32.sqrt()).abs() < 1e-5);
    }
}
