//! LoRA adapters for linear layers on Burn: efficient low-rank forward, named adapters that can
//! be switched, merged and trained, and PEFT-compatible adapter files.
//!
//! The adapted forward pass is `y = x·W (+ b) + s·((dropout(x)·A)·B)`: the low-rank path is two
//! thin matrix products and the dense `W + s·A·B` is never formed (Burn's own `apply_lora` forms
//! it on every forward, which costs a full `in × out` matrix per layer per step; see
//! `docs/lora.md` for the measured difference).
//!
//! Several named adapters can live in one layer (one per task, say); at most one is active, and
//! all can be switched off at run time so that the same weights give the reference model for a
//! KL penalty without a second copy.
//!
//! ```no_run
//! # fn demo<M: burn::module::Module + lora::LoraTargets>(model: M, device: &burn::tensor::Device) -> Result<(), lora::LoraError> {
//! use lora::{LoraConfig, LoraSettings, Preset};
//! let config = LoraConfig::new(LoraSettings { rank: 8, alpha: 16.0, ..Default::default() }, Preset::All);
//! let mut model = lora::freeze_base(model);            // nothing trains...
//! lora::add_adapter(&mut model, "task1", &config, device); // ...but the new adapter
//! // train ... then:
//! lora::save_peft(&model, "task1", std::path::Path::new("out/task1"), None)?;
//! lora::set_adapters_enabled(&mut model, false);       // the base model again, same weights
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod error;
mod linear;
mod peft;
mod target;

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

pub use error::LoraError;
pub use linear::{AdapterInit, LoraAdapter, LoraLinear, LoraSettings, adapter_param_ids};
pub use peft::{PeftConfig, load_peft, read_peft_config, save_peft};
pub use target::{Preset, TargetModules};

/// A model whose linear layers can carry adapters. Implemented by the backbone's `CausalLm`;
/// paths are checkpoint keys without the `.weight` suffix (`model.layers.0.self_attn.q_proj`).
pub trait LoraTargets {
    /// Calls `f` with every adaptable linear layer and its path.
    fn for_each_linear_mut(&mut self, f: &mut dyn FnMut(&str, &mut LoraLinear));
    /// Calls `f` with every adaptable linear layer and its path.
    fn for_each_linear(&self, f: &mut dyn FnMut(&str, &LoraLinear));
}

/// What to adapt and how: the hyper-parameters and the layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank, alpha, dropout, rsLoRA, initialisation.
    pub settings: LoraSettings,
    /// Which layers get the adapter.
    pub targets: TargetModules,
}

impl LoraConfig {
    /// A config from settings and targets (a [`Preset`] or a [`TargetModules`]).
    pub fn new(settings: LoraSettings, targets: impl Into<TargetModules>) -> Self {
        Self {
            settings,
            targets: targets.into(),
        }
    }
}

impl Default for LoraConfig {
    /// Rank 8, alpha 16, every attention and MLP projection.
    fn default() -> Self {
        Self::new(LoraSettings::default(), Preset::All)
    }
}

/// Adds a fresh adapter `name` (`B = 0`, trainable) to every layer `config.targets` selects and
/// makes it the active one there. Parameter ids derive from the layer path and the name (see
/// [`adapter_param_ids`]). Returns the number of layers adapted.
pub fn add_adapter<M: LoraTargets>(
    model: &mut M,
    name: &str,
    config: &LoraConfig,
    device: &Device,
) -> usize {
    let mut n = 0;
    model.for_each_linear_mut(&mut |path, layer| {
        if config.targets.matches(path) {
            let [d_in, d_out] = layer.dims();
            let ids = adapter_param_ids(path, name);
            layer.insert_adapter(LoraAdapter::init(
                name,
                &config.settings,
                d_in,
                d_out,
                device,
                Some(ids),
            ));
            n += 1;
        }
    });
    n
}

/// Makes `name` the active adapter in every layer that has it; layers without it get no active
/// adapter. Errors when no layer has it.
pub fn set_active_adapter<M: LoraTargets>(model: &mut M, name: &str) -> Result<(), LoraError> {
    let mut found = false;
    model.for_each_linear_mut(&mut |_, layer| found |= layer.set_active(name));
    if found {
        Ok(())
    } else {
        Err(LoraError::NoSuchAdapter(name.to_string()))
    }
}

/// Switches every adapter on or off at run time (off = the base model; nothing is copied).
pub fn set_adapters_enabled<M: LoraTargets>(model: &mut M, enabled: bool) {
    model.for_each_linear_mut(&mut |_, layer| layer.set_adapters_enabled(enabled));
}

/// Runs `f` on the model with its adapters switched off, then switches them back on.
pub fn with_adapters_disabled<M: LoraTargets, R>(model: &mut M, f: impl FnOnce(&M) -> R) -> R {
    set_adapters_enabled(model, false);
    let out = f(model);
    set_adapters_enabled(model, true);
    out
}

/// Merges the active adapter into the base weight of every layer (for inference).
pub fn merge_adapters<M: LoraTargets>(model: &mut M) {
    model.for_each_linear_mut(&mut |_, layer| layer.merge());
}

/// Undoes [`merge_adapters`].
pub fn unmerge_adapters<M: LoraTargets>(model: &mut M) {
    model.for_each_linear_mut(&mut |_, layer| layer.unmerge());
}

/// Removes adapter `name` from every layer; returns how many layers had it.
pub fn remove_adapter<M: LoraTargets>(model: &mut M, name: &str) -> usize {
    let mut n = 0;
    model.for_each_linear_mut(&mut |_, layer| n += layer.remove_adapter(name).is_some() as usize);
    n
}

/// The names of all adapters in the model, in order of first appearance.
pub fn adapter_names<M: LoraTargets>(model: &M) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    model.for_each_linear(&mut |_, layer| {
        for a in &layer.adapters {
            if !names.contains(&a.name) {
                names.push(a.name.clone());
            }
        }
    });
    names
}

/// Number of values in adapter `name` over all layers.
pub fn adapter_num_params<M: LoraTargets>(model: &M, name: &str) -> usize {
    let mut n = 0;
    model.for_each_linear(&mut |_, layer| {
        n += layer.adapter(name).map_or(0, LoraAdapter::num_params)
    });
    n
}

/// Makes adapter `name` trainable (or not) in every layer; other parameters are untouched.
pub fn set_adapter_trainable<M: LoraTargets>(model: &mut M, name: &str, trainable: bool) {
    model.for_each_linear_mut(&mut |_, layer| {
        if let Some(a) = layer.adapter_mut(name) {
            a.set_trainable(trainable);
        }
    });
}

/// Freezes every parameter of the model (base weights, norms, embeddings and all adapters).
/// Adapters added afterwards with [`add_adapter`] are trainable; to train an existing one, call
/// [`set_adapter_trainable`]. This is the LoRA contract: only adapter factors get gradients
/// (only parameters that require grad appear in `GradientsParams::from_grads`, so the optimizer
/// never touches the rest).
pub fn freeze_base<M: Module>(model: M) -> M {
    model.no_grad()
}
