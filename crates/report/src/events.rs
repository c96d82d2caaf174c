//! The lines of a run's `log.jsonl` as one typed enum: the engine (`continual`) writes the
//! events it logs itself with it, and [`crate::load_runs`] reads them back with it.
//!
//! Each line is a JSON object whose `type` names the variant. Replay strategies and method
//! plugins add lines of their own types (`ewc`, `agem`, `derpp`, `olora`, a researcher's own);
//! those are plain JSON objects outside this enum, and readers skip types they do not know.
//! MSSR's `interval` lines are written by the strategy (`replay_buffer`) in the
//! [`IntervalLine`] form, which the engine's tests check. Fields added after runs were
//! committed default when absent, so older logs still load.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One line of `log.jsonl` written by the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogEvent {
    /// An optimizer step.
    Step(StepLine),
    /// A replay batch mixed into a step.
    Replay(ReplayLine),
    /// MSSR's interval of a task after a replay.
    Interval(IntervalLine),
    /// Every buffered sample's memory strength at a stage's end.
    Strengths(StrengthsLine),
    /// A SAM/XSAM step's sharpness record.
    Sharpness(SharpnessLine),
    /// The sharpness measured after a stage on the run's fixed probe set.
    SharpnessProbe(SharpnessProbeLine),
    /// A loss-landscape slice after a stage.
    Landscape(LandscapeLine),
    /// The end of a training stage.
    Stage(StageLine),
    /// An evaluation row.
    Eval(EvalLine),
    /// A divergence rollback.
    Rollback(RollbackLine),
}

impl LogEvent {
    /// The event as a JSON object (with its `type`).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("log events serialise")
    }
}

/// `step`: what one optimizer step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLine {
    /// Task index.
    pub task: usize,
    /// Global optimizer step (from 0).
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Total loss.
    pub loss: f64,
    /// SFT term.
    pub sft: f64,
    /// KL term (unweighted), if the method has one.
    #[serde(default)]
    pub kl: Option<f64>,
    /// Corpus next-token term (unweighted), on steps with a corpus batch.
    #[serde(default)]
    pub ntp: Option<f64>,
    /// Every method plugin's term by name (unweighted).
    #[serde(default)]
    pub terms: BTreeMap<String, f64>,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Samples replayed in the step.
    pub replayed: usize,
    /// Samples the strategy was allowed to replay (`None`: no budget).
    #[serde(default)]
    pub allowance: Option<usize>,
    /// Real tokens in the batch.
    pub tokens: u64,
    /// Real tokens of the corpus batch.
    #[serde(default)]
    pub corpus_tokens: u64,
    /// Forward passes of the step (the objective's and the plugins').
    #[serde(default)]
    pub forwards: u64,
    /// Backward passes of the step.
    #[serde(default)]
    pub backwards: u64,
    /// Joint training: the task batch's samples per source task (keys are task indices).
    /// Left out under sequential training, where every task sample is the stage's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trained_by_task: BTreeMap<String, u64>,
}

/// `replay`: one replay batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayLine {
    /// Global step.
    pub step: u64,
    /// Source task, `None` when the batch mixes tasks.
    #[serde(default)]
    pub task: Option<usize>,
    /// Samples in the batch.
    pub n: u64,
    /// Samples per source task.
    #[serde(default)]
    pub samples_by_task: BTreeMap<String, u64>,
    /// Why (the strategy's `ReplayReason`, an object with a `kind`).
    #[serde(default)]
    pub reason: Option<Value>,
}

/// `interval`: MSSR's clock of one task after a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalLine {
    /// Global step.
    pub step: u64,
    /// Task index.
    pub task: usize,
    /// The interval `I_d` in steps.
    pub interval: f64,
    /// The step it is next due.
    #[serde(default)]
    pub next_due: Option<u64>,
    /// Mean memory strength of the replayed batch.
    #[serde(default)]
    pub mean_strength: Option<f64>,
    /// That strength relative to the task's end-of-task reference.
    #[serde(default)]
    pub relative_strength: Option<f64>,
}

/// `strengths`: the memory strengths at a stage's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrengthsLine {
    /// Global step.
    pub step: u64,
    /// Stage (1-based).
    pub stage: usize,
    /// One per buffered sample (`null` where not finite).
    pub values: Vec<Option<f64>>,
}

/// `sharpness`: a SAM/XSAM step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharpnessLine {
    /// Global step.
    pub step: u64,
    /// `L_B(θ)`.
    #[serde(default)]
    pub loss: Option<f64>,
    /// `‖g‖`.
    #[serde(default)]
    pub grad_norm: Option<f64>,
    /// XSAM's `ψ`.
    #[serde(default)]
    pub psi: Option<f64>,
    /// XSAM's `α*`.
    #[serde(default)]
    pub alpha: Option<f64>,
}

/// `sharpness_probe`: the SAM sharpness after a stage on the run's fixed probe set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharpnessProbeLine {
    /// Stage (1-based) just trained.
    pub stage: usize,
    /// Global step.
    #[serde(default)]
    pub step: Option<u64>,
    /// `ρ`.
    pub rho: f64,
    /// Probe records.
    #[serde(default)]
    pub records: Option<u64>,
    /// `L(θ)`.
    pub loss: f64,
    /// `L(θ + ρ·g/‖g‖)`.
    #[serde(default)]
    pub perturbed_loss: Option<f64>,
    /// Their difference.
    pub sharpness: f64,
    /// `‖g‖`.
    #[serde(default)]
    pub grad_norm: Option<f64>,
}

/// `landscape`: the loss over a slice through the weights after a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandscapeLine {
    /// Stage (1-based) just trained.
    pub stage: usize,
    /// Global step.
    pub step: u64,
    /// Coordinates along the first direction.
    pub a: Vec<f64>,
    /// Coordinates along the second (`[0.0]` for a 1-D slice).
    pub b: Vec<f64>,
    /// `losses[i][j]` at `(a[i], b[j])`; `null` where not finite.
    pub losses: Vec<Vec<Option<f64>>>,
    /// Seed of the directions.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Records the loss was averaged over.
    #[serde(default)]
    pub records: Option<u64>,
}

/// `stage`: a training stage ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLine {
    /// Stage (1-based).
    pub stage: usize,
    /// Task trained in it.
    pub task: usize,
    /// Global step at its end.
    pub step: u64,
    /// Training seconds of the run so far.
    #[serde(default, alias = "seconds")]
    pub train_seconds: Option<f64>,
}

/// `eval`: an evaluation row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalLine {
    /// Row of the matrix (0: before training).
    pub stage: usize,
    /// Global step.
    pub step: u64,
    /// Score of every task.
    pub scores: Vec<f64>,
    /// Score of every probe.
    #[serde(default)]
    pub probe_scores: Vec<f64>,
    /// Seconds of the evaluation.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Seconds per task and probe (`null` for those scored together).
    #[serde(default)]
    pub task_seconds: Vec<Option<f64>>,
    /// Seconds of the generative tasks scored together.
    #[serde(default)]
    pub generative_seconds: Option<f64>,
    /// Every record's score, per task then per probe, in the order of `scores` and
    /// `probe_scores`: what a paired bootstrap over test records resamples. Empty in logs
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_record: Vec<Vec<f64>>,
}

/// `rollback`: a divergence rolled back to a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackLine {
    /// Task name.
    pub task: String,
    /// Step that diverged.
    pub step: u64,
    /// The non-finite term.
    pub term: String,
    /// Its value (`null`: NaN or infinite).
    #[serde(default)]
    pub value: Option<f64>,
    /// Step of the checkpoint returned to.
    pub to_step: u64,
    /// Rollbacks so far.
    pub rollback: usize,
    /// Learning-rate factor now.
    pub lr_scale: f64,
    /// Learning rate now.
    pub lr: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every variant, with every optional field set.
    fn every_variant() -> Vec<LogEvent> {
        vec![
            LogEvent::Step(StepLine {
                task: 1,
                step: 7,
                lr: 1e-3,
                loss: 2.5,
                sft: 2.25,
                kl: Some(0.5),
                ntp: Some(3.0),
                terms: BTreeMap::from([("kl".into(), 0.5), ("ewc".into(), 0.125)]),
                grad_norm: 0.75,
                replayed: 4,
                allowance: Some(8),
                tokens: 100,
                corpus_tokens: 20,
                forwards: 3,
                backwards: 1,
                trained_by_task: BTreeMap::from([("0".into(), 3), ("1".into(), 5)]),
            }),
            LogEvent::Replay(ReplayLine {
                step: 7,
                task: Some(0),
                n: 4,
                samples_by_task: BTreeMap::from([("0".into(), 4)]),
                reason: Some(serde_json::json!({"kind": "interval", "every": 4})),
            }),
            LogEvent::Interval(IntervalLine {
                step: 7,
                task: 0,
                interval: 6.0,
                next_due: Some(13),
                mean_strength: Some(0.25),
                relative_strength: Some(0.5),
            }),
            LogEvent::Strengths(StrengthsLine {
                step: 8,
                stage: 1,
                values: vec![Some(0.5), None],
            }),
            LogEvent::Sharpness(SharpnessLine {
                step: 7,
                loss: Some(1.0),
                grad_norm: Some(2.0),
                psi: Some(0.5),
                alpha: Some(1.5),
            }),
            LogEvent::SharpnessProbe(SharpnessProbeLine {
                stage: 1,
                step: Some(8),
                rho: 0.05,
                records: Some(16),
                loss: 1.0,
                perturbed_loss: Some(1.25),
                sharpness: 0.25,
                grad_norm: Some(3.0),
            }),
            LogEvent::Landscape(LandscapeLine {
                stage: 1,
                step: 8,
                a: vec![-1.0, 0.0, 1.0],
                b: vec![0.0],
                losses: vec![vec![Some(2.0)], vec![Some(1.0)], vec![None]],
                seed: Some(3),
                records: Some(16),
            }),
            LogEvent::Stage(StageLine {
                stage: 1,
                task: 0,
                step: 8,
                train_seconds: Some(1.5),
            }),
            LogEvent::Eval(EvalLine {
                stage: 1,
                step: 8,
                scores: vec![0.5, 0.25],
                probe_scores: vec![0.75],
                seconds: Some(2.0),
                task_seconds: vec![Some(1.0), None, Some(0.5)],
                generative_seconds: Some(0.25),
                per_record: vec![vec![1.0, 0.0], vec![0.0, 0.5], vec![1.0, 0.5]],
            }),
            LogEvent::Rollback(RollbackLine {
                task: "map-a".into(),
                step: 9,
                term: "sft".into(),
                value: None,
                to_step: 5,
                rollback: 1,
                lr_scale: 0.5,
                lr: 5e-4,
            }),
        ]
    }

    #[test]
    fn every_variant_round_trips_through_a_log_line() {
        let events = every_variant();
        let mut kinds: Vec<String> = Vec::new();
        for e in &events {
            let line = serde_json::to_string(e).unwrap();
            let back: LogEvent = serde_json::from_str(&line).unwrap();
            assert_eq!(&back, e, "{line}");
            kinds.push(e.to_value()["type"].as_str().unwrap().to_string());
        }
        kinds.dedup();
        assert_eq!(kinds.len(), 10, "one of every variant: {kinds:?}");
    }

    #[test]
    fn an_older_stage_line_with_seconds_and_no_optional_fields_still_loads() {
        let e: LogEvent =
            serde_json::from_str(r#"{"type":"stage","stage":2,"task":1,"step":16,"seconds":3.5}"#)
                .unwrap();
        assert_eq!(
            e,
            LogEvent::Stage(StageLine {
                stage: 2,
                task: 1,
                step: 16,
                train_seconds: Some(3.5)
            })
        );
    }
}
