//! Sharpness measures for the report: the SAM sharpness on a probe set and loss-landscape slices
//! along random filter-normalised directions (Li et al., 2018), both exported as serde data.
//!
//! Only the trainable parameters (those that require a gradient: the LoRA factors when LoRA is
//! on) are moved. Pass the training module (autodiff); the loss evaluations of the slices run on
//! `model.valid()`, forward only.

use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::params::{ParamVector, shifted};

/// `L(θ + ρ·g/‖g‖) − L(θ)` on a fixed probe set, with the numbers it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamSharpness {
    /// `ρ`.
    pub rho: f64,
    /// `L(θ)`.
    pub loss: f64,
    /// `L(θ + ρ·g/(‖g‖ + ε))`.
    pub perturbed_loss: f64,
    /// `perturbed_loss − loss`.
    pub sharpness: f64,
    /// `‖g‖`, the global gradient norm of the probe loss at `θ`.
    pub grad_norm: f64,
}

/// The SAM sharpness of `model` (autodiff) on the probe loss `loss_fn`: one forward/backward at
/// `θ` and one forward at `θ + ρ·g/(‖g‖ + ε)` (`epsilon` = ε). Reads three scalars back.
pub fn sam_sharpness<M, F>(model: &M, rho: f64, epsilon: f64, mut loss_fn: F) -> SamSharpness
where
    M: Module,
    F: FnMut(&M) -> Tensor<1>,
{
    let loss = loss_fn(model);
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let g = ParamVector::from_grads(model, &grads);
    let grad_norm = g.norm();
    let step = grad_norm
        .clone()
        .add_scalar(epsilon)
        .recip()
        .mul_scalar(rho);
    let probe = shifted(model.valid(), &g.mul(&step));
    let perturbed = loss_fn(&probe).inner().reshape([1]);
    let values = read(vec![loss.inner().reshape([1]), perturbed, grad_norm]);
    SamSharpness {
        rho,
        loss: values[0],
        perturbed_loss: values[1],
        sharpness: values[1] - values[0],
        grad_norm: values[2],
    }
}

/// Which axis of a weight indexes its filters (output units) for filter normalisation.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum FilterAxis {
    /// The last axis: Burn's `Linear` stores `[d_in, d_out]`, one filter per output column.
    Last,
    /// The first axis: PyTorch / HF layout `[d_out, d_in]` and convolutions `[c_out, ...]`.
    First,
}

/// A 1-D or 2-D slice of the loss landscape along random filter-normalised directions.
#[derive(Config, Debug)]
pub struct LandscapeConfig {
    /// Coordinates run over `[-span, span]` along each direction.
    #[config(default = 1.0)]
    pub span: f64,
    /// Grid points per direction (odd keeps 0 on the grid).
    #[config(default = 21)]
    pub points: usize,
    /// Two directions (a 2-D slice) instead of one.
    #[config(default = false)]
    pub two_dimensional: bool,
    /// Seed of the directions. They are drawn on the host (ChaCha8, standard normal) in the
    /// module's visiting order, so the same seed gives the same directions on every backend.
    #[config(default = 0)]
    pub seed: u64,
    /// The filter axis of weights of rank ≥ 2.
    #[config(default = "FilterAxis::Last")]
    pub filter_axis: FilterAxis,
    /// Also move rank-1 parameters (biases, norm gains), each normalised as one filter. Li et
    /// al. leave them at zero, which is the default.
    #[config(default = false)]
    pub include_vectors: bool,
}

/// The losses of a landscape slice: `losses[i][j] = L(θ + a_i·d1 + b_j·d2)` (`j` has one value,
/// `b = 0`, for a 1-D slice).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LandscapeSlice {
    /// Coordinates along the first direction.
    pub a: Vec<f64>,
    /// Coordinates along the second direction (`[0.0]` for a 1-D slice).
    pub b: Vec<f64>,
    /// `losses[i][j]` at `(a[i], b[j])`.
    pub losses: Vec<Vec<f64>>,
    /// The seed that drew the directions.
    pub seed: u64,
}

impl LandscapeSlice {
    /// The loss at the centre `θ` (the grid point nearest to the origin).
    pub fn center_loss(&self) -> f64 {
        let nearest = |v: &[f64]| {
            (0..v.len())
                .min_by(|&i, &j| v[i].abs().total_cmp(&v[j].abs()))
                .unwrap_or(0)
        };
        self.losses[nearest(&self.a)][nearest(&self.b)]
    }
}

impl LandscapeConfig {
    /// Evaluates the slice around `model` with `loss_fn` (forward passes on `model.valid()`).
    /// All grid losses are read back at once.
    pub fn evaluate<M, F>(&self, model: &M, mut loss_fn: F) -> LandscapeSlice
    where
        M: Module,
        F: FnMut(&M) -> Tensor<1>,
    {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let d1 = self.direction(model, &mut rng);
        let d2 = self
            .two_dimensional
            .then(|| self.direction(model, &mut rng));
        let a = grid(self.span, self.points);
        let b = if self.two_dimensional {
            a.clone()
        } else {
            vec![0.0]
        };
        let valid = model.valid();
        let mut losses = Vec::with_capacity(a.len() * b.len());
        for &x in &a {
            for &y in &b {
                let delta = match &d2 {
                    Some(d2) => d1
                        .map(|t| t.mul_scalar(x))
                        .add(&d2.map(|t| t.mul_scalar(y))),
                    None => d1.map(|t| t.mul_scalar(x)),
                };
                let probe = shifted(valid.clone(), &delta);
                losses.push(loss_fn(&probe).inner().reshape([1]));
            }
        }
        let flat = read(losses);
        LandscapeSlice {
            losses: flat.chunks(b.len()).map(<[f64]>::to_vec).collect(),
            a,
            b,
            seed: self.seed,
        }
    }

    /// A random direction over the trainable parameters, filter-normalised: every filter of
    /// the direction is rescaled to the norm of the same filter of `θ`.
    pub fn direction<M: Module>(&self, model: &M, rng: &mut ChaCha8Rng) -> ParamVector {
        struct Draw<'a> {
            config: &'a LandscapeConfig,
            rng: &'a mut ChaCha8Rng,
            grads: GradientsParams,
        }
        impl ModuleVisitor for Draw<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if !param.is_require_grad() {
                    return;
                }
                let theta = param.base().inner();
                let shape = theta.shape();
                let n = shape.num_elements();
                let values: Vec<f32> = (0..n)
                    .map(|_| StandardNormal.sample(&mut *self.rng))
                    .collect();
                let d = Tensor::<D>::from_data(TensorData::new(values, shape), &theta.device());
                let d = if D >= 2 {
                    filter_normalise(d, theta, self.config.filter_axis)
                } else if self.config.include_vectors {
                    let scale =
                        theta.square().sum().sqrt() / (d.clone().square().sum().sqrt() + 1e-10);
                    d * scale.reshape([1; D])
                } else {
                    d.zeros_like()
                };
                register(&mut self.grads, param.id, d);
            }
        }
        let mut visitor = Draw {
            config: self,
            rng,
            grads: GradientsParams::new(),
        };
        model.visit(&mut visitor);
        ParamVector::from_grads(model, &visitor.grads)
    }
}

fn register<const D: usize>(grads: &mut GradientsParams, id: ParamId, tensor: Tensor<D>) {
    grads.register::<D>(id, tensor);
}

/// `d` with each filter rescaled to `‖θ_filter‖ / (‖d_filter‖ + 1e-10)`.
fn filter_normalise<const D: usize>(d: Tensor<D>, theta: Tensor<D>, axis: FilterAxis) -> Tensor<D> {
    let keep = match axis {
        FilterAxis::Last => D - 1,
        FilterAxis::First => 0,
    };
    let filter_norm = |t: Tensor<D>| {
        let mut sq = t.square();
        for dim in (0..D).filter(|&dim| dim != keep) {
            sq = sq.sum_dim(dim);
        }
        sq.sqrt()
    };
    let scale = filter_norm(theta) / filter_norm(d.clone()).add_scalar(1e-10);
    d * scale
}

fn grid(span: f64, points: usize) -> Vec<f64> {
    match points {
        0 => Vec::new(),
        1 => vec![0.0],
        _ => (0..points)
            .map(|i| -span + 2.0 * span * i as f64 / (points - 1) as f64)
            .collect(),
    }
}

fn read(values: Vec<Tensor<1>>) -> Vec<f64> {
    Tensor::cat(values, 0)
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("float values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Quad {
        w: Param<Tensor<1>>,
    }

    #[derive(Module, Debug)]
    struct Layer {
        weight: Param<Tensor<2>>,
    }

    fn quad_loss(m: &Quad) -> Tensor<1> {
        // L(w) = ½ Σ a_i w_i² with a = [1, 2]
        let a =
            Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &m.w.val().device());
        (m.w.val().square() * a).sum().mul_scalar(0.5)
    }

    #[test]
    fn sam_sharpness_of_a_quadratic_matches_the_hand_computation() {
        let device = Device::flex().autodiff();
        let m = Quad {
            w: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![3.0f32, -4.0], [2]),
                &device,
            )),
        };
        let s = sam_sharpness(&m, 0.1, 0.0, quad_loss);
        // g = a ⊙ w = [3, -8], ‖g‖ = √73; w' = w + 0.1·g/‖g‖.
        let n = 73f64.sqrt();
        let w1 = [3.0 + 0.1 * 3.0 / n, -4.0 - 0.1 * 8.0 / n];
        let perturbed = 0.5 * (w1[0] * w1[0] + 2.0 * w1[1] * w1[1]);
        assert!((s.loss - 20.5).abs() < 1e-5, "{}", s.loss);
        assert!((s.grad_norm - n).abs() < 1e-5, "{}", s.grad_norm);
        assert!(
            (s.perturbed_loss - perturbed).abs() < 1e-4,
            "{} vs {perturbed}",
            s.perturbed_loss
        );
        assert!((s.sharpness - (perturbed - 20.5)).abs() < 1e-4);
    }

    #[test]
    fn filter_normalised_slice_of_half_squared_norm_has_the_second_difference_of_its_norm() {
        // L(θ) = ½‖θ‖². A filter-normalised direction d has ‖d‖ = ‖θ‖ (every filter keeps its
        // norm), so L(θ + a·d) + L(θ − a·d) − 2·L(θ) = a²·‖θ‖² = 2a²·L(θ) whatever the direction.
        let device = Device::flex().autodiff();
        let values = vec![0.5f32, -1.0, 2.0, 0.25, 1.5, -0.75];
        let m = Layer {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(values.clone(), [2, 3]),
                &device,
            )),
        };
        let loss = |m: &Layer| m.weight.val().square().sum().mul_scalar(0.5);
        let cfg = LandscapeConfig::new()
            .with_span(0.5)
            .with_points(5)
            .with_seed(7);
        let slice = cfg.evaluate(&m, loss);
        let l0: f64 = values.iter().map(|&x| 0.5 * (x as f64).powi(2)).sum();
        assert_eq!(slice.a, vec![-0.5, -0.25, 0.0, 0.25, 0.5]);
        assert!((slice.center_loss() - l0).abs() < 1e-5);
        for (i, &a) in slice.a.iter().enumerate() {
            let j = slice.a.len() - 1 - i;
            let second = slice.losses[i][0] + slice.losses[j][0] - 2.0 * l0;
            assert!(
                (second - 2.0 * a * a * l0).abs() < 1e-4,
                "a = {a}: {second} vs {}",
                2.0 * a * a * l0
            );
        }
        assert_eq!(
            cfg.evaluate(&m, loss),
            slice,
            "the same seed draws the same direction"
        );
        let other = LandscapeConfig::new()
            .with_span(0.5)
            .with_points(5)
            .with_seed(8)
            .evaluate(&m, loss);
        assert_ne!(other.losses, slice.losses);
    }

    #[test]
    fn filter_normalisation_gives_each_filter_the_norm_of_the_weights_filter() {
        let device = Device::flex();
        let theta = Tensor::<2>::from_data(
            TensorData::new(vec![3.0f32, 0.0, 4.0, 1.0], [2, 2]),
            &device,
        );
        let d = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 1.0, 2.0], [2, 2]),
            &device,
        );
        // FilterAxis::Last: filters are columns. θ columns [3,4] (norm 5) and [0,1] (norm 1);
        // d columns [1,1] (norm √2) and [2,2] (norm √8).
        let got: Vec<f32> = filter_normalise(d, theta, FilterAxis::Last)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let (s0, s1) = (5.0 / 2f32.sqrt(), 1.0 / 8f32.sqrt());
        let want = [s0, 2.0 * s1, s0, 2.0 * s1];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
}
