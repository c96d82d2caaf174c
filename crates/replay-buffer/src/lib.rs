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
//! ```
//! use replay_buffer::schedulers::MssrConfig;
//! use replay_buffer::{CapacityPolicy, HookPoint, Replay, ReplayBufferConfig, SampleRef};
//! use replay_buffer::{SchedulerConfig, Signals, SlotLoss};
//!
//! let buffer = ReplayBufferConfig {
//!     capacity: CapacityPolicy::PerTask { quota: 100 },
//!     ..Default::default()
//! }
//! .init();
//! let mut replay = Replay::new(buffer, SchedulerConfig::Mssr(MssrConfig::default()).init());
//! // Task 0: steps 1..=50, each offering the sample it trained on.
//! replay.before_training_exp(0);
//! for step in 1..=50 {
//!     let decision = replay.before_update(&Signals::at(step));
//!     assert!(decision.batches.is_empty()); // nothing to replay yet
//!     replay.after_update(&Signals::at(step));
//!     replay.offer(SampleRef::new(0, step as u32), 0.3, step, None);
//! }
//! // At the task's end MSSR asks for a forward-only probe of its buffered samples (the reference
//! // of its relative thresholds); the engine runs it and passes the losses.
//! let probe = replay.wants(HookPoint::AfterTrainingExp { task: 0, step: 50 }).probe.unwrap();
//! let at_end: Vec<SlotLoss> = probe.iter().map(|&slot| SlotLoss { slot, loss: 0.25 }).collect();
//! replay.after_training_exp(0, &Signals { step: 50, probe_losses: &at_end, ..Default::default() });
//! // Task 1: task 0 is first due at step 50 + I_0 = 54.
//! replay.before_training_exp(1);
//! let decision = replay.before_update(&Signals::at(54));
//! let batch = &decision.batches[0];
//! assert_eq!(batch.task, Some(0));
//! // The engine trains on batch.samples and reports their losses.
//! let losses: Vec<SlotLoss> = batch.slots.iter().map(|&slot| SlotLoss { slot, loss: 0.2 }).collect();
//! replay.after_update(&Signals { step: 54, replay_losses: &losses, ..Default::default() });
//! assert_eq!(replay.cost.replayed_samples, 8);
//! ```
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
pub mod strategy;
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
    EndLosses, EvalRequest, ExtraPasses, HookPoint, PastTasks, ReplayBatch, ReplayDecision,
    ReplayReason, ReplaySize, Scheduler, Signals,
};
pub use schedulers::{AnyScheduler, SchedulerConfig};
pub use strategy::{Strategy, StrategyConfig, StrategyConfigError, StrategyInit};
pub use weighted::{WeightedReservoir, weighted_sample_without_replacement};
