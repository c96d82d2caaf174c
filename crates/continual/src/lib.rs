//! The continual fine-tuning engine: a model trained on a stream of tasks, evaluated on every
//! task after every stage, with the accuracy matrix and the forgetting metrics derived from it.
#![warn(missing_docs)]

pub mod metrics;
