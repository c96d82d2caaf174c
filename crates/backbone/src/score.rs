//! Per-token log-probabilities and the masked next-token loss.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::model::{CausalLm, TokenBatch};

/// `log p(x_t | x_<t)` for every position `t ≥ 1` of each row; entries whose target is padding
/// are `None`. Row `r` has `seq - 1` entries.
pub fn token_logprobs(model: &CausalLm, batch: &TokenBatch) -> Vec<Vec<Option<f32>>> {
    let logits = model.forward(batch, None);
    let (b, s) = (batch.batch, batch.seq);
    if s < 2 {
        return vec![vec![]; b];
    }
    let v = logits.dims()[2];
    let lp = log_softmax(logits.narrow(1, 0, s - 1), 2); // [B, S-1, V]
    let targets = target_ids(batch, &lp.device()); // [B, S-1, 1]
    let picked: Vec<f32> = lp.gather(2, targets).try_into_vec_as::<f32>().expect("f32");
    debug_assert_eq!(picked.len(), b * (s - 1), "vocab {v}");
    (0..b)
        .map(|r| {
            (1..s)
                .map(|t| batch.mask[r * s + t].then(|| picked[r * (s - 1) + t - 1]))
                .collect()
        })
        .collect()
}

fn target_ids(batch: &TokenBatch, device: &burn::tensor::Device) -> Tensor<3, Int> {
    let (b, s) = (batch.batch, batch.seq);
    let mut t = Vec::with_capacity(b * (s - 1));
    for r in 0..b {
        t.extend(batch.ids[r * s + 1..(r + 1) * s].iter().map(|&x| x as i64));
    }
    Tensor::from_data(TensorData::new(t, [b, s - 1, 1]), device)
}

/// Mean next-token cross-entropy over positions whose input and target are both real tokens
/// (transformers' loss with padding labels set to -100). Differentiable.
pub fn next_token_loss(model: &CausalLm, batch: &TokenBatch) -> Tensor<1> {
    let (b, s) = (batch.batch, batch.seq);
    let logits = model.forward(batch, None);
    let device = logits.device();
    let lp = log_softmax(logits.narrow(1, 0, s - 1), 2); // [B, S-1, V]
    let nll = lp.gather(2, target_ids(batch, &device)).neg(); // [B, S-1, 1]
    let mut w = Vec::with_capacity(b * (s - 1));
    for r in 0..b {
        for t in 1..s {
            w.push(if batch.mask[r * s + t] && batch.mask[r * s + t - 1] { 1.0f32 } else { 0.0 });
        }
    }
    let count = w.iter().sum::<f32>().max(1.0);
    let w: Tensor<3> = Tensor::from_data(TensorData::new(w, [b, s - 1, 1]), &device);
    (nll * w).sum().div_scalar(count)
}
