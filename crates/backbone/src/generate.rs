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
        // Only the last position's logits are needed: the head runs on one row, also for the
        // prompt.
        let h = model.hidden_states(&TokenBatch::single(&input), Some(&mut cache)); // [1, S, H]
        let s = h.dims()[1];
        let last = model.logits_from_hidden(h.narrow(1, s - 1, 1)).flatten::<1>(0, 2); // [V]
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

/// Greedy continuations of several prompts at once: the prompts are left-padded into one
/// batch, share the KV cache, and decode together until every row has produced a stop id or
/// `cfg.max_new_tokens` tokens. Row `i` of the result holds the new ids of prompt `i` (cut
/// after its stop id), exactly what [`generate`] gives for that prompt alone.
pub fn generate_greedy_batch(model: &CausalLm, prompts: &[Vec<u32>], cfg: &GenerateConfig) -> Vec<Vec<u32>> {
    let n = prompts.len();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); n];
    if n == 0 || cfg.max_new_tokens == 0 {
        return out;
    }
    let mut done = vec![false; n];
    let mut cache = KvCache::new();
    let mut batch = TokenBatch::padded(prompts, 0, true); // left padding: the last column is real
    for _ in 0..cfg.max_new_tokens {
        let h = model.hidden_states(&batch, Some(&mut cache)); // [B, S, H]
        let s = h.dims()[1];
        let logits = model.logits_from_hidden(h.narrow(1, s - 1, 1)); // [B, 1, V]
        let next: Vec<i64> = logits.argmax(2).try_into_vec_as::<i64>().expect("argmax ids"); // B
        for (i, &t) in next.iter().enumerate() {
            if !done[i] {
                out[i].push(t as u32);
                done[i] = cfg.stop_ids.contains(&(t as u32));
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        batch = TokenBatch { ids: next.iter().map(|&t| t as u32).collect(), mask: vec![true; n], batch: n, seq: 1 };
    }
    out
}

/// Log-likelihood of each continuation given a shared prompt: `(Σ log p, tokens)` per
/// continuation. The prompt is encoded once; its cache is repeated across the continuations,
/// which run as one right-padded batch, and the output head runs only on the positions that
/// are scored. Equal to scoring each `prompt ++ continuation` sequence on its own.
pub fn continuation_logprobs(model: &CausalLm, prompt: &[u32], continuations: &[Vec<u32>]) -> Vec<(f64, usize)> {
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Int, Tensor, TensorData};
    let n = continuations.len();
    if n == 0 || prompt.is_empty() {
        return vec![(0.0, 0); n];
    }
    let mut cache = KvCache::new();
    let h_prompt = model.hidden_states(&TokenBatch::single(prompt), Some(&mut cache)); // [1, P, H]
    let p = h_prompt.dims()[1];
    let d = h_prompt.dims()[2];
    let h_last = h_prompt.narrow(1, p - 1, 1).reshape([1, d]); // predicts each continuation's first token
    // Rows to score: the prompt's last position, then for continuation o its positions 0..len-1
    // (position t predicts token t + 1).
    let mut rows: Vec<Tensor<2>> = vec![h_last];
    let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
    if longest > 1 {
        let mut cont_cache = cache.repeat_rows(n);
        let batch = TokenBatch::padded(continuations, 0, false); // [n, L] right-padded
        let h = model.hidden_states(&batch, Some(&mut cont_cache)); // [n, L, H]
        let l = batch.seq;
        let flat = h.reshape([n * l, d]);
        let idx: Vec<i64> = continuations
            .iter()
            .enumerate()
            .flat_map(|(o, c)| (0..c.len().saturating_sub(1)).map(move |t| (o * l + t) as i64))
            .collect();
        if !idx.is_empty() {
            let device = flat.device();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx.clone(), [idx.len()]), &device);
            rows.push(flat.select(0, idx));
        }
    }
    let hs = Tensor::cat(rows, 0); // [N, H]
    let m = hs.dims()[0];
    let logits = model.logits_from_hidden(hs.reshape([1, m, d])); // [1, N, V]
    let v = logits.dims()[2];
    let lp = log_softmax(logits, 2).reshape([m, v]); // [N, V]
    // Targets in the same order as the rows: row 0 is asked for every continuation's first token.
    let mut first_targets = Vec::with_capacity(n);
    let mut rest_targets = Vec::new();
    for c in continuations {
        first_targets.push(c.first().copied().unwrap_or(0) as i64);
        rest_targets.extend(c.iter().skip(1).map(|&t| t as i64));
    }
    let device = lp.device();
    let first_rows = lp.clone().narrow(0, 0, 1).repeat_dim(0, n); // [n, V]
    let first: Vec<f32> = first_rows
        .gather(1, Tensor::<2, Int>::from_data(TensorData::new(first_targets, [n, 1]), &device))
        .try_into_vec_as::<f32>()
        .expect("f32");
    let rest: Vec<f32> = if rest_targets.is_empty() {
        vec![]
    } else {
        let k = rest_targets.len();
        lp.narrow(0, 1, k)
            .gather(1, Tensor::<2, Int>::from_data(TensorData::new(rest_targets, [k, 1]), &device))
            .try_into_vec_as::<f32>()
            .expect("f32")
    };
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for (o, c) in continuations.iter().enumerate() {
        if c.is_empty() {
            out.push((0.0, 0));
            continue;
        }
        let tail: f64 = rest[at..at + c.len() - 1].iter().map(|&x| x as f64).sum();
        at += c.len() - 1;
        out.push((first[o] as f64 + tail, c.len()));
    }
    out
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use crate::random::{random_model, tiny_byte_llama_config};
    use burn::tensor::Device;

    #[test]
    fn batched_greedy_generation_equals_one_prompt_at_a_time() {
        let device = Device::flex();
        let model = random_model(&tiny_byte_llama_config(), 5, 0.5, &device);
        let prompts = vec![b"hello there".iter().map(|&b| b as u32).collect::<Vec<_>>(), vec![104, 105], b"a longer prompt here".iter().map(|&b| b as u32).collect()];
        let cfg = GenerateConfig { max_new_tokens: 6, stop_ids: vec![101], ..Default::default() };
        let batched = generate_greedy_batch(&model, &prompts, &cfg);
        for (p, b) in prompts.iter().zip(&batched) {
            assert_eq!(&generate(&model, p, &cfg), b);
        }
    }

    #[test]
    fn shared_prompt_scoring_equals_scoring_each_sequence_alone() {
        let device = Device::flex();
        let model = random_model(&tiny_byte_llama_config(), 6, 0.5, &device);
        let prompt: Vec<u32> = b"q: colour?".iter().map(|&b| b as u32).collect();
        let options: Vec<Vec<u32>> = ["red\n", "blue\n", "g"].iter().map(|o| o.bytes().map(u32::from).collect()).collect();
        let shared = continuation_logprobs(&model, &prompt, &options);
        for (o, (lp, n)) in options.iter().zip(&shared) {
            let full: Vec<u32> = prompt.iter().chain(o).copied().collect();
            let per = crate::score::token_logprobs(&model, &TokenBatch::single(&full));
            let expected: f64 = per[0][prompt.len() - 1..].iter().map(|x| x.unwrap() as f64).sum();
            assert_eq!(*n, o.len());
            assert!((lp - expected).abs() < 1e-4, "{lp} vs {expected}");
        }
    }
}
