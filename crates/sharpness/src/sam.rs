//! SAM with `k` ascent steps and XSAM, as a wrapper around any base optimizer.
//!
//! The algorithm is `shared/docs/METHODS.md` section 4, which follows the XSAM authors' code
//! (Cccjl219/XSAM). One step, with `θ0` the unperturbed trainable parameters:
//!
//! 1. `for s in 1..=k: g ← ∇L_B(θ); θ ← θ + (ρ/k)·g/(‖g‖ + ε)` (`ϑ_k = θ`);
//! 2. `g_k ← ∇L_B(ϑ_k)`;
//! 3. SAM applies `g_k`. XSAM applies `‖g_k‖·v(α*)` where `v0 = (ϑ_k − θ0)/(‖ϑ_k − θ0‖ + ε)`,
//!    `v1 = g_k/(‖g_k‖ + ε)`, `ψ = arccos(clamp(<v0, v1>, −1, 1))` and
//!    `v(α) = sin((1−α)ψ)/sin ψ·v0 + sin(αψ)/sin ψ·v1` (`(v0 + v1)/2` when `sin ψ < 1e-8`).
//!    `α*` is fixed, or re-estimated every `alpha_period` steps (and on the first) as the grid
//!    point with the highest loss `L_B(θ0 + ρ_max·v(α))`, forward passes only;
//! 4. the base optimizer steps from `θ0` (which was never modified: the perturbed weights live in
//!    a separate copy of the module that is dropped) with the applied gradient.
//!
//! All vector algebra runs on the model's device ([`ParamVector`]); the only values read back to
//! the host are the 21 grid losses of an α search. The logged `ψ`, `‖g_k‖` and the batch loss are
//! returned as one-element tensors, so logging them costs a device sync only if the caller reads
//! them ([`StepStats::read`]).

use burn::config::Config;
use burn::module::Module;
use burn::optim::{GradientsParams, LearningRate, ModuleOptimizer};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::params::{ParamVector, shifted};

/// The optimizer that takes the actual step: anything that updates a module from gradients.
///
/// Implemented for Burn's [`ModuleOptimizer`] (what `SgdConfig::init()`, `AdamWConfig::init()`
/// and every other Burn optimizer config return).
pub trait BaseOptimizer {
    /// Updates `model` with `grads` at learning rate `lr`.
    fn step<M: Module>(&mut self, lr: LearningRate, model: M, grads: GradientsParams) -> M;
}

impl BaseOptimizer for ModuleOptimizer {
    fn step<M: Module>(&mut self, lr: LearningRate, model: M, grads: GradientsParams) -> M {
        ModuleOptimizer::step(self, lr, model, grads)
    }
}

/// Sharpness-aware minimisation with `k` ascent steps (`k = 1` is SAM).
#[derive(Config, Debug, PartialEq)]
pub struct SamConfig {
    /// `ρ`: radius of the neighbourhood, the total length of the `k` ascent steps (each is
    /// `ρ/k`). The XSAM reference uses 0.15; continual-forgetting work sweeps 0.05..2.
    #[config(default = 0.05)]
    pub rho: f64,
    /// `k`: number of gradient-ascent steps before the update gradient is taken (1 = SAM).
    #[config(default = 1)]
    pub ascent_steps: usize,
    /// `ε` added to every global L2 norm before dividing by it (the XSAM reference's 1e-12).
    #[config(default = 1e-12)]
    pub epsilon: f64,
}

impl SamConfig {
    /// Wraps `base` with (k-step) SAM.
    pub fn init<O: BaseOptimizer>(&self, base: O) -> SharpnessAware<O> {
        SharpnessAware::new(self.clone(), None, base)
    }
}

/// XSAM (arXiv 2603.10048): SAM whose update direction is re-aimed, by spherical interpolation
/// between the ascent direction `v0` and the gradient direction `v1`, at the highest loss of the
/// neighbourhood.
#[derive(Config, Debug, PartialEq)]
pub struct XsamConfig {
    /// The ascent (`ρ`, `k`, `ε`), shared with SAM.
    pub sam: SamConfig,
    /// A fixed `α` instead of the grid search. `Some(1.0)` is exactly (k-step) SAM: the update
    /// applies `g_k` itself, bit for bit. `Some(0.0)` applies the ascent direction `v0` rescaled
    /// to `‖g_k‖` (for `k = 1`, the local gradient direction).
    #[config(default = "None")]
    pub fixed_alpha: Option<f64>,
    /// Re-estimate `α*` every this many steps (the first step always searches). The reference
    /// searches once per epoch; for short fine-tuning METHODS.md fixes a step period of 100.
    #[config(default = 100)]
    pub alpha_period: usize,
    /// `Δα`: spacing of the α grid `{0, Δα, ..., α_max}`.
    #[config(default = 0.1)]
    pub alpha_step: f64,
    /// `α_max`: last point of the α grid (with the defaults the grid has 21 candidates).
    #[config(default = 2.0)]
    pub alpha_max: f64,
    /// `ρ_max`: distance from `θ0` at which the grid losses are taken. `None` means `2ρ`
    /// (the reference: ρ = 0.15, ρ_max = 0.30).
    #[config(default = "None")]
    pub rho_max: Option<f64>,
}

impl XsamConfig {
    /// Wraps `base` with XSAM.
    pub fn init<O: BaseOptimizer>(&self, base: O) -> SharpnessAware<O> {
        SharpnessAware::new(self.sam.clone(), Some(self.clone()), base)
    }

    /// `ρ_max`, resolving the `2ρ` default.
    pub fn resolved_rho_max(&self) -> f64 {
        self.rho_max.unwrap_or(2.0 * self.sam.rho)
    }

    /// The α candidates `i·Δα` for `i = 0..=⌊α_max/Δα⌋` (21 with the defaults).
    pub fn alpha_grid(&self) -> Vec<f64> {
        alpha_grid(self.alpha_step, self.alpha_max)
    }
}

/// The α candidates `i·step` for `i = 0..=⌊max/step⌋`, as `numpy.arange(0, max + 1e-5, step)`
/// in the reference.
pub fn alpha_grid(step: f64, max: f64) -> Vec<f64> {
    assert!(step > 0.0, "the alpha grid step must be positive");
    let count = (max / step + 1e-9).floor() as usize + 1;
    (0..count).map(|i| i as f64 * step).collect()
}

/// The coefficient tensors `(scale·c0, scale·c1)` of `v(α) = c0·v0 + c1·v1`:
/// `c0 = sin((1−α)ψ)/sin ψ`, `c1 = sin(αψ)/sin ψ`, or `c0 = c1 = 1/2` when `sin ψ < 1e-8`.
///
/// `psi` and `scale` are one-element tensors; everything stays on their device. The products are
/// formed as `(scale·sin(·))/sin ψ`, the order of the reference code.
pub fn slerp_coefficients(
    psi: &Tensor<1>,
    alpha: f64,
    scale: &Tensor<1>,
) -> (Tensor<1>, Tensor<1>) {
    let sin_psi = psi.clone().sin();
    let small = sin_psi.clone().lower_elem(1e-8);
    let half = scale.clone().mul_scalar(0.5);
    let coefficient = |angle: Tensor<1>| {
        let value = (scale.clone() * angle.sin()) / sin_psi.clone();
        value.mask_where(small.clone(), half.clone())
    };
    (
        coefficient(psi.clone().mul_scalar(1.0 - alpha)),
        coefficient(psi.clone().mul_scalar(alpha)),
    )
}

/// `scale·v(α)` for unit vectors `v0`, `v1` at angle `psi` (see [`slerp_coefficients`]).
pub fn slerp(
    v0: &ParamVector,
    v1: &ParamVector,
    psi: &Tensor<1>,
    alpha: f64,
    scale: &Tensor<1>,
) -> ParamVector {
    let (c0, c1) = slerp_coefficients(psi, alpha, scale);
    v0.combine(&c0, v1, &c1)
}

/// `v0 = d/d_scale` and `v1 = g/g_scale`, kept unnormalised.
struct UnitPair<'a> {
    d: &'a ParamVector,
    d_scale: &'a Tensor<1>,
    g: &'a ParamVector,
    g_scale: &'a Tensor<1>,
}

impl UnitPair<'_> {
    /// `scale·v(α) = (scale·c0/d_scale)·d + (scale·c1/g_scale)·g`.
    fn slerp(&self, psi: &Tensor<1>, alpha: f64, scale: &Tensor<1>) -> ParamVector {
        let (c0, c1) = slerp_coefficients(psi, alpha, scale);
        self.d.combine(
            &(c0 / self.d_scale.clone()),
            self.g,
            &(c1 / self.g_scale.clone()),
        )
    }
}

/// `ψ = arccos(clamp(<v0, v1>, −1, 1))`, a one-element tensor on the device.
pub fn angle_between_unit(v0: &ParamVector, v1: &ParamVector) -> Tensor<1> {
    v0.dot(v1).clamp(-1.0, 1.0).acos()
}

/// The state of a [`SharpnessAware`] optimizer that must survive a checkpoint (the base
/// optimizer's own state is its own record).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SharpnessAwareRecord {
    /// Steps taken so far (the α search runs when `step % alpha_period == 0`).
    pub step: u64,
    /// The `α*` in use (XSAM only; `None` before the first XSAM step).
    pub alpha: Option<f64>,
}

/// What one step measured. The tensors are one-element tensors still on the device.
#[derive(Clone, Debug)]
pub struct StepStats {
    /// Index of this step (0 for the first).
    pub step: u64,
    /// `L_B(θ0)`: the batch loss at the unperturbed weights (from the first ascent pass).
    pub loss: Tensor<1>,
    /// `‖g_k‖`: global L2 norm of the gradient at the perturbed point `ϑ_k`.
    pub grad_norm: Tensor<1>,
    /// XSAM: `ψ`, the angle between `v0` and `v1`.
    pub psi: Option<Tensor<1>>,
    /// XSAM: the `α*` used for this step's update.
    pub alpha: Option<f64>,
    /// XSAM: the grid losses `L_B(θ0 + ρ_max·v(α))`, on steps that searched.
    pub alpha_losses: Option<Vec<f64>>,
}

impl StepStats {
    /// Reads the scalars back to the host (one device sync) for logging.
    pub fn read(&self) -> StepLog {
        let scalar = |t: &Tensor<1>| f64::from(t.clone().into_scalar::<f32>());
        StepLog {
            step: self.step,
            loss: scalar(&self.loss),
            grad_norm: scalar(&self.grad_norm),
            psi: self.psi.as_ref().map(scalar),
            alpha: self.alpha,
            alpha_losses: self.alpha_losses.clone(),
        }
    }
}

/// [`StepStats`] read back to the host: one row of the α*/ψ/‖g_k‖ log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Index of the step.
    pub step: u64,
    /// `L_B(θ0)`.
    pub loss: f64,
    /// `‖g_k‖`.
    pub grad_norm: f64,
    /// `ψ` (XSAM).
    pub psi: Option<f64>,
    /// `α*` (XSAM).
    pub alpha: Option<f64>,
    /// Grid losses on steps that searched (XSAM, dynamic α).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha_losses: Option<Vec<f64>>,
}

/// A base optimizer wrapped with SAM (k ascent steps) or XSAM. Build it with
/// [`SamConfig::init`] or [`XsamConfig::init`].
///
/// ```ignore
/// let mut optim = XsamConfig::new(SamConfig::new().with_rho(0.15)).init(AdamWConfig::new().init());
/// let (model, stats) = optim.step(lr, model, |m| m.loss(&batch));
/// ```
#[derive(Clone)]
pub struct SharpnessAware<O = ModuleOptimizer> {
    sam: SamConfig,
    xsam: Option<XsamConfig>,
    base: O,
    record: SharpnessAwareRecord,
}

impl<O: BaseOptimizer> SharpnessAware<O> {
    fn new(sam: SamConfig, xsam: Option<XsamConfig>, base: O) -> Self {
        assert!(sam.ascent_steps >= 1, "SAM needs at least one ascent step");
        assert!(sam.rho >= 0.0, "rho must be non-negative");
        if let Some(x) = &xsam {
            assert!(x.alpha_period >= 1, "alpha_period must be at least 1");
        }
        Self {
            sam,
            xsam,
            base,
            record: SharpnessAwareRecord::default(),
        }
    }

    /// One sharpness-aware training step: `k + 1` forward/backward passes of `loss_fn` (plus, on
    /// search steps, one forward pass per α candidate), then the base optimizer's step from the
    /// unperturbed weights.
    ///
    /// `loss_fn` computes the current batch's loss at the weights of the module it is given; it
    /// is called with perturbed copies of `model` (autodiff) and, for the α search, with
    /// perturbed copies of `model.valid()` (no autodiff).
    pub fn step<M, F>(&mut self, lr: LearningRate, model: M, loss_fn: F) -> (M, StepStats)
    where
        M: Module,
        F: FnMut(&M) -> Tensor<1>,
    {
        let (grads, stats) = self.grads(&model, loss_fn);
        let model = self.base.step(lr, model, grads);
        (model, stats)
    }

    /// The gradient this method applies at `model`, without stepping: use it to drive an
    /// optimizer this wrapper does not own. Advances the step counter.
    pub fn grads<M, F>(&mut self, model: &M, mut loss_fn: F) -> (GradientsParams, StepStats)
    where
        M: Module,
        F: FnMut(&M) -> Tensor<1>,
    {
        let step = self.record.step;
        self.record.step += 1;
        let ascent = ascend(model, &self.sam, &mut loss_fn);
        let grad_norm = ascent.g_k.norm();
        let mut stats = StepStats {
            step,
            loss: ascent.loss,
            grad_norm: grad_norm.clone(),
            psi: None,
            alpha: None,
            alpha_losses: None,
        };
        let Some(xsam) = self.xsam.clone() else {
            return (ascent.grads_k, stats);
        };

        // v0 = d/(‖d‖ + ε) and v1 = g_k/(‖g_k‖ + ε) are never materialised: every use folds
        // the normalisation into the interpolation coefficients, so XSAM costs three passes over
        // the parameters on top of SAM (‖d‖, <d, g_k>, and the final combination).
        let eps = self.sam.epsilon;
        let d = ascent.displacement;
        let d_scale = d.norm().add_scalar(eps);
        let g_scale = grad_norm.clone().add_scalar(eps);
        let g_k = ascent.g_k;
        let unit = UnitPair {
            d: &d,
            d_scale: &d_scale,
            g: &g_k,
            g_scale: &g_scale,
        };
        let psi = (d.dot(&g_k) / (d_scale.clone() * g_scale.clone()))
            .clamp(-1.0, 1.0)
            .acos();

        let alpha = match xsam.fixed_alpha {
            Some(alpha) => alpha,
            None => match self.record.alpha {
                Some(alpha) if !step.is_multiple_of(xsam.alpha_period as u64) => alpha,
                _ => {
                    let (alpha, losses) = search_alpha(model, &xsam, &unit, &psi, &mut loss_fn);
                    stats.alpha_losses = Some(losses);
                    alpha
                }
            },
        };
        self.record.alpha = Some(alpha);
        stats.alpha = Some(alpha);
        stats.psi = Some(psi.clone());

        // α = 1 is SAM: v(1) = v1 and ‖g_k‖·v1 = g_k up to ε, so apply g_k itself, exactly.
        if alpha == 1.0 {
            return (ascent.grads_k, stats);
        }
        let applied = unit.slerp(&psi, alpha, &grad_norm);
        (applied.to_grads(model), stats)
    }

    /// The wrapped optimizer.
    pub fn base(&self) -> &O {
        &self.base
    }

    /// The wrapped optimizer, mutably (to load or save its record).
    pub fn base_mut(&mut self) -> &mut O {
        &mut self.base
    }

    /// The SAM part of the configuration.
    pub fn sam_config(&self) -> &SamConfig {
        &self.sam
    }

    /// The XSAM configuration, if this is XSAM.
    pub fn xsam_config(&self) -> Option<&XsamConfig> {
        self.xsam.as_ref()
    }

    /// The wrapper's own state (step counter and `α*`).
    pub fn to_record(&self) -> SharpnessAwareRecord {
        self.record.clone()
    }

    /// Restores the wrapper's own state.
    pub fn load_record(mut self, record: SharpnessAwareRecord) -> Self {
        self.record = record;
        self
    }
}

struct Ascent {
    /// `L_B(θ0)`, detached.
    loss: Tensor<1>,
    /// `ϑ_k − θ0`, the sum of the `k` ascent steps.
    displacement: ParamVector,
    /// `g_k` as Burn gradients (what SAM applies).
    grads_k: GradientsParams,
    /// `g_k` as a parameter vector.
    g_k: ParamVector,
}

/// Steps 1-2: `k` normalised ascent steps of length `ρ/k`, then the gradient at `ϑ_k`.
fn ascend<M, F>(model: &M, sam: &SamConfig, loss_fn: &mut F) -> Ascent
where
    M: Module,
    F: FnMut(&M) -> Tensor<1>,
{
    let k = sam.ascent_steps;
    let step_length = sam.rho / k as f64;
    let mut perturbed = model.clone();
    let mut first_loss = None;
    let mut displacement: Option<ParamVector> = None;
    for _ in 0..k {
        let loss = loss_fn(&perturbed);
        let grads = GradientsParams::from_grads(loss.backward(), &perturbed);
        first_loss.get_or_insert_with(|| loss.inner());
        let g = ParamVector::from_grads(&perturbed, &grads);
        // ρ/k / (‖g‖ + ε), as a reciprocal times ρ/k (what torch does for `float / tensor`).
        let step_size = g
            .norm()
            .add_scalar(sam.epsilon)
            .recip()
            .mul_scalar(step_length);
        let delta = g.mul(&step_size);
        perturbed = shifted(perturbed, &delta);
        displacement = Some(match displacement {
            None => delta,
            Some(sum) => sum.add(&delta),
        });
    }
    let loss_k = loss_fn(&perturbed);
    let grads_k = GradientsParams::from_grads(loss_k.backward(), &perturbed);
    let g_k = ParamVector::from_grads(&perturbed, &grads_k);
    Ascent {
        loss: first_loss.expect("at least one ascent step"),
        displacement: displacement.expect("at least one ascent step"),
        grads_k,
        g_k,
    }
}

/// The α grid search: forward passes of `loss_fn` at `θ0 + ρ_max·v(α)` on `model.valid()`
/// (no autodiff graph); returns the first α with the highest loss and all the grid losses.
fn search_alpha<M, F>(
    model: &M,
    xsam: &XsamConfig,
    unit: &UnitPair<'_>,
    psi: &Tensor<1>,
    loss_fn: &mut F,
) -> (f64, Vec<f64>)
where
    M: Module,
    F: FnMut(&M) -> Tensor<1>,
{
    let valid = model.valid();
    let grid = xsam.alpha_grid();
    let rho_max = Tensor::<1>::full([1], xsam.resolved_rho_max(), &psi.device());
    let losses: Vec<Tensor<1>> = grid
        .iter()
        .map(|&alpha| {
            let direction = unit.slerp(psi, alpha, &rho_max);
            let probe = shifted(valid.clone(), &direction);
            loss_fn(&probe).inner().reshape([1])
        })
        .collect();
    // One read-back for the whole grid.
    let losses: Vec<f64> = Tensor::cat(losses, 0)
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("grid losses are floats");
    (pick_alpha(&grid, &losses), losses)
}

/// The first α whose loss is strictly the highest (NaN losses never win; `α = 0` if none does).
fn pick_alpha(grid: &[f64], losses: &[f64]) -> f64 {
    let mut best = (grid[0], f64::NEG_INFINITY);
    for (&alpha, &loss) in grid.iter().zip(losses) {
        if loss > best.1 {
            best = (alpha, loss);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::optim::{AdamWConfig, SgdConfig};
    use burn::tensor::{Device, Distribution, TensorData};
    use proptest::prelude::*;

    /// One trainable vector `w` and one frozen vector `f`; `L(w) = ½‖w‖² + <f, w>`.
    #[derive(Module, Debug)]
    struct Quadratic {
        w: Param<Tensor<1>>,
        f: Param<Tensor<1>>,
    }

    impl Quadratic {
        fn new(w: [f32; 2], f: [f32; 2], device: &Device) -> Self {
            Self {
                w: Param::from_data(TensorData::new(w.to_vec(), [2]), device),
                f: Param::from_data(TensorData::new(f.to_vec(), [2]), device)
                    .set_require_grad(false),
            }
        }

        fn loss(&self) -> Tensor<1> {
            let w = self.w.val();
            w.clone().square().sum().mul_scalar(0.5) + (w * self.f.val()).sum()
        }
    }

    fn values(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn device() -> Device {
        Device::flex().autodiff()
    }

    #[test]
    fn one_sam_step_on_an_analytic_loss_equals_the_hand_computed_update() {
        // w = (3, 4), f = 0: g = w, ‖g‖ = 5, ϑ = w + 0.5·w/5 = 1.1·w, g_1 = ∇L(ϑ) = 1.1·w.
        // SGD at lr 0.1: w' = w − 0.1·1.1·w = 0.89·w = (2.67, 3.56).
        let model = Quadratic::new([3.0, 4.0], [0.0, 0.0], &device());
        let mut optim = SamConfig::new().with_rho(0.5).init(SgdConfig::new().init());

        let (model, stats) = optim.step(0.1, model, Quadratic::loss);

        let w = values(model.w.val());
        assert!(
            (w[0] - 2.67).abs() < 1e-6 && (w[1] - 3.56).abs() < 1e-6,
            "{w:?}"
        );
        let log = stats.read();
        assert!((log.loss - 12.5).abs() < 1e-6, "L(θ0) = ½·25");
        assert!((log.grad_norm - 5.5).abs() < 1e-6, "‖g_1‖ = 1.1·5");
    }

    #[test]
    fn frozen_parameters_are_neither_perturbed_nor_updated() {
        // f = (1, −2) is frozen. g = w + f = (4, 2), ‖g‖ = √20, ϑ = w + ρ·g/√20,
        // g_1 = ϑ + f = g·(1 + ρ/√20); only w moves.
        let model = Quadratic::new([3.0, 4.0], [1.0, -2.0], &device());
        let mut optim = SamConfig::new().with_rho(0.5).init(SgdConfig::new().init());
        let mut seen_f = Vec::new();

        let (model, _) = optim.step(0.1, model, |m: &Quadratic| {
            seen_f.push(values(m.f.val()));
            m.loss()
        });

        assert!(seen_f.iter().all(|f| f == &[1.0, -2.0]));
        assert_eq!(values(model.f.val()), [1.0, -2.0]);
        let factor = 1.0 + 0.5 / 20f32.sqrt();
        let expected = [3.0 - 0.1 * 4.0 * factor, 4.0 - 0.1 * 2.0 * factor];
        let w = values(model.w.val());
        assert!((w[0] - expected[0]).abs() < 1e-6 && (w[1] - expected[1]).abs() < 1e-6);
    }

    #[test]
    fn k_step_ascent_splits_rho_into_k_normalised_steps() {
        // f = (1, −2), w = (3, 4), ρ = 0.6, k = 2: two steps of length 0.3 along the current
        // gradient. Worked out on the host in f64 and compared with the applied SGD update (lr 1).
        let (w, f, rho) = ([3.0f64, 4.0], [1.0f64, -2.0], 0.6);
        let grad = |w: [f64; 2]| [w[0] + f[0], w[1] + f[1]];
        let mut theta = w;
        for _ in 0..2 {
            let g = grad(theta);
            let n = (g[0] * g[0] + g[1] * g[1]).sqrt();
            theta = [
                theta[0] + rho / 2.0 * g[0] / n,
                theta[1] + rho / 2.0 * g[1] / n,
            ];
        }
        let g_k = grad(theta);
        let expected = [w[0] - g_k[0], w[1] - g_k[1]];

        let model = Quadratic::new([3.0, 4.0], [1.0, -2.0], &device());
        let mut optim = SamConfig::new()
            .with_rho(rho)
            .with_ascent_steps(2)
            .init(SgdConfig::new().init());
        let (model, _) = optim.step(1.0, model, Quadratic::loss);

        let got = values(model.w.val());
        for i in 0..2 {
            assert!(
                (f64::from(got[i]) - expected[i]).abs() < 1e-5,
                "{got:?} vs {expected:?}"
            );
        }
    }

    #[test]
    fn xsam_with_fixed_alpha_zero_applies_the_ascent_direction_scaled_to_the_gradient_norm() {
        // k = 1: v0 = g_0/‖g_0‖, so the update is ‖g_1‖·g_0/‖g_0‖.
        // g_0 = (4, 2), ‖g_0‖ = √20; g_1 = g_0·(1 + ρ/√20) → applied = g_0·(1 + ρ/√20) as well
        // (the gradient of this quadratic is collinear along the ascent), so use lr 1 and
        // compare with w − g_0·(1 + ρ/√20).
        let model = Quadratic::new([3.0, 4.0], [1.0, -2.0], &device());
        let mut optim = XsamConfig::new(SamConfig::new().with_rho(0.5))
            .with_fixed_alpha(Some(0.0))
            .init(SgdConfig::new().init());

        let (model, stats) = optim.step(1.0, model, Quadratic::loss);

        let factor = 1.0 + 0.5 / 20f32.sqrt();
        let w = values(model.w.val());
        assert!((w[0] - (3.0 - 4.0 * factor)).abs() < 1e-5, "{w:?}");
        assert!((w[1] - (4.0 - 2.0 * factor)).abs() < 1e-5, "{w:?}");
        assert!(stats.read().psi.unwrap().abs() < 1e-3, "v0 ∥ v1: ψ ≈ 0");
    }

    /// One trainable vector `w` under an anisotropic curvature: `L(w) = ½(w₀² + 8·w₁²)`, so
    /// `∇L(w) = (w₀, 8·w₁)` turns away from the ascent direction as `w` moves along it.
    #[derive(Module, Debug)]
    struct Anisotropic {
        w: Param<Tensor<1>>,
    }

    impl Anisotropic {
        fn new(w: [f32; 2], device: &Device) -> Self {
            Self {
                w: Param::from_data(TensorData::new(w.to_vec(), [2]), device),
            }
        }

        fn loss(&self) -> Tensor<1> {
            let w = self.w.val();
            let curvature =
                Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 8.0], [2]), &w.device());
            (w.square() * curvature).sum().mul_scalar(0.5)
        }
    }

    /// The gradient `optim` applies in one step of plain SGD at lr 1 from `w = (6, 1)`:
    /// `w − w'`. With the hand computation shared by the tests below:
    ///
    /// ```text
    /// θ0 = (6, 1)           g0 = ∇L(θ0) = (6, 8)         ‖g0‖ = 10       L(θ0) = ½(36 + 8) = 22
    /// ρ = 5:  ϑ1 = θ0 + 5·g0/10 = (6, 1) + (3, 4) = (9, 5)
    /// g1 = ∇L(ϑ1) = (9, 40)                               ‖g1‖ = √(81 + 1600) = 41
    /// v0 = (ϑ1 − θ0)/‖ϑ1 − θ0‖ = (3, 4)/5 = (0.6, 0.8)     v1 = g1/41 = (9, 40)/41
    /// cos ψ = <v0, v1> = (0.6·9 + 0.8·40)/41 = 37.4/41 = 187/205
    /// sin ψ = √(205² − 187²)/205 = √7056/205 = 84/205     ψ = atan2(84, 187) ≈ 0.422 rad (24.2°)
    /// ```
    fn applied_by(mut optim: SharpnessAware) -> ([f64; 2], StepLog) {
        let model = Anisotropic::new([6.0, 1.0], &device());
        let (model, stats) = optim.step(1.0, model, Anisotropic::loss);
        let w = values(model.w.val());
        let applied = [6.0 - f64::from(w[0]), 1.0 - f64::from(w[1])];
        (applied, stats.read())
    }

    fn xsam(alpha: f64) -> SharpnessAware {
        XsamConfig::new(SamConfig::new().with_rho(5.0))
            .with_fixed_alpha(Some(alpha))
            .init(SgdConfig::new().init())
    }

    fn assert_close(got: [f64; 2], expected: [f64; 2], what: &str) {
        let far = (got[0] - expected[0])
            .abs()
            .max((got[1] - expected[1]).abs());
        assert!(far < 1e-4, "{what}: applied {got:?}, expected {expected:?}");
    }

    #[test]
    fn xsam_with_fixed_alpha_zero_applies_the_ascent_direction_when_the_gradient_turns() {
        // α = 0 (numbers in `applied_by`): v(0) = v0, so the applied gradient is
        // ‖g1‖·v0 = 41·(0.6, 0.8) = (24.6, 32.8), not SAM's g1 = (9, 40): the two differ by
        // (15.6, −7.2), far beyond the f32 tolerance of 1e-4.
        let (applied, log) = applied_by(xsam(0.0));
        assert_close(applied, [24.6, 32.8], "XSAM α = 0");
        assert!((log.loss - 22.0).abs() < 1e-4, "L(θ0) = {}", log.loss);
        assert!(
            (log.grad_norm - 41.0).abs() < 1e-4,
            "‖g1‖ = {}",
            log.grad_norm
        );
        let psi = 84f64.atan2(187.0);
        let got_psi = log.psi.unwrap();
        assert!(
            (got_psi - psi).abs() < 1e-5,
            "ψ = {got_psi}, expected {psi}"
        );

        // The same step under SAM (and XSAM α = 1) applies g1 itself: the test above tells them
        // apart.
        let sam = SamConfig::new().with_rho(5.0).init(SgdConfig::new().init());
        let (sam_applied, _) = applied_by(sam);
        assert_close(sam_applied, [9.0, 40.0], "SAM");
        assert_close(applied_by(xsam(1.0)).0, [9.0, 40.0], "XSAM α = 1");
        let gap = (applied[0] - sam_applied[0]).abs() + (applied[1] - sam_applied[1]).abs();
        assert!(
            gap > 1.0,
            "α = 0 and SAM must differ here: {applied:?} vs {sam_applied:?}"
        );
    }

    #[test]
    fn xsam_with_fixed_alpha_half_applies_the_bisector_of_the_ascent_and_gradient_directions() {
        // α = 0.5 (numbers in `applied_by`): c0 = c1 = sin(ψ/2)/sin ψ = 1/(2·cos(ψ/2)), with
        // cos(ψ/2) = √((1 + cos ψ)/2) = √(196/205) = 14/√205, so c0 = c1 = √205/28 and
        // applied = 41·(√205/28)·(v0 + v1) = (√205/28)·(41·(0.6, 0.8) + (9, 40))
        //         = (√205/28)·(33.6, 72.8) = (√205/5)·(6, 13) ≈ (17.18139, 37.22633).
        let (applied, _) = applied_by(xsam(0.5));
        let scale = 205f64.sqrt() / 5.0;
        assert_close(applied, [6.0 * scale, 13.0 * scale], "XSAM α = 0.5");
    }

    /// A small two-layer perceptron with a mean-squared loss on a fixed batch.
    #[derive(Module, Debug)]
    struct Mlp {
        w1: Param<Tensor<2>>,
        b1: Param<Tensor<1>>,
        w2: Param<Tensor<2>>,
    }

    impl Mlp {
        fn new(device: &Device) -> Self {
            device.seed(7);
            let init = |shape: [usize; 2]| {
                Param::from_tensor(Tensor::<2>::random(
                    shape,
                    Distribution::Normal(0.0, 0.5),
                    device,
                ))
            };
            Self {
                w1: init([3, 6]),
                b1: Param::from_tensor(Tensor::zeros([6], device)),
                w2: init([6, 2]),
            }
        }

        fn loss(&self, x: &Tensor<2>, y: &Tensor<2>) -> Tensor<1> {
            let h = (x.clone().matmul(self.w1.val()) + self.b1.val().unsqueeze()).tanh();
            (h.matmul(self.w2.val()) - y.clone()).square().mean()
        }

        fn data(&self) -> Vec<TensorData> {
            vec![
                self.w1.val().into_data(),
                self.b1.val().into_data(),
                self.w2.val().into_data(),
            ]
        }
    }

    fn batches(device: &Device) -> Vec<(Tensor<2>, Tensor<2>)> {
        (0..4)
            .map(|_| {
                (
                    Tensor::random([5, 3], Distribution::Normal(0.0, 1.0), device),
                    Tensor::random([5, 2], Distribution::Normal(0.0, 1.0), device),
                )
            })
            .collect()
    }

    fn train(mut optim: SharpnessAware, steps: usize) -> Vec<Vec<TensorData>> {
        let device = device();
        let mut model = Mlp::new(&device);
        let batches = batches(&device);
        let mut trajectory = Vec::new();
        for t in 0..steps {
            let (x, y) = &batches[t % batches.len()];
            (model, _) = optim.step(0.01, model, |m: &Mlp| m.loss(x, y));
            trajectory.push(model.data());
        }
        trajectory
    }

    #[test]
    fn xsam_with_fixed_alpha_one_is_bit_identical_to_sam() {
        for k in [1, 2] {
            let sam = SamConfig::new().with_rho(0.2).with_ascent_steps(k);
            let reference = train(sam.init(AdamWConfig::new().init()), 25);
            let xsam = XsamConfig::new(sam.clone()).with_fixed_alpha(Some(1.0));
            let got = train(xsam.init(AdamWConfig::new().init()), 25);
            assert_eq!(reference, got, "k = {k}");
        }
    }

    #[test]
    fn dynamic_alpha_is_searched_on_the_first_step_and_every_period() {
        let device = device();
        let mut model = Mlp::new(&device);
        let batches = batches(&device);
        let mut optim = XsamConfig::new(SamConfig::new().with_rho(0.1))
            .with_alpha_period(3)
            .init(SgdConfig::new().init());
        let mut searched = Vec::new();
        for t in 0..7 {
            let (x, y) = &batches[t % batches.len()];
            let stats;
            (model, stats) = optim.step(0.05, model, |m: &Mlp| m.loss(x, y));
            let log = stats.read();
            if let Some(losses) = &log.alpha_losses {
                assert_eq!(losses.len(), 21);
                searched.push(log.step);
            }
            assert!(log.psi.is_some() && log.alpha.is_some());
        }
        assert_eq!(searched, [0, 3, 6]);
        assert_eq!(optim.to_record().step, 7);
    }

    #[test]
    fn alpha_grid_defaults_to_21_points_from_0_to_2() {
        let grid = XsamConfig::new(SamConfig::new()).alpha_grid();
        assert_eq!(grid.len(), 21);
        assert_eq!(grid[0], 0.0);
        assert_eq!(grid[10], 1.0);
        assert!((grid[20] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn rho_max_defaults_to_twice_rho() {
        let config = XsamConfig::new(SamConfig::new().with_rho(0.15));
        assert!((config.resolved_rho_max() - 0.3).abs() < 1e-12);
        assert_eq!(config.with_rho_max(Some(0.5)).resolved_rho_max(), 0.5);
    }

    #[test]
    fn pick_alpha_keeps_the_first_highest_loss() {
        let grid = [0.0, 0.1, 0.2, 0.3];
        assert_eq!(pick_alpha(&grid, &[1.0, 3.0, 3.0, 2.0]), 0.1);
        assert_eq!(pick_alpha(&grid, &[f64::NAN, 1.0, f64::NAN, 0.5]), 0.1);
    }

    #[test]
    fn small_angle_falls_back_to_the_mean_of_v0_and_v1() {
        let device = Device::flex();
        let psi = Tensor::<1>::zeros([1], &device);
        let scale = Tensor::<1>::full([1], 4.0, &device);
        let (c0, c1) = slerp_coefficients(&psi, 0.3, &scale);
        assert_eq!(values(c0), [2.0]);
        assert_eq!(values(c1), [2.0]);
    }

    fn unit_vector_model(a: &[f32], b: &[f32]) -> (ParamVector, ParamVector) {
        #[derive(Module, Debug)]
        struct Two {
            p: Param<Tensor<1>>,
            q: Param<Tensor<1>>,
        }
        let device = Device::flex();
        let model = Two {
            p: Param::from_data(TensorData::new(a[..2].to_vec(), [2]), &device),
            q: Param::from_data(TensorData::new(a[2..].to_vec(), [a.len() - 2]), &device),
        };
        let to_vec = |v: &[f32]| {
            let mut grads = GradientsParams::new();
            let part = |r: std::ops::Range<usize>| {
                Tensor::<1>::from_data(TensorData::new(v[r.clone()].to_vec(), [r.len()]), &device)
            };
            grads.register::<1>(model.p.id, part(0..2));
            grads.register::<1>(model.q.id, part(2..v.len()));
            let v = ParamVector::from_grads(&model, &grads);
            v.div(&v.norm())
        };
        (to_vec(a), to_vec(b))
    }

    /// Angle between two unit vectors, stable near 0 and π: 2·atan2(‖a − b‖, ‖a + b‖).
    fn angle(a: &[f64], b: &[f64]) -> f64 {
        let diff: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt();
        let sum: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x + y).powi(2))
            .sum::<f64>()
            .sqrt();
        2.0 * diff.atan2(sum)
    }

    fn host(v: &ParamVector) -> Vec<f64> {
        v.tensors()
            .iter()
            .flat_map(|t| {
                t.clone()
                    .into_data()
                    .convert::<f64>()
                    .try_to_vec::<f64>()
                    .unwrap()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn interpolated_direction_is_a_unit_vector_splitting_psi(
            a in prop::collection::vec(-1.0f32..1.0, 5),
            b in prop::collection::vec(-1.0f32..1.0, 5),
            alpha in 0.0f64..=1.0,
        ) {
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            prop_assume!(norm(&a) > 0.1 && norm(&b) > 0.1);
            let (v0, v1) = unit_vector_model(&a, &b);
            let psi_t = angle_between_unit(&v0, &v1);
            let psi = f64::from(psi_t.clone().into_scalar::<f32>());
            prop_assume!(psi.sin() > 0.05);

            let one = Tensor::<1>::ones([1], &psi_t.device());
            let v = host(&slerp(&v0, &v1, &psi_t, alpha, &one));
            let (h0, h1) = (host(&v0), host(&v1));

            let length = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            prop_assert!((length - 1.0).abs() < 1e-5, "‖v(α)‖ = {length}");
            let split = angle(&v, &h0) + angle(&v, &h1);
            prop_assert!((split - psi).abs() < 1e-4, "{split} vs ψ = {psi}");
            prop_assert!((angle(&v, &h0) - alpha * psi).abs() < 1e-4);
        }
    }
}
