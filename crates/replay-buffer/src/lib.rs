//! Replay buffers, samplers and schedulers for continual fine-tuning (fixed interleaved,
//! loss-driven, accuracy-supervised and MSSR replay), behind small traits. Pure Rust.
//!
//! Three small traits, one concern each (METHODS.md section 2: schedulers decide WHEN,
//! samplers decide WHAT):
//!
//! - [`Buffer`]: storage of [`SampleRef`]s (task id + index, never the data), with capacity
//!   ([`CapacityPolicy`]) and insertion ([`InsertionPolicy`]) policies; implemented by
//!   [`ReplayBuffer`], which also keeps the per-sample MSSR [`MemoryState`] aligned with its
//!   slots.
//! - [`Sampler`]: which buffered samples to replay, drawn without replacement
//!   ([`UniformSampler`], [`LossPrioritisedSampler`], [`StrengthSampler`]).
//! - [`Scheduler`]: when to replay, called from hooks named as in Avalanche
//!   (`before_training_exp`, `before_update`, `after_update`, `after_training_exp`); it
//!   receives [`Signals`], answers with a [`ReplayDecision`] (batches and a [`ReplayReason`]),
//!   and states the [`ExtraPasses`] it needs (probe forwards, evaluations).
//!
//! [`Replay`] bundles a buffer and a scheduler and calls the hooks in order; all state,
//! RNGs included, serialises with serde.
//!
//! A new replay strategy is one file implementing [`Scheduler`] (see
//! `docs/replay-strategies.md` and `examples/custom_strategy.rs`).
//!
//! [`MemoryState`]: memory_strength::MemoryState
#![warn(missing_docs)]

mod buffer;
mod idmap;
mod replay;
mod rng;
mod sample;
mod sampler;
mod scheduler;
pub mod schedulers;
mod weighted;

pub use buffer::{
    Buffer, CapacityPolicy, Insertion, InsertionPolicy, ReplayBuffer, ReplayBufferConfig,
};
pub use memory_strength;
pub use replay::{Replay, ReplayCost};
pub use rng::ReplayRng;
pub use sample::{SampleRef, Slot, SlotLoss, TaskScore, TeacherTopK};
pub use sampler::{
    Candidates, LossPrioritisedSampler, Sampler, SamplerKind, StrengthSampler, UniformSampler,
    probabilities,
};
pub use scheduler::{
    EvalRequest, ExtraPasses, HookPoint, PastTasks, ReplayBatch, ReplayDecision, ReplayReason,
    ReplaySize, Scheduler, Signals,
};
pub use schedulers::{AnyScheduler, SchedulerConfig};
pub use weighted::{WeightedReservoir, weighted_sample_without_replacement};
