//! The trainable parameters and their gradients as flat 1-D tensors in the model's visiting
//! order (the order of [`TrainableSnapshot`]): what EWC's importances and anchors, and
//! A-GEM's projections, are computed on.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

use crate::EngineError;
use crate::params::TrainableSnapshot;

/// One flat tensor per trainable parameter, in visiting order.
#[derive(Debug, Clone)]
pub struct ParamVec(pub Vec<Tensor<1>>);

/// Calls `f(id, value)` for every trainable parameter of `model`, its value flattened to 1-D.
pub fn for_each_trainable<M: Module>(model: &M, f: impl FnMut(ParamId, Tensor<1>)) {
    struct Visit<F>(F);
    impl<F: FnMut(ParamId, Tensor<1>)> ModuleVisitor for Visit<F> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                let v = param.val();
                let n = v.shape().num_elements();
                (self.0)(param.id, v.reshape([n]));
            }
        }
    }
    model.visit(&mut Visit(f));
}

impl ParamVec {
    /// The trainable parameters' current values, detached from the autodiff graph.
    pub fn values<M: Module>(model: &M) -> Self {
        let mut out = Vec::new();
        for_each_trainable(model, |_, v| out.push(v.detach()));
        Self(out)
    }

    /// The gradients of the trainable parameters (zeros where a parameter has none).
    pub fn grads<M: Module>(model: &M, grads: &GradientsParams) -> Self {
        let mut out = Vec::new();
        struct Visit<'a> {
            grads: &'a GradientsParams,
            out: &'a mut Vec<Tensor<1>>,
        }
        impl ModuleVisitor for Visit<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if param.is_require_grad() {
                    let v = param.val();
                    let n = v.shape().num_elements();
                    let g = self
                        .grads
                        .get::<D>(param.id)
                        .map_or_else(|| Tensor::zeros([n], &v.device()), |g| g.reshape([n]));
                    self.out.push(g);
                }
            }
        }
        model.visit(&mut Visit {
            grads,
            out: &mut out,
        });
        Self(out)
    }

    /// Writes `self` back as the gradients of `model`'s trainable parameters.
    pub fn write_grads<M: Module>(&self, model: &M, grads: &mut GradientsParams) {
        struct Visit<'a> {
            grads: &'a mut GradientsParams,
            values: std::slice::Iter<'a, Tensor<1>>,
        }
        impl ModuleVisitor for Visit<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if param.is_require_grad() {
                    let g = self
                        .values
                        .next()
                        .expect("one tensor per trainable parameter");
                    let dims: [usize; D] = param.val().dims();
                    self.grads.register::<D>(param.id, g.clone().reshape(dims));
                }
            }
        }
        model.visit(&mut Visit {
            grads,
            values: self.0.iter(),
        });
    }

    /// `Σ_i ⟨self_i, other_i⟩`.
    pub fn dot(&self, other: &Self) -> f64 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| f64::from((a.clone() * b.clone()).sum().into_scalar::<f32>()))
            .sum()
    }

    /// `self − c · other`, tensor by tensor.
    pub fn minus_scaled(&self, c: f64, other: &Self) -> Self {
        Self(
            self.0
                .iter()
                .zip(&other.0)
                .map(|(a, b)| a.clone() - b.clone().mul_scalar(c))
                .collect(),
        )
    }

    /// Host copies (for a checkpoint).
    pub fn to_snapshot(&self) -> TrainableSnapshot {
        TrainableSnapshot {
            tensors: self
                .0
                .iter()
                .map(|t| backbone::weights::HostTensor {
                    shape: t.dims().to_vec(),
                    data: t
                        .clone()
                        .into_data()
                        .convert::<f32>()
                        .try_to_vec::<f32>()
                        .expect("f32"),
                })
                .collect(),
        }
    }

    /// Back from host copies onto `device`.
    pub fn from_snapshot(s: &TrainableSnapshot, device: &burn::tensor::Device) -> Self {
        Self(
            s.tensors
                .iter()
                .map(|h| Tensor::from_data(TensorData::new(h.data.clone(), [h.data.len()]), device))
                .collect(),
        )
    }

    /// Saves to `path` (safetensors).
    pub fn save(&self, path: &std::path::Path) -> Result<(), EngineError> {
        self.to_snapshot().save(path)
    }

    /// Loads what [`save`](Self::save) wrote.
    pub fn load(
        path: &std::path::Path,
        device: &burn::tensor::Device,
    ) -> Result<Self, EngineError> {
        Ok(Self::from_snapshot(&TrainableSnapshot::load(path)?, device))
    }
}
