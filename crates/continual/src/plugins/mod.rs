//! Method plugins: everything a method does to training that is not replay, as hooks named as
//! in Avalanche, each method one file.
//!
//! The engine's training step calls them in this order (`engine::step`):
//!
//! ```text
//! before_training_exp   stage start: snapshot, freeze or add adapters, build references
//! forward               the batch through the model (what the plugins' `needs` ask for)
//! before_backward       loss terms: the total is sft_weight · L_SFT + Σ weight · term
//! backward
//! after_backward        change the gradients (projection, masking)
//! optimizer step        AdamW, or SAM/XSAM around it
//! after_training_exp    stage end: merge or interpolate weights, estimate importances
//! save / load           the plugin's own state in every checkpoint
//! ```
//!
//! Built in: the KL term towards a reference model ([`kl`]), next-token prediction on an
//! open corpus ([`corpus`]) and WiSE-FT between stages ([`wise_ft`]), configured by the
//! method file's `[objective]` and `[wise_ft]` tables; and the continual-learning baselines,
//! each named by `kind` in a `[[plugins]]` table of a method file and registered with
//! `#[typetag::serde(name = "...")] impl PluginConfig for ...` in its own file (a plugin in
//! a researcher's own crate registers the same way). `docs/method-plugins.md` is the how-to.

pub mod agem;
pub mod corpus;
pub mod derpp;
pub mod ewc;
pub mod kl;
pub mod lwf;
pub mod olora;
pub mod trainable;
pub mod wise_ft;

use std::fmt::Debug;
use std::path::Path;

use backbone::CausalLm;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use dyn_clone::DynClone;
use finetune::{ForwardNeeds, SftBatch, SftForward};
use replay_buffer::{ReplayBuffer, SampleRef};

use crate::EngineError;
use crate::method::TrainSettings;

/// A method plugin's configuration, named by `kind` in a `[[plugins]]` table of a method file.
#[typetag::serde(tag = "kind")]
pub trait PluginConfig: Debug + DynClone + Send + Sync {
    /// The plugin for a run, with the model as it starts training.
    fn init(&self, run: &PluginInit<'_>) -> Result<Box<dyn MethodPlugin>, EngineError>;

    /// Checks the settings when the method file is read: `Err((field, message))` names the
    /// field relative to the plugin's table. The default accepts everything.
    fn check(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}

dyn_clone::clone_trait_object!(PluginConfig);

impl PartialEq for Box<dyn PluginConfig> {
    /// Two configurations are equal when they serialise alike (kind and every field).
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

/// What a plugin is built with.
pub struct PluginInit<'a> {
    /// The model as it starts training (prepared: LoRA adapter added, trainable set chosen).
    pub model: &'a CausalLm,
    /// The run's training settings.
    pub settings: &'a TrainSettings,
    /// The run's seed.
    pub seed: u64,
    /// Tasks in the suite.
    pub num_tasks: usize,
    /// The open corpus as token ids (empty without one).
    pub corpus: &'a [Vec<u32>],
    /// The method file (named in errors).
    pub origin: &'a Path,
}

/// What a plugin may read of the run besides the model: the task data and the replay buffer.
pub trait RunData {
    /// A batch of training records (rows in the order given).
    fn batch(&self, samples: &[SampleRef]) -> SftBatch;
    /// The samples of `task` that are trained on (held-out validation records excluded).
    fn training_samples(&self, task: usize) -> Vec<SampleRef>;
    /// The replay buffer (the samples a strategy keeps; empty without replay).
    fn buffer(&self) -> &ReplayBuffer;
}

/// Passes and tokens a plugin ran besides the step's own forward and backward, charged to
/// the method's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spent {
    /// Forward passes.
    pub forwards: u64,
    /// Backward passes.
    pub backwards: u64,
    /// Real tokens through those passes.
    pub tokens: u64,
}

/// What a plugin sees at a stage boundary.
pub struct StageContext<'a> {
    /// The task that starts (`before_training_exp`) or ended (`after_training_exp`).
    pub task: usize,
    /// The global optimizer step.
    pub step: u64,
    /// The model; a plugin may replace its weights.
    pub model: &'a mut CausalLm,
    /// The task data and the buffer.
    pub data: &'a dyn RunData,
    /// Passes the plugin runs here.
    pub spent: &'a mut Spent,
    /// Log lines (JSON objects with a `type`) the engine appends to `log.jsonl`.
    pub log: &'a mut Vec<serde_json::Value>,
}

/// What a plugin sees when it adds loss terms.
pub struct LossContext<'a> {
    /// The task being trained.
    pub task: usize,
    /// The global optimizer step.
    pub step: u64,
    /// The model being trained (autodiff).
    pub model: &'a mut CausalLm,
    /// The step's batch: the task's samples, then the replayed ones.
    pub batch: &'a SftBatch,
    /// The sample of each batch row.
    pub samples: &'a [SampleRef],
    /// How many leading rows are the task's own samples.
    pub task_rows: usize,
    /// The batch's forward pass (log-probabilities where a plugin's `needs` asked).
    pub forward: &'a SftForward,
    /// Which evaluation of the objective in this step (0 first; SAM evaluates it several
    /// times, at perturbed weights).
    pub evaluation: u64,
}

/// Which pass counter a loss term's extra forwards are charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// The batch through a KL reference.
    KlReference,
    /// Corpus passages.
    Corpus,
    /// Anything else a plugin runs.
    Plugin,
}

/// A weighted loss term: the total loss gains `weight · value`.
pub struct LossTerm {
    /// Its name in the step log (`kl`, `ntp`, `ewc`, ...).
    pub name: &'static str,
    /// The term, a scalar `[1]` in the autodiff graph.
    pub value: Tensor<1>,
    /// Its weight.
    pub weight: f64,
    /// Forwards the term ran besides the batch's own, and their tokens.
    pub extra: (PassKind, Spent),
}

/// What a plugin sees after the backward pass.
pub struct GradContext<'a> {
    /// The task being trained.
    pub task: usize,
    /// The global optimizer step.
    pub step: u64,
    /// The model (autodiff), before the update.
    pub model: &'a CausalLm,
    /// The gradients of the total loss over the trainable parameters; a plugin may change
    /// them.
    pub grads: &'a mut GradientsParams,
    /// The task data and the buffer.
    pub data: &'a dyn RunData,
    /// Passes the plugin runs here.
    pub spent: &'a mut Spent,
}

/// A method plugin. Every hook defaults to doing nothing.
pub trait MethodPlugin: Send {
    /// The plugin's name: its checkpoint folder and its log lines.
    fn name(&self) -> &str;

    /// What its loss terms read from the step's forward pass.
    fn needs(&self) -> ForwardNeeds {
        ForwardNeeds::default()
    }

    /// Training on `ctx.task` is about to start (not called again when a run resumes inside
    /// the task: what it builds must come back through [`load`](Self::load)).
    fn before_training_exp(&mut self, _ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        Ok(())
    }

    /// Loss terms to add to the step's objective. Called once per evaluation of the
    /// objective (several times under SAM).
    fn before_backward(&mut self, _ctx: &mut LossContext<'_>) -> Vec<LossTerm> {
        Vec::new()
    }

    /// The gradients are computed; the optimizer step comes next.
    fn after_backward(&mut self, _ctx: &mut GradContext<'_>) -> Result<(), EngineError> {
        Ok(())
    }

    /// Training on `ctx.task` has ended (after the replay strategy's end-of-task passes).
    fn after_training_exp(&mut self, _ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        Ok(())
    }

    /// The whole stream is trained and its last row evaluated; the engine saves the final
    /// adapter (`adapter/`) next; called in LoRA runs only (full fine-tuning saves no
    /// adapter). A plugin that keeps part of the trained model outside the adapter (O-LoRA
    /// folds finished tasks' adapters into the frozen weights) puts it back here, so that the
    /// saved adapter on the bare backbone is the model the last row scored.
    fn after_training(&mut self, _model: &mut CausalLm) -> Result<(), EngineError> {
        Ok(())
    }

    /// Writes the plugin's state into `dir` (its own folder inside a checkpoint).
    fn save(&self, _dir: &Path) -> Result<(), EngineError> {
        Ok(())
    }

    /// Reads the state [`save`](Self::save) wrote, on resume or rollback; `model` is the
    /// restored model (its trainable weights already restored; a plugin that changed the
    /// model's structure or frozen weights redoes that here).
    fn load(&mut self, _dir: &Path, _model: &mut CausalLm) -> Result<(), EngineError> {
        Ok(())
    }
}

/// The method's plugins in the order they run: the KL term and the corpus term of
/// `[objective]`, WiSE-FT of `[wise_ft]`, then the `[[plugins]]` tables in file order.
pub fn method_plugins(
    method: &crate::MethodConfig,
    run: &PluginInit<'_>,
) -> Result<Vec<Box<dyn MethodPlugin>>, EngineError> {
    let mut out: Vec<Box<dyn MethodPlugin>> = Vec::new();
    let objective = &method.objective;
    if objective.kl_weight > 0.0 {
        out.push(Box::new(kl::KlToReference::new(objective, run)));
    }
    if objective.ntp_weight > 0.0 {
        out.push(Box::new(corpus::CorpusNtp::new(objective.ntp_weight, run)));
    }
    if let Some(w) = method.wise_ft {
        out.push(Box::new(wise_ft::WiseFtPlugin::new(w.alpha, run.model)));
    }
    for p in &method.plugins {
        out.push(p.init(run)?);
    }
    Ok(out)
}

/// The union of what the plugins' loss terms need from the forward pass.
pub fn forward_needs(plugins: &[Box<dyn MethodPlugin>]) -> ForwardNeeds {
    plugins
        .iter()
        .fold(ForwardNeeds::default(), |n, p| n.union(p.needs()))
}
