//! The continual engine: one run of one method through one suite with one seed.
//!
//! ```text
//! evaluate every task and probe (row 0)                  (stage.rs)
//! for each task k:                                       before_training_exp
//!     for each step:                                     (step.rs)
//!         the strategy decides within its allowance (the paced replay budget)
//!         task batch + replay batches → forward → plugins' loss terms → backward
//!         → plugins' gradient hooks → optimizer step     before_backward, after_backward
//!         replay feedback, buffer offer, log, checkpoint every N steps
//!     strategy's end-of-task passes, plugins' stage end  after_training_exp
//!     evaluate every task and probe (row k + 1)          before_eval, after_eval
//!     checkpoint (task boundary)                         (recovery.rs)
//! metrics, result files, index row                       (writers.rs)
//! ```
//!
//! One concern per file: the loop (`mod.rs`), the training step (`step.rs`), the task data
//! and batch sampling (`data.rs`), stage ends and evaluations (`stage.rs`), checkpoints and
//! divergence rollback (`recovery.rs`), result files (`writers.rs`) and model loading
//! (`model.rs`). Everything a resume needs is in the checkpoint (trainable weights, optimizer
//! moments, buffer, strategy with its RNG, SAM record, plugins' state, counters, matrix rows,
//! log length); batches are a pure function of (seed, task, step), so a resumed run repeats
//! the interrupted one exactly. Each task's last `validation_records` training records are
//! held out of training for every method (strategy evaluations and the sharpness and landscape
//! probes use them).

mod data;
mod model;
mod recovery;
mod replay;
mod stage;
mod step;
mod writers;

use std::path::{Path, PathBuf};
use std::time::Instant;

use backbone::CausalLm;
use bench_tasks::format::Formatter;
use bench_tasks::{Encoded, Suite, SuiteSpec};
use burn::tensor::Device;
use finetune::Trainer;
use replay_buffer::{Replay, Strategy};
use report::events::{LogEvent, StageLine};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sharpness::{SharpnessAware, SharpnessAwareRecord};

use crate::lm::TextCodec;
use crate::method::{DivergencePolicy, MethodConfig, OptimizerConfig, TrainSettings};
use crate::metrics::Cost;
use crate::plugins::{MethodPlugin, PluginInit, Spent, StageContext};
use crate::results::{JsonlLog, RunLock, remove_stale_temporaries};
use crate::{EngineError, Plugin};

pub(crate) use data::corpus_ids;
pub(crate) use model::load_backbone;
#[cfg(test)]
use replay::replay_allowance;

/// Where the backbone comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSource {
    /// The smoke suite's 2-layer byte-level Llama with random weights (seeded by the run).
    TinyRandom,
    /// A Hugging Face directory or a `.gguf` file.
    Path {
        /// The directory or file.
        path: PathBuf,
    },
}

/// Everything one run needs.
pub struct RunConfig {
    /// The suite file as parsed (recorded in `run.json`).
    pub suite_spec: SuiteSpec,
    /// The suite's tasks and probes with their records.
    pub suite: Suite,
    /// The method.
    pub method: MethodConfig,
    /// Training settings resolved from the suite and the method.
    pub settings: TrainSettings,
    /// The run's seed (model init, LoRA init, batch order, replay RNGs).
    pub seed: u64,
    /// The backbone.
    pub model: ModelSource,
    /// Device name as given (`cpu`, `wgpu`, ...), for the record.
    pub device_name: String,
    /// The Burn device (autodiff is switched on by the engine).
    pub device: Device,
    /// `results/<suite>/<method>/<seed>`.
    pub out_dir: PathBuf,
    /// The suite's `index.jsonl`.
    pub index_path: Option<PathBuf>,
    /// Continue from the last checkpoint in `out_dir`.
    pub resume: bool,
    /// Git revision, versions, machine: recorded in `run.json`.
    pub provenance: Value,
    /// Corpus passages for next-token replay (empty: none).
    pub corpus: Vec<String>,
}

/// What a finished run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The accuracy matrix (`T + 1` rows).
    pub rows: Vec<Vec<f64>>,
    /// Probe scores per stage.
    pub probe_rows: Vec<Vec<f64>>,
    /// `metrics.json`.
    pub metrics: Value,
}

/// The resumable state of a run (`state.json` in a checkpoint).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EngineState {
    /// Task being trained (== T when done).
    task: usize,
    /// Steps of `task` already taken.
    step_in_task: usize,
    /// Optimizer steps over the run.
    global_step: u64,
    rows: Vec<Vec<f64>>,
    probe_rows: Vec<Vec<f64>>,
    cost: Cost,
    replay: Replay<Box<dyn Strategy>>,
    sam: Option<SharpnessAwareRecord>,
    log_len: u64,
    /// Divergence rollbacks taken (`on_divergence = "rollback"`).
    #[serde(default)]
    rollbacks: usize,
    /// The learning rate's factor after those rollbacks (1 without).
    #[serde(default = "one")]
    lr_scale: f64,
}

fn one() -> f64 {
    1.0
}

impl EngineState {
    /// The state of a run before its first evaluation.
    fn new(replay: Replay<Box<dyn Strategy>>) -> Self {
        Self {
            task: 0,
            step_in_task: 0,
            global_step: 0,
            rows: vec![],
            probe_rows: vec![],
            cost: Cost::default(),
            replay,
            sam: None,
            log_len: 0,
            rollbacks: 0,
            lr_scale: 1.0,
        }
    }
}

/// The name of the run's LoRA adapter inside the model.
pub(crate) const ADAPTER: &str = "cl";

/// The run in progress.
struct Run<'a> {
    cfg: &'a RunConfig,
    model: Option<CausalLm>,
    trainer: Trainer,
    sam: Option<SharpnessAware<burn::optim::ModuleOptimizer>>,
    formatter: Formatter<TextCodec>,
    /// Per task: encoded training records (`None`: does not fit the context).
    train: Vec<Vec<Option<Encoded>>>,
    /// Per task: optimizer steps.
    steps: Vec<usize>,
    /// The method's plugins (KL, corpus, WiSE-FT, baselines) in the order they run.
    plugins: Vec<Box<dyn MethodPlugin>>,
    stop_ids: Vec<u32>,
    state: EngineState,
    log: JsonlLog,
    started: Instant,
}

/// Runs (or resumes) one method on one suite with one seed and writes its result files.
pub fn run(cfg: &RunConfig, plugins: &mut [&mut dyn Plugin]) -> Result<RunOutcome, EngineError> {
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| EngineError::io(&cfg.out_dir, e))?;
    let _lock = RunLock::acquire(&cfg.out_dir)?;
    // Temporaries of a killed process's atomic writes: never read, so safe to drop now.
    remove_stale_temporaries(&cfg.out_dir)?;
    let complete = std::fs::read_to_string(cfg.out_dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v["status"] == "complete");
    if complete {
        // Resuming a finished run would append its index row twice.
        return Err(EngineError::Exists(cfg.out_dir.clone()));
    }
    let ckpt = crate::checkpoint::latest(&cfg.out_dir.join("ckpt"))?;
    if !cfg.resume && (ckpt.is_some() || cfg.out_dir.join("run.json").exists()) {
        return Err(EngineError::Exists(cfg.out_dir.clone()));
    }
    let mut run = Run::start(cfg, ckpt.as_deref())?;
    run.write_run_json("running")?;
    run.main_loop(plugins)?;
    run.finish()
}

impl<'a> Run<'a> {
    fn start(cfg: &'a RunConfig, ckpt: Option<&Path>) -> Result<Self, EngineError> {
        let s = &cfg.settings;
        let device = cfg.device.clone().autodiff();
        device.seed(cfg.seed);
        let (model, formatter, stop_ids) =
            model::load_backbone(&cfg.model, cfg.seed, &cfg.suite, &device)?;
        let model = model::trainable(model, s, &device)?;
        let sam = match &cfg.method.optimizer {
            OptimizerConfig::Adamw => None,
            OptimizerConfig::Sam(x) => Some(x.0.init(s.optim.adamw())),
            OptimizerConfig::Xsam(x) => Some(x.0.init(s.optim.adamw())),
        };
        let train: Vec<Vec<Option<Encoded>>> = cfg
            .suite
            .tasks
            .iter()
            .map(|t| data::encode_train(&formatter, t, s.validation_records, &cfg.suite_spec.path))
            .collect::<Result<_, _>>()?;
        let steps = data::task_steps(s, &train);
        let corpus = data::corpus_ids(&cfg.corpus, formatter.tokenizer(), s.corpus_max_tokens);
        let plugins = crate::plugins::method_plugins(
            &cfg.method,
            &PluginInit {
                model: &model,
                settings: s,
                seed: cfg.seed,
                num_tasks: cfg.suite.tasks.len(),
                corpus: &corpus,
                origin: &cfg.method.path,
            },
        )?;
        let replay = Replay::new(
            replay::buffer_config(cfg, steps.iter().sum()).init(),
            cfg.method
                .replay
                .scheduler
                .init(&replay::strategy_init(cfg)),
        );
        let mut run = Run {
            cfg,
            model: Some(model),
            trainer: Trainer::new(s.optim.clone()),
            sam,
            formatter,
            train,
            steps,
            plugins,
            stop_ids,
            state: EngineState::new(replay),
            // Fresh runs start an empty log; a resume cuts it back in `restore`.
            log: JsonlLog::open(
                &cfg.out_dir.join("log.jsonl"),
                if ckpt.is_some() { u64::MAX } else { 0 },
            )?,
            started: Instant::now(),
        };
        if let Some(dir) = ckpt {
            run.restore(dir)?;
            tracing::info!(
                "resumed from {} (task {}, step {})",
                dir.display(),
                run.state.task,
                run.state.global_step
            );
        }
        Ok(run)
    }

    fn num_tasks(&self) -> usize {
        self.cfg.suite.tasks.len()
    }

    fn main_loop(&mut self, plugins: &mut [&mut dyn Plugin]) -> Result<(), EngineError> {
        if self.state.rows.is_empty() {
            self.evaluate(0, plugins)?;
            if self.cfg.settings.on_divergence == DivergencePolicy::Rollback {
                // A rollback always has a checkpoint to return to.
                self.checkpoint()?;
            }
        }
        'tasks: while self.state.task < self.num_tasks() {
            let k = self.state.task;
            let steps = self.steps_in_task(k);
            if self.state.step_in_task == 0 {
                self.method_stage_hook(k, true)?;
                self.state.replay.before_training_exp(k as u32);
                for p in plugins.iter_mut() {
                    p.before_training_exp(&self.ctx(k, steps));
                }
            }
            while self.state.step_in_task < steps {
                let t_step = Instant::now();
                let record = match self.train_step(k, plugins) {
                    Ok(r) => r,
                    Err(e) => {
                        self.roll_back(e)?;
                        continue 'tasks;
                    }
                };
                self.state.cost.train_seconds += t_step.elapsed().as_secs_f64();
                self.state.step_in_task += 1;
                self.state.global_step += 1;
                for p in plugins.iter_mut() {
                    p.after_update(&self.ctx(k, steps), &record);
                }
                if crate::interrupt::requested() {
                    self.checkpoint()?;
                    let step = self.state.global_step;
                    return Err(EngineError::Interrupted { step });
                }
                if let Some(every) = self.cfg.settings.checkpoint_every
                    && self.state.global_step.is_multiple_of(every)
                    && self.state.step_in_task < steps
                {
                    self.checkpoint()?;
                }
            }
            let t_end = Instant::now();
            if let Err(e) = self.end_of_task(k, plugins) {
                self.roll_back(e)?;
                continue 'tasks;
            }
            self.state.cost.train_seconds += t_end.elapsed().as_secs_f64();
            // Measurements, outside the training time and the cost counters.
            if self.cfg.settings.sharpness_rho > 0.0
                && let Err(e) = self.sharpness_probe(k)
            {
                self.roll_back(e)?;
                continue 'tasks;
            }
            if self.cfg.settings.landscape_points >= 2 {
                self.landscape_slice(k)?;
            }
            let stage = LogEvent::Stage(StageLine {
                stage: k + 1,
                task: k,
                step: self.state.global_step,
                train_seconds: Some(self.state.cost.train_seconds),
            });
            self.log.write(&stage.to_value())?;
            self.evaluate(k + 1, plugins)?;
            self.state.task += 1;
            self.state.step_in_task = 0;
            self.checkpoint()?;
        }
        Ok(())
    }

    fn ctx(&self, task: usize, steps: usize) -> crate::HookContext<'_> {
        crate::HookContext {
            task,
            task_name: self
                .cfg
                .suite
                .tasks
                .get(task)
                .map_or("", |t| t.name.as_str()),
            num_tasks: self.num_tasks(),
            step: self.state.global_step,
            step_in_task: self.state.step_in_task,
            steps_in_task: steps,
        }
    }

    /// The method plugins' `before_training_exp` (`start`) or `after_training_exp` hook for
    /// task `k`: their passes are charged to the run, their log lines written.
    fn method_stage_hook(&mut self, k: usize, start: bool) -> Result<(), EngineError> {
        let mut model = self.model.take().expect("model present between steps");
        let (mut spent, mut log) = (Spent::default(), Vec::new());
        let data = data::Data::new(
            &self.train,
            self.cfg.settings.validation_records,
            &self.state.replay.buffer,
        );
        let mut result = Ok(());
        for p in self.plugins.iter_mut() {
            let mut ctx = StageContext {
                task: k,
                step: self.state.global_step,
                model: &mut model,
                data: &data,
                spent: &mut spent,
                log: &mut log,
            };
            result = if start {
                p.before_training_exp(&mut ctx)
            } else {
                p.after_training_exp(&mut ctx)
            };
            if result.is_err() {
                break;
            }
        }
        self.model = Some(model);
        self.state.cost.add_plugin_spend(spent);
        for line in &log {
            self.log.write(line)?;
        }
        result
    }

    /// Optimizer steps of task `k` (computed once, by `task_steps`).
    fn steps_in_task(&self, k: usize) -> usize {
        self.steps[k]
    }
}

fn mean(xs: &[f32]) -> Option<f32> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f32>() / xs.len() as f32)
}

/// A seed from several numbers (SplitMix64 over them), so streams of different purposes and
/// tasks never coincide.
pub fn mix(parts: &[u64]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for &p in parts {
        h ^= p
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::ReplayPacing;

    #[test]
    fn the_paced_allowance_is_the_elapsed_share_plus_one_batch_within_the_budget() {
        // The quick suite: 11 tasks of 4 steps (t₁ = 4, T = 44), budget 40, batches of 4.
        let at = |step| replay_allowance(40, ReplayPacing::Even, 4, 44, step, 4);
        // Steps 0..=3 (t = 1..=4): no share yet, one batch of slack.
        assert_eq!((0..4).map(at).collect::<Vec<_>>(), vec![4, 4, 4, 4]);
        // Step 4 (t = 5): ⌊40 · 1/40⌋ + 4 = 5; step 23 (t = 24): ⌊40 · 20/40⌋ + 4 = 24.
        assert_eq!((at(4), at(23)), (5, 24));
        // Near the end the budget caps it: step 40 (t = 41): 37 + 4 = 41 → 40.
        assert_eq!((at(39), at(40), at(43)), (40, 40, 40));
        // Unpaced: the whole budget at every step.
        assert_eq!(replay_allowance(40, ReplayPacing::None, 4, 44, 0, 4), 40);
    }
}
