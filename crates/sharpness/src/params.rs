//! Vectors over the trainable parameters of a module, kept on the module's device.
//!
//! SAM and XSAM do linear algebra on "the vector of all trainable parameters": global norms, dot
//! products, `θ + s·v`. [`ParamVector`] is that vector, stored as one flattened tensor per
//! parameter (in the order the module visits its parameters) so that the parameters keep their
//! own device and memory and no concatenation copy is ever made. Every reduction stays a tensor on
//! the device; nothing here reads data back to the host.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// One flattened tensor per trainable parameter, keyed by [`ParamId`].
///
/// The tensors carry no autodiff association (they are gradients or differences of weights), so
/// arithmetic on them never records a graph.
#[derive(Clone, Debug)]
pub struct ParamVector {
    ids: Vec<ParamId>,
    tensors: Vec<Tensor<1>>,
    index: HashMap<ParamId, usize>,
}

impl ParamVector {
    fn from_entries(ids: Vec<ParamId>, tensors: Vec<Tensor<1>>) -> Self {
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        Self {
            ids,
            tensors,
            index,
        }
    }

    /// The gradients of `model`'s parameters found in `grads` (which is left untouched), in the
    /// module's visiting order. Parameters without a gradient (frozen ones, the LoRA base weights)
    /// are not part of the vector.
    pub fn from_grads<M: Module>(model: &M, grads: &GradientsParams) -> Self {
        struct Collect<'a> {
            grads: &'a GradientsParams,
            ids: Vec<ParamId>,
            tensors: Vec<Tensor<1>>,
        }
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(grad) = self.grads.get::<D>(param.id) {
                    self.ids.push(param.id);
                    self.tensors.push(flatten(grad.inner()));
                }
            }
        }
        let mut visitor = Collect {
            grads,
            ids: Vec::new(),
            tensors: Vec::new(),
        };
        model.visit(&mut visitor);
        Self::from_entries(visitor.ids, visitor.tensors)
    }

    /// The current values of `model`'s parameters whose ids are in `like`, without autodiff.
    pub fn values_like<M: Module>(model: &M, like: &ParamVector) -> Self {
        struct Collect<'a> {
            like: &'a ParamVector,
            tensors: Vec<Option<Tensor<1>>>,
        }
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(&i) = self.like.index.get(&param.id) {
                    self.tensors[i] = Some(flatten(param.base().inner()));
                }
            }
        }
        let mut visitor = Collect {
            like,
            tensors: vec![None; like.len()],
        };
        model.visit(&mut visitor);
        let tensors = visitor
            .tensors
            .into_iter()
            .zip(&like.ids)
            .map(|(t, id)| t.unwrap_or_else(|| panic!("parameter {id} is not in the module")))
            .collect();
        Self::from_entries(like.ids.clone(), tensors)
    }

    /// Number of parameter tensors in the vector.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the vector holds no parameter at all (nothing is trainable).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The parameter ids, in the module's visiting order.
    pub fn ids(&self) -> &[ParamId] {
        &self.ids
    }

    /// The flattened tensors, in the same order as [`ids`](Self::ids).
    pub fn tensors(&self) -> &[Tensor<1>] {
        &self.tensors
    }

    /// The flattened tensor of one parameter.
    pub fn get(&self, id: ParamId) -> Option<&Tensor<1>> {
        self.index.get(&id).map(|&i| &self.tensors[i])
    }

    /// `Σ_p Σ_i x_pi²` as a one-element tensor on the device.
    pub fn squared_norm(&self) -> Tensor<1> {
        self.tensors
            .iter()
            .map(|t| t.clone().square().sum())
            .reduce(|a, b| a + b)
            .expect("a ParamVector needs at least one trainable parameter")
    }

    /// The global L2 norm over all parameters, a one-element tensor on the device.
    pub fn norm(&self) -> Tensor<1> {
        self.squared_norm().sqrt()
    }

    /// `<self, other>` over all parameters, a one-element tensor on the device.
    pub fn dot(&self, other: &ParamVector) -> Tensor<1> {
        self.zip_tensors(other)
            .map(|(a, b)| (a.clone() * b.clone()).sum())
            .reduce(|a, b| a + b)
            .expect("a ParamVector needs at least one trainable parameter")
    }

    /// Every tensor multiplied by the one-element tensor `scale` (broadcast on the device).
    pub fn mul(&self, scale: &Tensor<1>) -> Self {
        self.map(|t| t * scale.clone())
    }

    /// Every tensor divided by the one-element tensor `divisor` (broadcast on the device).
    pub fn div(&self, divisor: &Tensor<1>) -> Self {
        self.map(|t| t / divisor.clone())
    }

    /// `self + other`, parameter by parameter.
    pub fn add(&self, other: &ParamVector) -> Self {
        let tensors = self
            .zip_tensors(other)
            .map(|(a, b)| a.clone() + b.clone())
            .collect();
        Self::from_entries(self.ids.clone(), tensors)
    }

    /// `self - other`, parameter by parameter.
    pub fn sub(&self, other: &ParamVector) -> Self {
        let tensors = self
            .zip_tensors(other)
            .map(|(a, b)| a.clone() - b.clone())
            .collect();
        Self::from_entries(self.ids.clone(), tensors)
    }

    /// `a·self + b·other` with one-element tensor coefficients, computed as
    /// `self·a + other·b` per parameter.
    pub fn combine(&self, a: &Tensor<1>, other: &ParamVector, b: &Tensor<1>) -> Self {
        let tensors = self
            .zip_tensors(other)
            .map(|(x, y)| x.clone() * a.clone() + y.clone() * b.clone())
            .collect();
        Self::from_entries(self.ids.clone(), tensors)
    }

    /// Applies `f` to every flattened tensor.
    pub fn map(&self, mut f: impl FnMut(Tensor<1>) -> Tensor<1>) -> Self {
        let tensors = self.tensors.iter().map(|t| f(t.clone())).collect();
        Self::from_entries(self.ids.clone(), tensors)
    }

    /// The vector as gradients for `model`, ready for an optimizer step.
    pub fn to_grads<M: Module>(&self, model: &M) -> GradientsParams {
        struct Register<'a> {
            vector: &'a ParamVector,
            grads: GradientsParams,
        }
        impl ModuleVisitor for Register<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(t) = self.vector.get(param.id) {
                    let shape = param.base().shape();
                    self.grads.register::<D>(param.id, t.clone().reshape(shape));
                }
            }
        }
        let mut visitor = Register {
            vector: self,
            grads: GradientsParams::new(),
        };
        model.visit(&mut visitor);
        visitor.grads
    }

    fn zip_tensors<'a>(
        &'a self,
        other: &'a ParamVector,
    ) -> impl Iterator<Item = (&'a Tensor<1>, &'a Tensor<1>)> + 'a {
        assert_eq!(
            self.ids, other.ids,
            "the two parameter vectors cover different parameters"
        );
        self.tensors.iter().zip(other.tensors.iter())
    }
}

/// `θ + δ` for every parameter that has an entry in `delta`; the other parameters are shared, not
/// copied.
///
/// On an autodiff model each shifted parameter becomes a fresh leaf that keeps the original's
/// id, gradient requirement and checkpointing strategy, so a backward pass through the shifted
/// model yields gradients keyed exactly like the original's. On a model without autodiff (for
/// example `model.valid()`) the shifted values stay plain tensors and no graph is recorded.
pub fn shifted<M: Module>(model: M, delta: &ParamVector) -> M {
    struct Shift<'a> {
        delta: &'a ParamVector,
    }
    impl ModuleMapper for Shift<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some(d) = self.delta.get(param.id) else {
                return param;
            };
            let (id, value, mapper) = param.consume();
            let shape = value.shape();
            let was_autodiff = value.is_autodiff();
            let require_grad = value.is_require_grad();
            let strategy = value.gradient_checkpointing_strategy();
            let mut shifted = value.inner() + d.clone().reshape(shape);
            if was_autodiff {
                shifted = shifted.autodiff();
                if let Some(strategy) = strategy {
                    shifted = shifted.with_gradient_checkpointing_strategy(strategy);
                }
                if require_grad {
                    shifted = shifted.require_grad();
                }
            }
            Param::from_mapped_value(id, shifted, mapper)
        }
    }
    model.map(&mut Shift { delta })
}

fn flatten<const D: usize>(tensor: Tensor<D>) -> Tensor<1> {
    let n = tensor.dims().iter().product::<usize>();
    tensor.reshape([n])
}
