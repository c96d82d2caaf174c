//! LoRA adapters for linear layers on Burn.
//!
//! The adapted forward pass is `y = x·W (+ b) + s·((dropout(x)·A)·B)`: the low-rank path is two
//! thin matrix products and the dense `W + s·A·B` is never formed (Burn's own `apply_lora` forms
//! it on every forward, which costs a full `in × out` matrix per layer per step).
//!
//! Several named adapters can live in one layer (one per task, say); at most one is active, and
//! all can be switched off at run time so that the same weights give the reference model for a
//! KL penalty without a second copy.
#![warn(missing_docs)]

mod linear;

pub use linear::{AdapterInit, LoraAdapter, LoraLinear, LoraSettings};

/// A model whose linear layers can carry adapters. Implemented by the backbone's `CausalLm`;
/// paths are checkpoint keys without the `.weight` suffix (`model.layers.0.self_attn.q_proj`).
pub trait LoraTargets {
    /// Calls `f` with every adaptable linear layer and its path.
    fn for_each_linear_mut(&mut self, f: &mut dyn FnMut(&str, &mut LoraLinear));
    /// Calls `f` with every adaptable linear layer and its path.
    fn for_each_linear(&self, f: &mut dyn FnMut(&str, &LoraLinear));
}
