//! The continual fine-tuning engine: trains a backbone through a suite's task sequence with a
//! method (replay strategy, optimizer, loss terms), evaluates every task after every stage,
//! and writes the accuracy matrix, the forgetting metrics, a per-step log and checkpoints.
//!
//! - [`engine::run`] runs (or resumes) one method × suite × seed; `cargo xtask suite` drives
//!   it over methods and seeds.
//! - [`method::MethodConfig`] is an `experiments/methods/*.toml` file; the suite's
//!   `[training]` table gives the [`method::TrainSettings`].
//! - [`plugins::MethodPlugin`]: what a method does to training besides replay, with hooks
//!   named as in Avalanche (`before_training_exp`, `before_backward` adds loss terms,
//!   `after_backward` changes gradients, `after_training_exp`, and state in checkpoints): the
//!   KL and corpus terms, WiSE-FT and the baselines EWC, LwF, A-GEM, DER++ and O-LoRA, each
//!   one file, selected by `kind` from a method file (`docs/method-plugins.md`).
//! - Replay strategies are registered the same way in `replay_buffer::strategy`
//!   (`docs/replay-strategies.md`).
//! - [`Plugin`]: observers with the same hook names (`before_training_exp`,
//!   `before_backward`, `after_update`, `after_training_exp`, `before_eval`, `after_eval`),
//!   for logging, progress and custom measurements; they never change training.
//! - [`metrics`]: AA, BWT, forgetting, FWT, ANS, ↓F, with each formula in its doc comment.
//! - Result files: `docs/results-format.md`; checkpoints: [`checkpoint`].
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use continual::engine::{ModelSource, RunConfig};
//! use std::path::Path;
//! let spec = bench_tasks::SuiteSpec::from_path(Path::new("experiments/suites/smoke.toml"))?;
//! let suite = spec.load(Path::new("."), None)?;
//! let method = continual::MethodConfig::from_path(Path::new("experiments/methods/mssr.toml"))?;
//! let settings = method.train_settings(spec.training.as_ref(), &spec.path)?;
//! let cfg = RunConfig {
//!     suite_spec: spec, suite, method, settings, seed: 0, model: ModelSource::TinyRandom,
//!     device_name: "cpu".into(), device: burn::tensor::Device::flex(),
//!     out_dir: "results/smoke/mssr/0".into(), index_path: None, resume: false,
//!     provenance: serde_json::json!({}), corpus: vec![],
//! };
//! let mut progress = continual::Progress::default();
//! let out = continual::engine::run(&cfg, &mut [&mut progress])?;
//! println!("AA = {}", out.metrics["aa"]);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod checkpoint;
pub mod engine;
pub mod interrupt;
pub mod lm;
pub mod method;
pub mod metrics;
pub mod params;
pub mod plugins;
pub mod progress;
pub mod rescore;
pub mod results;
pub mod tensorboard;

use std::path::{Path, PathBuf};

pub use engine::{ModelSource, RunConfig, RunOutcome, run};
pub use method::{MethodConfig, TrainSettings};
pub use metrics::{AccuracyMatrix, Cost, Metrics, PassTokens, general_forgetting};
pub use progress::Progress;

/// Errors of a run: each names the file, key, task or step it is about.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A configuration file is malformed or has unknown keys or out-of-range values.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key's path.
        message: String,
    },
    /// File-system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] backbone::LoadError),
    /// The training setup failed.
    #[error(transparent)]
    Finetune(#[from] finetune::FinetuneError),
    /// Checkpoint write or read failed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The accuracy matrix is malformed.
    #[error("metrics: {0}")]
    Metrics(String),
    /// A replay strategy decided to replay more samples than it was allowed at a step (the
    /// paced share of the replay budget it was given): a defect of the strategy, never cut
    /// silently.
    #[error(
        "the replay strategy `{scheduler}` decided {decided} samples at step {step}, over its allowance of {allowed}"
    )]
    OverAllowance {
        /// The scheduler's name.
        scheduler: String,
        /// Global step.
        step: u64,
        /// Samples it decided to replay.
        decided: usize,
        /// Samples it was allowed.
        allowed: usize,
    },
    /// A loss or gradient became NaN or infinite.
    #[error("training diverged on task {task:?} at step {step}: the {term} is {value}")]
    Diverged {
        /// The task being trained.
        task: String,
        /// Global step.
        step: u64,
        /// Which loss term (`sft`, `kl`, `ntp`, `total`) or `gradient norm`.
        term: String,
        /// Its value.
        value: f64,
    },
    /// Training diverged again after `rollbacks` rollbacks to the last checkpoint, each with
    /// a lower learning rate (`on_divergence = "rollback"`): the limit is reached.
    #[error(
        "{last} (after {rollbacks} rollback(s) to the last checkpoint, the learning rate lowered to {lr:e}; divergence_max_rollbacks reached)"
    )]
    DivergedAfterRollbacks {
        /// The last divergence ([`EngineError::Diverged`]).
        last: Box<EngineError>,
        /// Rollbacks taken.
        rollbacks: usize,
        /// The (base) learning rate of the last attempt.
        lr: f64,
    },
    /// Another process holds the run directory.
    #[error("{dir} is in use by process {pid} (run.lock); wait for it or stop it")]
    Locked {
        /// The run directory.
        dir: PathBuf,
        /// The owner.
        pid: u32,
    },
    /// A preemption signal stopped the run at a step boundary, after a checkpoint
    /// ([`interrupt`]); `--resume` continues it.
    #[error("interrupted by a signal at step {step}; checkpointed, --resume continues")]
    Interrupted {
        /// The global step checkpointed.
        step: u64,
    },
    /// The run directory already holds a run.
    #[error("{0} already holds a run: pass --resume to continue it, or remove the directory")]
    Exists(PathBuf),
}

impl EngineError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn config(path: &Path, message: String) -> Self {
        Self::Config {
            path: path.to_path_buf(),
            message,
        }
    }
}

/// Test hook, off unless the environment variable `CONTINUAL_TEST_PAUSE=<point>:<n>` is set:
/// the `n`-th time (1-based) this process reaches `point`, it prints
/// `CONTINUAL_TEST_PAUSE: paused at <point>` to stderr and sleeps until it is killed, so a test
/// can SIGKILL it at a chosen place (`xtask/tests/kill_resume.rs`). Points: `step` (inside a
/// training step, after the update, before the buffer, counters and log see it), `eval` (after
/// each task scored in an evaluation, before the row is written), `checkpoint-write` (the
/// weights written into the staging directory `ckpt/step-….tmp<pid>`, the optimizer and state
/// not yet), `checkpoint-publish` (the checkpoint renamed into place, `LATEST` not yet
/// rewritten), `index-append` (`run.json` says `complete`, the suite's `index.jsonl` row not
/// yet written) and `index-appended` (the row written, the run not yet returned).
pub(crate) fn test_pause(point: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("CONTINUAL_TEST_PAUSE").ok()?;
        let (p, n) = v.rsplit_once(':')?;
        Some((p.to_string(), n.parse().ok()?))
    });
    if let Some((p, n)) = target
        && p == point
        && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        eprintln!("CONTINUAL_TEST_PAUSE: paused at {point}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Where the run is, as hooks see it.
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    /// Index of the task being trained (or just trained).
    pub task: usize,
    /// Its name.
    pub task_name: &'a str,
    /// Tasks in the suite.
    pub num_tasks: usize,
    /// Global optimizer step.
    pub step: u64,
    /// Steps of this task taken.
    pub step_in_task: usize,
    /// Steps this task takes (0 where not meaningful).
    pub steps_in_task: usize,
}

/// What one training step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Task index.
    pub task: usize,
    /// Global step.
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Total loss.
    pub loss: f64,
    /// SFT term.
    pub sft: f64,
    /// KL term.
    pub kl: Option<f64>,
    /// Next-token term.
    pub ntp: Option<f64>,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Samples replayed in this update.
    pub replayed: usize,
    /// Real tokens in the batch.
    pub tokens: u64,
}

/// Hooks around the engine's fixed loop, named as in Avalanche. All default to no-ops.
pub trait Plugin {
    /// Training on a task is about to start.
    fn before_training_exp(&mut self, _ctx: &HookContext<'_>) {}
    /// The step's batch (task + replay samples) is ready; the loss and update come next.
    fn before_backward(&mut self, _ctx: &HookContext<'_>, _batch: &finetune::SftBatch) {}
    /// An optimizer step was taken.
    fn after_update(&mut self, _ctx: &HookContext<'_>, _step: &StepRecord) {}
    /// Training on a task has ended (after the strategy's end-of-task passes and WiSE-FT).
    fn after_training_exp(&mut self, _ctx: &HookContext<'_>) {}
    /// The evaluation after stage `stage` (0 = before training) starts.
    fn before_eval(&mut self, _ctx: &HookContext<'_>, _stage: usize) {}
    /// `done` of `total` tasks and probes of the current evaluation are scored.
    fn eval_progress(&mut self, _done: usize, _total: usize) {}
    /// The evaluation after stage `stage` is done: row `stage` of the matrix and the probes.
    fn after_eval(
        &mut self,
        _ctx: &HookContext<'_>,
        _stage: usize,
        _scores: &[f64],
        _probes: &[f64],
    ) {
    }
}
