//! The fine-tuning step for continual learning of LLMs: masked SFT cross-entropy with per-sample
//! losses, `KL(p_ref || p_θ)` to the model with its adapters switched off, next-token prediction
//! on corpus passages, their weighted sum, and the optimiser around them (Burn's AdamW,
//! warm-up + cosine schedule, global-norm clipping, gradient accumulation, LoRA or full
//! fine-tuning, resumable state).
//!
//! One training step, top to bottom:
//!
//! ```no_run
//! use finetune::{ObjectiveConfig, Reference, SftBatch, TrainConfig, TrainMode, Trainer};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = burn::tensor::Device::flex().autodiff();
//! let lm = backbone::LoadedModel::load("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), &device)?;
//! let mut model = lm.model;
//! lora::add_adapter(&mut model, "task1", &lora::LoraConfig::default(), &device);
//! let mut model = finetune::prepare_model(model, &TrainMode::Lora { adapter: "task1".into() })?;
//! let mut trainer = Trainer::new(TrainConfig::default());
//! let objective = ObjectiveConfig { kl_weight: 0.001, ntp_weight: 0.0, ..Default::default() };
//! let batch = SftBatch::from_pairs(&[(vec![1, 2, 3], vec![4, 5])], 0);
//! let parts = finetune::objective(&mut model, Reference::AdaptersOff, &batch, None, &objective);
//! let per_sample: Vec<f32> = parts.sft.per_sample.clone().into_data().try_to_vec().unwrap(); // for replay
//! let (m, _info) = trainer.backward_step(model, parts.total);
//! model = m;
//! lora::save_peft(&model, "task1", "out/task1".as_ref(), None)?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod objectives;
mod train;

use std::path::{Path, PathBuf};

pub use objectives::{
    ForwardNeeds, KlDirection, KlReference, KlTokens, LossParts, ObjectiveConfig, Reference,
    SftBatch, SftForward, SftLoss, distillation_kl, kl_divergence, kl_loss, kl_to_reference,
    log_probs_like, ntp_loss, objective, sft_forward, sft_loss,
};
pub use train::{
    LrSchedule, StepInfo, TrainConfig, TrainMode, Trainer, TrainerState, global_grad_norm,
    num_trainable_params, prepare_model, stable_param_ids,
};

/// Errors of model preparation and of saving/loading trainer state.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    /// LoRA mode names an adapter the model does not have.
    #[error(
        "the model has no adapter named {0:?} (add it with lora::add_adapter or lora::load_peft)"
    )]
    NoAdapter(String),
    /// File-system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Optimizer record or trainer JSON could not be written or read.
    #[error("trainer state: {0}")]
    Record(String),
}

impl FinetuneError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
