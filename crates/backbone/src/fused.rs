//! Fused CPU kernels for the element-wise hot spots of a decoder's training step: RMSNorm,
//! SwiGLU, RoPE, attention (training) and the cross-entropy over the vocabulary.
//!
//! Why: Flex runs matrix products on Rayon's pool but its element-wise kernels on the calling
//! thread, and Burn's autodiff decomposes `silu(g)·u`, RMSNorm, RoPE, the attention softmax and
//! `log_softmax` + `gather` into chains of such passes, each writing a fresh tensor (the
//! `[tokens, vocab]` log-probabilities and their gradient are 400 MB at batch 8 × 256). Profiled,
//! about half of a LoRA step ran on one core (docs/performance.md). Each operation here is a Burn
//! backend extension: one pass forward and one backward, split over Rayon's pool, with a
//! hand-written backward for Burn's autodiff that overwrites buffers it owns alone.
//!
//! The fused path runs on Flex devices (plain or autodiff) in f32; on any other device or dtype
//! (WGPU, bf16) the same functions compose Burn's tensor operations, so results are the same up
//! to floating-point rounding. `set_enabled(false)` (or `BACKBONE_FUSED=0`) forces the composed
//! path everywhere: `cargo xtask bench --fused-ab` times both in one process.
//!
//! ```
//! use backbone::fused;
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex();
//! let x = Tensor::<2>::from_floats([[3.0, 4.0]], &device);
//! let w = Tensor::<1>::from_floats([1.0, 1.0], &device);
//! // x / sqrt(mean(x²)) = [3, 4] / sqrt(12.5)
//! let y = fused::rms_norm(x, w, 0.0).into_data().try_to_vec::<f32>().unwrap();
//! assert!((y[0] - 0.848_528).abs() < 1e-5);
//! ```

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, DispatchDevice, Flex, backend_extension};
use burn::tensor::activation::{log_softmax, silu};
use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Device, Int, Shape, Tensor, TensorData};
use rayon::prelude::*;

static ENABLED: crate::switch::Switch = crate::switch::Switch::new("BACKBONE_FUSED");

/// Whether the fused kernels are used where they apply (default on; `BACKBONE_FUSED=0` turns
/// them off at start-up).
pub fn enabled() -> bool {
    ENABLED.get()
}

/// Turns the fused kernels on or off for the whole process (the composed path is the reference).
pub fn set_enabled(on: bool) {
    ENABLED.set(on);
}

fn use_fused(device: &Device, dtype: DType) -> bool {
    dtype == DType::F32
        && enabled()
        && matches!(
            device.clone().inner().as_dispatch(),
            DispatchDevice::Flex(_)
        )
}

/// `silu(gate) · up`, the gated activation of Llama/Qwen MLPs.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    let fused = use_fused(&gate.device(), gate.dtype());
    swiglu_with(gate, up, fused)
}

fn swiglu_with<const D: usize>(gate: Tensor<D>, up: Tensor<D>, fused: bool) -> Tensor<D> {
    assert_eq!(
        gate.dims(),
        up.dims(),
        "swiglu: gate and up differ in shape"
    );
    if !fused {
        return silu(gate) * up;
    }
    let out =
        <burn::backend::Dispatch as FusedOps>::swiglu(gate.into_dispatch(), up.into_dispatch());
    Tensor::from_dispatch(out)
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) · w`, with `w` of shape `[hidden]`.
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    let fused = use_fused(&x.device(), x.dtype()) && weight.dtype() == DType::F32;
    rms_norm_with(x, weight, eps, fused)
}

fn rms_norm_with<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<1>,
    eps: f64,
    fused: bool,
) -> Tensor<D> {
    if !fused {
        let rms = x.clone().square().mean_dim(D - 1).add_scalar(eps).sqrt(); // [.., 1]
        return (x / rms) * weight.unsqueeze::<D>();
    }
    let out = <burn::backend::Dispatch as FusedOps>::rms_norm(
        x.into_dispatch(),
        weight.into_dispatch(),
        eps as f32,
    );
    Tensor::from_dispatch(out)
}

/// Rotary embedding in the "rotate half" layout, `x·cos + rotate_half(x)·sin`, applied to
/// `x: [B, S, H, d]` (the projection's own layout, before heads move to dimension 1) with tables
/// `cos, sin: [B, 1, S, d]`. The tables are constants (no gradient).
pub fn rope(x: Tensor<4>, cos: Tensor<4>, sin: Tensor<4>) -> Tensor<4> {
    let fused =
        use_fused(&x.device(), x.dtype()) && cos.dtype() == DType::F32 && sin.dtype() == DType::F32;
    rope_with(x, cos, sin, fused)
}

fn rope_with(x: Tensor<4>, cos: Tensor<4>, sin: Tensor<4>, fused: bool) -> Tensor<4> {
    let [b, s, _, d] = x.dims();
    assert_eq!(
        cos.dims(),
        [b, 1, s, d],
        "rope: cos table {:?} for x {:?}",
        cos.dims(),
        x.dims()
    );
    if !fused {
        // [B, S, H, d] → [B, H, S, d] → rotated → [B, S, H, d]
        return crate::rope::Rope::apply(x.swap_dims(1, 2), &(cos, sin)).swap_dims(1, 2);
    }
    let (cos, sin) = (cos.detach().inner(), sin.detach().inner());
    let out = <burn::backend::Dispatch as FusedOps>::rope(
        x.into_dispatch(),
        cos.into_dispatch(),
        sin.into_dispatch(),
    );
    Tensor::from_dispatch(out)
}

/// `softmax(scale·q·kᵀ, masked)·v` for `q: [B, H, S, hd]`, `k, v: [B, H, T, hd]` and a mask
/// `[B, 1, S, T]` or `[B, H, S, T]` (`true`: the key is hidden from that query).
///
/// The fused path is taken when training on Flex (autodiff): there Burn composes attention from
/// a dozen single-threaded element-wise passes over `[B, H, S, T]` and their backward; here the
/// products stay Flex's and the masked softmax and its backward are one parallel pass each.
/// Elsewhere (inference on Flex has its own kernel; WGPU) this is Burn's `attention`.
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Tensor<4, Bool>,
    scale: f64,
) -> Tensor<4> {
    let device = q.device();
    let fused = use_fused(&device, q.dtype()) && device.is_autodiff();
    attention_with(q, k, v, mask, scale, fused)
}

fn attention_with(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Tensor<4, Bool>,
    scale: f64,
    fused: bool,
) -> Tensor<4> {
    if !fused {
        let [b, h, s, _] = q.dims();
        let t = k.dims()[2];
        let options = AttentionModuleOptions {
            scale: Some(scale),
            softcap: None,
            is_causal: false,
        };
        return burn_attention(q, k, v, Some(mask.expand([b, h, s, t])), None, options);
    }
    let hidden = mask.float().detach().inner(); // 1.0 where masked, a constant
    let out = <burn::backend::Dispatch as FusedOps>::attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        hidden.into_dispatch(),
        scale as f32,
    );
    Tensor::from_dispatch(out)
}

/// Per-row negative log-likelihood `logsumexp(logits[n]) − logits[n, targets[n]]`, `[N]`, for
/// logits `[N, vocab]`; a negative target (PyTorch's `-100`) gives 0 and no gradient.
/// Differentiable in the logits. The fused path never forms the `[N, vocab]` log-probabilities;
/// its backward writes `softmax − onehot` in one pass.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let fused = use_fused(&logits.device(), logits.dtype());
    cross_entropy_with(logits, targets, fused)
}

fn cross_entropy_with(logits: Tensor<2>, targets: Tensor<1, Int>, fused: bool) -> Tensor<1> {
    let [n, v] = logits.dims();
    assert_eq!(
        targets.dims(),
        [n],
        "cross_entropy: {n} rows of logits, {:?} targets",
        targets.dims()
    );
    if !fused {
        let device = logits.device();
        let valid = targets.clone().greater_equal_elem(0); // [N]
        let safe = targets.clamp(0, v as i64 - 1).reshape([n, 1]);
        let nll = log_softmax(logits, 1).gather(1, safe).neg().reshape([n]); // [N]
        return nll * valid.float().to_device(&device);
    }
    let out = <burn::backend::Dispatch as FusedOps>::cross_entropy(
        logits.into_dispatch(),
        targets.into_dispatch(),
    );
    Tensor::from_dispatch(out)
}

/// The fused operations as a Burn backend extension: Flex computes them, autodiff over Flex adds
/// their backward. Called only through the functions above, which route other devices to the
/// composed form.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// `silu(gate) · up`, same shapes.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;
    /// RMSNorm over the last dimension with weight `[hidden]`.
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;
    /// Rotary embedding of `x: [B, S, H, d]` with constant tables `[B, 1, S, d]`.
    fn rope(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// `softmax(scale·q·kᵀ + mask)·v` with `hidden: [B, 1 or H, S, T]` (non-zero: masked), constant.
    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;
    /// Per-row NLL `[N]` of logits `[N, V]` at targets `[N]` (negative: ignored).
    fn cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self>;
}

impl FusedOps for Flex {
    fn swiglu(gate: FlexTensor, up: FlexTensor) -> FlexTensor {
        kernels::swiglu(&gate, &up)
    }

    fn rms_norm(x: FlexTensor, weight: FlexTensor, eps: f32) -> FlexTensor {
        kernels::rms_norm(&x, &weight, eps).0
    }

    fn rope(x: FlexTensor, cos: FlexTensor, sin: FlexTensor) -> FlexTensor {
        kernels::rope(&x, &cos, &sin, false)
    }

    fn attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        hidden: FlexTensor,
        scale: f32,
    ) -> FlexTensor {
        kernels::attention(q, k, v, &hidden, scale).0
    }

    fn cross_entropy(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
        kernels::cross_entropy(&logits, &kernels::int_values(&targets)).0
    }
}

/// Registers `$grad` for `$parent` when that parent requires a gradient.
macro_rules! register {
    ($grads:expr, $parent:expr, $grad:expr) => {
        if let Some(node) = &$parent {
            $grads.register::<Flex>(node.id, $grad);
        }
    };
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    /// `(gate, up)`.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (gate, up) = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let (d_gate, d_up) = kernels::swiglu_backward(gate, up, &grad);
        let [p_gate, p_up] = ops.parents;
        register!(grads, p_gate, d_gate);
        register!(grads, p_up, d_up);
    }
}

#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Flex, 2> for RmsNormBackward {
    /// `(x, weight, 1/rms per row)`.
    type State = (FlexTensor, FlexTensor, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, weight, inv_rms) = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let [p_x, p_w] = ops.parents;
        let (dx, dw) = kernels::rms_norm_backward(&x, &weight, &inv_rms, grad, p_w.is_some());
        register!(grads, p_x, dx);
        if let Some(dw) = dw {
            register!(grads, p_w, dw);
        }
    }
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Flex, 1> for RopeBackward {
    /// `(cos, sin)`.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (cos, sin) = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let [p_x] = ops.parents;
        if p_x.is_some() {
            register!(grads, p_x, kernels::rope(&grad, &cos, &sin, true));
        }
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    /// `(q, k, v, softmax probabilities, scale)`.
    type State = (FlexTensor, FlexTensor, FlexTensor, FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (q, k, v, p, scale) = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let [p_q, p_k, p_v] = ops.parents;
        let (dq, dk, dv) = kernels::attention_backward(q, k, v, p, grad, scale);
        register!(grads, p_q, dq);
        register!(grads, p_k, dk);
        register!(grads, p_v, dv);
    }
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Flex, 1> for CrossEntropyBackward {
    /// `(logits, targets, logsumexp per row)`.
    type State = (FlexTensor, Vec<i64>, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, targets, lse) = ops.state;
        let grad = grads.consume::<Flex>(&ops.node);
        let [p_logits] = ops.parents;
        if p_logits.is_some() {
            let d = kernels::cross_entropy_backward(logits, &targets, &lse, &grad);
            register!(grads, p_logits, d);
        }
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        match SwigluBackward
            .prepare::<C>([gate.node(), up.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (g, u) = (gate.into_primitive(), up.into_primitive());
                let out = kernels::swiglu(&g, &u);
                prep.finish((g, u), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(kernels::swiglu(gate.primitive(), up.primitive()))
            }
        }
    }

    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        match RmsNormBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.into_primitive(), weight.into_primitive());
                let (out, inv_rms) = kernels::rms_norm(&x, &w, eps);
                prep.finish((x, w, inv_rms), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(kernels::rms_norm(x.primitive(), weight.primitive(), eps).0)
            }
        }
    }

    fn rope(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (cos, sin) = (cos.into_primitive(), sin.into_primitive());
        match RopeBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = kernels::rope(x.primitive(), &cos, &sin, false);
                prep.finish((cos, sin), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(kernels::rope(x.primitive(), &cos, &sin, false))
            }
        }
    }

    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let hidden = hidden.into_primitive();
        match AttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
                let (out, p) = kernels::attention(q.clone(), k.clone(), v.clone(), &hidden, scale);
                prep.finish((q, k, v, p, scale), out)
            }
            OpsKind::UnTracked(prep) => {
                let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
                prep.finish(kernels::attention(q, k, v, &hidden, scale).0)
            }
        }
    }

    fn cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        match CrossEntropyBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let logits = logits.into_primitive();
                let targets = kernels::int_values(&targets);
                let (nll, lse) = kernels::cross_entropy(&logits, &targets);
                prep.finish((logits, targets, lse), nll)
            }
            OpsKind::UnTracked(prep) => prep.finish(
                kernels::cross_entropy(logits.primitive(), &kernels::int_values(&targets)).0,
            ),
        }
    }
}

/// The Flex kernels: contiguous f32 buffers, split over Rayon's pool. A backward pass writes its
/// gradient into a buffer it owns alone (the saved input or the incoming gradient) instead of a
/// fresh allocation, so the `[tokens, vocab]` gradient costs no new pages.
mod kernels {
    use super::*;

    /// Elements per parallel chunk of an element-wise pass (large enough to amortise a task).
    const CHUNK: usize = 1 << 15;

    /// Lanes of the manual reductions: independent accumulators the compiler keeps in vector
    /// registers (a sequential float sum cannot be vectorised without reordering it).
    const LANES: usize = 16;

    /// `e^x` without branches, so that loops over it vectorise: Cody–Waite reduction
    /// `x = k·ln2 + r`, `|r| ≤ ln2/2`, a degree-6 Taylor polynomial for `e^r` (truncation below
    /// 1.2e-7 relative) and `2^k` assembled in the exponent bits. Below −87.3 the result is 0 (not
    /// a subnormal: a softmax's masked −∞ scores must give exact zeros, or the next matrix product
    /// crawls through subnormal arithmetic, 10x slower); above 88.3 it saturates at `e^88.3`; NaN
    /// stays NaN.
    #[inline(always)]
    pub(super) fn exp(x: f32) -> f32 {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer
        let underflow = x < -87.3;
        let x = x.clamp(-87.3, 88.3);
        let t = x * LOG2E + ROUND;
        let k = t - ROUND;
        let r = (x - k * LN2_HI) - k * LN2_LO;
        let p = r * (1.0 / 720.0) + 1.0 / 120.0;
        let p = r * p + 1.0 / 24.0;
        let p = r * p + 1.0 / 6.0;
        let p = r * p + 0.5;
        let p = r * p + 1.0;
        let p = r * p + 1.0;
        // `t`'s low mantissa bits hold k + 2²² (two's complement for k < 0).
        let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
        let e = p * f32::from_bits((k.wrapping_add(127) as u32) << 23);
        if underflow { 0.0 } else { e }
    }

    /// `1 / (1 + e^-x)`.
    #[inline(always)]
    fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + exp(-x))
    }

    /// Largest value of a row (NaN-free rows; a NaN makes the loss NaN downstream anyway).
    fn row_max(row: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let chunks = row.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a = a.max(x);
            }
        }
        rest.iter().fold(
            acc.into_iter().fold(f32::NEG_INFINITY, f32::max),
            |m, &x| m.max(x),
        )
    }

    /// `Σ e^(x − m)` over a row.
    fn row_sum_exp(row: &[f32], m: f32) -> f32 {
        let mut acc = [0f32; LANES];
        let chunks = row.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += exp(x - m);
            }
        }
        acc.iter().sum::<f32>() + rest.iter().map(|&x| exp(x - m)).sum::<f32>()
    }

    /// The tensor's f32 values in row-major order (copies only a non-contiguous view).
    pub(super) fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
        assert_eq!(t.dtype(), DType::F32, "fused kernels take f32");
        match t.as_slice::<f32>() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(
                t.to_contiguous()
                    .as_slice::<f32>()
                    .expect("contiguous")
                    .to_vec(),
            ),
        }
    }

    /// The tensor as a contiguous f32 buffer that this call may overwrite: the same buffer when
    /// nothing else refers to it, a copy otherwise.
    fn into_writable(t: FlexTensor) -> FlexTensor {
        let n = t.layout().num_elements();
        let whole = t.layout().contiguous_offsets() == Some((0, n)) && t.bytes().len() == n * 4;
        if whole && t.is_unique() {
            t
        } else {
            tensor(values(&t).into_owned(), shape(&t))
        }
    }

    pub(super) fn int_values(t: &FlexTensor) -> Vec<i64> {
        let t = t.to_contiguous();
        match t.dtype() {
            DType::I64 => t.as_slice::<i64>().expect("contiguous").to_vec(),
            DType::I32 => t
                .as_slice::<i32>()
                .expect("contiguous")
                .iter()
                .map(|&x| x as i64)
                .collect(),
            d => panic!("cross_entropy: targets must be i64 or i32, got {d:?}"),
        }
    }

    fn shape(t: &FlexTensor) -> Shape {
        t.layout().shape().clone()
    }

    fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, shape))
    }

    /// A vector of `n` values, each chunk of `chunk` written by `fill(first_index, chunk)` on the
    /// pool. (Zero-initialised: a large allocation comes as fresh zero pages, so this costs no
    /// pass of its own.)
    fn par_build(n: usize, chunk: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
        let mut out = vec![0f32; n];
        out.par_chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(|(i, c)| fill(i * chunk, c));
        out
    }

    pub(super) fn swiglu(gate: &FlexTensor, up: &FlexTensor) -> FlexTensor {
        let (g, u) = (values(gate), values(up));
        let out = par_build(g.len(), CHUNK, |start, o| {
            let (g, u) = (&g[start..start + o.len()], &u[start..start + o.len()]);
            for ((o, &x), &y) in o.iter_mut().zip(g).zip(u) {
                *o = x * sigmoid(x) * y;
            }
        });
        tensor(out, shape(gate))
    }

    /// `(d gate, d up)` of `silu(g)·u`: `d up = grad·silu(g)`,
    /// `d gate = grad·u·σ(g)·(1 + g·(1 − σ(g)))`, written over the saved `gate` and `up`.
    pub(super) fn swiglu_backward(
        gate: FlexTensor,
        up: FlexTensor,
        grad: &FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let (mut gate, mut up) = (into_writable(gate), into_writable(up));
        let dy = values(grad);
        let (g, u) = (gate.storage_mut::<f32>(), up.storage_mut::<f32>());
        g.par_chunks_mut(CHUNK)
            .zip(u.par_chunks_mut(CHUNK))
            .zip(dy.par_chunks(CHUNK))
            .for_each(|((g, u), dy)| {
                for ((x, y), &d) in g.iter_mut().zip(u.iter_mut()).zip(dy) {
                    let s = sigmoid(*x);
                    let d_gate = d * *y * s * (1.0 + *x * (1.0 - s));
                    *y = d * *x * s;
                    *x = d_gate;
                }
            });
        (gate, up)
    }

    /// Rows of `hidden` values per parallel task.
    fn rows_per_chunk(hidden: usize) -> usize {
        (CHUNK / hidden.max(1)).max(1)
    }

    /// `(y, 1/rms per row)`.
    pub(super) fn rms_norm(
        x: &FlexTensor,
        weight: &FlexTensor,
        eps: f32,
    ) -> (FlexTensor, Vec<f32>) {
        let (xs, w) = (values(x), values(weight));
        let h = w.len();
        let sx = shape(x);
        assert_eq!(
            sx[sx.num_dims() - 1],
            h,
            "rms_norm: weight has {h} values, x's last dimension differs"
        );
        let rows = xs.len() / h;
        // One pass per row: its mean square, then the scaled row.
        let (mut out, mut inv_rms) = (vec![0f32; xs.len()], vec![0f32; rows]);
        out.par_chunks_mut(h)
            .zip(inv_rms.par_iter_mut())
            .zip(xs.par_chunks(h))
            .with_min_len(rows_per_chunk(h))
            .for_each(|((orow, k), row)| {
                let mut acc = [0f32; LANES];
                let chunks = row.chunks_exact(LANES);
                let rest: f32 = chunks.remainder().iter().map(|v| v * v).sum();
                for c in chunks {
                    for (a, &v) in acc.iter_mut().zip(c) {
                        *a += v * v;
                    }
                }
                *k = 1.0 / ((acc.iter().sum::<f32>() + rest) / h as f32 + eps).sqrt();
                for ((o, &v), &wi) in orow.iter_mut().zip(row).zip(w.iter()) {
                    *o = v * *k * wi;
                }
            });
        (tensor(out, sx), inv_rms)
    }

    /// `(dx, dw)` of `y = x·k·w` with `k = 1/sqrt(mean(x²) + eps)` per row:
    /// `dx = k·(g∘w) − x·k³·Σ(g∘w∘x)/H` (written over the incoming gradient),
    /// `dw = Σ_rows g∘x·k`.
    pub(super) fn rms_norm_backward(
        x: &FlexTensor,
        weight: &FlexTensor,
        inv_rms: &[f32],
        grad: FlexTensor,
        want_dw: bool,
    ) -> (FlexTensor, Option<FlexTensor>) {
        let (xs, w) = (values(x), values(weight));
        let h = w.len();
        let rc = rows_per_chunk(h);
        let rows = xs.len() / h;
        // dw first: it needs the incoming gradient before dx overwrites it.
        let dw = want_dw.then(|| {
            let g = values(&grad);
            let sums = (0..rows.div_ceil(rc))
                .into_par_iter()
                .map(|c| {
                    let mut acc = vec![0f32; h];
                    for r in c * rc..((c + 1) * rc).min(rows) {
                        let k = inv_rms[r];
                        for ((a, &xv), &gv) in acc
                            .iter_mut()
                            .zip(&xs[r * h..(r + 1) * h])
                            .zip(&g[r * h..(r + 1) * h])
                        {
                            *a += gv * xv * k;
                        }
                    }
                    acc
                })
                .reduce(
                    || vec![0f32; h],
                    |mut a, b| {
                        a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                        a
                    },
                );
            tensor(sums, shape(weight))
        });
        let mut dx = into_writable(grad);
        dx.storage_mut::<f32>()
            .par_chunks_mut(h)
            .with_min_len(rc)
            .zip(xs.par_chunks(h).zip(inv_rms.par_iter()))
            .for_each(|(gr, (xr, &k))| {
                let mut acc = [0f32; LANES];
                let (gc, xc) = (gr.chunks_exact(LANES), xr.chunks_exact(LANES));
                let wc = w.chunks_exact(LANES);
                let rest: f32 = gc
                    .remainder()
                    .iter()
                    .zip(xc.remainder())
                    .zip(wc.remainder())
                    .map(|((g, x), w)| g * x * w)
                    .sum();
                for ((g, x), w) in gc.zip(xc).zip(wc) {
                    for l in 0..LANES {
                        acc[l] += g[l] * x[l] * w[l];
                    }
                }
                let c = k * k * k * (acc.iter().sum::<f32>() + rest) / h as f32;
                for ((g, &xv), &wv) in gr.iter_mut().zip(xr).zip(w.iter()) {
                    *g = k * *g * wv - xv * c;
                }
            });
        (dx, dw)
    }

    /// `x·cos + rotate_half(x)·sin` over `x: [B, S, H, d]` with tables `[B, 1, S, d]`
    /// (`rotate_half([x1, x2]) = [−x2, x1]`), or with `transpose` its adjoint, the backward:
    /// `g·cos + rotate_halfᵀ(g·sin)` with `rotate_halfᵀ([y1, y2]) = [y2, −y1]`.
    pub(super) fn rope(
        x: &FlexTensor,
        cos: &FlexTensor,
        sin: &FlexTensor,
        transpose: bool,
    ) -> FlexTensor {
        let (xs, c, sn) = (values(x), values(cos), values(sin));
        let [_, _, heads, d]: [usize; 4] = shape(x).dims();
        let half = d / 2;
        let row = heads * d; // one (b, s) position: all heads
        let out = par_build(xs.len(), row * rows_per_chunk(row), |start, o| {
            for (j, orow) in o.chunks_mut(row).enumerate() {
                let pos = start / row + j; // b·S + s, the table's row
                let (c, sn) = (&c[pos * d..(pos + 1) * d], &sn[pos * d..(pos + 1) * d]);
                let xrow = &xs[(pos * row)..(pos + 1) * row];
                for (o, x) in orow.chunks_exact_mut(d).zip(xrow.chunks_exact(d)) {
                    let (x1, x2) = x.split_at(half);
                    let (o1, o2) = o.split_at_mut(half);
                    if transpose {
                        for i in 0..half {
                            o1[i] = x1[i] * c[i] + x2[i] * sn[half + i];
                            o2[i] = x2[i] * c[half + i] - x1[i] * sn[i];
                        }
                    } else {
                        for i in 0..half {
                            o1[i] = x1[i] * c[i] - x2[i] * sn[i];
                            o2[i] = x2[i] * c[half + i] + x1[i] * sn[half + i];
                        }
                    }
                }
            }
        });
        tensor(out, shape(x))
    }

    /// `(out, p)` with `p = softmax(scale·q·kᵀ, masked)` `[B, H, S, T]`: the products are Flex's,
    /// the scaling, masking and softmax one parallel pass over `p` in place. A row whose every
    /// key is masked gets zeros (as Burn's NaN-safe softmax).
    pub(super) fn attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        hidden: &FlexTensor,
        scale: f32,
    ) -> (FlexTensor, FlexTensor) {
        let scores = Flex::float_matmul(q, Flex::float_transpose(k)); // [B, H, S, T]
        let [b, h, s, t]: [usize; 4] = shape(&scores).dims();
        // The mask comes per batch row `[B, 1, S, T]` or per head `[B, H, S, T]`.
        let hs = shape(hidden);
        let mask_heads = hs[1];
        assert!(
            (mask_heads == 1 || mask_heads == h) && hs.num_elements() == b * mask_heads * s * t,
            "attention: mask {hs:?} for scores {b}x{h}x{s}x{t}"
        );
        let m = values(hidden);
        let mut p = into_writable(scores);
        p.storage_mut::<f32>()
            .par_chunks_mut(t)
            .enumerate()
            .for_each(|(row, x)| {
                let (bi, hi, si) = (row / (h * s), (row / s) % h, row % s);
                let mi = (bi * mask_heads + hi % mask_heads) * s + si;
                let mrow = &m[mi * t..(mi + 1) * t];
                for (x, &hid) in x.iter_mut().zip(mrow) {
                    *x = if hid != 0.0 {
                        f32::NEG_INFINITY
                    } else {
                        *x * scale
                    };
                }
                let mx = row_max(x);
                if mx == f32::NEG_INFINITY {
                    x.fill(0.0);
                    return;
                }
                for x in x.iter_mut() {
                    *x = exp(*x - mx);
                }
                let inv = 1.0 / x.iter().sum::<f32>();
                for x in x.iter_mut() {
                    *x *= inv;
                }
            });
        let out = Flex::float_matmul(p.clone(), v); // [B, H, S, hd]
        (out, p)
    }

    /// `(dq, dk, dv)`: `dv = pᵀ·g`, `dp = g·vᵀ`, `ds = scale·p∘(dp − Σ_row dp∘p)` (in place over
    /// `dp`), `dq = ds·k`, `dk = dsᵀ·q`.
    pub(super) fn attention_backward(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        p: FlexTensor,
        grad: FlexTensor,
        scale: f32,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let dv = Flex::float_matmul(Flex::float_transpose(p.clone()), grad.clone());
        let dp = Flex::float_matmul(grad, Flex::float_transpose(v));
        let t = shape(&dp)[3];
        let pv = values(&p);
        let mut ds = into_writable(dp);
        ds.storage_mut::<f32>()
            .par_chunks_mut(t)
            .zip(pv.par_chunks(t))
            .for_each(|(d, p)| {
                let dot: f32 = d.iter().zip(p).map(|(a, b)| a * b).sum();
                for (d, &p) in d.iter_mut().zip(p) {
                    *d = scale * p * (*d - dot);
                }
            });
        let dq = Flex::float_matmul(ds.clone(), k);
        let dk = Flex::float_matmul(Flex::float_transpose(ds), q);
        (dq, dk, dv)
    }

    /// `(nll [N], logsumexp per row)`.
    pub(super) fn cross_entropy(logits: &FlexTensor, targets: &[i64]) -> (FlexTensor, Vec<f32>) {
        let xs = values(logits);
        let [n, v]: [usize; 2] = shape(logits).dims();
        let (nll, lse): (Vec<f32>, Vec<f32>) = xs
            .par_chunks(v)
            .zip(targets.par_iter())
            .enumerate()
            .map(|(r, (row, &t))| {
                let m = row_max(row);
                let lse = m + row_sum_exp(row, m).ln();
                let nll = match usize::try_from(t) {
                    Ok(i) => {
                        assert!(
                            i < v,
                            "cross_entropy: target {i} of row {r} is outside the vocabulary ({v})"
                        );
                        lse - row[i]
                    }
                    Err(_) => 0.0,
                };
                (nll, lse)
            })
            .unzip();
        debug_assert_eq!(nll.len(), n);
        (tensor(nll, Shape::new([n])), lse)
    }

    /// `d logits[r, j] = grad[r] · (e^(x[r, j] − lse[r]) − [j = target[r]])`, 0 for ignored rows,
    /// written over the saved logits.
    pub(super) fn cross_entropy_backward(
        logits: FlexTensor,
        targets: &[i64],
        lse: &[f32],
        grad: &FlexTensor,
    ) -> FlexTensor {
        let g = values(grad);
        let v = logits.layout().num_elements() / targets.len();
        let mut d = into_writable(logits);
        d.storage_mut::<f32>()
            .par_chunks_mut(v)
            .zip(targets.par_iter().zip(lse.par_iter().zip(g.par_iter())))
            .for_each(|(row, (&t, (&l, &gr)))| match usize::try_from(t) {
                Ok(t) => {
                    for x in row.iter_mut() {
                        *x = gr * exp(*x - l);
                    }
                    row[t] -= gr;
                }
                Err(_) => row.fill(0.0),
            });
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 2.0), device)
    }

    /// The same values on another device (an autodiff leaf when `device` is one).
    fn on<const D: usize>(t: Tensor<D>, device: &Device) -> Tensor<D> {
        Tensor::from_data(t.into_data(), device)
    }

    fn assert_close<const D: usize>(got: Tensor<D>, want: Tensor<D>, tol: f32, what: &str) {
        let (g, w) = (
            got.into_data().try_to_vec::<f32>().unwrap(),
            want.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert_eq!(g.len(), w.len(), "{what}: lengths");
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "{what}[{i}]: fused {a}, composed {b}"
            );
        }
    }

    /// Forward values and the gradients of `sum(out · probe)` for both paths.
    fn grads_both<const D: usize, const E: usize>(
        inputs: [Tensor<D>; 2],
        out: impl Fn(Tensor<D>, Tensor<D>, bool) -> Tensor<E>,
    ) -> [[Tensor<D>; 3]; 2] {
        let device = inputs[0].device().autodiff();
        let probe = random(
            out(inputs[0].clone(), inputs[1].clone(), false).dims(),
            &device,
        );
        [true, false].map(|fused| {
            let a = on(inputs[0].clone(), &device).require_grad();
            let b = on(inputs[1].clone(), &device).require_grad();
            let y = out(a.clone(), b.clone(), fused);
            let loss = (y.clone() * probe.clone()).sum();
            let g = loss.backward();
            let y = y.inner().reshape([-1]).unsqueeze::<D>(); // flattened, then rank D to share the array
            [y, a.grad(&g).unwrap(), b.grad(&g).unwrap()]
        })
    }

    #[test]
    fn fused_swiglu_matches_silu_times_up_with_gradients() {
        let d = Device::flex();
        let [fused, composed] = grads_both(
            [random([3, 5, 70_000], &d), random([3, 5, 70_000], &d)],
            swiglu_with,
        );
        for (i, (a, b)) in fused.into_iter().zip(composed).enumerate() {
            assert_close(a, b, 1e-5, ["out", "d gate", "d up"][i]);
        }
    }

    #[test]
    fn fused_rms_norm_matches_the_formula_with_gradients() {
        let d = Device::flex();
        // The weight travels as a `[1, hidden]` tensor so both inputs share a rank in the helper.
        let [fused, composed] = grads_both(
            [
                random([2, 70, 576], &d).reshape([140, 576]),
                random([1, 576], &d),
            ],
            |x, w, f| rms_norm_with(x, w.reshape([576]), 1e-5, f),
        );
        for (i, (a, b)) in fused.into_iter().zip(composed).enumerate() {
            assert_close(a, b, 1e-4, ["out", "dx", "dw"][i]);
        }
    }

    #[test]
    fn fused_rms_norm_matches_hand_computed_values() {
        // x = [3, 4]: mean(x²) = 12.5, 1/rms = 1/sqrt(12.5) = 0.282843; w = [1, 2].
        let d = Device::flex();
        let x = Tensor::<2>::from_floats([[3.0, 4.0]], &d);
        let w = Tensor::<1>::from_floats([1.0, 2.0], &d);
        let y = rms_norm_with(x, w, 0.0, true)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(
            (y[0] - 0.848_528).abs() < 1e-5 && (y[1] - 2.262_742).abs() < 1e-5,
            "{y:?}"
        );
    }

    #[test]
    fn fused_cross_entropy_matches_log_softmax_and_gather_with_gradients() {
        let d = Device::flex();
        let (n, v) = (37, 3001);
        let logits = random([n, v], &d);
        let targets: Vec<i64> = (0..n as i64)
            .map(|i| {
                if i % 7 == 3 {
                    -100
                } else {
                    (i * 811) % v as i64
                }
            })
            .collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &d);
        let ad = d.clone().autodiff();
        let probe = random([n], &ad);
        let [(fused_nll, fused_grad), (nll, grad)] = [true, false].map(|fused| {
            let x = on(logits.clone(), &ad).require_grad();
            let t = Tensor::<1, Int>::from_data(targets.clone().into_data(), &ad);
            let y = cross_entropy_with(x.clone(), t, fused);
            let g = (y.clone() * probe.clone()).sum().backward();
            (y.inner(), x.grad(&g).unwrap())
        });
        assert_close(fused_nll.clone(), nll, 1e-5, "nll");
        assert_close(fused_grad.clone(), grad, 1e-5, "d logits");
        // Ignored rows: no loss, no gradient.
        let nll = fused_nll.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(nll[3], 0.0);
        let g = fused_grad.narrow(0, 3, 1).abs().sum().into_scalar::<f32>();
        assert_eq!(g, 0.0);
    }

    #[test]
    fn fused_cross_entropy_matches_hand_computed_values() {
        // Row [0, ln 3]: logsumexp = ln 4, target 0 → nll = ln 4 = 1.386294.
        let d = Device::flex();
        let x = Tensor::<2>::from_floats([[0.0, 3f32.ln()]], &d);
        let t = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &d);
        let nll = cross_entropy_with(x, t, true).into_scalar::<f32>();
        assert!((nll - 4f32.ln()).abs() < 1e-6, "{nll}");
    }

    #[test]
    fn fused_rope_matches_rotate_half_with_gradients() {
        let d = Device::flex();
        let (b, s, h, hd) = (2, 7, 3, 64);
        // Distinct tables for both halves, so that a mix-up of c[i] and c[half + i] shows.
        let cos = random([b, 1, s, hd], &d);
        let sin = random([b, 1, s, hd], &d);
        let [fused, composed] = grads_both(
            [random([b, s, h, hd], &d), random([b, s, h, hd], &d)],
            |x, y, f| {
                // `y` only enters linearly so that both inputs get a gradient through the helper.
                let ad = x.device();
                rope_with(x, on(cos.clone(), &ad), on(sin.clone(), &ad), f) + y
            },
        );
        for (i, (a, b)) in fused.into_iter().zip(composed).enumerate() {
            assert_close(a, b, 1e-5, ["out", "dx", "dy"][i]);
        }
    }

    #[test]
    fn fused_attention_matches_burns_attention_with_gradients() {
        let d = Device::flex();
        let (b, h, s, hd) = (2, 3, 9, 16);
        // Causal, plus a left-padded row 1 whose first two keys are hidden (each query keeps
        // itself, as the model's masks do).
        let mask: Vec<bool> = (0..b * s * s)
            .map(|i| {
                let (bi, qi, ki) = (i / (s * s), (i / s) % s, i % s);
                ki > qi || (bi == 1 && ki < 2 && ki != qi)
            })
            .collect();
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, s, s]), &d);
        let q = random([b, h, s, hd], &d);
        let k = random([b, h, s, hd], &d);
        let v = random([b, h, s, hd], &d);
        let ad = d.clone().autodiff();
        let probe = random([b, h, s, hd], &ad);
        // The mask per batch row, and expanded over the heads as the model passes it.
        for per_head in [false, true] {
            let [fused, composed] = [true, false].map(|fused| {
                let (q, k, v) = (
                    on(q.clone(), &ad).require_grad(),
                    on(k.clone(), &ad).require_grad(),
                    on(v.clone(), &ad).require_grad(),
                );
                let m = Tensor::<4, Bool>::from_data(mask.clone().into_data(), &ad);
                let m = if per_head { m.expand([b, h, s, s]) } else { m };
                let y = attention_with(q.clone(), k.clone(), v.clone(), m, 0.125, fused);
                let g = (y.clone() * probe.clone()).sum().backward();
                [
                    y.inner(),
                    q.grad(&g).unwrap(),
                    k.grad(&g).unwrap(),
                    v.grad(&g).unwrap(),
                ]
            });
            for (i, (a, b)) in fused.into_iter().zip(composed).enumerate() {
                assert_close(a, b, 1e-5, ["out", "dq", "dk", "dv"][i]);
            }
        }
    }

    #[test]
    fn fast_exp_is_within_two_ulp_of_the_exact_value() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f64 / 200_000.0;
            let got = kernels::exp(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert!(kernels::exp(f32::NAN).is_nan());
        // Underflow gives an exact zero, never a subnormal.
        assert_eq!(kernels::exp(-87.5), 0.0);
        assert_eq!(kernels::exp(f32::NEG_INFINITY), 0.0);
        assert!(kernels::exp(-87.0).is_normal());
    }

    #[test]
    fn untracked_autodiff_inputs_give_values_without_a_graph() {
        let d = Device::flex().autodiff();
        let g = random([4, 8], &d);
        let u = random([4, 8], &d);
        let want = swiglu_with(g.clone(), u.clone(), false);
        assert_close(swiglu_with(g, u, true), want, 1e-6, "swiglu");
    }
}
