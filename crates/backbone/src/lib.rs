//! Decoder-only language-model backbones on Burn: Llama (SmolLM2, TinyLlama, Llama-3.x),
//! Qwen2/Qwen2.5 and Gemma2, loaded from Hugging Face safetensors (single or sharded) or GGUF
//! files, with tokenizers, a KV cache and generation.
//!
//! ```no_run
//! use backbone::{LoadedModel, TokenBatch, select_device};
//! let device = select_device(Some("cpu")).unwrap();
//! let lm = LoadedModel::load(std::path::Path::new("SmolLM2-135M-Instruct.gguf"), &device).unwrap();
//! let ids = lm.tokenizer.as_ref().unwrap().encode("The capital of France is").unwrap();
//! let logits = lm.model.forward(&TokenBatch::single(&ids), None); // [1, S, vocab]
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod fused;
pub mod generate;
pub mod gguf;
pub mod load;
pub mod model;
pub mod random;
pub mod rope;
pub mod score;
mod switch;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};

use burn::tensor::Device;

pub use config::{Family, ModelConfig};
pub use error::LoadError;
pub use generate::{
    GenerateConfig, continuation_logprobs, continuation_logprobs_batch, generate,
    generate_greedy_batch,
};
pub use model::{CausalLm, KvCache, TokenBatch};
pub use tokenizer::TextTokenizer;

/// A model with its tokenizer, as loaded from a directory or a GGUF file.
pub struct LoadedModel {
    /// The network.
    pub model: CausalLm,
    /// The tokenizer, when the checkpoint ships one.
    pub tokenizer: Option<TextTokenizer>,
    /// Where it came from.
    pub path: PathBuf,
}

impl LoadedModel {
    /// Loads a Hugging Face directory (`config.json`, safetensors, optional `tokenizer.json`) or
    /// a `.gguf` file onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, LoadError> {
        if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
            let source = gguf::GgufSource::open(path)?;
            let tokenizer = TextTokenizer::from_gguf(&source.file, &path.display().to_string())?;
            let model = load::load_model(&source.config, &source, device)?;
            check_vocab(&model, &tokenizer, path)?;
            return Ok(Self {
                model,
                tokenizer: Some(tokenizer),
                path: path.to_path_buf(),
            });
        }
        if !path.is_dir() {
            return Err(LoadError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model directory or .gguf file here",
                ),
            });
        }
        let config = ModelConfig::from_file(&path.join("config.json"))?;
        let source = weights::SafetensorsSource::open(path)?;
        let model = load::load_model(&config, &source, device)?;
        let tok_path = path.join("tokenizer.json");
        let tokenizer = if tok_path.is_file() {
            let mut t = TextTokenizer::from_file(&tok_path)?;
            t.bos_id = config.bos_token_id;
            t.eos_id = config.eos_token_ids.first().copied();
            check_vocab(&model, &t, &tok_path)?;
            Some(t)
        } else {
            None
        };
        Ok(Self {
            model,
            tokenizer,
            path: path.to_path_buf(),
        })
    }
}

/// A tokenizer whose ids run past the embedding would index out of range at run time.
fn check_vocab(model: &CausalLm, tok: &TextTokenizer, origin: &Path) -> Result<(), LoadError> {
    let (n_tok, n_model) = (tok.vocab_size(), model.config.vocab_size);
    if n_tok > n_model {
        return Err(LoadError::Tokenizer {
            origin: origin.display().to_string(),
            message: format!("{n_tok} tokens, but the model's embedding has only {n_model} rows"),
        });
    }
    Ok(())
}

/// The Burn device for a name: `cpu` (Flex), `wgpu`, `vulkan` (with the `wgpu` feature) or
/// `cuda` (with the `cuda` feature). `None` reads `BURN_DEVICE`, then falls back to `cpu`.
pub fn select_device(name: Option<&str>) -> Result<Device, String> {
    let from_env = std::env::var("BURN_DEVICE").ok();
    let name = name
        .map(str::to_string)
        .or(from_env)
        .unwrap_or_else(|| "cpu".to_string());
    match name.to_ascii_lowercase().as_str() {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(Default::default())),
        #[cfg(feature = "wgpu")]
        "vulkan" => Ok(Device::vulkan(Default::default())),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        #[cfg(not(feature = "wgpu"))]
        other @ ("wgpu" | "vulkan") => Err(format!(
            "device `{other}` needs the `wgpu` cargo feature (rebuild with --features wgpu)"
        )),
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(
            "device `cuda` needs the `cuda` cargo feature (rebuild with --features cuda)"
                .to_string(),
        ),
        other => Err(format!(
            "unknown device `{other}` (cpu, wgpu, vulkan or cuda)"
        )),
    }
}
