//! The trainable parameters of a model as host data: what a checkpoint stores, what a resume
//! restores bit for bit, and what WiSE-FT interpolates. Parameters are taken in the module's
//! visiting order, which is fixed by its structure, so a snapshot fits any model built the
//! same way (same backbone, same adapters).

use std::collections::BTreeMap;
use std::path::Path;

use backbone::weights::HostTensor;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

use crate::EngineError;

/// The trainable tensors of a model, in visiting order.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainableSnapshot {
    /// One host tensor per trainable parameter.
    pub tensors: Vec<HostTensor>,
}

impl TrainableSnapshot {
    /// Copies the trainable parameters of `model` to the host.
    pub fn of<M: Module>(model: &M) -> Self {
        struct Collect(Vec<HostTensor>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if param.is_require_grad() {
                    let t = param.val();
                    let shape = t.dims().to_vec();
                    let data = t
                        .into_data()
                        .convert::<f32>()
                        .try_to_vec::<f32>()
                        .expect("f32 parameter");
                    self.0.push(HostTensor { shape, data });
                }
            }
        }
        let mut c = Collect(Vec::new());
        model.visit(&mut c);
        Self { tensors: c.0 }
    }

    /// The Euclidean distance to `other` over all tensors (same model, same visiting order).
    pub fn distance(&self, other: &Self) -> f64 {
        self.tensors
            .iter()
            .zip(&other.tensors)
            .flat_map(|(a, b)| a.data.iter().zip(&b.data))
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// Writes the values into `model`'s trainable parameters (ids and trainability kept).
    pub fn restore<M: Module>(&self, model: M) -> Result<M, EngineError> {
        self.map_into(model, |_, new| new)
    }

    /// `θ ← (1 − α)·self + α·θ` over the trainable parameters (WiSE-FT with `self = θ_prev`).
    pub fn interpolate<M: Module>(&self, model: M, alpha: f64) -> Result<M, EngineError> {
        self.map_into(model, |cur, prev| {
            prev.mul_scalar(1.0 - alpha) + cur.mul_scalar(alpha)
        })
    }

    fn map_into<M: Module>(
        &self,
        model: M,
        f: impl Fn(Tensor<1>, Tensor<1>) -> Tensor<1>,
    ) -> Result<M, EngineError> {
        struct Put<'a, F> {
            snap: &'a [HostTensor],
            next: usize,
            error: Option<String>,
            f: F,
        }
        impl<F: Fn(Tensor<1>, Tensor<1>) -> Tensor<1>> ModuleMapper for Put<'_, F> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                if !param.is_require_grad() {
                    return param;
                }
                let i = self.next;
                self.next += 1;
                let Some(host) = self.snap.get(i) else {
                    self.error.get_or_insert(format!(
                        "the snapshot has {} tensors, the model more",
                        self.snap.len()
                    ));
                    return param;
                };
                param.map(|cur| {
                    let dims = cur.dims();
                    if host.shape != dims.to_vec() {
                        self.error.get_or_insert(format!(
                            "tensor {i}: snapshot shape {:?}, model {:?}",
                            host.shape, dims
                        ));
                        return cur;
                    }
                    let device = cur.device();
                    let saved = Tensor::<1>::from_data(
                        TensorData::new(host.data.clone(), [host.data.len()]),
                        &device,
                    );
                    let n = host.data.len();
                    (self.f)(cur.reshape([n]).detach(), saved)
                        .detach()
                        .reshape(dims)
                        .require_grad()
                })
            }
        }
        let mut put = Put {
            snap: &self.tensors,
            next: 0,
            error: None,
            f,
        };
        let model = model.map(&mut put);
        if put.error.is_none() && put.next != self.tensors.len() {
            put.error = Some(format!(
                "the snapshot has {} tensors, the model {}",
                self.tensors.len(),
                put.next
            ));
        }
        match put.error {
            Some(e) => Err(EngineError::Checkpoint(e)),
            None => Ok(model),
        }
    }

    /// Writes the snapshot as safetensors (`p00000`, `p00001`, ... in visiting order).
    pub fn save(&self, path: &Path) -> Result<(), EngineError> {
        let map: BTreeMap<String, HostTensor> = self
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("p{i:05}"), t.clone()))
            .collect();
        backbone::weights::write_safetensors(path, &map)
            .map_err(|e| EngineError::Checkpoint(e.to_string()))
    }

    /// Reads a snapshot written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        use backbone::weights::WeightSource;
        let src = backbone::weights::SafetensorsSource::open(path)
            .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
        let keys = src.keys(); // sorted: p00000, p00001, ...
        let tensors = keys
            .iter()
            .map(|k| src.tensor(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Checkpoint(e.to_string()))?;
        Ok(Self { tensors })
    }
}
