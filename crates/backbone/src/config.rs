//! The model configuration, read from a Hugging Face `config.json` (or built from GGUF metadata).
//!
//! One type mirrors the `config.json` keys of the three supported families; fields that only one
//! family uses are optional. [`ModelConfig::from_hf_json`] checks the values a model cannot run
//! without and names the offending field on error.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

use crate::error::LoadError;

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
fn within(value: usize, field: &str, max: usize) -> Result<usize, LoadError> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(LoadError::config(
            field,
            format!("{value} is outside 1..={max}"),
        ))
    }
}

impl ModelConfig {
    /// Reads and resolves a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| LoadError::format(path, format!("invalid JSON: {e}")))?;
        Self::from_hf_json(&value).map_err(|e| e.in_file(path))
    }

    /// Resolves a parsed `config.json`.
    pub fn from_hf_json(v: &Value) -> Result<Self, LoadError> {
        let model_type = str_field(v, "model_type")?;
        let family = match model_type.as_str() {
            "llama" | "mistral" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "gemma2" => Family::Gemma2,
            other => {
                return Err(LoadError::config(
                    "model_type",
                    format!("unsupported model type {other:?} (llama, qwen2 and gemma2 are)"),
                ));
            }
        };
        let hidden_size = within(usize_field(v, "hidden_size")?, "hidden_size", MAX_WIDTH)?;
        let num_attention_heads = within(
            usize_field(v, "num_attention_heads")?,
            "num_attention_heads",
            MAX_HEADS,
        )?;
        let num_hidden_layers = within(
            usize_field(v, "num_hidden_layers")?,
            "num_hidden_layers",
            MAX_LAYERS,
        )?;
        let num_key_value_heads = within(
            opt_usize(v, "num_key_value_heads")?.unwrap_or(num_attention_heads),
            "num_key_value_heads",
            MAX_HEADS,
        )?;
        within(usize_field(v, "vocab_size")?, "vocab_size", MAX_VOCAB)?;
        within(
            usize_field(v, "intermediate_size")?,
            "intermediate_size",
            MAX_WIDTH * 16,
        )?;
        if num_attention_heads == 0
            || num_key_value_heads == 0
            || num_attention_heads % num_key_value_heads != 0
        {
            return Err(LoadError::config(
                "num_key_value_heads",
                format!(
                    "{num_key_value_heads} key/value heads do not divide {num_attention_heads} query heads"
                ),
            ));
        }
        let head_dim = match opt_usize(v, "head_dim")? {
            Some(d) => within(d, "head_dim", MAX_HEAD_DIM)?,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(LoadError::config(
                        "hidden_size",
                        format!("{hidden_size} is not divisible by {num_attention_heads} heads"),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(LoadError::config(
                "head_dim",
                format!("RoPE needs an even head_dim, got {head_dim}"),
            ));
        }
        // transformers 5 writes `rope_parameters` (type and theta together) beside or instead of
        // the older `rope_scaling`.
        let rope_params = v.get("rope_parameters").filter(|p| p.is_object());
        let scaling_value = match v.get("rope_scaling") {
            None | Some(Value::Null) => rope_params,
            some => some,
        };
        let rope_scaling = match scaling_value {
            None | Some(Value::Null) => None,
            Some(s) => {
                let rs: RopeScaling = serde_json::from_value(s.clone())
                    .map_err(|e| LoadError::config("rope_scaling", e.to_string()))?;
                match rs.rope_type.as_str() {
                    "llama3" | "linear" => Some(rs),
                    "default" => None,
                    other => {
                        return Err(LoadError::config(
                            "rope_scaling.rope_type",
                            format!(
                                "unsupported RoPE scaling {other:?} (llama3, linear and default are)"
                            ),
                        ));
                    }
                }
            }
        };
        let attention_bias_flag = opt_bool(v, "attention_bias")?;
        let (attention_bias, o_bias) = match family {
            Family::Qwen2 => (true, false),
            _ => (
                attention_bias_flag.unwrap_or(false),
                attention_bias_flag.unwrap_or(false),
            ),
        };
        let tie_default = family == Family::Gemma2;
        let sliding_window = opt_usize(v, "sliding_window")?;
        let sliding_layers = match family {
            Family::Gemma2 => match v.get("layer_types").and_then(Value::as_array) {
                Some(types) => {
                    if types.len() != num_hidden_layers {
                        return Err(LoadError::config(
                            "layer_types",
                            format!("{} entries for {num_hidden_layers} layers", types.len()),
                        ));
                    }
                    types
                        .iter()
                        .map(|t| t.as_str() == Some("sliding_attention"))
                        .collect()
                }
                // transformers' Gemma2: even layers slide, odd layers attend globally.
                None => (0..num_hidden_layers).map(|i| i % 2 == 0).collect(),
            },
            Family::Qwen2 if opt_bool(v, "use_sliding_window")?.unwrap_or(false) => {
                return Err(LoadError::config(
                    "use_sliding_window",
                    "Qwen2 sliding-window attention is not supported",
                ));
            }
            _ => vec![false; num_hidden_layers],
        };
        let sliding_window =
            if sliding_layers.iter().any(|&s| s) {
                Some(sliding_window.ok_or_else(|| {
                    LoadError::config("sliding_window", "missing for sliding layers")
                })?)
            } else {
                None
            };
        let eos_token_ids = match v.get("eos_token_id") {
            Some(Value::Number(n)) => vec![n.as_u64().unwrap_or(0) as u32],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_u64)
                .map(|x| x as u32)
                .collect(),
            _ => vec![],
        };
        let cfg = Self {
            family,
            vocab_size: usize_field(v, "vocab_size")?,
            hidden_size,
            intermediate_size: usize_field(v, "intermediate_size")?,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: opt_f64(v, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta: match opt_f64(v, "rope_theta")? {
                Some(t) => t,
                None => rope_params
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(Value::as_f64)
                    .unwrap_or(10000.0),
            },
            rope_scaling,
            max_position_embeddings: opt_usize(v, "max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: opt_bool(v, "tie_word_embeddings")?.unwrap_or(tie_default),
            attention_bias,
            o_bias,
            mlp_bias: opt_bool(v, "mlp_bias")?.unwrap_or(false),
            query_pre_attn_scalar: opt_f64(v, "query_pre_attn_scalar")?,
            attn_logit_softcapping: opt_f64(v, "attn_logit_softcapping")?,
            final_logit_softcapping: opt_f64(v, "final_logit_softcapping")?,
            sliding_window,
            sliding_layers,
            bos_token_id: opt_usize(v, "bos_token_id")?.map(|x| x as u32),
            eos_token_ids,
            pad_token_id: opt_usize(v, "pad_token_id")?.map(|x| x as u32),
        };
        if let Some(hidden_act) = v
            .get("hidden_activation")
            .or_else(|| v.get("hidden_act"))
            .and_then(Value::as_str)
        {
            let expected = match family {
                Family::Gemma2 => ["gelu_pytorch_tanh", "gelu_pytorch_tanh"],
                _ => ["silu", "swish"],
            };
            if !expected.contains(&hidden_act) {
                return Err(LoadError::config(
                    "hidden_act",
                    format!("unsupported activation {hidden_act:?}"),
                ));
            }
        }
        Ok(cfg)
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

fn field_err(name: &str, want: &str) -> LoadError {
    LoadError::config(name, format!("expected {want}"))
}

fn str_field(v: &Value, name: &str) -> Result<String, LoadError> {
    v.get(name)
        .ok_or_else(|| LoadError::config(name, "missing"))?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| field_err(name, "a string"))
}

fn usize_field(v: &Value, name: &str) -> Result<usize, LoadError> {
    opt_usize(v, name)?.ok_or_else(|| LoadError::config(name, "missing"))
}

fn opt_usize(v: &Value, name: &str) -> Result<Option<usize>, LoadError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| field_err(name, "a non-negative integer")),
    }
}

fn opt_f64(v: &Value, name: &str) -> Result<Option<f64>, LoadError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| field_err(name, "a number")),
    }
}

fn opt_bool(v: &Value, name: &str) -> Result<Option<bool>, LoadError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_bool()
            .map(Some)
            .ok_or_else(|| field_err(name, "true or false")),
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
}
