//! Greedy and sampled generation with a KV cache and stop tokens.

use burn::tensor::activation::softmax;
use rand::{Rng, SeedableRng};

use crate::model::{CausalLm, KvCache, TokenBatch};

/// Generation settings.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Most tokens to produce.
    pub max_new_tokens: usize,
    /// 0 means greedy; otherwise softmax temperature.
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens when sampling (0 = all).
    pub top_k: usize,
    /// Generation stops after any of these ids (the id is included in the output).
    pub stop_ids: Vec<u32>,
    /// Seed for sampling.
    pub seed: u64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self { max_new_tokens: 64, temperature: 0.0, top_k: 0, stop_ids: vec![], seed: 0 }
    }
}

/// Continues `prompt` (token ids) and returns the new ids only.
pub fn generate(model: &CausalLm, prompt: &[u32], cfg: &GenerateConfig) -> Vec<u32> {
    let mut cache = KvCache::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut out = Vec::new();
    let mut input = prompt.to_vec();
    for _ in 0..cfg.max_new_tokens {
        let logits = model.forward(&TokenBatch::single(&input), Some(&mut cache)); // [1, S, V]
        let s = logits.dims()[1];
        let last = logits.narrow(1, s - 1, 1).flatten::<1>(0, 2); // [V]
        let next = if cfg.temperature <= 0.0 {
            last.argmax(0).into_scalar::<i64>() as u32
        } else {
            let probs: Vec<f32> =
                softmax(last.div_scalar(cfg.temperature), 0).try_into_vec_as::<f32>().expect("f32");
            sample(&probs, cfg.top_k, &mut rng)
        };
        out.push(next);
        if cfg.stop_ids.contains(&next) {
            break;
        }
        input = vec![next];
    }
    out
}

fn sample(probs: &[f32], top_k: usize, rng: &mut impl Rng) -> u32 {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    if top_k > 0 && top_k < probs.len() {
        idx.select_nth_unstable_by(top_k - 1, |&a, &b| probs[b].total_cmp(&probs[a]));
        idx.truncate(top_k);
    }
    let total: f32 = idx.iter().map(|&i| probs[i]).sum();
    let mut u = rng.random::<f32>() * total;
    for &i in &idx {
        u -= probs[i];
        if u <= 0.0 {
            return i as u32;
        }
    }
    *idx.last().expect("non-empty vocabulary") as u32
}
