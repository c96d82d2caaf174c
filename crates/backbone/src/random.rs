//! Randomly initialised models: the tiny byte-level Llama of the smoke suite, and any
//! [`ModelConfig`] for tests that need no checkpoint.

use std::collections::BTreeMap;

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::config::{Family, ModelConfig};
use crate::error::LoadError;
use crate::model::CausalLm;
use crate::weights::{HostTensor, WeightSource};

/// The smoke suite's model: a 2-layer Llama over a byte-level vocabulary of 256 (hidden 64,
/// 4 query / 2 key-value heads, MLP 128, tied embeddings, context 256).
pub fn tiny_byte_llama_config() -> ModelConfig {
    ModelConfig::from_hf_json(&json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": 256,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 256,
        "tie_word_embeddings": true,
        "eos_token_id": 10
    }))
    .expect("the tiny config is valid")
}

/// A model with `config`'s architecture and random weights: every matrix drawn from
/// `N(0, std²)` (transformers' `initializer_range`, 0.02 by default), norms at their identity
/// (1, or 0 for Gemma's `(1 + w)` norms) and biases at 0. Each tensor's values depend only on
/// `seed` and its key, so the same seed gives the same model whatever the load order.
pub fn random_model(config: &ModelConfig, seed: u64, std: f32, device: &Device) -> CausalLm {
    let source = RandomSource::new(config, seed, std);
    crate::load::load_model(config, &source, device)
        .expect("random weights have the config's shapes")
}

/// The weight keys and shapes `config` calls for, with random values.
struct RandomSource {
    shapes: BTreeMap<String, Vec<usize>>,
    seed: u64,
    std: f32,
    gemma: bool,
}

impl RandomSource {
    fn new(cfg: &ModelConfig, seed: u64, std: f32) -> Self {
        let (hs, hd) = (cfg.hidden_size, cfg.head_dim);
        let (q, kv, mlp) = (
            cfg.num_attention_heads * hd,
            cfg.num_key_value_heads * hd,
            cfg.intermediate_size,
        );
        let gemma = cfg.family == Family::Gemma2;
        let mut s = BTreeMap::new();
        let mut lin = |name: String, d_in: usize, d_out: usize, bias: bool| {
            if bias {
                s.insert(format!("{name}.bias"), vec![d_out]);
            }
            s.insert(format!("{name}.weight"), vec![d_out, d_in]);
        };
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            lin(format!("{p}.self_attn.q_proj"), hs, q, cfg.attention_bias);
            lin(format!("{p}.self_attn.k_proj"), hs, kv, cfg.attention_bias);
            lin(format!("{p}.self_attn.v_proj"), hs, kv, cfg.attention_bias);
            lin(format!("{p}.self_attn.o_proj"), q, hs, cfg.o_bias);
            lin(format!("{p}.mlp.gate_proj"), hs, mlp, cfg.mlp_bias);
            lin(format!("{p}.mlp.up_proj"), hs, mlp, cfg.mlp_bias);
            lin(format!("{p}.mlp.down_proj"), mlp, hs, cfg.mlp_bias);
        }
        if !cfg.tie_word_embeddings {
            lin("lm_head".into(), hs, cfg.vocab_size, false);
        }
        s.insert("model.embed_tokens.weight".into(), vec![cfg.vocab_size, hs]);
        s.insert("model.norm.weight".into(), vec![hs]);
        for i in 0..cfg.num_hidden_layers {
            let mut norms = vec!["input_layernorm", "post_attention_layernorm"];
            if gemma {
                norms.extend(["pre_feedforward_layernorm", "post_feedforward_layernorm"]);
            }
            for n in norms {
                s.insert(format!("model.layers.{i}.{n}.weight"), vec![hs]);
            }
        }
        Self {
            shapes: s,
            seed,
            std,
            gemma,
        }
    }
}

/// FNV-1a hash of a string: stable across Rust releases (std's hasher is not), for seeds and
/// ids derived from names.
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

impl WeightSource for RandomSource {
    fn source_name(&self) -> String {
        format!("random weights (seed {})", self.seed)
    }
    fn keys(&self) -> Vec<String> {
        self.shapes.keys().cloned().collect()
    }
    fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.shapes.get(key).cloned()
    }
    fn tensor(&self, key: &str) -> Result<HostTensor, LoadError> {
        let shape = self.shape(key).ok_or_else(|| LoadError::MissingTensor {
            source_name: self.source_name(),
            key: key.to_string(),
        })?;
        let n: usize = shape.iter().product();
        let data = if key.ends_with("norm.weight") {
            vec![if self.gemma { 0.0 } else { 1.0 }; n]
        } else if key.ends_with(".bias") {
            vec![0.0; n]
        } else {
            let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ fnv1a(key));
            // Box–Muller from two uniforms: rand_distr is not a dependency of this crate.
            (0..n)
                .map(|_| {
                    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
                    let u2: f32 = rng.random();
                    self.std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                })
                .collect()
        };
        Ok(HostTensor { shape, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TokenBatch;

    #[test]
    fn same_seed_gives_the_same_logits_and_another_seed_does_not() {
        let device = Device::flex();
        let cfg = tiny_byte_llama_config();
        let batch = TokenBatch::single(&[104, 105, 33]);
        let logits = |seed| {
            random_model(&cfg, seed, 0.02, &device)
                .forward(&batch, None)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let (a, b, c) = (logits(1), logits(1), logits(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 3 * 256);
    }

    #[test]
    fn weights_have_the_requested_spread() {
        let src = RandomSource::new(&tiny_byte_llama_config(), 7, 0.02);
        let w = src.tensor("model.layers.0.mlp.up_proj.weight").unwrap();
        let n = w.data.len() as f32;
        let mean = w.data.iter().sum::<f32>() / n;
        let sd = (w.data.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt();
        assert!(
            mean.abs() < 2e-3 && (sd - 0.02).abs() < 2e-3,
            "mean {mean} sd {sd}"
        );
        assert_eq!(src.tensor("model.norm.weight").unwrap().data, vec![1.0; 64]);
    }
}
