//! The model configuration: a Hugging Face `config.json` read into [`HfConfig`] (a serde
//! struct mirroring the file's keys), then checked and resolved into [`ModelConfig`] by
//! [`ModelConfig::from_hf`]. GGUF metadata goes the same way ([`crate::gguf::config_from_metadata`]).
//!
//! Every error names the field: a value of the wrong type by its path
//! (`config field `rope_scaling.factor`: invalid type: string "2", expected a number`), a value
//! the model cannot run with by its key and the bound it breaks.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

use crate::error::FormatError;

/// The keys of a Hugging Face `config.json` that the three supported families use, as written in
/// the file. Every key is optional here (a missing required one is reported by
/// [`ModelConfig::from_hf`], naming it); keys not listed (`architectures`, `torch_dtype`, ...) are
/// ignored, since real configs carry dozens that do not change the network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HfConfig {
    /// `llama`, `mistral`, `qwen2` or `gemma2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// Rows of the embedding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
    /// Residual width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<usize>,
    /// MLP inner width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate_size: Option<usize>,
    /// Decoder layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_hidden_layers: Option<usize>,
    /// Query heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_attention_heads: Option<usize>,
    /// Key/value heads (default: the query heads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head (default: `hidden_size / num_attention_heads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon (default 1e-6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rms_norm_eps: Option<f64>,
    /// RoPE base (default: `rope_parameters.rope_theta`, else 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// RoPE scaling (transformers 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeParameters>,
    /// RoPE type and base together (transformers 5), used when `rope_scaling` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeParameters>,
    /// Longest trained position (default 2048).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_position_embeddings: Option<usize>,
    /// Output head shares the embedding (default: true for Gemma2, else false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_word_embeddings: Option<bool>,
    /// Llama: biases on q/k/v/o.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_bias: Option<bool>,
    /// Llama: biases on the MLP projections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp_bias: Option<bool>,
    /// Qwen2: sliding-window attention (not supported when true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_sliding_window: Option<bool>,
    /// Sliding-window size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
    /// Gemma2: `sliding_attention` or `full_attention` per layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    /// Gemma2: attention-score scale `query_pre_attn_scalar^-1/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma2: attention soft-cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_logit_softcapping: Option<f64>,
    /// Gemma2: logit soft-cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_logit_softcapping: Option<f64>,
    /// Activation (Llama, Qwen2): `silu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    /// Activation (Gemma2): `gelu_pytorch_tanh`; read before `hidden_act`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_activation: Option<String>,
    /// Beginning-of-sequence id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id, or several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
}

/// `eos_token_id`: one id or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

/// `rope_scaling` / `rope_parameters` as written in `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    /// `llama3`, `linear` or `default` (older files: `type`).
    #[serde(default, alias = "type", skip_serializing_if = "Option::is_none")]
    pub rope_type: Option<String>,
    /// RoPE base (transformers 5 keeps it here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// Scaling factor (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// llama3: low-frequency factor (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    /// llama3: high-frequency factor (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    /// llama3: the pre-training context length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
}

impl HfConfig {
    /// Reads `config.json`: a syntax error names the file, a value of the wrong type names the
    /// file and the field's path.
    pub fn from_file(path: &Path) -> Result<Self, FormatError> {
        let text = std::fs::read_to_string(path).map_err(|e| FormatError::io(path, e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| FormatError::format(path, format!("invalid JSON: {e}")))?;
        Self::from_json(&value).map_err(|e| e.in_file(path))
    }

    /// Reads a parsed `config.json`; a value of the wrong type is an error naming its path.
    pub fn from_json(v: &Value) -> Result<Self, FormatError> {
        if !v.is_object() {
            return Err(FormatError::config(
                "(top level)",
                "expected a JSON object of config fields",
            ));
        }
        serde_path_to_error::deserialize(v).map_err(|e| {
            let field = e.path().to_string();
            FormatError::config(&field, plain_types(&e.into_inner().to_string()))
        })
    }
}

/// serde's type names in words a config author knows.
fn plain_types(message: &str) -> String {
    message
        .replace("expected usize", "expected a non-negative integer")
        .replace("expected u32", "expected a non-negative integer below 2^32")
        .replace("expected f64", "expected a number")
        .replace("expected a boolean", "expected true or false")
}

/// The decoder family, from `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Llama, SmolLM2, TinyLlama, Llama-3.x.
    Llama,
    /// Qwen2 and Qwen2.5 (q/k/v biases).
    Qwen2,
    /// Gemma2 (`(1+w)` RMSNorm, soft-capping, sliding-window layers).
    Gemma2,
}

/// `rope_scaling` as written in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `rope_type` (or the older key `type`): `llama3`, `linear` or `default`.
    #[serde(alias = "type")]
    pub rope_type: String,
    /// Scaling factor.
    #[serde(default = "one")]
    pub factor: f64,
    /// llama3: low-frequency factor.
    #[serde(default = "one")]
    pub low_freq_factor: f64,
    /// llama3: high-frequency factor.
    #[serde(default = "four")]
    pub high_freq_factor: f64,
    /// llama3: the pre-training context length.
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
}

fn one() -> f64 {
    1.0
}
fn four() -> f64 {
    4.0
}

/// The resolved configuration of a decoder-only model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Architecture family.
    pub family: Family,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Optional RoPE scaling.
    pub rope_scaling: Option<RopeScaling>,
    /// Longest position the model was trained for.
    pub max_position_embeddings: usize,
    /// Output head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// q/k/v projections have biases (Qwen2; Llama's `attention_bias`).
    pub attention_bias: bool,
    /// The output projection has a bias (Llama's `attention_bias` covers it too).
    pub o_bias: bool,
    /// MLP projections have biases (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// Gemma2: attention scores are scaled by `query_pre_attn_scalar^-1/2` instead of `head_dim^-1/2`.
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma2: `cap·tanh(scores/cap)` on attention scores.
    pub attn_logit_softcapping: Option<f64>,
    /// Gemma2: `cap·tanh(logits/cap)` on the output logits.
    pub final_logit_softcapping: Option<f64>,
    /// Sliding-window size for the layers that use one.
    pub sliding_window: Option<usize>,
    /// Per layer: does it use the sliding window?
    pub sliding_layers: Vec<bool>,
    /// Beginning-of-sequence id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids (generation stops on any of them).
    pub eos_token_ids: Vec<u32>,
    /// Padding id.
    pub pad_token_id: Option<u32>,
}

/// Upper bounds on a config's sizes: far above any released model, low enough that the products
/// and per-layer lists built from them cannot overflow or exhaust memory before a tensor is read.
const MAX_LAYERS: usize = 1024;
const MAX_HEADS: usize = 1024;
const MAX_HEAD_DIM: usize = 4096;
const MAX_WIDTH: usize = 1 << 17;
const MAX_VOCAB: usize = 1 << 22;

/// `value` when it is in `1..=max`, else an error naming `field`.
fn within(value: usize, field: &str, max: usize) -> Result<usize, FormatError> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(FormatError::config(
            field,
            format!("{value} is outside 1..={max}"),
        ))
    }
}

impl ModelConfig {
    /// Reads, checks and resolves a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, FormatError> {
        let raw = HfConfig::from_file(path)?;
        Self::from_hf(&raw).map_err(|e| e.in_file(path))
    }

    /// Checks and resolves a parsed `config.json`.
    pub fn from_hf_json(v: &Value) -> Result<Self, FormatError> {
        Self::from_hf(&HfConfig::from_json(v)?)
    }

    /// Checks the values a model cannot run without and fills in the families' defaults (as
    /// transformers does); errors name the field.
    pub fn from_hf(c: &HfConfig) -> Result<Self, FormatError> {
        let required = |value: Option<usize>, field: &str| {
            value.ok_or_else(|| FormatError::config(field, "missing"))
        };
        let model_type = c
            .model_type
            .as_deref()
            .ok_or_else(|| FormatError::config("model_type", "missing"))?;
        let family = match model_type {
            "llama" | "mistral" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "gemma2" => Family::Gemma2,
            other => {
                return Err(FormatError::config(
                    "model_type",
                    format!("unsupported model type {other:?} (llama, qwen2 and gemma2 are)"),
                ));
            }
        };
        let hidden_size = within(
            required(c.hidden_size, "hidden_size")?,
            "hidden_size",
            MAX_WIDTH,
        )?;
        let num_attention_heads = within(
            required(c.num_attention_heads, "num_attention_heads")?,
            "num_attention_heads",
            MAX_HEADS,
        )?;
        let num_hidden_layers = within(
            required(c.num_hidden_layers, "num_hidden_layers")?,
            "num_hidden_layers",
            MAX_LAYERS,
        )?;
        let num_key_value_heads = within(
            c.num_key_value_heads.unwrap_or(num_attention_heads),
            "num_key_value_heads",
            MAX_HEADS,
        )?;
        let vocab_size = within(
            required(c.vocab_size, "vocab_size")?,
            "vocab_size",
            MAX_VOCAB,
        )?;
        let intermediate_size = within(
            required(c.intermediate_size, "intermediate_size")?,
            "intermediate_size",
            MAX_WIDTH * 16,
        )?;
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(FormatError::config(
                "num_key_value_heads",
                format!(
                    "{num_key_value_heads} key/value heads do not divide {num_attention_heads} query heads"
                ),
            ));
        }
        let head_dim = match c.head_dim {
            Some(d) => within(d, "head_dim", MAX_HEAD_DIM)?,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(FormatError::config(
                        "hidden_size",
                        format!("{hidden_size} is not divisible by {num_attention_heads} heads"),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(FormatError::config(
                "head_dim",
                format!("RoPE needs an even head_dim, got {head_dim}"),
            ));
        }
        // transformers 5 writes `rope_parameters` (type and theta together) beside or instead of
        // the older `rope_scaling`.
        let rope_scaling = match c.rope_scaling.as_ref().or(c.rope_parameters.as_ref()) {
            None => None,
            Some(p) => {
                let rope_type = p.rope_type.as_deref().ok_or_else(|| {
                    FormatError::config("rope_scaling", "missing field `rope_type`")
                })?;
                match rope_type {
                    "llama3" | "linear" => Some(RopeScaling {
                        rope_type: rope_type.to_string(),
                        factor: p.factor.unwrap_or(1.0),
                        low_freq_factor: p.low_freq_factor.unwrap_or(1.0),
                        high_freq_factor: p.high_freq_factor.unwrap_or(4.0),
                        original_max_position_embeddings: p.original_max_position_embeddings,
                    }),
                    "default" => None,
                    other => {
                        return Err(FormatError::config(
                            "rope_scaling.rope_type",
                            format!(
                                "unsupported RoPE scaling {other:?} (llama3, linear and default are)"
                            ),
                        ));
                    }
                }
            }
        };
        let (attention_bias, o_bias) = match family {
            Family::Qwen2 => (true, false),
            _ => (
                c.attention_bias.unwrap_or(false),
                c.attention_bias.unwrap_or(false),
            ),
        };
        let sliding_layers = match family {
            Family::Gemma2 => match &c.layer_types {
                Some(types) => {
                    if types.len() != num_hidden_layers {
                        return Err(FormatError::config(
                            "layer_types",
                            format!("{} entries for {num_hidden_layers} layers", types.len()),
                        ));
                    }
                    types.iter().map(|t| t == "sliding_attention").collect()
                }
                // transformers' Gemma2: even layers slide, odd layers attend globally.
                None => (0..num_hidden_layers).map(|i| i % 2 == 0).collect(),
            },
            Family::Qwen2 if c.use_sliding_window.unwrap_or(false) => {
                return Err(FormatError::config(
                    "use_sliding_window",
                    "Qwen2 sliding-window attention is not supported",
                ));
            }
            _ => vec![false; num_hidden_layers],
        };
        let sliding_window = if sliding_layers.iter().any(|&s| s) {
            Some(c.sliding_window.ok_or_else(|| {
                FormatError::config("sliding_window", "missing for sliding layers")
            })?)
        } else {
            None
        };
        let eos_token_ids = match &c.eos_token_id {
            Some(TokenIds::One(id)) => vec![*id],
            Some(TokenIds::Many(ids)) => ids.clone(),
            None => vec![],
        };
        if let Some(act) = c.hidden_activation.as_deref().or(c.hidden_act.as_deref()) {
            let expected = match family {
                Family::Gemma2 => ["gelu_pytorch_tanh", "gelu_pytorch_tanh"],
                _ => ["silu", "swish"],
            };
            if !expected.contains(&act) {
                return Err(FormatError::config(
                    "hidden_act",
                    format!("unsupported activation {act:?}"),
                ));
            }
        }
        let positive = |value: f64, field: &str| {
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(FormatError::config(
                    field,
                    format!("{value} must be a finite number > 0"),
                ))
            }
        };
        // GGUF metadata can hold a NaN, which JSON cannot.
        let rms_norm_eps = positive(c.rms_norm_eps.unwrap_or(1e-6), "rms_norm_eps")?;
        let rope_theta = positive(
            c.rope_theta
                .or(c.rope_parameters.as_ref().and_then(|p| p.rope_theta))
                .unwrap_or(10000.0),
            "rope_theta",
        )?;
        Ok(Self {
            family,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings: c.max_position_embeddings.unwrap_or(2048),
            tie_word_embeddings: c.tie_word_embeddings.unwrap_or(family == Family::Gemma2),
            attention_bias,
            o_bias,
            mlp_bias: c.mlp_bias.unwrap_or(false),
            query_pre_attn_scalar: c.query_pre_attn_scalar,
            attn_logit_softcapping: c.attn_logit_softcapping,
            final_logit_softcapping: c.final_logit_softcapping,
            sliding_window,
            sliding_layers,
            bos_token_id: c.bos_token_id,
            eos_token_ids,
            pad_token_id: c.pad_token_id,
        })
    }

    /// Writes this configuration back as a Hugging Face `config.json` value.
    pub fn to_hf_json(&self) -> Value {
        let mut v = serde_json::json!({
            "model_type": match self.family { Family::Llama => "llama", Family::Qwen2 => "qwen2", Family::Gemma2 => "gemma2" },
            "architectures": [match self.family {
                Family::Llama => "LlamaForCausalLM", Family::Qwen2 => "Qwen2ForCausalLM", Family::Gemma2 => "Gemma2ForCausalLM" }],
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "float32",
        });
        let o = v.as_object_mut().expect("object");
        if let Some(rs) = &self.rope_scaling {
            o.insert(
                "rope_scaling".into(),
                serde_json::to_value(rs).expect("serialisable"),
            );
        }
        if let Some(b) = self.bos_token_id {
            o.insert("bos_token_id".into(), b.into());
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => {
                o.insert("eos_token_id".into(), (*one).into());
            }
            many => {
                o.insert("eos_token_id".into(), many.to_vec().into());
            }
        }
        if let Some(p) = self.pad_token_id {
            o.insert("pad_token_id".into(), p.into());
        }
        match self.family {
            Family::Llama => {
                o.insert("hidden_act".into(), "silu".into());
                o.insert("attention_bias".into(), self.attention_bias.into());
                o.insert("mlp_bias".into(), self.mlp_bias.into());
            }
            Family::Qwen2 => {
                o.insert("hidden_act".into(), "silu".into());
            }
            Family::Gemma2 => {
                o.insert("hidden_activation".into(), "gelu_pytorch_tanh".into());
                o.insert(
                    "query_pre_attn_scalar".into(),
                    self.query_pre_attn_scalar.into(),
                );
                o.insert(
                    "attn_logit_softcapping".into(),
                    self.attn_logit_softcapping.into(),
                );
                o.insert(
                    "final_logit_softcapping".into(),
                    self.final_logit_softcapping.into(),
                );
                o.insert("sliding_window".into(), self.sliding_window.into());
                let types: Vec<&str> = self
                    .sliding_layers
                    .iter()
                    .map(|&s| {
                        if s {
                            "sliding_attention"
                        } else {
                            "full_attention"
                        }
                    })
                    .collect();
                o.insert("layer_types".into(), types.into());
            }
        }
        v
    }

    /// Attention-score scale.
    pub fn attention_scale(&self) -> f64 {
        match self.query_pre_attn_scalar {
            Some(s) => s.powf(-0.5),
            None => (self.head_dim as f64).powf(-0.5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama_json() -> Value {
        serde_json::json!({"model_type": "llama", "vocab_size": 256, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "eos_token_id": [1, 2]})
    }

    #[test]
    fn llama_defaults_follow_transformers() {
        let c = ModelConfig::from_hf_json(&llama_json()).unwrap();
        assert_eq!(c.head_dim, 16);
        assert_eq!(c.rope_theta, 10000.0);
        assert!(!c.tie_word_embeddings);
        assert_eq!(c.eos_token_ids, vec![1, 2]);
        assert_eq!(c.sliding_layers, vec![false, false]);
    }

    #[test]
    fn config_errors_name_the_field() {
        let mut v = llama_json();
        v["num_key_value_heads"] = 3.into();
        let e = ModelConfig::from_hf_json(&v).unwrap_err().to_string();
        assert!(e.contains("num_key_value_heads"), "{e}");
        let mut v = llama_json();
        v["hidden_size"] = "big".into();
        let e = ModelConfig::from_hf_json(&v).unwrap_err().to_string();
        assert!(e.contains("hidden_size"), "{e}");
        let mut v = llama_json();
        v["model_type"] = "bert".into();
        assert!(
            ModelConfig::from_hf_json(&v)
                .unwrap_err()
                .to_string()
                .contains("model_type")
        );
    }

    #[test]
    fn hf_json_round_trips() {
        let c = ModelConfig::from_hf_json(&llama_json()).unwrap();
        let back = ModelConfig::from_hf_json(&c.to_hf_json()).unwrap();
        assert_eq!(c, back);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_path_in_plain_words() {
        let mut v = llama_json();
        v["num_hidden_layers"] = (-1).into();
        assert_eq!(
            ModelConfig::from_hf_json(&v).unwrap_err().to_string(),
            "config field `num_hidden_layers`: invalid value: integer `-1`, expected a non-negative integer"
        );
        let mut v = llama_json();
        v["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": "2"});
        assert_eq!(
            ModelConfig::from_hf_json(&v).unwrap_err().to_string(),
            "config field `rope_scaling.factor`: invalid type: string \"2\", expected a number"
        );
        let mut v = llama_json();
        v["tie_word_embeddings"] = 1.into();
        let e = ModelConfig::from_hf_json(&v).unwrap_err().to_string();
        assert!(
            e.contains("`tie_word_embeddings`") && e.contains("true or false"),
            "{e}"
        );
    }

    #[test]
    fn a_file_error_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        let mut v = llama_json();
        v.as_object_mut().unwrap().remove("hidden_size");
        std::fs::write(&p, v.to_string()).unwrap();
        let e = ModelConfig::from_file(&p).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: config field `hidden_size`: missing", p.display())
        );
        std::fs::write(&p, "{\"model_type\": ").unwrap();
        let e = ModelConfig::from_file(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: invalid JSON", p.display())),
            "{e}"
        );
    }

    #[test]
    fn transformers_5_rope_parameters_give_theta_and_scaling() {
        let mut v = llama_json();
        v["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 500000.0});
        let c = ModelConfig::from_hf_json(&v).unwrap();
        assert_eq!((c.rope_theta, c.rope_scaling), (500000.0, None));
        v["rope_parameters"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0,
            "original_max_position_embeddings": 8192});
        let rs = ModelConfig::from_hf_json(&v).unwrap().rope_scaling.unwrap();
        // factor from the file; the two frequency factors at transformers' defaults 1 and 4.
        assert_eq!(
            (
                rs.factor,
                rs.low_freq_factor,
                rs.high_freq_factor,
                rs.original_max_position_embeddings
            ),
            (8.0, 1.0, 4.0, Some(8192))
        );
    }

    #[test]
    fn a_norm_epsilon_or_rope_base_that_is_not_a_positive_number_is_refused() {
        let mut v = llama_json();
        v["rms_norm_eps"] = (-1e-5).into();
        assert_eq!(
            ModelConfig::from_hf_json(&v).unwrap_err().to_string(),
            "config field `rms_norm_eps`: -0.00001 must be a finite number > 0"
        );
        let c = HfConfig {
            rope_theta: Some(f64::NAN),
            ..HfConfig::from_json(&llama_json()).unwrap()
        };
        assert_eq!(
            ModelConfig::from_hf(&c).unwrap_err().to_string(),
            "config field `rope_theta`: NaN must be a finite number > 0"
        );
    }
}
