//! Sharpness-aware optimisation for Burn: SAM with `k` ascent steps, XSAM, and sharpness measures.
//!
//! - [`SamConfig`] / [`XsamConfig`] wrap any base optimizer ([`BaseOptimizer`], implemented for
//!   Burn's `ModuleOptimizer`) into a [`SharpnessAware`] optimizer whose
//!   [`step`](SharpnessAware::step) takes the model and a closure computing the current batch's
//!   loss at the weights it is given. Only trainable parameters (those with a gradient: the LoRA
//!   factors when LoRA is on) are perturbed; the base optimizer steps from the unperturbed weights.
//! - [`sam_sharpness`] and [`LandscapeConfig`] measure flatness for the report.
//!
//! The algorithm is `shared/docs/METHODS.md` section 4 (XSAM: arXiv 2603.10048, reference code
//! Cccjl219/XSAM). All vector algebra stays on the model's device.
#![warn(missing_docs)]

pub mod measures;
pub mod params;
pub mod sam;

pub use measures::{FilterAxis, LandscapeConfig, LandscapeSlice, SamSharpness, sam_sharpness};
pub use params::{ParamVector, shifted};
pub use sam::{
    BaseOptimizer, SamConfig, SharpnessAware, SharpnessAwareRecord, StepLog, StepStats, XsamConfig,
    alpha_grid, angle_between_unit, slerp, slerp_coefficients,
};
