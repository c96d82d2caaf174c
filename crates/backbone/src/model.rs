//! The decoder: Llama, Qwen2 and Gemma2 share one skeleton that differs in a few switches, all
//! read from [`ModelConfig`]. Parameter paths equal the checkpoint keys
//! (`model.layers.0.self_attn.q_proj.weight`), so a missing tensor's error names the exact key.

use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::{gelu_approximate, softmax};
use burn::tensor::module::embedding;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use lora::LoraLinear;

use crate::config::{Family, ModelConfig};
use crate::rope::Rope;

/// RMSNorm, computed in f32: `x / sqrt(mean(x²) + eps) · w`, or `· (1 + w)` for Gemma.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Scale `[hidden]`.
    pub weight: Param<Tensor<1>>,
    #[module(skip)]
    eps: f64,
    /// Gemma stores `w` with the unit offset removed.
    #[module(skip)]
    unit_offset: bool,
}

impl RmsNorm {
    /// A norm from its weight.
    pub fn new(weight: Tensor<1>, eps: f64, unit_offset: bool) -> Self {
        Self {
            weight: Param::initialized(ParamId::new(), weight),
            eps,
            unit_offset,
        }
    }

    /// Normalises over the last dimension.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let w = self.weight.val();
        let w = if self.unit_offset {
            w.add_scalar(1.0)
        } else {
            w
        };
        crate::fused::rms_norm(x, w, self.eps)
    }
}

/// Multi-head self-attention with grouped key/value heads.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection.
    pub q_proj: LoraLinear,
    /// Key projection.
    pub k_proj: LoraLinear,
    /// Value projection.
    pub v_proj: LoraLinear,
    /// Output projection.
    pub o_proj: LoraLinear,
}

/// The gated MLP `down(act(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Gate projection.
    pub gate_proj: LoraLinear,
    /// Up projection.
    pub up_proj: LoraLinear,
    /// Down projection.
    pub down_proj: LoraLinear,
}

/// One decoder block.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Attention.
    pub self_attn: Attention,
    /// MLP.
    pub mlp: Mlp,
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Llama/Qwen2: norm before the MLP. Gemma2: norm after attention.
    pub post_attention_layernorm: RmsNorm,
    /// Gemma2: norm before the MLP.
    pub pre_feedforward_layernorm: Option<RmsNorm>,
    /// Gemma2: norm after the MLP.
    pub post_feedforward_layernorm: Option<RmsNorm>,
}

/// The token embedding table.
#[derive(Module, Debug)]
pub struct Embedding {
    /// `[vocab, hidden]`.
    pub weight: Param<Tensor<2>>,
}

/// Token embedding plus the decoder stack (`model.*` in checkpoints).
#[derive(Module, Debug)]
pub struct DecoderStack {
    /// Token embedding.
    pub embed_tokens: Embedding,
    /// Decoder blocks.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
}

/// A causal language model: decoder stack plus output head.
#[derive(Module, Debug)]
pub struct CausalLm {
    /// The stack (`model.*`).
    pub model: DecoderStack,
    /// Output head; `None` when tied to the embedding.
    pub lm_head: Option<LoraLinear>,
    /// Configuration.
    #[module(skip)]
    pub config: ModelConfig,
    #[module(skip)]
    rope: Rope,
}

/// A batch of token ids with a padding mask (`true` = real token), row-major `[batch, seq]`.
///
/// Padding may sit on either side: positions are counted over real tokens only, so a padded
/// row gives the same outputs at its real tokens as the sequence alone.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Real-token mask.
    pub mask: Vec<bool>,
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub seq: usize,
}

impl TokenBatch {
    /// Real (unpadded) tokens in the batch.
    pub fn real_tokens(&self) -> usize {
        self.mask.iter().filter(|&&m| m).count()
    }

    /// One unpadded sequence.
    pub fn single(ids: &[u32]) -> Self {
        Self {
            ids: ids.to_vec(),
            mask: vec![true; ids.len()],
            batch: 1,
            seq: ids.len(),
        }
    }

    /// Pads sequences to the longest, on the right (`left = false`) or on the left.
    pub fn padded(seqs: &[Vec<u32>], pad_id: u32, left: bool) -> Self {
        let seq = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(seqs.len() * seq);
        let mut mask = Vec::with_capacity(seqs.len() * seq);
        for s in seqs {
            let pad = seq - s.len();
            if left {
                ids.extend(std::iter::repeat_n(pad_id, pad));
                mask.extend(std::iter::repeat_n(false, pad));
            }
            ids.extend_from_slice(s);
            mask.extend(std::iter::repeat_n(true, s.len()));
            if !left {
                ids.extend(std::iter::repeat_n(pad_id, pad));
                mask.extend(std::iter::repeat_n(false, pad));
            }
        }
        Self {
            ids,
            mask,
            batch: seqs.len(),
            seq,
        }
    }

    /// The ids as an int tensor `[batch, seq]`.
    pub fn ids_tensor(&self, device: &Device) -> Tensor<2, Int> {
        let ids: Vec<i64> = self.ids.iter().map(|&x| x as i64).collect();
        Tensor::from_data(TensorData::new(ids, [self.batch, self.seq]), device)
    }
}

/// Keys and values of earlier positions, per layer, for incremental decoding.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Per row: real-token mask of every cached position.
    key_mask: Vec<Vec<bool>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.key_mask.first().map_or(0, Vec::len)
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A cache whose row `i` is a copy of row `rows[i]` of this one: prompts encoded once and
    /// then each continued several ways (scoring the options of multiple-choice questions).
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let idx = self.layers.iter().flatten().next().map(|(k, _)| {
            Tensor::<1, Int>::from_data(TensorData::new(idx, [rows.len()]), &k.device())
        });
        let pick = |t: &Tensor<4>| t.clone().select(0, idx.clone().expect("a cached layer"));
        Self {
            layers: self
                .layers
                .iter()
                .map(|l| l.as_ref().map(|(k, v)| (pick(k), pick(v))))
                .collect(),
            key_mask: rows.iter().map(|&r| self.key_mask[r].clone()).collect(),
        }
    }
}

static SKIP_PADDING: crate::switch::Switch = crate::switch::Switch::new("BACKBONE_SKIP_PADDING");

/// Whether padded batches run their layers on the real tokens alone (default on; see
/// `Packing`; `BACKBONE_SKIP_PADDING=0` turns it off at start-up). Off runs every padding
/// position through the layers too: the reference, for A/B measurements and tests. The outputs
/// at real tokens agree up to float rounding.
pub fn set_skip_padding(on: bool) {
    SKIP_PADDING.set(on);
}

/// See [`set_skip_padding`].
pub fn skip_padding() -> bool {
    SKIP_PADDING.get()
}

/// Where the real tokens of a padded batch sit, so that every per-token operation (embedding,
/// norms, projections, RoPE, MLP) runs on the `N` real tokens alone, packed into one row
/// `[1, N, ·]`; only attention, whose mask is written for the padded layout, unpacks them into
/// `[B, S, ·]`. Padding then costs no products: a batch of prompts of uneven length, or of
/// uneven training records, computes what its tokens need.
struct Packing {
    batch: usize,
    seq: usize,
    /// `[N]`: the flat index `r·S + t` of each real token, in order.
    real: Tensor<1, Int>,
    /// `[B·S]`: each slot's index among the real tokens; padding slots name token 0.
    slots: Tensor<1, Int>,
    /// `[B·S, 1]`: 1 at real tokens, 0 at padding.
    real_mask: Tensor<2>,
    tokens: usize,
}

impl Packing {
    /// `None` when the batch has no padding (or nothing but padding): nothing to skip.
    fn of(batch: &TokenBatch, device: &Device) -> Option<Self> {
        let n = batch.mask.iter().filter(|&&m| m).count();
        if n == 0 || n == batch.mask.len() || !skip_padding() {
            return None;
        }
        let real: Vec<i64> = (0..batch.mask.len())
            .filter(|&i| batch.mask[i])
            .map(|i| i as i64)
            .collect();
        let mut next = 0;
        let slots: Vec<i64> = batch
            .mask
            .iter()
            .map(|&m| {
                let slot = if m { next } else { 0 };
                next += i64::from(m);
                slot
            })
            .collect();
        let real_mask: Vec<f32> = batch.mask.iter().map(|&m| f32::from(u8::from(m))).collect();
        Some(Self {
            batch: batch.batch,
            seq: batch.seq,
            real: Tensor::from_data(TensorData::new(real, [n]), device),
            slots: Tensor::from_data(TensorData::new(slots, [batch.mask.len()]), device),
            real_mask: Tensor::from_data(TensorData::new(real_mask, [batch.mask.len(), 1]), device),
            tokens: n,
        })
    }

    /// `[B, S, C]` → `[1, N, C]`: the real tokens' rows.
    fn pack(&self, x: Tensor<3>) -> Tensor<3> {
        let c = x.dims()[2];
        x.reshape([self.batch * self.seq, c])
            .select(0, self.real.clone())
            .reshape([1, self.tokens, c])
    }

    /// `[1, N, C]` → `[B, S, C]`, one gather. Padding slots hold a copy of token 0: inside
    /// attention they are masked as keys and dropped (by [`Packing::pack`]) as queries, so their
    /// values never reach a real token, nor a gradient (their softmax weights are exact zeros).
    fn spread(&self, x: Tensor<3>) -> Tensor<3> {
        let c = x.dims()[2];
        x.reshape([self.tokens, c])
            .select(0, self.slots.clone())
            .reshape([self.batch, self.seq, c])
    }

    /// [`Packing::spread`] with zeros at the padding: the model's output layout.
    fn unpack(&self, x: Tensor<3>) -> Tensor<3> {
        let c = x.dims()[2];
        // [B, S, C] → [B·S, C] · [B·S, 1] → [B, S, C]
        (self.spread(x).reshape([self.batch * self.seq, c]) * self.real_mask.clone())
            .reshape([self.batch, self.seq, c])
    }
}

impl Attention {
    /// `x` is `[B, S, hidden]`, or with `packing` the batch's real tokens `[1, N, hidden]`
    /// (and `cos_sin` in the same layout); the result has `x`'s layout.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: Tensor<3>,
        cfg: &ModelConfig,
        cos_sin: &(Tensor<4>, Tensor<4>),
        mask: &Tensor<4, Bool>,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        packing: Option<&Packing>,
    ) -> Tensor<3> {
        let [xb, xs, _] = x.dims();
        let grouped = query_groups(cfg, &x.device());
        let (h, kvh, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let (b, s) = packing.map_or((xb, xs), |p| (p.batch, p.seq));
        // Rotated in x's layout: [xB, xS, heads·hd] → [xB, xS, heads, hd]; then (packed) into the
        // padded layout [B, S, heads, hd], and → [B, heads, S, hd].
        let (cos, sin) = cos_sin;
        let to_heads = |t: Tensor<4>, heads: usize| match packing {
            Some(p) => p
                .spread(t.reshape([xb, xs, heads * hd]))
                .reshape([b, s, heads, hd])
                .swap_dims(1, 2),
            None => t.swap_dims(1, 2),
        };
        let q = self.q_proj.forward(x.clone()).reshape([xb, xs, h, hd]);
        let q = to_heads(crate::fused::rope(q, cos.clone(), sin.clone()), h);
        let k = self.k_proj.forward(x.clone()).reshape([xb, xs, kvh, hd]);
        let k = to_heads(crate::fused::rope(k, cos.clone(), sin.clone()), kvh);
        let v = to_heads(self.v_proj.forward(x).reshape([xb, xs, kvh, hd]), kvh);
        let (k, v) = match cache {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let t = k.dims()[2];
        // GQA: each key/value head serves g = h/kvh consecutive query heads.
        let g = h / kvh;
        // [B, kvH, T, hd] → [B, kvH, 1, T, hd] → [B, kvH, g, T, hd] → [B, H, T, hd]
        let expand = |t4: Tensor<4>| {
            t4.unsqueeze_dim::<5>(2)
                .expand([b, kvh, g, t, hd])
                .reshape([b, h, t, hd])
        };
        let out = if cfg.attn_logit_softcapping.is_some() {
            // Written out: soft-capping sits between scaling and masking, where fused kernels
            // may differ; the explicit form is the reference's.
            let (k, v) = if g > 1 {
                (expand(k), expand(v))
            } else {
                (k, v)
            };
            let scores = q
                .matmul(k.swap_dims(2, 3))
                .mul_scalar(cfg.attention_scale()); // [B, H, S, T]
            let cap = cfg.attn_logit_softcapping.unwrap_or(1.0);
            let scores = scores.div_scalar(cap).tanh().mul_scalar(cap);
            let scores = scores.mask_fill(mask.clone().expand([b, h, s, t]), f32::NEG_INFINITY);
            softmax(scores, 3).matmul(v)
        } else if grouped.is_some() {
            // [B, H, S, hd] → [B, kvH, g·S, hd], rows in (g, S) order, as the mask's
            // (`query_groups`).
            let q = q.reshape([b, kvh, g * s, hd]);
            crate::fused::attention(q, k, v, mask.clone(), cfg.attention_scale())
                .reshape([b, h, s, hd])
        } else {
            let (k, v) = if g > 1 {
                (expand(k), expand(v))
            } else {
                (k, v)
            };
            crate::fused::attention(q, k, v, mask.clone(), cfg.attention_scale())
        };
        // [B, H, S, hd] → [B, S, H, hd] → [B, S, H·hd] (→ packed [1, N, H·hd])
        let out = out.swap_dims(1, 2).reshape([b, s, h * hd]);
        let out = match packing {
            Some(p) => p.pack(out),
            None => out,
        };
        self.o_proj.forward(out)
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<3>, family: Family) -> Tensor<3> {
        let gate = self.gate_proj.forward(x.clone());
        let up = self.up_proj.forward(x);
        let hidden = match family {
            Family::Gemma2 => gelu_approximate(gate) * up,
            _ => crate::fused::swiglu(gate, up),
        };
        self.down_proj.forward(hidden)
    }
}

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        cfg: &ModelConfig,
        cos_sin: &(Tensor<4>, Tensor<4>),
        mask: &Tensor<4, Bool>,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        packing: Option<&Packing>,
    ) -> Tensor<3> {
        let attn = self.self_attn.forward(
            self.input_layernorm.forward(x.clone()),
            cfg,
            cos_sin,
            mask,
            cache,
            packing,
        );
        match (
            &self.pre_feedforward_layernorm,
            &self.post_feedforward_layernorm,
        ) {
            (Some(pre), Some(post)) => {
                // Gemma2 "sandwich" norms around both sub-blocks.
                let x = x + self.post_attention_layernorm.forward(attn);
                let mlp = self.mlp.forward(pre.forward(x.clone()), cfg.family);
                x + post.forward(mlp)
            }
            _ => {
                let x = x + attn;
                let mlp = self
                    .mlp
                    .forward(self.post_attention_layernorm.forward(x.clone()), cfg.family);
                x + mlp
            }
        }
    }
}

impl CausalLm {
    /// Assembles a model from its parts (see [`crate::load`] for loading a checkpoint).
    pub fn from_parts(
        model: DecoderStack,
        lm_head: Option<LoraLinear>,
        config: ModelConfig,
    ) -> Self {
        let rope = Rope::new(&config);
        Self {
            model,
            lm_head,
            config,
            rope,
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.model.embed_tokens.weight.val().device()
    }

    /// Final hidden states `[B, S, hidden]` (after the last norm); zeros at padding positions,
    /// which run through none of the layers.
    pub fn hidden_states(&self, batch: &TokenBatch, mut cache: Option<&mut KvCache>) -> Tensor<3> {
        FORWARDS.with(|f| {
            let (passes, tokens) = f.get();
            f.set((passes + 1, tokens + batch.real_tokens() as u64));
        });
        let device = self.device();
        let cfg = &self.config;
        let past = cache.as_ref().map_or(0, |c| c.len());
        if let Some(c) = cache.as_mut() {
            if c.layers.is_empty() {
                c.layers = vec![None; cfg.num_hidden_layers];
                c.key_mask = vec![Vec::new(); batch.batch];
            }
            assert_eq!(
                c.key_mask.len(),
                batch.batch,
                "KV cache holds a different batch size"
            );
        }
        // Positions count real tokens only, continuing after the cached ones.
        let mut positions = Vec::with_capacity(batch.batch * batch.seq);
        for r in 0..batch.batch {
            let mut seen = cache
                .as_ref()
                .map_or(0, |c| c.key_mask[r].iter().filter(|&&m| m).count());
            for i in 0..batch.seq {
                positions.push(seen as f32);
                if batch.mask[r * batch.seq + i] {
                    seen += 1;
                }
            }
        }
        // Padding costs no products: with any in the batch, the layers run on the real tokens
        // alone, packed into one row (see `Packing`), and RoPE's table follows that layout.
        let packing = Packing::of(batch, &device);
        let cos_sin = match &packing {
            Some(p) => {
                let real: Vec<f32> = positions
                    .iter()
                    .zip(&batch.mask)
                    .filter(|(_, m)| **m)
                    .map(|(&pos, _)| pos)
                    .collect();
                self.rope.cos_sin(&real, 1, p.tokens, &device)
            }
            // A pad token takes the position of the next real token; it is masked out as a key.
            None => self
                .rope
                .cos_sin(&positions, batch.batch, batch.seq, &device),
        };

        let mut key_mask: Vec<Vec<bool>> = match cache.as_ref() {
            Some(c) => c.key_mask.clone(),
            None => vec![Vec::new(); batch.batch],
        };
        for (r, km) in key_mask.iter_mut().enumerate() {
            km.extend_from_slice(&batch.mask[r * batch.seq..(r + 1) * batch.seq]);
        }
        // Built once for every layer; with grouped query heads its rows repeat g times.
        let grouped = |m: Tensor<4, Bool>| match query_groups(cfg, &device) {
            Some(g) => m.repeat_dim(2, g), // [B, 1, S, T] → [B, 1, g·S, T]
            None => m,
        };
        let global = grouped(attention_mask(&key_mask, past, batch.seq, None, &device));
        let sliding = cfg
            .sliding_window
            .map(|w| grouped(attention_mask(&key_mask, past, batch.seq, Some(w), &device)));

        let ids = match &packing {
            // [1, N]: the real tokens' ids
            Some(p) => {
                let real: Vec<i64> = batch
                    .ids
                    .iter()
                    .zip(&batch.mask)
                    .filter(|(_, m)| **m)
                    .map(|(&t, _)| t as i64)
                    .collect();
                Tensor::from_data(TensorData::new(real, [1, p.tokens]), &device)
            }
            None => batch.ids_tensor(&device),
        };
        let mut x = embedding(self.model.embed_tokens.weight.val(), ids);
        if cfg.family == Family::Gemma2 {
            x = x.mul_scalar((cfg.hidden_size as f64).sqrt() as f32);
        }
        for (i, layer) in self.model.layers.iter().enumerate() {
            let mask = match (&sliding, cfg.sliding_layers[i]) {
                (Some(m), true) => m,
                _ => &global,
            };
            let slot = cache.as_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(x, cfg, &cos_sin, mask, slot, packing.as_ref());
        }
        if let Some(c) = cache.as_mut() {
            c.key_mask = key_mask;
        }
        let x = self.model.norm.forward(x);
        match &packing {
            // [1, N, hidden] → [B, S, hidden]; padding positions hold zeros.
            Some(p) => p.unpack(x),
            None => x,
        }
    }

    /// Logits `[B, S, vocab]` from final hidden states.
    pub fn logits_from_hidden(&self, h: Tensor<3>) -> Tensor<3> {
        let logits = match &self.lm_head {
            Some(head) => head.forward(h),
            None => {
                let [b, s, d] = h.dims();
                let embed = self.model.embed_tokens.weight.val(); // [V, H]
                if b * s < d {
                    // Few rows (decoding, scoring a few positions): `E · hᵀ` reads the embedding
                    // in its stored layout and copies only the V·B·S logits; `h · Eᵀ` would
                    // first copy the whole transposed embedding (V·H floats, 113 MB for
                    // SmolLM2) on every call.
                    let v = embed.dims()[0];
                    let ht = h.reshape([b * s, d]).transpose(); // [H, B·S]
                    embed.matmul(ht).transpose().reshape([b, s, v]) // [V, B·S] → [B, S, V]
                } else {
                    h.matmul(embed.transpose().unsqueeze())
                }
            }
        };
        match self.config.final_logit_softcapping {
            Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
            None => logits,
        }
    }

    /// Logits `[B, S, vocab]` for a batch, optionally extending a KV cache.
    pub fn forward(&self, batch: &TokenBatch, cache: Option<&mut KvCache>) -> Tensor<3> {
        let h = self.hidden_states(batch, cache);
        self.logits_from_hidden(h)
    }
}

/// `Some(g)` when attention runs with grouped query heads: at inference (no autodiff), for a
/// model whose g = H / kvH query heads share each key/value head, without soft-capping (whose
/// written-out form expands the keys). The g query heads of a key/value head then attend as
/// one head of g·S rows (`[B, H, S, hd]` → `[B, kvH, g·S, hd]`, rows in (g, S) order, and the
/// mask's rows repeated g times in the same order), so the keys and values, the whole KV cache
/// when decoding, are never copied per query head. Training keeps the expanded form: its fused
/// attention converts the mask in every layer, g times more of it grouped (not measured).
fn query_groups(cfg: &ModelConfig, device: &Device) -> Option<usize> {
    let g = cfg.num_attention_heads / cfg.num_key_value_heads;
    (g > 1 && !device.is_autodiff() && cfg.attn_logit_softcapping.is_none()).then_some(g)
}

/// Builds the boolean attention mask `[B, 1, S, T]` (`true` = may not attend; the same for every
/// head) for queries at cache positions `past..past+S` over keys `0..T`: causal, padding and
/// optional sliding window.
/// A query whose every key is masked (a left-pad position) is allowed to see itself, so softmax
/// stays finite; its output is never used.
fn attention_mask(
    key_mask: &[Vec<bool>],
    past: usize,
    s: usize,
    window: Option<usize>,
    device: &Device,
) -> Tensor<4, Bool> {
    let b = key_mask.len();
    let t = past + s;
    let mut m = vec![true; b * s * t];
    for r in 0..b {
        for i in 0..s {
            let qi = past + i;
            let row = &mut m[(r * s + i) * t..(r * s + i + 1) * t];
            let mut any = false;
            for (j, slot) in row.iter_mut().enumerate().take(qi + 1) {
                let in_window = window.is_none_or(|w| qi - j < w);
                if key_mask[r][j] && in_window {
                    *slot = false;
                    any = true;
                }
            }
            if !any {
                row[qi] = false;
            }
        }
    }
    Tensor::from_data(TensorData::new(m, [b, 1, s, t]), device)
}

impl lora::LoraTargets for CausalLm {
    fn for_each_linear_mut(&mut self, f: &mut dyn FnMut(&str, &mut LoraLinear)) {
        for (i, layer) in self.model.layers.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            f(
                &format!("{p}.self_attn.q_proj"),
                &mut layer.self_attn.q_proj,
            );
            f(
                &format!("{p}.self_attn.k_proj"),
                &mut layer.self_attn.k_proj,
            );
            f(
                &format!("{p}.self_attn.v_proj"),
                &mut layer.self_attn.v_proj,
            );
            f(
                &format!("{p}.self_attn.o_proj"),
                &mut layer.self_attn.o_proj,
            );
            f(&format!("{p}.mlp.gate_proj"), &mut layer.mlp.gate_proj);
            f(&format!("{p}.mlp.up_proj"), &mut layer.mlp.up_proj);
            f(&format!("{p}.mlp.down_proj"), &mut layer.mlp.down_proj);
        }
        if let Some(head) = self.lm_head.as_mut() {
            f("lm_head", head);
        }
    }

    fn for_each_linear(&self, f: &mut dyn FnMut(&str, &LoraLinear)) {
        for (i, layer) in self.model.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            f(&format!("{p}.self_attn.q_proj"), &layer.self_attn.q_proj);
            f(&format!("{p}.self_attn.k_proj"), &layer.self_attn.k_proj);
            f(&format!("{p}.self_attn.v_proj"), &layer.self_attn.v_proj);
            f(&format!("{p}.self_attn.o_proj"), &layer.self_attn.o_proj);
            f(&format!("{p}.mlp.gate_proj"), &layer.mlp.gate_proj);
            f(&format!("{p}.mlp.up_proj"), &layer.mlp.up_proj);
            f(&format!("{p}.mlp.down_proj"), &layer.mlp.down_proj);
        }
        if let Some(head) = self.lm_head.as_ref() {
            f("lm_head", head);
        }
    }
}

thread_local! {
    /// Forward passes run by this thread and their real tokens (see [`forward_count`]).
    static FORWARDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// Forward passes through [`CausalLm::hidden_states`] run on the calling thread so far, and
/// the real (unpadded) tokens they took: every forward of a model, training or inference, goes
/// through it. A counter for tests and benches that check what a training step actually ran
/// (a thread's own count, so tests running in parallel do not see each other's passes).
pub fn forward_count() -> (u64, u64) {
    FORWARDS.with(|f| f.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{random_model, tiny_byte_llama_config};

    /// Loss and the gradient of every weight of layer 0's projections and the embedding, with
    /// padding skipped (`on`) or run through the layers.
    fn loss_and_grads(model: &CausalLm, batch: &TokenBatch, on: bool) -> (f32, Vec<Vec<f32>>) {
        set_skip_padding(on);
        let loss = crate::score::next_token_loss(model, batch);
        set_skip_padding(true);
        let value = loss.clone().into_scalar::<f32>();
        let grads = loss.backward();
        let layer = &model.model.layers[0];
        let weights = [
            &model.model.embed_tokens.weight,
            &layer.self_attn.q_proj.weight,
            &layer.self_attn.v_proj.weight,
            &layer.self_attn.o_proj.weight,
            &layer.mlp.down_proj.weight,
        ];
        let g = weights
            .iter()
            .map(|w| {
                w.val()
                    .grad(&grads)
                    .expect("tracked")
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("f32")
            })
            .collect();
        (value, g)
    }

    #[test]
    fn skipping_padding_gives_the_same_loss_gradients_and_hidden_states() {
        let device = Device::flex().autodiff();
        let model =
            random_model(&tiny_byte_llama_config(), 11, 0.5, &device).set_require_grad(true);
        let seqs: Vec<Vec<u32>> = [
            "a short one",
            "a considerably longer sequence of bytes",
            "mid length row",
        ]
        .iter()
        .map(|t| t.bytes().map(u32::from).collect())
        .collect();
        for left in [false, true] {
            let batch = TokenBatch::padded(&seqs, 0, left);
            let (l_on, g_on) = loss_and_grads(&model, &batch, true);
            let (l_off, g_off) = loss_and_grads(&model, &batch, false);
            assert!(
                (l_on - l_off).abs() < 1e-5 * l_off.abs(),
                "loss {l_on} vs {l_off}"
            );
            for (a, b) in g_on.iter().zip(&g_off) {
                let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!(scale > 0.0);
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-4 * scale,
                        "gradient {x} vs {y} (left padding: {left})"
                    );
                }
            }
            // Hidden states at real tokens agree; padding positions are zeros when skipped.
            let h_on = model
                .hidden_states(&batch, None)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            set_skip_padding(false);
            let h_off = model
                .hidden_states(&batch, None)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            set_skip_padding(true);
            let d = model.config.hidden_size;
            for (i, &real) in batch.mask.iter().enumerate() {
                for j in 0..d {
                    let (x, y) = (h_on[i * d + j], h_off[i * d + j]);
                    if real {
                        assert!((x - y).abs() < 1e-4 * y.abs().max(1.0), "{x} vs {y}");
                    } else {
                        assert_eq!(x, 0.0);
                    }
                }
            }
        }
    }
}
