//! The training objectives: masked SFT cross-entropy, KL to a reference, next-token prediction,
//! and their weighted sum `L = L_SFT + β·KL + λ·L_NTP` (METHODS.md §5).
//!
//! All three score only the positions they need: the final hidden states are gathered at the
//! scored positions *before* the output head, so the `[tokens, vocab]` logits exist only for
//! answer tokens (SFT, KL) or real tokens (NTP), never for prompts and padding.

use backbone::{CausalLm, TokenBatch};
use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// A supervised batch: token ids with padding mask, plus which tokens are answer tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SftBatch {
    /// Ids and padding mask, `[batch, seq]`.
    pub tokens: TokenBatch,
    /// `true` at answer tokens (the targets of the SFT loss), row-major `[batch, seq]`.
    /// Prompt and padding tokens are `false`.
    pub answer_mask: Vec<bool>,
}

impl SftBatch {
    /// Builds a right-padded batch from `(prompt, answer)` token sequences.
    pub fn from_pairs(pairs: &[(Vec<u32>, Vec<u32>)], pad_id: u32) -> Self {
        let seqs: Vec<Vec<u32>> = pairs
            .iter()
            .map(|(p, a)| [p.as_slice(), a.as_slice()].concat())
            .collect();
        let tokens = TokenBatch::padded(&seqs, pad_id, false);
        let mut answer_mask = vec![false; tokens.batch * tokens.seq];
        for (r, (p, a)) in pairs.iter().enumerate() {
            for t in p.len()..p.len() + a.len() {
                answer_mask[r * tokens.seq + t] = true;
            }
        }
        Self {
            tokens,
            answer_mask,
        }
    }

    /// Number of answer tokens that are scored (they need a real token before them).
    pub fn num_answer_tokens(&self) -> usize {
        scored_positions(&self.tokens, Some(&self.answer_mask)).len()
    }
}

/// A scored position: row `r` predicts the token at `t` from position `t - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scored {
    row: usize,
    t: usize,
    answer: bool,
}

/// Positions `t ≥ 1` whose input `t-1` and target `t` are real tokens; with `answers`, only
/// those whose target is an answer token.
fn scored_positions(batch: &TokenBatch, answers: Option<&[bool]>) -> Vec<Scored> {
    let (b, s) = (batch.batch, batch.seq);
    let mut out = Vec::new();
    for row in 0..b {
        for t in 1..s {
            let i = row * s + t;
            if !(batch.mask[i] && batch.mask[i - 1]) {
                continue;
            }
            let answer = answers.is_none_or(|a| a[i]);
            if answers.is_some() && !answer {
                continue;
            }
            out.push(Scored { row, t, answer });
        }
    }
    out
}

/// Logits `[N, vocab]` (fp32) at the given positions, with the targets `[N]`.
/// The hidden states are gathered before the output head.
fn logits_at(model: &CausalLm, batch: &TokenBatch, pos: &[Scored]) -> (Tensor<2>, Tensor<1, Int>) {
    assert!(
        !pos.is_empty(),
        "nothing to score: the batch has no (answer) token preceded by a real token"
    );
    let device = model.device();
    let h = model.hidden_states(batch, None); // [B, S, H]
    let [b, s, hidden] = h.dims();
    let idx: Vec<i64> = pos.iter().map(|p| (p.row * s + p.t - 1) as i64).collect();
    let n = idx.len();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), &device);
    let h = h.reshape([b * s, hidden]).select(0, idx); // [N, H]
    let logits = model
        .logits_from_hidden(h.unsqueeze_dim(0))
        .squeeze_dim::<2>(0); // [N, V]
    let logits = if logits.dtype() == DType::F32 {
        logits
    } else {
        logits.cast(FloatDType::F32)
    };
    let targets: Vec<i64> = pos
        .iter()
        .map(|p| batch.ids[p.row * s + p.t] as i64)
        .collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device);
    (logits, targets)
}

/// Log-probabilities `[N, vocab]` at the given positions (for the KL term, which needs the whole
/// distribution).
fn logprobs_at(model: &CausalLm, batch: &TokenBatch, pos: &[Scored]) -> Tensor<2> {
    log_softmax(logits_at(model, batch, pos).0, 1)
}

/// NLL `[N]` of the targets from log-probabilities `[N, vocab]`.
fn nll_from_logprobs(lp: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let n = targets.dims()[0];
    lp.gather(1, targets.reshape([n, 1])).neg().reshape([n])
}

/// `[B, N]` matrix that averages per-position values into per-row means over `pos` entries
/// with `answer == true` (rows without any get 0).
fn row_mean_matrix(pos: &[Scored], rows: usize, device: &Device) -> Tensor<2> {
    let n = pos.len();
    let mut counts = vec![0usize; rows];
    for p in pos.iter().filter(|p| p.answer) {
        counts[p.row] += 1;
    }
    let mut w = vec![0f32; rows * n];
    for (j, p) in pos.iter().enumerate() {
        if p.answer {
            w[p.row * n + j] = 1.0 / counts[p.row] as f32;
        }
    }
    Tensor::from_data(TensorData::new(w, [rows, n]), device)
}

/// The SFT loss: cross-entropy on answer tokens.
#[derive(Debug, Clone)]
pub struct SftLoss {
    /// Mean NLL over all answer tokens of the batch (token-weighted, as transformers' loss
    /// with `-100` labels on prompt and padding), shape `[1]`. Differentiable.
    pub mean: Tensor<1>,
    /// Per-sample mean NLL over that sample's answer tokens, `[batch]` (0 for a sample without
    /// answer tokens). Differentiable; replay methods read it to score samples.
    pub per_sample: Tensor<1>,
    /// Number of answer tokens scored in each sample.
    pub tokens_per_sample: Vec<usize>,
}

/// Which way the KL divergence goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlDirection {
    /// `KL(p_ref || p_θ) = Σ_v p_ref (log p_ref − log p_θ)`: mass-covering (default).
    #[default]
    Forward,
    /// `KL(p_θ || p_ref) = Σ_v p_θ (log p_θ − log p_ref)`: mode-seeking.
    Reverse,
}

/// Which model the KL term's reference is (METHODS.md section 5). [`objective`] takes the
/// reference it is given; a continual engine reads this setting to build it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlReference {
    /// The model before any training: the backbone with its LoRA adapters switched off, or a
    /// frozen copy of the initial weights in full fine-tuning (default).
    #[default]
    Initial,
    /// The model as it was when the current stage (task) started: a frozen copy of the
    /// trainable weights taken at each stage's start.
    StageStart,
}

/// Which positions the KL term averages over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlTokens {
    /// The answer tokens of the SFT batch (default).
    #[default]
    Answer,
    /// Every real token (prompt and answer).
    All,
}

/// Weights and options of the combined objective `L = L_SFT + β·KL + λ·L_NTP`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectiveConfig {
    /// Weight of the SFT term (1).
    pub sft_weight: f64,
    /// `β`, weight of the KL term (0: no reference forward at all). METHODS.md §5 reports
    /// 0.001 keeps plasticity and 0.01 nearly removes forgetting.
    pub kl_weight: f64,
    /// `λ`, weight of next-token prediction on the corpus batch (applied when one is given).
    pub ntp_weight: f64,
    /// KL direction (forward `KL(p_ref || p_θ)`).
    pub kl_direction: KlDirection,
    /// KL positions (answer tokens).
    pub kl_tokens: KlTokens,
    /// The KL reference: the initial model (default) or the model at the current stage's
    /// start.
    pub kl_reference: KlReference,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            sft_weight: 1.0,
            kl_weight: 0.0,
            ntp_weight: 0.0,
            kl_direction: KlDirection::Forward,
            kl_tokens: KlTokens::Answer,
            kl_reference: KlReference::Initial,
        }
    }
}

/// Masked cross-entropy on the answer tokens of `batch`.
pub fn sft_loss(model: &CausalLm, batch: &SftBatch) -> SftLoss {
    let pos = scored_positions(&batch.tokens, Some(&batch.answer_mask));
    let (logits, targets) = logits_at(model, &batch.tokens, &pos);
    sft_from_nll(
        backbone::fused::cross_entropy(logits, targets),
        &pos,
        batch.tokens.batch,
    )
}

/// The SFT loss from the NLL `[N]` of every scored position.
fn sft_from_nll(nll: Tensor<1>, pos: &[Scored], rows: usize) -> SftLoss {
    let device = nll.device();
    let n = pos.len();
    let nll = nll.reshape([n, 1]); // [N] → [N, 1]
    let w = row_mean_matrix(pos, rows, &device); // [B, N]
    let per_sample = w.matmul(nll.clone()).squeeze_dim::<1>(1); // [B]
    let n_answer = pos.iter().filter(|p| p.answer).count();
    let answer: Vec<f32> = pos.iter().map(|p| p.answer as u8 as f32).collect();
    let answer = Tensor::<2>::from_data(TensorData::new(answer, [pos.len(), 1]), &device);
    let mean = (nll * answer).sum().div_scalar(n_answer.max(1) as f64);
    let mut tokens_per_sample = vec![0; rows];
    for p in pos.iter().filter(|p| p.answer) {
        tokens_per_sample[p.row] += 1;
    }
    SftLoss {
        mean,
        per_sample,
        tokens_per_sample,
    }
}

/// Mean over rows of `Σ_v p (log p − log q)` for log-probabilities `[N, V]`, in fp32.
pub fn kl_divergence(log_p: Tensor<2>, log_q: Tensor<2>) -> Tensor<1> {
    let n = log_p.dims()[0].max(1);
    (log_p.clone().exp() * (log_p - log_q))
        .sum()
        .div_scalar(n as f64)
}

fn kl_term(lp_theta: Tensor<2>, lp_ref: Tensor<2>, direction: KlDirection) -> Tensor<1> {
    // The reference is a constant: no gradient flows into it. A reference computed on a
    // validation copy (`model.valid()`, no autodiff) joins the autodiff graph as a constant.
    let lp_ref = lp_ref.detach();
    let lp_ref = if lp_theta.is_autodiff() {
        lp_ref.autodiff()
    } else {
        lp_ref
    };
    match direction {
        KlDirection::Forward => kl_divergence(lp_ref, lp_theta),
        KlDirection::Reverse => kl_divergence(lp_theta, lp_ref),
    }
}

/// KL between a reference and the model on the SFT batch, with the reference's log-probs
/// computed by `reference` (a model with adapters off, or a frozen copy), detached.
pub fn kl_loss(
    model: &CausalLm,
    reference: &CausalLm,
    batch: &SftBatch,
    direction: KlDirection,
    tokens: KlTokens,
) -> Tensor<1> {
    let answers = (tokens == KlTokens::Answer).then_some(batch.answer_mask.as_slice());
    let pos = scored_positions(&batch.tokens, answers);
    let lp = logprobs_at(model, &batch.tokens, &pos);
    let lp_ref = logprobs_at(reference, &batch.tokens, &pos);
    kl_term(lp, lp_ref, direction)
}

/// Mean next-token cross-entropy over every real token of a corpus batch (positions whose input
/// and target are both real; transformers' causal-LM loss with padding labels at -100).
pub fn ntp_loss(model: &CausalLm, corpus: &TokenBatch) -> Tensor<1> {
    let pos = scored_positions(corpus, None);
    let (logits, targets) = logits_at(model, corpus, &pos);
    backbone::fused::cross_entropy(logits, targets)
        .sum()
        .div_scalar(pos.len().max(1) as f64)
}

/// The value of every term of one objective evaluation.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// `sft_weight·L_SFT + β·KL + λ·L_NTP`, differentiable, `[1]`.
    pub total: Tensor<1>,
    /// The SFT term with per-sample losses.
    pub sft: SftLoss,
    /// The KL term when `β > 0`.
    pub kl: Option<Tensor<1>>,
    /// The NTP term when a corpus batch was given and `λ > 0`.
    pub ntp: Option<Tensor<1>>,
}

/// Where the KL reference distribution comes from.
#[derive(Debug, Clone, Copy)]
pub enum Reference<'a> {
    /// The same network with its LoRA adapters switched off (no second copy).
    AdaptersOff,
    /// Another model, e.g. a frozen copy for full fine-tuning (`model.valid()` taken at the start).
    Model(&'a CausalLm),
}

/// What the loss terms of a step need from its forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ForwardNeeds {
    /// Log-probabilities over the whole vocabulary at the scored positions (KL and
    /// distillation terms). The SFT loss then reads its NLL from them instead of the fused
    /// cross-entropy, which never forms them.
    pub log_probs: bool,
    /// Every position with a real input and target, not only answer tokens (a KL term over
    /// all tokens); the SFT loss still averages over answer tokens only.
    pub all_positions: bool,
}

impl ForwardNeeds {
    /// What either of `self` and `other` needs.
    pub fn union(self, other: Self) -> Self {
        Self {
            log_probs: self.log_probs || other.log_probs,
            all_positions: self.all_positions || other.all_positions,
        }
    }
}

/// One forward pass of an SFT batch: its loss, and what other loss terms may read from it.
#[derive(Debug, Clone)]
pub struct SftForward {
    /// The SFT loss.
    pub sft: SftLoss,
    /// Log-probabilities `[N, V]` at the scored positions (with [`ForwardNeeds::log_probs`]).
    pub log_probs: Option<Tensor<2>>,
    positions: Vec<Scored>,
}

impl SftForward {
    /// The scored positions in the order of the rows of [`log_probs`](Self::log_probs):
    /// `(batch row, token index, whether the target is an answer token)`.
    pub fn positions(&self) -> impl Iterator<Item = (usize, usize, bool)> + '_ {
        self.positions.iter().map(|p| (p.row, p.t, p.answer))
    }
}

/// The forward pass of `batch` through `model`: the SFT loss on answer tokens, and the
/// log-probabilities when `needs` asks for them.
pub fn sft_forward(model: &CausalLm, batch: &SftBatch, needs: ForwardNeeds) -> SftForward {
    let answers = (!needs.all_positions).then_some(batch.answer_mask.as_slice());
    let mut pos = scored_positions(&batch.tokens, answers);
    if answers.is_none() {
        for p in &mut pos {
            p.answer = batch.answer_mask[p.row * batch.tokens.seq + p.t];
        }
    }
    let (logits, targets) = logits_at(model, &batch.tokens, &pos);
    // With log-probabilities asked for, the whole distribution is formed anyway; without,
    // the fused cross-entropy never forms it.
    let (nll, lp) = if needs.log_probs {
        let lp = log_softmax(logits, 1);
        (nll_from_logprobs(lp.clone(), targets), Some(lp))
    } else {
        (backbone::fused::cross_entropy(logits, targets), None)
    };
    SftForward {
        sft: sft_from_nll(nll, &pos, batch.tokens.batch),
        log_probs: lp,
        positions: pos,
    }
}

/// The KL term between the forward's distribution and `reference`'s at the same positions
/// (the reference is a constant). Panics unless `forward` was run with
/// [`ForwardNeeds::log_probs`].
pub fn kl_to_reference(
    model: &mut CausalLm,
    reference: Reference<'_>,
    batch: &SftBatch,
    forward: &SftForward,
    direction: KlDirection,
) -> Tensor<1> {
    let lp = forward
        .log_probs
        .clone()
        .expect("the forward pass was asked for log-probabilities");
    let pos = &forward.positions;
    let lp_ref = match reference {
        // `valid()` drops the autodiff wrapper (a cheap handle copy): the reference forward
        // records no graph, which it does not need since it is detached anyway.
        Reference::AdaptersOff => {
            lora::with_adapters_disabled(model, |m| logprobs_at(&m.valid(), &batch.tokens, pos))
        }
        Reference::Model(r) => logprobs_at(&r.valid(), &batch.tokens, pos),
    };
    kl_term(lp, lp_ref, direction)
}

/// Log-probabilities `[N, V]` of `model` (a teacher or a reference, run without autodiff) at
/// the positions of `forward`, row for row.
pub fn log_probs_like(model: &CausalLm, batch: &SftBatch, forward: &SftForward) -> Tensor<2> {
    logprobs_at(&model.valid(), &batch.tokens, &forward.positions)
}

/// Knowledge distillation at temperature `T`: `T² · KL(softmax(z_t/T) ‖ softmax(z_s/T))`
/// averaged over the rows, from log-probabilities `[N, V]` (softmax is shift-invariant, so
/// log-probabilities give the same tempered distributions as logits). The teacher is a
/// constant.
pub fn distillation_kl(student: Tensor<2>, teacher: Tensor<2>, temperature: f64) -> Tensor<1> {
    let t = temperature;
    let student = log_softmax(student.div_scalar(t), 1);
    let teacher = log_softmax(teacher.div_scalar(t), 1);
    kl_term(student, teacher, KlDirection::Forward).mul_scalar(t * t)
}

/// `sft_weight · L_SFT + kl_weight · KL + ntp_weight · L_NTP` with its parts: the
/// objective of METHODS.md section 5 in one call (the engine composes the same parts from
/// its method plugins).
pub fn objective(
    model: &mut CausalLm,
    reference: Reference<'_>,
    batch: &SftBatch,
    corpus: Option<&TokenBatch>,
    cfg: &ObjectiveConfig,
) -> LossParts {
    let with_kl = cfg.kl_weight > 0.0;
    let needs = ForwardNeeds {
        log_probs: with_kl,
        all_positions: with_kl && cfg.kl_tokens == KlTokens::All,
    };
    let forward = sft_forward(model, batch, needs);
    let mut total = forward.sft.mean.clone().mul_scalar(cfg.sft_weight);
    let kl = with_kl.then(|| kl_to_reference(model, reference, batch, &forward, cfg.kl_direction));
    if let Some(kl) = &kl {
        total = total + kl.clone().mul_scalar(cfg.kl_weight);
    }
    let ntp = corpus
        .filter(|_| cfg.ntp_weight > 0.0)
        .map(|c| ntp_loss(model, c));
    if let Some(ntp) = &ntp {
        total = total + ntp.clone().mul_scalar(cfg.ntp_weight);
    }
    LossParts {
        total,
        sft: forward.sft,
        kl,
        ntp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_marks_answer_tokens_and_pads_right() {
        let b = SftBatch::from_pairs(&[(vec![5, 6], vec![7, 8]), (vec![9], vec![10])], 0);
        assert_eq!(b.tokens.seq, 4);
        assert_eq!(b.tokens.ids, vec![5, 6, 7, 8, 9, 10, 0, 0]);
        assert_eq!(
            b.answer_mask,
            vec![false, false, true, true, false, true, false, false]
        );
        assert_eq!(b.num_answer_tokens(), 3);
    }

    #[test]
    fn scored_positions_skip_padding_and_prompt() {
        let tokens = TokenBatch::padded(&[vec![1, 2, 3], vec![4, 5]], 0, true);
        // row 1 is left-padded: [0, 4, 5]; t=1 has a pad input, so only t=2 is scored.
        let all = scored_positions(&tokens, None);
        assert_eq!(
            all.iter().map(|p| (p.row, p.t)).collect::<Vec<_>>(),
            vec![(0, 1), (0, 2), (1, 2)]
        );
        let answers = vec![false, false, true, false, false, true];
        let ans = scored_positions(&tokens, Some(&answers));
        assert_eq!(
            ans.iter().map(|p| (p.row, p.t)).collect::<Vec<_>>(),
            vec![(0, 2), (1, 2)]
        );
    }

    #[test]
    fn kl_of_a_distribution_with_itself_is_zero_and_matches_by_hand() {
        let device = Device::flex();
        let p = log_softmax(
            Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0, 2.0], [1, 3]), &device),
            1,
        );
        let zero: f32 = kl_divergence(p.clone(), p.clone()).into_scalar();
        assert!(zero.abs() < 1e-7);
        let q = log_softmax(
            Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0, 0.0], [1, 3]), &device),
            1,
        );
        // p = softmax(0,1,2) = [0.0900, 0.2447, 0.6652]; KL(p||uniform) = Σ p log p + log 3.
        let pv = [0.090_030_57f64, 0.244_728_47, 0.665_240_96];
        let expected = pv.iter().map(|x| x * x.ln()).sum::<f64>() + 3f64.ln();
        let got: f32 = kl_divergence(p, q).into_scalar();
        assert!((got as f64 - expected).abs() < 1e-6, "{got} vs {expected}");
    }

    #[test]
    fn distillation_at_a_temperature_matches_the_tempered_kl_by_hand() {
        let device = Device::flex();
        // Teacher log-probs log([1, 2, 5] / 8); the student uniform. At T = 2 the tempered
        // teacher is ∝ [1, √2, √5] (shift-invariance: the /8 drops out), the student stays
        // uniform, and the term is T² · Σ t log(t / (1/3)).
        let teacher = Tensor::<2>::from_data(
            TensorData::new(
                vec![(1f32 / 8.0).ln(), (2f32 / 8.0).ln(), (5f32 / 8.0).ln()],
                [1, 3],
            ),
            &device,
        );
        let student = log_softmax(Tensor::<2>::zeros([1, 3], &device), 1);
        let w = [1f64, 2f64.sqrt(), 5f64.sqrt()];
        let z: f64 = w.iter().sum();
        let expected = 4.0
            * w.iter()
                .map(|x| (x / z) * ((x / z) * 3.0).ln())
                .sum::<f64>();
        let got: f32 = distillation_kl(student.clone(), teacher.clone(), 2.0).into_scalar();
        assert!((got as f64 - expected).abs() < 1e-5, "{got} vs {expected}");
        // At T = 1 it is the plain KL(teacher ‖ student).
        let plain: f32 = kl_divergence(teacher.clone(), student.clone()).into_scalar();
        let t1: f32 = distillation_kl(student, teacher, 1.0).into_scalar();
        assert!((plain - t1).abs() < 1e-6);
    }
}
