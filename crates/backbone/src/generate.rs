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
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: 0,
            stop_ids: vec![],
            seed: 0,
        }
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
        let last = model
            .logits_from_hidden(h.narrow(1, s - 1, 1))
            .flatten::<1>(0, 2); // [V]
        let next = if cfg.temperature <= 0.0 {
            last.argmax(0).into_scalar::<i64>() as u32
        } else {
            let probs: Vec<f32> = softmax(last.div_scalar(cfg.temperature), 0)
                .try_into_vec_as::<f32>()
                .expect("f32");
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
pub fn generate_greedy_batch(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    cfg: &GenerateConfig,
) -> Vec<Vec<u32>> {
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
        let next: Vec<i64> = logits
            .argmax(2)
            .try_into_vec_as::<i64>()
            .expect("argmax ids"); // B
        for (i, &t) in next.iter().enumerate() {
            if !done[i] {
                out[i].push(t as u32);
                done[i] = cfg.stop_ids.contains(&(t as u32));
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        batch = TokenBatch {
            ids: next.iter().map(|&t| t as u32).collect(),
            mask: vec![true; n],
            batch: n,
            seq: 1,
        };
    }
    out
}

/// Log-likelihood of each continuation given a shared prompt: `(Σ log p, tokens)` per
/// continuation ([`continuation_logprobs_batch`] with one prompt).
pub fn continuation_logprobs(
    model: &CausalLm,
    prompt: &[u32],
    continuations: &[Vec<u32>],
) -> Vec<(f64, usize)> {
    continuation_logprobs_batch(model, &[(prompt, continuations)])
        .pop()
        .unwrap_or_default()
}

/// Log-likelihoods of several prompts' continuations at once: `(Σ log p, tokens)` per
/// continuation of each `(prompt, continuations)` item. The prompts run as one left-padded
/// batch, each encoded once; every continuation then continues its own prompt's rows of the KV
/// cache, all of them as one right-padded batch, and the output head runs only on the positions
/// that are scored. Equal to scoring each `prompt ++ continuation` sequence on its own. An empty
/// prompt or continuation scores `(0.0, 0)`.
pub fn continuation_logprobs_batch(
    model: &CausalLm,
    items: &[(&[u32], &[Vec<u32>])],
) -> Vec<Vec<(f64, usize)>> {
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Int, Tensor, TensorData};
    let mut out: Vec<Vec<(f64, usize)>> =
        items.iter().map(|(_, c)| vec![(0.0, 0); c.len()]).collect();
    let live: Vec<usize> = (0..items.len())
        .filter(|&i| !items[i].0.is_empty() && items[i].1.iter().any(|c| !c.is_empty()))
        .collect();
    if live.is_empty() {
        return out;
    }
    let prompts: Vec<Vec<u32>> = live.iter().map(|&i| items[i].0.to_vec()).collect();
    let mut cache = KvCache::new();
    let batch = TokenBatch::padded(&prompts, 0, true); // [R, P] left-padded: the last column is real
    let h_prompt = model.hidden_states(&batch, Some(&mut cache)); // [R, P, H]
    let [r, p, d] = h_prompt.dims();
    // Row j predicts the first token of every continuation of prompt j.
    let mut rows: Vec<Tensor<2>> = vec![h_prompt.narrow(1, p - 1, 1).reshape([r, d])]; // [R, H]
    // (prompt row, item, option, tokens) of every non-empty continuation, in order.
    let conts: Vec<(usize, usize, usize, &[u32])> = live
        .iter()
        .enumerate()
        .flat_map(|(j, &i)| {
            items[i]
                .1
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.is_empty())
                .map(move |(o, c)| (j, i, o, c.as_slice()))
        })
        .collect();
    // Position t of continuation k (in the batch below) predicts its token t + 1: its hidden
    // state is row `r + rest_at[k] + t` of the stacked rows.
    let mut rest_at = Vec::with_capacity(conts.len());
    let mut rest_rows = 0;
    for (.., c) in &conts {
        rest_at.push(r + rest_rows);
        rest_rows += c.len() - 1;
    }
    if rest_rows > 0 {
        let owners: Vec<usize> = conts.iter().map(|&(j, ..)| j).collect();
        let mut cont_cache = cache.select_rows(&owners);
        let seqs: Vec<Vec<u32>> = conts.iter().map(|(.., c)| c.to_vec()).collect();
        let batch = TokenBatch::padded(&seqs, 0, false); // [N, L] right-padded
        let h = model.hidden_states(&batch, Some(&mut cont_cache)); // [N, L, H]
        let (n, l) = (batch.batch, batch.seq);
        let flat = h.reshape([n * l, d]); // [N·L, H]
        let idx: Vec<i64> = seqs
            .iter()
            .enumerate()
            .flat_map(|(k, c)| (0..c.len() - 1).map(move |t| (k * l + t) as i64))
            .collect();
        let device = flat.device();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [rest_rows]), &device);
        rows.push(flat.select(0, idx));
    }
    let hs = Tensor::cat(rows, 0); // [M, H], M = R + rest_rows
    let m = hs.dims()[0];
    let logits = model.logits_from_hidden(hs.reshape([1, m, d])); // [1, M, V]
    let v = logits.dims()[2];
    let lp = log_softmax(logits, 2).reshape([m * v]); // [M·V]
    // The log-probability of every scored token, continuation by continuation: the first from
    // its prompt's row, the rest from its own rows.
    let mut picks = Vec::new();
    for ((j, .., c), &at) in conts.iter().zip(&rest_at) {
        picks.push((j * v) as i64 + c[0] as i64);
        picks.extend(
            c[1..]
                .iter()
                .enumerate()
                .map(|(t, &tok)| ((at + t) * v) as i64 + tok as i64),
        );
    }
    let device = lp.device();
    let k = picks.len();
    let picked: Vec<f32> = lp
        .select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(picks, [k]), &device),
        )
        .try_into_vec_as::<f32>()
        .expect("f32");
    let mut at = 0;
    for &(_, i, o, c) in &conts {
        let sum: f64 = picked[at..at + c.len()].iter().map(|&x| x as f64).sum();
        at += c.len();
        out[i][o] = (sum, c.len());
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
        let prompts = vec![
            b"hello there".iter().map(|&b| b as u32).collect::<Vec<_>>(),
            vec![104, 105],
            b"a longer prompt here".iter().map(|&b| b as u32).collect(),
        ];
        let cfg = GenerateConfig {
            max_new_tokens: 6,
            stop_ids: vec![101],
            ..Default::default()
        };
        let batched = generate_greedy_batch(&model, &prompts, &cfg);
        for (p, b) in prompts.iter().zip(&batched) {
            assert_eq!(&generate(&model, p, &cfg), b);
        }
    }

    #[test]
    fn batched_prompts_score_each_continuation_as_its_sequence_alone() {
        let device = Device::flex();
        let model = random_model(&tiny_byte_llama_config(), 7, 0.5, &device);
        let bytes = |s: &str| -> Vec<u32> { s.bytes().map(u32::from).collect() };
        // Prompts of different lengths (left padding), option lists of different sizes and
        // lengths (right padding), an empty option, and an empty prompt.
        let prompts = [
            bytes("q: colour of the sky?"),
            bytes("2+2="),
            bytes(""),
            bytes("which animal barks?"),
        ];
        let options: Vec<Vec<Vec<u32>>> = vec![
            vec![bytes("blue\n"), bytes("red"), bytes("g")],
            vec![bytes("4"), bytes("five"), vec![]],
            vec![bytes("x")],
            vec![bytes("dog"), bytes("a cat\n")],
        ];
        let items: Vec<(&[u32], &[Vec<u32>])> = prompts
            .iter()
            .zip(&options)
            .map(|(p, o)| (p.as_slice(), o.as_slice()))
            .collect();
        let batched = continuation_logprobs_batch(&model, &items);
        for ((prompt, opts), scores) in prompts.iter().zip(&options).zip(&batched) {
            assert_eq!(scores.len(), opts.len());
            for (o, &(lp, n)) in opts.iter().zip(scores) {
                if prompt.is_empty() || o.is_empty() {
                    assert_eq!((lp, n), (0.0, 0));
                    continue;
                }
                let full: Vec<u32> = prompt.iter().chain(o).copied().collect();
                let per = crate::score::token_logprobs(&model, &TokenBatch::single(&full));
                let expected: f64 = per[0][prompt.len() - 1..]
                    .iter()
                    .map(|x| x.unwrap() as f64)
                    .sum();
                assert_eq!(n, o.len());
                assert!(
                    (lp - expected).abs() < 1e-4 * expected.abs().max(1.0),
                    "{lp} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn shared_prompt_scoring_equals_scoring_each_sequence_alone() {
        let device = Device::flex();
        let model = random_model(&tiny_byte_llama_config(), 6, 0.5, &device);
        let prompt: Vec<u32> = b"q: colour?".iter().map(|&b| b as u32).collect();
        let options: Vec<Vec<u32>> = ["red\n", "blue\n", "g"]
            .iter()
            .map(|o| o.bytes().map(u32::from).collect())
            .collect();
        let shared = continuation_logprobs(&model, &prompt, &options);
        for (o, (lp, n)) in options.iter().zip(&shared) {
            let full: Vec<u32> = prompt.iter().chain(o).copied().collect();
            let per = crate::score::token_logprobs(&model, &TokenBatch::single(&full));
            let expected: f64 = per[0][prompt.len() - 1..]
                .iter()
                .map(|x| x.unwrap() as f64)
                .sum();
            assert_eq!(*n, o.len());
            assert!((lp - expected).abs() < 1e-4, "{lp} vs {expected}");
        }
    }
}
