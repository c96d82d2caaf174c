//! Burn-free readers of the model files a user hands us, and atomic file writes.
//!
//! - [`gguf`]: GGUF v2/v3 (metadata, tensor directory, dequantisation, the model configuration
//!   and tokenizer metadata it describes);
//! - [`safetensors`]: safetensors header validation whose errors name the tensor at fault;
//! - [`config`]: a Hugging Face `config.json` as a serde struct mirroring the file
//!   ([`config::HfConfig`]), checked and resolved into [`config::ModelConfig`];
//! - [`peft`]: PEFT's `adapter_config.json`;
//! - [`atomic`]: atomic file writes with one temporary-name scheme (`<name>.tmp<pid>`) and the
//!   removal of temporaries that killed writers left.
//!
//! Every reader takes untrusted bytes: it validates counts, lengths and offsets before it
//! allocates or indexes, and its errors ([`FormatError`]) name the file and the place (key,
//! tensor, field). The crate pulls in no Burn (`cargo tree -p formats`), so the cargo fuzz
//! targets in `fuzz/` build it instrumented in minutes.
//!
//! ```
//! let json = serde_json::json!({"model_type": "llama", "vocab_size": 256, "hidden_size": 64,
//!     "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4});
//! let cfg = formats::config::ModelConfig::from_hf_json(&json).unwrap();
//! assert_eq!(cfg.head_dim, 16);
//! let bad = serde_json::json!({"model_type": "llama", "hidden_size": "64"});
//! let e = formats::config::ModelConfig::from_hf_json(&bad).unwrap_err().to_string();
//! assert!(e.contains("config field `hidden_size`"), "{e}");
//! ```
#![warn(missing_docs)]

pub mod atomic;
pub mod config;
pub mod error;
pub mod gguf;
pub mod peft;
pub mod safetensors;

pub use error::FormatError;

/// A tensor in host memory, row-major, already converted to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first (PyTorch order).
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Transposes a 2-D tensor.
    pub fn transposed(&self) -> HostTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut out = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                out[j * r + i] = self.data[i * c + j];
            }
        }
        HostTensor {
            shape: vec![c, r],
            data: out,
        }
    }
}
