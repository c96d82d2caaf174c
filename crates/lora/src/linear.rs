//! The adapted linear layer.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Distribution, Tensor};
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
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            use_rslora: false,
            init: AdapterInit::KaimingUniform,
        }
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

impl LoraAdapter {
    /// An adapter from given factors `a: [in, r]` and `b: [r, out]`, trainable.
    ///
    /// `ids` fixes the parameter ids of `a` and `b`. Optimizer state is keyed by parameter id,
    /// so ids derived from the layer path and adapter name (see [`adapter_param_ids`]) let a
    /// saved optimizer state find its adapter again after the adapter is reloaded from disk.
    pub fn new(
        name: &str,
        settings: LoraSettings,
        a: Tensor<2>,
        b: Tensor<2>,
        ids: Option<(ParamId, ParamId)>,
    ) -> Self {
        let (ida, idb) = ids.unwrap_or_else(|| (ParamId::new(), ParamId::new()));
        Self {
            // `Param::set_require_grad` (not `Tensor::require_grad`): on a device without autodiff
            // it records the setting instead of panicking, and `train()` applies it later.
            a: Param::initialized(ida, a).set_require_grad(true),
            b: Param::initialized(idb, b).set_require_grad(true),
            name: name.to_string(),
            settings,
        }
    }

    /// A fresh adapter for a `[d_in, d_out]` weight: `A` drawn per [`AdapterInit`], `B = 0`.
    ///
    /// `B` starts at zero so that the adapted model equals the base model at step 0 (fine-tuning
    /// starts exactly where the pre-trained model is, and the first gradient reaches `B` only).
    pub fn init(
        name: &str,
        settings: &LoraSettings,
        d_in: usize,
        d_out: usize,
        device: &Device,
        ids: Option<(ParamId, ParamId)>,
    ) -> Self {
        let r = settings.rank;
        let a = match settings.init {
            // PEFT: kaiming_uniform_(a=sqrt(5)) on a [r, in] weight, i.e. bound = 1/sqrt(in).
            AdapterInit::KaimingUniform => {
                let bound = 1.0 / (d_in as f64).sqrt();
                Tensor::<2>::random([d_in, r], Distribution::Uniform(-bound, bound), device)
            }
            AdapterInit::Gaussian => {
                Tensor::<2>::random([d_in, r], Distribution::Normal(0.0, 1.0 / r as f64), device)
            }
        };
        let b = Tensor::<2>::zeros([r, d_out], device);
        Self::new(name, settings.clone(), a, b, ids)
    }

    /// Rank of the factors as stored (may differ from `settings.rank` after a PEFT `rank_pattern`).
    pub fn rank(&self) -> usize {
        self.a.shape().dims::<2>()[1]
    }

    /// `s·A·B`, `[in, out]`: the dense update (used only by merge/unmerge).
    pub fn delta(&self) -> Tensor<2> {
        self.a
            .val()
            .matmul(self.b.val())
            .mul_scalar(self.settings.scale())
    }

    /// Number of trainable values (`r·(in + out)`).
    pub fn num_params(&self) -> usize {
        self.a.shape().num_elements() + self.b.shape().num_elements()
    }

    /// Sets whether `a` and `b` require gradients.
    pub fn set_trainable(&mut self, trainable: bool) {
        self.a = self.a.clone().set_require_grad(trainable);
        self.b = self.b.clone().set_require_grad(trainable);
    }
}

/// Parameter ids for adapter `name` on the layer at `path`: a hash of both, so the same adapter
/// loaded twice (or in another process) gets the same ids.
pub fn adapter_param_ids(path: &str, name: &str) -> (ParamId, ParamId) {
    (
        ParamId::from(fnv1a(&[path, name, "lora_A"])),
        ParamId::from(fnv1a(&[path, name, "lora_B"])),
    )
}

/// FNV-1a over the parts, with a separator byte between them.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= byte as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
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
    /// Index of the active adapter, if any. Change it with [`set_active`](Self::set_active),
    /// which keeps a merged weight consistent.
    #[module(skip)]
    pub active: Option<usize>,
    /// Run-time switch: when false the layer computes the base model only. Change it with
    /// [`set_adapters_enabled`](Self::set_adapters_enabled), which keeps a merged weight consistent.
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

    /// Forward pass over the last dimension: `x·W (+ b) + s·((dropout(x)·A)·B)`.
    ///
    /// The low-rank path is two thin products, `[.., in]·[in, r]` then `[.., r]·[r, out]`: it
    /// costs `r·(in + out)` multiply-adds per token where the dense `W + s·A·B` would cost an
    /// extra `in·r·out` per step plus an `[in, out]` temporary (and its gradient) per layer.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut y = x.clone().matmul(self.weight.val().unsqueeze());
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze();
        }
        match self.active_adapter() {
            Some(adapter) if !self.merged => {
                let s = adapter.settings.scale();
                let a = adapter.a.val();
                // Dropout only while this adapter is being trained (autodiff on, factors tracked).
                let x = if adapter.settings.dropout > 0.0 && x.is_autodiff() && a.is_require_grad()
                {
                    let keep = 1.0 - adapter.settings.dropout;
                    let m = x.random_like(Distribution::Bernoulli(keep));
                    (x * m).div_scalar(keep)
                } else {
                    x
                };
                // The scale is applied to the rank-r intermediate `[.., r]`, not to the `[.., out]`
                // update: the same product, one pass over r instead of `out` columns.
                let low = x
                    .matmul(a.unsqueeze())
                    .mul_scalar(s)
                    .matmul(adapter.b.val().unsqueeze());
                y + low
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

    /// The adapter with this name, if the layer has one.
    pub fn adapter(&self, name: &str) -> Option<&LoraAdapter> {
        self.adapters.iter().find(|a| a.name == name)
    }

    /// The adapter with this name, mutably.
    pub fn adapter_mut(&mut self, name: &str) -> Option<&mut LoraAdapter> {
        self.adapters.iter_mut().find(|a| a.name == name)
    }

    /// Adds a new adapter (trainable, `B = 0`) with random parameter ids and makes it active.
    pub fn add_adapter(&mut self, name: &str, settings: &LoraSettings, device: &Device) {
        let [d_in, d_out] = self.dims();
        self.insert_adapter(LoraAdapter::init(name, settings, d_in, d_out, device, None));
    }

    /// Adds an adapter from given factors `a: [in, r]`, `b: [r, out]` and makes it active.
    pub fn push_adapter(&mut self, name: &str, settings: LoraSettings, a: Tensor<2>, b: Tensor<2>) {
        self.insert_adapter(LoraAdapter::new(name, settings, a, b, None));
    }

    /// Adds `adapter` (replacing one of the same name) and makes it active.
    ///
    /// # Panics
    /// When the factors' shapes do not fit the layer.
    pub fn insert_adapter(&mut self, adapter: LoraAdapter) {
        let [d_in, d_out] = self.dims();
        let [ai, ar] = adapter.a.shape().dims();
        let [br, bo] = adapter.b.shape().dims();
        assert!(
            ai == d_in && bo == d_out && ar == br,
            "adapter {:?}: A [{ai}, {ar}], B [{br}, {bo}] do not fit a [{d_in}, {d_out}] layer",
            adapter.name
        );
        self.unmerge();
        self.adapters.retain(|ad| ad.name != adapter.name);
        self.adapters.push(adapter);
        self.active = Some(self.adapters.len() - 1);
    }

    /// Removes the named adapter; returns it when the layer had one.
    pub fn remove_adapter(&mut self, name: &str) -> Option<LoraAdapter> {
        let i = self.adapters.iter().position(|a| a.name == name)?;
        self.unmerge();
        let active_name = self
            .active
            .and_then(|j| self.adapters.get(j))
            .map(|a| a.name.clone());
        let removed = self.adapters.remove(i);
        self.active = active_name.and_then(|n| self.adapters.iter().position(|a| a.name == n));
        Some(removed)
    }

    /// Makes the named adapter active; returns false when the layer has no such adapter (the
    /// layer then has no active adapter).
    pub fn set_active(&mut self, name: &str) -> bool {
        let i = self.adapters.iter().position(|a| a.name == name);
        if i != self.active {
            self.unmerge();
        }
        self.active = i;
        i.is_some()
    }

    /// Switches the adapters on or off without touching them. A merged layer is unmerged
    /// first, so that "off" always means the base weight.
    pub fn set_adapters_enabled(&mut self, enabled: bool) {
        if !enabled {
            self.unmerge();
        }
        self.adapters_enabled = enabled;
    }

    /// Folds the active adapter into the base weight (`W ← W + s·A·B`) for faster inference.
    /// While merged, the adapter's factors take no part in the forward pass (so they get no
    /// gradient): merge for inference, unmerge before training on.
    pub fn merge(&mut self) {
        if self.merged {
            return;
        }
        if let Some(delta) = self.active_adapter().map(LoraAdapter::delta) {
            let w = self.weight.val().detach() + delta.detach();
            self.weight = self.weight.clone().map(|_| w);
            self.merged = true;
        }
    }

    /// Undoes [`merge`](Self::merge) (`W ← W - s·A·B`), exact up to float rounding.
    pub fn unmerge(&mut self) {
        if !self.merged {
            return;
        }
        if let Some(delta) = self
            .active
            .and_then(|i| self.adapters.get(i))
            .map(LoraAdapter::delta)
        {
            let w = self.weight.val().detach() - delta.detach();
            self.weight = self.weight.clone().map(|_| w);
        }
        self.merged = false;
    }
}

#[cfg(test)]
/// Builds a `[rows, cols]` tensor from row-major values.
pub(crate) fn tensor_2d(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(burn::tensor::TensorData::new(values, [rows, cols]), device)
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
        let settings = LoraSettings {
            rank: 2,
            alpha: 4.0,
            ..Default::default()
        };
        layer.add_adapter("t1", &settings, &device);
        let fresh = layer.forward(x.clone());
        base.to_data()
            .assert_approx_eq::<f32>(&fresh.to_data(), Default::default());

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
        let got: Vec<f32> = y.clone().try_into_vec_as::<f32>().unwrap();
        for (g, e) in got[..4].iter().zip(expected0) {
            assert!((g - e as f32).abs() < 1e-5, "{g} vs {e}");
        }

        // Switching adapters off gives the base model back; merge/unmerge are inverses.
        layer.adapters_enabled = false;
        layer
            .forward(x.clone())
            .to_data()
            .assert_approx_eq::<f32>(&base.to_data(), Default::default());
        layer.adapters_enabled = true;
        layer.merge();
        layer
            .forward(x.clone())
            .to_data()
            .assert_approx_eq::<f32>(&y.to_data(), Default::default());
        layer.unmerge();
        layer.adapters_enabled = false;
        layer
            .forward(x)
            .to_data()
            .assert_approx_eq::<f32>(&base.to_data(), Default::default());
    }
}
