//! The continual engine: one run of one method through one suite with one seed.
//!
//! ```text
//! evaluate every task and probe (row 0)
//! for each task k:                                   before_training_exp
//!     for each step:  the strategy decides within its allowance (the paced replay budget)
//!                     task batch + replay batches → loss → update     before_backward, after_update
//!                     replay feedback, buffer offer, log, checkpoint every N steps
//!     strategy's end-of-task passes, WiSE-FT                          after_training_exp
//!     evaluate every task and probe (row k + 1)                       before_eval, after_eval
//!     checkpoint (task boundary)
//! metrics, result files, index row
//! ```
//!
//! Everything a resume needs is in the checkpoint (trainable weights, optimizer moments,
//! buffer, scheduler with its RNG, SAM record, counters, matrix rows, log length); batches are
//! a pure function of (seed, task, step), so a resumed run repeats the interrupted one exactly.
//! Each task's last `validation_records` training records are held out of training for every
//! method (strategy evaluations and the sharpness and landscape probes use them).

use std::path::{Path, PathBuf};
use std::time::Instant;

use backbone::CausalLm;
use bench_tasks::format::{FormatConfig, Formatter};
use bench_tasks::{Encoded, Record, Suite, SuiteSpec, Task};
use burn::module::Module;
use burn::tensor::Device;
use finetune::{KlReference, LossParts, Reference, SftBatch, TrainMode, Trainer};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use replay_buffer::schedulers::AnyScheduler;
use replay_buffer::{
    ExtraPasses, HookPoint, Replay, ReplayReason, SampleRef, Scheduler, SchedulerConfig, Signals,
    SlotLoss, TaskScore,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sharpness::{SharpnessAware, SharpnessAwareRecord};

use crate::lm::{TextCodec, evaluate_records, evaluate_row, sft_batch};
use crate::method::{
    DivergencePolicy, MethodConfig, OptimizerConfig, Protocol, TrainModeName, TrainSettings,
};
use crate::metrics::{AccuracyMatrix, Cost, PassTokens, general_forgetting};
use crate::params::TrainableSnapshot;
use crate::results::{JsonlLog, RunLock, ensure_index_row, remove_stale_temporaries, write_json};
use crate::{EngineError, Plugin, StepRecord};

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
    replay: Replay<AnyScheduler>,
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

/// The name of the run's LoRA adapter inside the model.
pub(crate) const ADAPTER: &str = "cl";

/// The run in progress.
struct Run<'a> {
    cfg: &'a RunConfig,
    model: Option<CausalLm>,
    /// The KL reference when it is not the adapters-off backbone: the frozen initial model
    /// (full fine-tuning), or the model at the current stage's start (`kl_reference =
    /// "stage_start"`, rebuilt at every stage start and resume).
    reference: Option<CausalLm>,
    /// The trainable weights at the current stage's start (after the previous stage's
    /// WiSE-FT), kept for WiSE-FT and a stage-start KL reference; checkpointed.
    stage_start: Option<TrainableSnapshot>,
    trainer: Trainer,
    sam: Option<SharpnessAware<burn::optim::ModuleOptimizer>>,
    formatter: Formatter<TextCodec>,
    /// Per task: encoded training records (`None`: does not fit the context).
    train: Vec<Vec<Option<Encoded>>>,
    /// Per task: optimizer steps.
    steps: Vec<usize>,
    corpus: Vec<Vec<u32>>,
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
            load_backbone(&cfg.model, cfg.seed, &cfg.suite, &device)?;

        // Trainable parameters: a LoRA adapter on the frozen backbone, or everything.
        let mut model = model;
        let mode = match s.mode {
            TrainModeName::Lora => {
                lora::add_adapter(&mut model, ADAPTER, &s.lora, &device);
                TrainMode::Lora {
                    adapter: ADAPTER.into(),
                }
            }
            TrainModeName::Full => TrainMode::Full,
        };
        let objective = &cfg.method.objective;
        let reference = (s.mode == TrainModeName::Full
            && objective.kl_weight > 0.0
            && objective.kl_reference == KlReference::Initial)
            .then(|| model.valid());
        let model = finetune::prepare_model(model, &mode)?;
        let stage_start = (cfg.method.wise_ft.is_some() || stage_start_kl(cfg))
            .then(|| TrainableSnapshot::of(&model));

        let sam = match &cfg.method.optimizer {
            OptimizerConfig::Adamw => None,
            OptimizerConfig::Sam(x) => Some(x.config().init(s.optim.adamw())),
            OptimizerConfig::Xsam(x) => Some(x.config().init(s.optim.adamw())),
        };
        let train: Vec<Vec<Option<Encoded>>> = cfg
            .suite
            .tasks
            .iter()
            .map(|t| encode_train(&formatter, t, s.validation_records, &cfg.suite_spec.path))
            .collect::<Result<_, _>>()?;
        let steps = task_steps(s, &train);
        let corpus = corpus_ids(&cfg.corpus, formatter.tokenizer(), s.corpus_max_tokens);
        let replay = Replay::new(
            buffer_config(cfg, steps.iter().sum()).init(),
            scheduler_config(cfg).init(),
        );
        let mut run = Run {
            cfg,
            model: Some(model),
            reference,
            stage_start,
            trainer: Trainer::new(s.optim.clone()),
            sam,
            formatter,
            train,
            steps,
            corpus,
            stop_ids,
            state: EngineState {
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
            },
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
            self.refresh_stage_reference()?;
            if self.state.step_in_task == 0 {
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
            self.log.write(&json!({"type": "stage", "stage": k + 1, "task": k, "step": self.state.global_step, "train_seconds": self.state.cost.train_seconds}))?;
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

    /// Optimizer steps of task `k` (computed once, by `task_steps`).
    fn steps_in_task(&self, k: usize) -> usize {
        self.steps[k]
    }

    /// How many of task `t`'s training records are trained on: all but the held-out
    /// validation records at their end.
    fn pool_len(&self, t: usize) -> usize {
        training_pool(&self.train[t], self.cfg.settings.validation_records).len()
    }

    /// The held-out validation records of every task that fit the context: the fixed probe
    /// set of the sharpness and landscape measurements.
    fn validation_refs(&self) -> Vec<SampleRef> {
        (0..self.train.len())
            .flat_map(|t| {
                (self.pool_len(t)..self.train[t].len())
                    .filter(move |&i| self.train[t][i].is_some())
                    .map(move |i| SampleRef::new(t as u32, i as u32))
            })
            .collect()
    }

    /// With `kl_reference = "stage_start"`: the KL reference becomes a frozen copy of the
    /// model at the current stage's start (from the checkpointed snapshot, so a resumed or
    /// rolled-back run rebuilds the same reference).
    fn refresh_stage_reference(&mut self) -> Result<(), EngineError> {
        if !stage_start_kl(self.cfg) {
            return Ok(());
        }
        let snapshot = self
            .stage_start
            .as_ref()
            .expect("kept with a stage-start KL reference");
        let model = self.model.as_ref().expect("model").clone();
        self.reference = Some(snapshot.restore(model)?.valid());
        Ok(())
    }

    /// The task samples of step `s` of task `k`: consecutive slices of per-epoch shuffles,
    /// each shuffle seeded by (seed, task, epoch). Joint training draws from tasks `0..=k`.
    fn task_samples(&self, k: usize, s: usize) -> Vec<SampleRef> {
        let tasks: Vec<usize> = match self.cfg.method.protocol {
            Protocol::Sequential => vec![k],
            Protocol::Joint => (0..=k).collect(),
        };
        let pool: Vec<SampleRef> = tasks
            .iter()
            .flat_map(|&t| {
                self.train[t][..self.pool_len(t)]
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.is_some())
                    .map(move |(i, _)| SampleRef::new(t as u32, i as u32))
            })
            .collect();
        if pool.is_empty() {
            return vec![];
        }
        let b = self.cfg.settings.batch_size;
        // A batch spans at most a few epochs: shuffle each one once, not once per sample.
        let mut order: Option<(usize, Vec<usize>)> = None;
        (s * b..(s + 1) * b)
            .map(|pos| {
                let (epoch, i) = (pos / pool.len(), pos % pool.len());
                if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    let mut o: Vec<usize> = (0..pool.len()).collect();
                    o.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(mix(&[
                        self.cfg.seed,
                        k as u64,
                        epoch as u64,
                    ])));
                    order = Some((epoch, o));
                }
                pool[order.as_ref().expect("set above").1[i]]
            })
            .collect()
    }

    /// One training step. The whole method is here: the strategy's passes and decision, one
    /// batch of task and replay samples, the objective and the (SAM/XSAM) update, feedback.
    fn train_step(
        &mut self,
        k: usize,
        plugins: &mut [&mut dyn Plugin],
    ) -> Result<StepRecord, EngineError> {
        let step = self.state.global_step;
        let task_samples = self.task_samples(k, self.state.step_in_task);
        // 1. What to replay: the scheduler's extra passes, then its decision (within budget).
        let passes = self.state.replay.wants(HookPoint::BeforeUpdate { step });
        let (probe, scores) = self.extra_passes(&passes)?;
        let allowance = self.replay_allowance();
        let signals = Signals {
            step,
            probe_losses: &probe,
            scores: &scores,
            allowance,
            ..Default::default()
        };
        let decision = self.state.replay.before_update(&signals);
        if let Some(allowed) = allowance
            && decision.num_samples() > allowed
        {
            let scheduler = self.state.replay.scheduler.name().to_string();
            return Err(EngineError::OverAllowance {
                scheduler,
                step,
                decided: decision.num_samples(),
                allowed,
            });
        }
        let replay_slots: Vec<u32> = decision
            .batches
            .iter()
            .flat_map(|b| b.slots.iter().copied())
            .collect();
        let replayed: Vec<SampleRef> = decision
            .batches
            .iter()
            .flat_map(|b| b.samples.iter().copied())
            .collect();
        // 2. One batch [|B| + R, S]: the task's samples, then the replayed ones.
        let samples: Vec<SampleRef> = task_samples.iter().chain(&replayed).copied().collect();
        let batch = self.sft_batch(&samples);
        let corpus = self.corpus_batch(step);
        for p in plugins.iter_mut() {
            p.before_backward(&self.ctx(k, 0), &batch);
        }
        // 3. Loss and update.
        let (losses, grad_norm, lr) = self.update(&batch, corpus.as_ref())?;
        self.guard(k, step, &losses, grad_norm)?;
        crate::test_pause("step");
        // 4. Feedback: replayed samples' losses to the memory, the task's samples to the buffer.
        let n_task = task_samples.len();
        let replay_losses: Vec<SlotLoss> = replay_slots
            .iter()
            .zip(&losses.per_sample[n_task..])
            .map(|(&slot, &loss)| SlotLoss { slot, loss })
            .collect();
        let train_loss = mean(&losses.per_sample[..n_task]);
        self.state.replay.after_update(&Signals {
            step,
            replay_losses: &replay_losses,
            train_loss,
            ..Default::default()
        });
        for (&r, &l) in task_samples.iter().zip(&losses.per_sample) {
            self.state.replay.offer(r, l, step, None);
        }
        // 5. Accounting and the log.
        let tokens = batch.tokens.real_tokens() as u64;
        let corpus_tokens = corpus.as_ref().map_or(0, |b| b.real_tokens() as u64);
        let c = &mut self.state.cost;
        c.optimizer_steps += 1;
        c.replayed_samples += replayed.len() as u64;
        let p = &losses.passes;
        c.add_tokens(PassTokens {
            sft: tokens * p.sft,
            kl_reference: tokens * p.kl_reference,
            corpus: corpus_tokens * p.corpus,
            probe: 0,
        });
        c.forward_passes += p.forwards();
        c.backward_passes += p.backward;
        let record = StepRecord {
            task: k,
            step,
            lr,
            loss: losses.total,
            sft: losses.sft,
            kl: losses.kl,
            ntp: losses.ntp,
            grad_norm,
            replayed: replayed.len(),
            tokens,
        };
        self.log.write(&json!({"type": "step", "task": k, "step": step, "lr": lr, "loss": losses.total, "sft": losses.sft,
            "kl": losses.kl, "ntp": losses.ntp, "grad_norm": grad_norm, "replayed": replayed.len(), "allowance": allowance,
            "tokens": tokens, "corpus_tokens": corpus_tokens, "forwards": p.forwards(), "backwards": p.backward}))?;
        for b in &decision.batches {
            let mut by_task = std::collections::BTreeMap::<u32, usize>::new();
            for r in &b.samples {
                *by_task.entry(r.task).or_default() += 1;
            }
            self.log.write(&json!({"type": "replay", "step": step, "task": b.task, "n": b.slots.len(), "samples_by_task": by_task, "reason": b.reason}))?;
            if let (ReplayReason::Due { task, .. }, AnyScheduler::Mssr(m)) =
                (&b.reason, &self.state.replay.scheduler)
                && let Some(c) = m.clocks().iter().find(|c| c.task == *task)
            {
                self.log.write(&json!({"type": "interval", "step": step, "task": task, "interval": c.interval, "next_due": c.next_due,
                    "mean_strength": c.mean_strength, "relative_strength": c.relative_strength}))?;
            }
        }
        if let Some(sh) = &losses.sharpness {
            self.log.write(&json!({"type": "sharpness", "step": step, "loss": sh.loss, "grad_norm": sh.grad_norm, "psi": sh.psi, "alpha": sh.alpha}))?;
        }
        Ok(record)
    }

    /// Runs the objective and takes the optimizer step (AdamW, or SAM/XSAM around it).
    fn update(
        &mut self,
        batch: &SftBatch,
        corpus: Option<&backbone::TokenBatch>,
    ) -> Result<(StepLosses, f64, f64), EngineError> {
        let objective = &self.cfg.method.objective;
        let reference = match &self.reference {
            Some(r) => Reference::Model(r),
            None => Reference::AdaptersOff,
        };
        // What one evaluation of the objective runs: the batch through the model, through the
        // KL reference, and the corpus batch through the model.
        let per_call = Passes {
            sft: 1,
            kl_reference: u64::from(objective.kl_weight > 0.0),
            corpus: u64::from(corpus.is_some() && objective.ntp_weight > 0.0),
            backward: 1,
        };
        let mut model = self.model.take().expect("model present between steps");
        let (model, info, losses) = match self.sam.as_mut() {
            None => {
                let parts = finetune::objective(&mut model, reference, batch, corpus, objective);
                let losses = StepLosses::read(&parts, per_call);
                let (model, info) = self.trainer.backward_step(model, parts.total);
                (model, info, losses)
            }
            Some(sam) => {
                let mut first: Option<StepLosses> = None;
                let mut calls = 0u64;
                let (grads, stats) = sam.grads(&model, |m: &CausalLm| {
                    calls += 1;
                    let mut m = m.clone();
                    let parts = finetune::objective(&mut m, reference, batch, corpus, objective);
                    if first.is_none() {
                        first = Some(StepLosses::read(&parts, per_call));
                    }
                    parts.total
                });
                let mut losses = first.expect("SAM evaluates the loss at least once");
                let log = stats.read();
                // Every objective evaluation runs its forwards; XSAM's α grid evaluations are
                // among `calls` and are forward-only, the others each take a backward.
                let grid = log.alpha_losses.as_ref().map_or(0, Vec::len) as u64;
                losses.passes = per_call.times(calls);
                losses.passes.backward = calls - grid;
                losses.sharpness = Some(log);
                let (model, info) = self.trainer.grads_step(model, grads);
                (model, info, losses)
            }
        };
        self.model = Some(model);
        let info = info.expect("one micro-batch per step");
        Ok((losses, info.grad_norm, info.lr))
    }

    /// Divergence guard: a non-finite loss term or gradient stops the run, naming the place.
    fn guard(
        &self,
        k: usize,
        step: u64,
        l: &StepLosses,
        grad_norm: f64,
    ) -> Result<(), EngineError> {
        let bad = [
            ("sft", Some(l.sft)),
            ("kl", l.kl),
            ("ntp", l.ntp),
            ("total", Some(l.total)),
        ]
        .into_iter()
        .find(|(_, v)| v.is_some_and(|v| !v.is_finite()))
        .map(|(n, v)| (n, v.unwrap_or(f64::NAN)))
        .or((!grad_norm.is_finite()).then_some(("gradient norm", grad_norm)));
        match bad {
            Some((term, value)) => Err(EngineError::Diverged {
                task: self.cfg.suite.tasks[k].name.clone(),
                step,
                term: term.to_string(),
                value,
            }),
            None => Ok(()),
        }
    }

    /// The replayed samples the strategy may add at the coming step: the budget left, and with
    /// `replay_pacing = "even"` at most the elapsed share of it. By global step `t` (counted
    /// from 1) the run may have replayed `⌊budget · (t − t₁) / (T − t₁)⌋ + r·|B|` samples
    /// (never more than the budget), `t₁` being the end of the first task (the first step
    /// replay is possible), `T` the run's last step and `r·|B|` one replay batch: a strategy
    /// cannot spend it all early and train the last tasks without replay, and the slack of one
    /// batch lets a strategy that replays at the budget's own rate draw whole batches from its
    /// first replay on. `None`: no budget. The strategy decides within this allowance
    /// (`Signals::allowance`); nothing is cut after its decision.
    fn replay_allowance(&self) -> Option<usize> {
        let s = &self.cfg.settings;
        let total: u64 = self.steps.iter().map(|&n| n as u64).sum();
        let batch = replay_size(s).samples() as u64;
        let allowed = replay_allowance(
            s.replay_budget?,
            s.replay_pacing,
            self.steps[0] as u64,
            total,
            self.state.global_step,
            batch,
        );
        Some(allowed.saturating_sub(self.state.cost.replayed_samples) as usize)
    }

    fn sft_batch(&self, samples: &[SampleRef]) -> SftBatch {
        let encoded: Vec<&Encoded> = samples
            .iter()
            .map(|r| {
                self.train[r.task as usize][r.index as usize]
                    .as_ref()
                    .expect("only encodable records are drawn")
            })
            .collect();
        sft_batch(&encoded)
    }

    /// The corpus batch of global step `step`: one every `corpus_every` steps, walking the
    /// corpus in order (batch `step / corpus_every` holds passages `b·n .. b·n + n`, wrapping).
    fn corpus_batch(&self, step: u64) -> Option<backbone::TokenBatch> {
        let (n, every) = (
            self.cfg.settings.corpus_batch_size,
            self.cfg.settings.corpus_every.max(1) as u64,
        );
        if self.cfg.method.objective.ntp_weight <= 0.0
            || self.corpus.is_empty()
            || n == 0
            || !step.is_multiple_of(every)
        {
            return None;
        }
        let b = (step / every) as usize;
        let seqs: Vec<Vec<u32>> = (0..n)
            .map(|i| self.corpus[(b * n + i) % self.corpus.len()].clone())
            .collect();
        Some(backbone::TokenBatch::padded(&seqs, 0, false))
    }

    /// Probe forwards and validation evaluations a scheduler asked for.
    fn extra_passes(
        &mut self,
        passes: &ExtraPasses,
    ) -> Result<(Vec<SlotLoss>, Vec<TaskScore>), EngineError> {
        let mut probe = Vec::new();
        let mut scores = Vec::new();
        if let Some(slots) = &passes.probe
            && !slots.is_empty()
        {
            let refs: Vec<SampleRef> = slots
                .iter()
                .map(|&s| self.state.replay.buffer.sample(s))
                .collect();
            let batch = self.sft_batch(&refs);
            let model = self.model.as_ref().expect("model").valid();
            let per: Vec<f32> = finetune::sft_loss(&model, &batch)
                .per_sample
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32");
            probe = slots
                .iter()
                .zip(per)
                .map(|(&slot, loss)| SlotLoss { slot, loss })
                .collect();
            let c = &mut self.state.cost;
            c.probe_forwards += slots.len() as u64;
            c.forward_passes += 1;
            c.add_tokens(PassTokens {
                probe: batch.tokens.real_tokens() as u64,
                ..Default::default()
            });
        }
        if let Some(req) = &passes.evaluate {
            // Loading checked that the held-out records cover the request.
            let n = req
                .examples_per_task
                .min(self.cfg.settings.validation_records);
            let model = self.inference_model();
            for &t in &req.tasks {
                let task = &self.cfg.suite.tasks[t as usize];
                let records = validation_slice(task, n);
                let score = self.score_task(&model, task, &records)?;
                self.state.cost.strategy_eval_examples += records.len() as u64;
                scores.push(TaskScore {
                    task: t,
                    score: score as f32,
                });
            }
        }
        Ok((probe, scores))
    }

    /// The model as evaluation runs it ([`crate::lm::inference_model`]).
    fn inference_model(&self) -> CausalLm {
        crate::lm::inference_model(
            self.model.as_ref().expect("model"),
            self.cfg.settings.eval_merge_adapter,
        )
    }

    fn score_task(
        &self,
        model: &CausalLm,
        task: &Task,
        records: &[Record],
    ) -> Result<f64, EngineError> {
        Ok(evaluate_records(
            model,
            &self.formatter,
            &self.stop_ids,
            &self.cfg.settings,
            task,
            records,
        )
        .score)
    }

    /// The strategy's end-of-task passes, the memory-strength snapshot and WiSE-FT.
    fn end_of_task(
        &mut self,
        k: usize,
        plugins: &mut [&mut dyn Plugin],
    ) -> Result<(), EngineError> {
        let step = self.state.global_step;
        let passes = self.state.replay.wants(HookPoint::AfterTrainingExp {
            task: k as u32,
            step,
        });
        let (probe, scores) = self.extra_passes(&passes)?;
        self.state.replay.after_training_exp(
            k as u32,
            &Signals {
                step,
                probe_losses: &probe,
                scores: &scores,
                ..Default::default()
            },
        );
        let mut strengths = Vec::new();
        self.state
            .replay
            .buffer
            .memory()
            .strengths_into(None, step, &mut strengths);
        if !strengths.is_empty() {
            self.log.write(
                &json!({"type": "strengths", "step": step, "stage": k + 1, "values": strengths}),
            )?;
        }
        if let (Some(w), Some(prev)) = (self.cfg.method.wise_ft, &self.stage_start) {
            let model = self.model.take().expect("model");
            self.model = Some(prev.interpolate(model, w.alpha)?);
        }
        if self.stage_start.is_some() {
            self.stage_start = Some(TrainableSnapshot::of(self.model.as_ref().expect("model")));
        }
        let steps = self.steps_in_task(k);
        for p in plugins.iter_mut() {
            p.after_training_exp(&self.ctx(k, steps));
        }
        Ok(())
    }

    /// A 1-D loss-landscape slice around the model that finished task `k`, along a random
    /// filter-normalised direction of the trainable parameters (seeded by the run, the same
    /// draw at every stage), on the held-out validation records of every task. A
    /// measurement: logged as a `landscape` event, outside the cost counters.
    fn landscape_slice(&mut self, k: usize) -> Result<(), EngineError> {
        let refs = self.validation_refs();
        if refs.is_empty() {
            return Ok(());
        }
        let batch = self.sft_batch(&refs);
        let s = &self.cfg.settings;
        let config = sharpness::LandscapeConfig::new()
            .with_points(s.landscape_points)
            .with_span(s.landscape_span)
            .with_seed(mix(&[self.cfg.seed, 3]));
        let model = self.model.as_ref().expect("model");
        let slice = config.evaluate(model, |m| finetune::sft_loss(m, &batch).mean);
        self.log.write(&json!({"type": "landscape", "stage": k + 1, "step": self.state.global_step, "a": slice.a, "b": slice.b,
            "losses": slice.losses, "seed": slice.seed, "records": refs.len()}))
    }

    /// The SAM sharpness of the model that finished task `k`, on a probe set fixed for the whole
    /// run (the validation records of every task), so stages and methods compare on equal terms.
    fn sharpness_probe(&mut self, k: usize) -> Result<(), EngineError> {
        let refs = self.validation_refs();
        if refs.is_empty() {
            return Ok(());
        }
        let batch = self.sft_batch(&refs);
        let rho = self.cfg.settings.sharpness_rho;
        let model = self.model.as_ref().expect("model");
        let m = sharpness::measures::sam_sharpness(model, rho, 1e-12, |m| {
            finetune::sft_loss(m, &batch).mean
        });
        for (term, value) in [
            ("sharpness probe loss", m.loss),
            ("sharpness probe perturbed loss", m.perturbed_loss),
        ] {
            if !value.is_finite() {
                let task = self.cfg.suite.tasks[k].name.clone();
                return Err(EngineError::Diverged {
                    task,
                    step: self.state.global_step,
                    term: term.into(),
                    value,
                });
            }
        }
        self.log.write(&json!({"type": "sharpness_probe", "stage": k + 1, "step": self.state.global_step, "rho": rho, "records": refs.len(), "loss": m.loss, "perturbed_loss": m.perturbed_loss, "sharpness": m.sharpness, "grad_norm": m.grad_norm}))?;
        Ok(())
    }

    /// Evaluates every task and probe: row `stage` of the matrix.
    fn evaluate(
        &mut self,
        stage: usize,
        plugins: &mut [&mut dyn Plugin],
    ) -> Result<(), EngineError> {
        let t0 = Instant::now();
        let task = stage.saturating_sub(1);
        for p in plugins.iter_mut() {
            p.before_eval(&self.ctx(task, 0), stage);
        }
        let n_tasks = self.num_tasks();
        let sets = crate::lm::eval_sets(&self.cfg.suite, &self.cfg.settings);
        let model = self.inference_model();
        let mut task_seconds: Vec<Option<f64>> = vec![None; sets.len()];
        let mut scored = 0;
        let report = evaluate_row(
            &model,
            &self.formatter,
            &self.stop_ids,
            &self.cfg.settings,
            &sets,
            |i, secs| {
                task_seconds[i] = secs;
                scored += 1;
                for p in plugins.iter_mut() {
                    p.eval_progress(scored, sets.len());
                }
                crate::test_pause("eval");
            },
        );
        self.state.cost.eval_examples += sets.iter().map(|(_, r)| r.len() as u64).sum::<u64>();
        let scores: Vec<f64> = report.reports.iter().map(|r| r.score).collect();
        let (row, probes) = (scores[..n_tasks].to_vec(), scores[n_tasks..].to_vec());
        let secs = t0.elapsed().as_secs_f64();
        self.state.cost.eval_seconds += secs;
        self.log.write(&json!({"type": "eval", "stage": stage, "step": self.state.global_step, "scores": row, "probe_scores": probes, "seconds": secs, "task_seconds": task_seconds, "generative_seconds": report.generative_seconds}))?;
        for p in plugins.iter_mut() {
            p.after_eval(&self.ctx(task, 0), stage, &row, &probes);
        }
        self.state.rows.push(row);
        self.state.probe_rows.push(probes);
        self.write_matrix()
    }

    fn write_matrix(&self) -> Result<(), EngineError> {
        write_json(
            &self.cfg.out_dir.join("matrix.json"),
            &json!({
                "tasks": self.cfg.suite.tasks.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "probes": self.cfg.suite.probes.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "rows": self.state.rows,
                "probe_rows": self.state.probe_rows,
            }),
        )
    }

    fn write_run_json(&self, status: &str) -> Result<(), EngineError> {
        let c = self.cfg;
        write_json(
            &c.out_dir.join("run.json"),
            &json!({
                "suite": c.suite.name, "method": c.method.name, "seed": c.seed, "status": status,
                "method_config": c.method, "training": c.settings, "suite_spec": c.suite_spec,
                "model": match &c.model { ModelSource::TinyRandom => "tiny-random".to_string(), ModelSource::Path { path } => path.display().to_string() },
                "device": c.device_name, "replay_budget": c.settings.replay_budget,
                "provenance": c.provenance,
                "tasks": c.suite.tasks.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "probes": c.suite.probes.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "train_records_used": (0..self.train.len()).map(|t| self.train[t][..self.pool_len(t)].iter().flatten().count()).collect::<Vec<_>>(),
                "validation_records_held_out": self.cfg.suite.tasks.iter().map(|t| held_out(t.train.len(), c.settings.validation_records)).collect::<Vec<_>>(),
            }),
        )
    }

    fn checkpoint(&mut self) -> Result<(), EngineError> {
        self.log.sync()?;
        self.state.log_len = self.log.len();
        self.state.sam = self.sam.as_ref().map(|s| s.to_record());
        let model = self.model.as_ref().expect("model");
        crate::checkpoint::save(
            &self.cfg.out_dir.join("ckpt"),
            self.state.global_step,
            self.state.task,
            &crate::checkpoint::Contents {
                trainable: &TrainableSnapshot::of(model),
                wise_prev: self.stage_start.as_ref(),
                trainer: &self.trainer,
                state: &serde_json::to_value(&self.state).expect("state serialises"),
            },
            usize::from(self.cfg.settings.on_divergence == DivergencePolicy::Rollback),
        )
    }

    fn restore(&mut self, dir: &Path) -> Result<(), EngineError> {
        let loaded = crate::checkpoint::load(dir)?;
        self.state = serde_json::from_value(loaded.state)
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", dir.display())))?;
        let model = self.model.take().expect("model");
        self.model = Some(loaded.trainable.restore(model)?);
        if loaded.wise_prev.is_some() {
            self.stage_start = loaded.wise_prev;
        }
        self.load_trainer(dir)?;
        if let (Some(sam), Some(rec)) = (self.sam.take(), self.state.sam.clone()) {
            self.sam = Some(sam.load_record(rec));
        }
        self.log = JsonlLog::open(&self.cfg.out_dir.join("log.jsonl"), self.state.log_len)?;
        Ok(())
    }

    /// The optimizer moments and step of checkpoint `dir`, with the learning rate of the
    /// current state (the base rate times `lr_scale`).
    fn load_trainer(&mut self, dir: &Path) -> Result<(), EngineError> {
        let mut optim = self.cfg.settings.optim.clone();
        optim.lr *= self.state.lr_scale;
        self.trainer = Trainer::new(optim)
            .load(&dir.join("trainer"))
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", dir.display())))?;
        Ok(())
    }

    /// After an error inside a task: a divergence under `on_divergence = "rollback"` with
    /// rollbacks left restores the last checkpoint (weights, optimizer, buffer, scheduler,
    /// counters, log), multiplies the learning rate by `divergence_lr_factor` and logs a
    /// `rollback` line; the caller then retries from there. Any other error, and a divergence
    /// without rollbacks left, is returned: a run never goes on silently.
    fn roll_back(&mut self, err: EngineError) -> Result<(), EngineError> {
        let cfg = self.cfg;
        let s = &cfg.settings;
        let (task, step, term, value) = match &err {
            EngineError::Diverged {
                task,
                step,
                term,
                value,
                ..
            } if s.on_divergence == DivergencePolicy::Rollback => {
                (task.clone(), *step, term.clone(), *value)
            }
            _ => return Err(err),
        };
        if self.state.rollbacks >= s.divergence_max_rollbacks {
            let lr = s.optim.lr * self.state.lr_scale;
            return Err(EngineError::DivergedAfterRollbacks {
                last: Box::new(err),
                rollbacks: self.state.rollbacks,
                lr,
            });
        }
        // The newest checkpoint taken before the diverging step: one taken at that very step
        // holds weights that already give the non-finite loss.
        let root = cfg.out_dir.join("ckpt");
        let Some(dir) = crate::checkpoint::before(&root, step)? else {
            return Err(EngineError::Checkpoint(format!(
                "{err}; no checkpoint before step {step} to roll back to"
            )));
        };
        crate::checkpoint::republish(&root, &dir)?;
        let (rollbacks, lr_scale) = (
            self.state.rollbacks + 1,
            self.state.lr_scale * s.divergence_lr_factor,
        );
        let log_path = cfg.out_dir.join("log.jsonl");
        let old_log = std::fs::read(&log_path).map_err(|e| EngineError::io(&log_path, e))?;
        self.restore(&dir)?;
        // Earlier rollbacks logged since that checkpoint are history, not retried work: the
        // cut-back log keeps them.
        let since = old_log
            .get(self.state.log_len as usize..)
            .unwrap_or_default();
        for line in String::from_utf8_lossy(since).lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && v["type"] == "rollback"
            {
                self.log.write(&v)?;
            }
        }
        self.state.rollbacks = rollbacks;
        self.state.lr_scale = lr_scale;
        self.load_trainer(&dir)?;
        let lr = s.optim.lr * lr_scale;
        tracing::warn!(
            "{err}: rollback {rollbacks} to {} (step {}), learning rate now {lr:e}",
            dir.display(),
            self.state.global_step
        );
        self.log.write(&json!({"type": "rollback", "task": task, "step": step, "term": term, "value": value,
            "to_step": self.state.global_step, "rollback": rollbacks, "lr_scale": lr_scale, "lr": lr}))?;
        Ok(())
    }

    fn finish(mut self) -> Result<RunOutcome, EngineError> {
        let matrix = AccuracyMatrix::new(self.state.rows.clone()).map_err(EngineError::Metrics)?;
        let m = matrix.metrics();
        let c = &self.state.cost;
        let wall = c.train_seconds + c.eval_seconds;
        let metrics = json!({
            "aa": m.aa, "bwt": m.bwt, "forgetting": m.forgetting, "fwt": m.fwt, "ans": m.ans,
            "general_forgetting": general_forgetting(&self.state.probe_rows),
            "cost": {
                "optimizer_steps": c.optimizer_steps, "forward_passes": c.forward_passes, "backward_passes": c.backward_passes,
                "tokens": c.tokens, "tokens_by_pass": c.tokens_by_pass, "replayed_samples": c.replayed_samples, "probe_forwards": c.probe_forwards,
                "strategy_eval_examples": c.strategy_eval_examples, "eval_examples": c.eval_examples,
                "wall_seconds": wall, "train_seconds": c.train_seconds, "eval_seconds": c.eval_seconds,
                "this_process_seconds": self.started.elapsed().as_secs_f64(),
            },
            "replay_budget": self.cfg.settings.replay_budget,
            "divergence_rollbacks": self.state.rollbacks,
        });
        write_json(&self.cfg.out_dir.join("metrics.json"), &metrics)?;
        if self.cfg.settings.mode == TrainModeName::Lora {
            let model = self.model.as_ref().expect("model");
            lora::save_peft(model, ADAPTER, &self.cfg.out_dir.join("adapter"), None)
                .map_err(|e| EngineError::Checkpoint(format!("saving the final adapter: {e}")))?;
        }
        self.log.sync()?;
        self.write_run_json("complete")?;
        crate::test_pause("index-append");
        if let Some(index) = &self.cfg.index_path {
            // Built from run.json and metrics.json, so a kill right here is repaired later
            // (`ensure_index_row` on the next `cargo xtask suite`).
            ensure_index_row(index, &self.cfg.out_dir)?;
        }
        Ok(RunOutcome {
            rows: self.state.rows,
            probe_rows: self.state.probe_rows,
            metrics,
        })
    }
}

/// The passes of one optimizer step, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Passes {
    /// Forwards of the step's batch through the trained model.
    sft: u64,
    /// Forwards of the batch through the KL reference.
    kl_reference: u64,
    /// Forwards of the corpus batch.
    corpus: u64,
    /// Backward passes.
    backward: u64,
}

impl Passes {
    /// `n` evaluations of an objective that runs `self` once.
    fn times(self, n: u64) -> Self {
        Self {
            sft: self.sft * n,
            kl_reference: self.kl_reference * n,
            corpus: self.corpus * n,
            backward: self.backward * n,
        }
    }

    fn forwards(&self) -> u64 {
        self.sft + self.kl_reference + self.corpus
    }
}

/// Loss values of one step, read back to the host.
struct StepLosses {
    total: f64,
    sft: f64,
    kl: Option<f64>,
    ntp: Option<f64>,
    per_sample: Vec<f32>,
    passes: Passes,
    sharpness: Option<sharpness::StepLog>,
}

impl StepLosses {
    fn read(parts: &LossParts, passes: Passes) -> Self {
        let scalar = |t: &burn::tensor::Tensor<1>| f64::from(t.clone().into_scalar::<f32>());
        Self {
            total: scalar(&parts.total),
            sft: scalar(&parts.sft.mean),
            kl: parts.kl.as_ref().map(scalar),
            ntp: parts.ntp.as_ref().map(scalar),
            per_sample: parts
                .sft
                .per_sample
                .clone()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32"),
            passes,
            sharpness: None,
        }
    }
}

/// Whether the method's KL term is taken against the model at each stage's start.
fn stage_start_kl(cfg: &RunConfig) -> bool {
    cfg.method.objective.kl_weight > 0.0
        && cfg.method.objective.kl_reference == KlReference::StageStart
}

/// Validation records held out of a task with `n` training records.
fn held_out(n: usize, validation_records: usize) -> usize {
    validation_records.min(n)
}

/// The records of a task that are trained on: all but the held-out validation records at the
/// end.
fn training_pool<T>(records: &[T], validation_records: usize) -> &[T] {
    &records[..records.len() - held_out(records.len(), validation_records)]
}

/// Replayed samples a run may have spent by the end of global step `step` (counted from 0;
/// see `Run::replay_allowance`): the whole `budget` unpaced, else its elapsed share after the
/// first task's `first_task_steps`, plus one replay batch, never more than the budget.
pub(crate) fn replay_allowance(
    budget: u64,
    pacing: crate::method::ReplayPacing,
    first_task_steps: u64,
    total_steps: u64,
    step: u64,
    batch: u64,
) -> u64 {
    if pacing != crate::method::ReplayPacing::Even {
        return budget;
    }
    let (t1, t) = (first_task_steps as f64, step as f64 + 1.0);
    let share = ((t - t1) / (total_steps as f64 - t1).max(1.0)).clamp(0.0, 1.0);
    ((budget as f64 * share).floor() as u64 + batch).min(budget)
}

/// The buffer: `buffer_per_task` entries per task unless the method file gives a capacity,
/// seeded by the run; `S0` from the run's `total_steps` when the method sets
/// `initial_stability_run_fraction`.
fn buffer_config(cfg: &RunConfig, total_steps: usize) -> replay_buffer::ReplayBufferConfig {
    let replay = &cfg.method.replay;
    let mut b = replay.buffer.clone();
    if !replay.explicit_capacity {
        b.capacity = replay_buffer::CapacityPolicy::PerTask {
            quota: cfg.settings.buffer_per_task,
        };
    }
    if let Some(f) = replay.initial_stability_run_fraction {
        b.memory.initial_stability = ((f * total_steps as f64) as f32).max(b.memory.min_stability);
    }
    b.seed = mix(&[cfg.seed, 1]);
    b
}

/// One replay batch: the run's batch size times its replay ratio.
fn replay_size(s: &TrainSettings) -> replay_buffer::ReplaySize {
    replay_buffer::ReplaySize {
        batch_size: s.batch_size,
        ratio: s.replay_ratio,
    }
}

/// The scheduler with the run's batch size, replay ratio and seed.
fn scheduler_config(cfg: &RunConfig) -> SchedulerConfig {
    let mut s = cfg.method.replay.scheduler;
    s.set_size_and_seed(replay_size(&cfg.settings), mix(&[cfg.seed, 2]));
    s
}

/// Optimizer steps per task: `steps_per_task`, or `epochs · ⌈n / |B|⌉` over the training
/// records (validation records held out) that fit.
fn task_steps(s: &TrainSettings, train: &[Vec<Option<Encoded>>]) -> Vec<usize> {
    train
        .iter()
        .map(|t| {
            let pool = training_pool(t, s.validation_records);
            s.steps_per_task
                .unwrap_or_else(|| s.epochs * pool.iter().flatten().count().div_ceil(s.batch_size))
        })
        .collect()
}

/// A task's training records encoded; a record that does not fit the context (its answer alone
/// exceeds `max_len`) is skipped with a warning naming the task, the record's index in the task's
/// train records and the start of its prompt.
///
/// Every record is encoded, the held-out validation records at the end included (the
/// sharpness and landscape probes run on them); a task whose training records would all be
/// held out is an error naming `training.validation_records`.
fn encode_train(
    formatter: &Formatter<TextCodec>,
    task: &Task,
    validation_records: usize,
    origin: &Path,
) -> Result<Vec<Option<Encoded>>, EngineError> {
    if !task.train.is_empty() && task.train.len() <= validation_records {
        return Err(EngineError::config(
            origin,
            format!(
                "training.validation_records = {validation_records} holds out all {1} training records of task `{0}`: lower it or give the task more records",
                task.name,
                task.train.len()
            ),
        ));
    }
    let origin = format!("task `{}` (train)", task.name);
    Ok(formatter
        .encode_each(task.system.as_deref(), &origin, &task.train)
        .into_iter()
        .map(|r| match r {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!("{e}: the record is skipped");
                None
            }
        })
        .collect())
}

/// Validation records of a task: the last `n` of its training records, held out of training
/// (`training.validation_records`), so neither trained on, buffered nor tested on; our choice,
/// METHODS.md leaves the split to the engine.
fn validation_slice(task: &Task, n: usize) -> Vec<Record> {
    let start = task.train.len().saturating_sub(n);
    task.train[start..].to_vec()
}

/// Corpus passages as token ids, each cut to `max_tokens` (at least 2); shorter ones dropped.
pub(crate) fn corpus_ids(corpus: &[String], codec: &TextCodec, max_tokens: usize) -> Vec<Vec<u32>> {
    use bench_tasks::format::TokenCounter;
    corpus
        .iter()
        .map(|p| {
            let mut ids = codec.encode(p);
            ids.truncate(max_tokens.max(2));
            ids
        })
        .filter(|ids| ids.len() >= 2)
        .collect()
}

/// The backbone with its prompt formatter (tokenizer, chat template, the suite's maximum
/// length) and the token ids that end a generation. A random model is seeded by `seed`.
pub(crate) fn load_backbone(
    source: &ModelSource,
    seed: u64,
    suite: &Suite,
    device: &Device,
) -> Result<(CausalLm, Formatter<TextCodec>, Vec<u32>), EngineError> {
    let (model, codec, chat) = match source {
        ModelSource::TinyRandom => {
            let m = backbone::random::random_model(
                &backbone::random::tiny_byte_llama_config(),
                seed,
                0.02,
                device,
            );
            (
                m,
                TextCodec::Bytes,
                chat_template::ChatConfig::new(chat_template::ChatTemplate::Plain),
            )
        }
        ModelSource::Path { path } => {
            let lm = backbone::LoadedModel::load(path, device)?;
            let tok = lm
                .tokenizer
                .ok_or_else(|| EngineError::config(path, "the model ships no tokenizer".into()))?;
            let chat = chat_for(&lm.model, &tok);
            (lm.model, TextCodec::Hf(Box::new(tok)), chat)
        }
    };
    let max_len = suite
        .max_len
        .unwrap_or(512)
        .min(model.config.max_position_embeddings);
    let formatter = Formatter::new(
        FormatConfig {
            chat: chat.clone(),
            max_len,
        },
        codec,
    );
    let stop_ids = formatter
        .tokenizer()
        .stop_ids(&chat, &model.config.eos_token_ids);
    Ok((model, formatter, stop_ids))
}

fn chat_for(model: &CausalLm, tok: &backbone::TextTokenizer) -> chat_template::ChatConfig {
    use chat_template::{ChatConfig, ChatTemplate};
    match model.config.family {
        backbone::config::Family::Gemma2 => ChatConfig::new(ChatTemplate::Gemma),
        backbone::config::Family::Qwen2 => ChatConfig::new(ChatTemplate::ChatMl),
        backbone::config::Family::Llama if tok.token_id("<|im_start|>").is_some() => {
            ChatConfig::new(ChatTemplate::ChatMl)
        }
        backbone::config::Family::Llama => ChatConfig::new(ChatTemplate::Llama3),
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
