//! The adapted linear layer.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// How a new adapter's `A` factor is initialised. `B` always starts at zero so that a fresh
/// adapter leaves the model's outputs unchanged (the first step starts from the base model).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum AdapterInit {
    /// PEFT's default: Kaiming-uniform `A` with `a = sqrt(5)`, i.e. `U(-1/sqrt(in), 1/sqrt(in))`.
    #[default]
    KaimingUniform,
    /// Gaussian `A` with standard deviation `1/r` (PEFT's `init_lora_weights="gaussian"`).
    Gaussian,
}

/// The hyper-parameters of one adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSettings {
    /// Rank `r` of the update.
    pub rank: usize,
    /// Scaling numerator `alpha`: `s = alpha / r`, or `alpha / sqrt(r)` with rsLoRA.
    pub alpha: f64,
    /// Dropout probability on the adapter's input (training only).
    pub dropout: f64,
    /// rsLoRA scaling `alpha / sqrt(r)` (Kalajdzievski 2023) instead of `alpha / r`.
    pub use_rslora: bool,
    /// Initialisation of `A`.
    pub init: AdapterInit,
}

impl Default for LoraSettings {
    fn default() -> Self {
        Self { rank: 8, alpha: 16.0, dropout: 0.0, use_rslora: false, init: AdapterInit::KaimingUniform }
    }
}

impl LoraSettings {
    /// The factor `s` that multiplies `x·A·B`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }
}

/// One low-rank update `s·A·B`, stored as `a: [in, r]` and `b: [r, out]` (PEFT stores the
/// transposes: `lora_A.weight` is `[r, in]`, `lora_B.weight` is `[out, r]`).
#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// Down projection `[in, r]`.
    pub a: Param<Tensor<2>>,
    /// Up projection `[r, out]`, zero at creation.
    pub b: Param<Tensor<2>>,
    /// Adapter name (for example the task it was trained on).
    #[module(skip)]
    pub name: String,
    /// Its hyper-parameters.
    #[module(skip)]
    pub settings: LoraSettings,
}

/// A linear layer `y = x·W + b` whose weight is stored `[in, out]`, with optional LoRA adapters.
///
/// Checkpoints store `W` as `[out, in]` (PyTorch's convention); loaders transpose once.
#[derive(Module, Debug)]
pub struct LoraLinear {
    /// Base weight `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// Optional bias `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Adapters, in the order they were added.
    pub adapters: Vec<LoraAdapter>,
    /// Index of the active adapter, if any.
    #[module(skip)]
    pub active: Option<usize>,
    /// Run-time switch: when false the layer computes the base model only.
    #[module(skip)]
    pub adapters_enabled: bool,
    /// Whether the active adapter is currently merged into `weight`.
    #[module(skip)]
    pub merged: bool,
}

impl LoraLinear {
    /// A layer from a base weight `[in, out]` and an optional bias `[out]`.
    pub fn new(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self {
            weight: Param::initialized(ParamId::new(), weight),
            bias: bias.map(|b| Param::initialized(ParamId::new(), b)),
            adapters: Vec::new(),
            active: None,
            adapters_enabled: true,
            merged: false,
        }
    }

    /// `[in, out]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.shape().dims()
    }

    /// Forward pass over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut y = x.clone().matmul(self.weight.val().unsqueeze());
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze();
        }
        match self.active_adapter() {
            Some(adapter) if !self.merged => {
                let s = adapter.settings.scale();
                let x = if adapter.settings.dropout > 0.0 && x.is_require_grad() {
                    burn::tensor::activation::dropout(x, adapter.settings.dropout)
                } else {
                    x
                };
                // Two thin products: [.., in]·[in, r] then [.., r]·[r, out].
                let low = x.matmul(adapter.a.val().unsqueeze()).matmul(adapter.b.val().unsqueeze());
                y + low.mul_scalar(s)
            }
            _ => y,
        }
    }

    /// The adapter that takes part in the forward pass now, if any.
    pub fn active_adapter(&self) -> Option<&LoraAdapter> {
        if !self.adapters_enabled {
            return None;
        }
        self.active.and_then(|i| self.adapters.get(i))
    }

    /// Adds a new adapter (trainable, `B = 0`) and makes it active.
    pub fn add_adapter(&mut self, name: &str, settings: &LoraSettings, device: &Device) {
        let [d_in, d_out] = self.dims();
        let r = settings.rank;
        let a = match settings.init {
            // kaiming_uniform_(a=sqrt(5)) on a [r, in] weight: bound = 1/sqrt(in).
            AdapterInit::KaimingUniform => {
                let bound = 1.0 / (d_in as f64).sqrt();
                Tensor::<2>::random([d_in, r], Distribution::Uniform(-bound, bound), device)
            }
            AdapterInit::Gaussian => {
                Tensor::<2>::random([d_in, r], Distribution::Normal(0.0, 1.0 / r as f64), device)
            }
        };
        let b = Tensor::<2>::zeros([r, d_out], device);
        self.push_adapter(name, settings.clone(), a, b);
    }

    /// Adds an adapter from given factors `a: [in, r]`, `b: [r, out]` and makes it active.
    pub fn push_adapter(&mut self, name: &str, settings: LoraSettings, a: Tensor<2>, b: Tensor<2>) {
        self.adapters.retain(|ad| ad.name != name);
        self.adapters.push(LoraAdapter {
            a: Param::initialized(ParamId::new(), a.require_grad()),
            b: Param::initialized(ParamId::new(), b.require_grad()),
            name: name.to_string(),
            settings,
        });
        self.active = Some(self.adapters.len() - 1);
    }

    /// Makes the named adapter active; returns false when the layer has no such adapter.
    pub fn set_active(&mut self, name: &str) -> bool {
        match self.adapters.iter().position(|a| a.name == name) {
            Some(i) => {
                self.active = Some(i);
                true
            }
            None => false,
        }
    }

    fn delta(&self) -> Option<Tensor<2>> {
        let adapter = self.active.and_then(|i| self.adapters.get(i))?;
        let s = adapter.settings.scale();
        Some(adapter.a.val().matmul(adapter.b.val()).mul_scalar(s))
    }

    /// Folds the active adapter into the base weight (`W ← W + s·A·B`) for faster inference.
    pub fn merge(&mut self) {
        if self.merged {
            return;
        }
        if let Some(delta) = self.delta() {
            let w = self.weight.val().detach() + delta.detach();
            self.weight = Param::initialized(self.weight.id, w);
            self.merged = true;
        }
    }

    /// Undoes [`merge`](Self::merge) (`W ← W - s·A·B`).
    pub fn unmerge(&mut self) {
        if !self.merged {
            return;
        }
        if let Some(delta) = self.delta() {
            let w = self.weight.val().detach() - delta.detach();
            self.weight = Param::initialized(self.weight.id, w);
        }
        self.merged = false;
    }
}

/// Builds a `[rows, cols]` tensor from row-major values.
pub(crate) fn tensor_2d(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_adapter_leaves_output_unchanged_and_low_rank_path_matches_dense_update() {
        let device = Device::flex();
        let w = tensor_2d((0..12).map(|i| i as f32 * 0.1).collect(), 3, 4, &device);
        let mut layer = LoraLinear::new(w, None);
        let x = tensor_2d(vec![1.0, -2.0, 0.5, 0.25, 3.0, -1.0], 2, 3, &device);
        let base = layer.forward(x.clone());
        let settings = LoraSettings { rank: 2, alpha: 4.0, ..Default::default() };
        layer.add_adapter("t1", &settings, &device);
        let fresh = layer.forward(x.clone());
        base.to_data().assert_approx_eq::<f32>(&fresh.to_data(), Default::default());

        // Non-zero B: y = x·W + (alpha/r)·x·A·B, checked against the dense form by hand.
        let a = tensor_2d(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 3, 2, &device);
        let b = tensor_2d(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], 2, 4, &device);
        layer.push_adapter("t2", settings.clone(), a, b);
        let y = layer.forward(x.clone());
        // x row 0 = [1,-2,0.5]: x·A = [1.5, -1.5]; ·B = [1.5, -1.5, 0, 0]; ·s=2 → [3, -3, 0, 0].
        let expected0 = [
            0.0 * 1.0 + 0.4 * -2.0 + 0.8 * 0.5 + 3.0,
            0.1 * 1.0 + 0.5 * -2.0 + 0.9 * 0.5 - 3.0,
            0.2 * 1.0 + 0.6 * -2.0 + 1.0 * 0.5,
            0.3 * 1.0 + 0.7 * -2.0 + 1.1 * 0.5,
        ];
        let got: Vec<f32> = y.to_data().to_vec().unwrap();
        for (g, e) in got[..4].iter().zip(expected0) {
            assert!((g - e as f32).abs() < 1e-5, "{g} vs {e}");
        }

        // Switching adapters off gives the base model back; merge/unmerge are inverses.
        layer.adapters_enabled = false;
        layer.forward(x.clone()).to_data().assert_approx_eq::<f32>(&base.to_data(), Default::default());
        layer.adapters_enabled = true;
        layer.merge();
        layer.forward(x.clone()).to_data().assert_approx_eq::<f32>(&y.to_data(), Default::default());
        layer.unmerge();
        layer.adapters_enabled = false;
        layer.forward(x).to_data().assert_approx_eq::<f32>(&base.to_data(), Default::default());
    }
}
