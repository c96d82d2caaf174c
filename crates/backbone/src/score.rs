//! Per-token log-probabilities and the masked next-token loss.

use burn::tensor::{Int, Tensor, TensorData};

use crate::model::{CausalLm, TokenBatch};

/// `log p(x_t | x_<t)` for every position `t ≥ 1` of each row; entries whose target is padding
/// are `None`. Row `r` has `seq - 1` entries. Computed as minus the fused cross-entropy at every
/// position (no `[B, S, V]` log-probabilities are formed).
pub fn token_logprobs(model: &CausalLm, batch: &TokenBatch) -> Vec<Vec<Option<f32>>> {
    let (b, s) = (batch.batch, batch.seq);
    if s < 2 {
        return vec![vec![]; b];
    }
    let (nll, _) = next_token_nll(model, batch, false);
    let nll: Vec<f32> = nll.try_into_vec_as::<f32>().expect("f32");
    (0..b)
        .map(|r| {
            (1..s)
                .map(|t| batch.mask[r * s + t].then(|| -nll[r * s + t - 1]))
                .collect()
        })
        .collect()
}

/// Mean next-token cross-entropy over positions whose input and target are both real tokens
/// (transformers' loss with padding labels set to -100). Differentiable.
///
/// Every position's logits go to [`crate::fused::cross_entropy`] with the next token as target
/// (-1, ignored, at the last position and wherever input or target is padding): no `[B, S-1, V]`
/// slice or log-probabilities are formed.
pub fn next_token_loss(model: &CausalLm, batch: &TokenBatch) -> Tensor<1> {
    let (nll, count) = next_token_nll(model, batch, true);
    nll.sum().div_scalar(count.max(1) as f64)
}

/// The NLL `[B·S]` of each position's next token, and how many positions are scored: position
/// t of row r is scored against token t + 1 when that token is real (and, with `real_input`,
/// token t too); the last position and the others are ignored (NLL 0).
fn next_token_nll(model: &CausalLm, batch: &TokenBatch, real_input: bool) -> (Tensor<1>, usize) {
    let (b, s) = (batch.batch, batch.seq);
    let logits = model.forward(batch, None);
    let v = logits.dims()[2];
    let mut targets = Vec::with_capacity(b * s);
    for r in 0..b {
        for t in 0..s {
            let i = r * s + t;
            let scored = t + 1 < s && batch.mask[i + 1] && (!real_input || batch.mask[i]);
            targets.push(if scored { batch.ids[i + 1] as i64 } else { -1 });
        }
    }
    let count = targets.iter().filter(|&&t| t >= 0).count();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [b * s]), &logits.device());
    // [B, S, V] → [B·S, V]
    (
        crate::fused::cross_entropy(logits.reshape([b * s, v]), targets),
        count,
    )
}
