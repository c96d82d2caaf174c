//! Optimisation around the objectives: Burn's AdamW, learning-rate schedules, global-norm
//! gradient clipping, gradient accumulation, LoRA or full fine-tuning, and checkpointable state.

use std::path::Path;

use backbone::CausalLm;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::FinetuneError;

/// Learning-rate schedule, as a pure function of the optimizer step (so resuming needs only the
/// step count).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// The base rate at every step.
    #[default]
    Constant,
    /// Linear warm-up from 0, then cosine decay to `min_ratio · base` at `total_steps`
    /// (transformers' `get_cosine_schedule_with_warmup` when `min_ratio = 0`: step 0 has rate 0).
    WarmupCosine {
        /// Warm-up steps.
        warmup_steps: usize,
        /// Steps of the whole run; the rate stays at the floor after it.
        total_steps: usize,
        /// Floor as a fraction of the base rate.
        min_ratio: f64,
    },
}

impl LrSchedule {
    /// The rate at optimizer step `step` (0-based) for base rate `base`.
    pub fn lr(&self, base: f64, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::WarmupCosine {
                warmup_steps,
                total_steps,
                min_ratio,
            } => {
                if step < warmup_steps {
                    return base * step as f64 / warmup_steps.max(1) as f64;
                }
                let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
                let progress = ((step - warmup_steps) as f64 / span).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                base * (min_ratio + (1.0 - min_ratio) * cos)
            }
        }
    }
}

/// What is trained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrainMode {
    /// Only the named adapter's factors; everything else is frozen.
    Lora {
        /// The adapter to train (it must exist; see `lora::add_adapter`).
        adapter: String,
    },
    /// Every parameter (embeddings, norms, projections, head).
    Full,
}

/// Optimiser hyper-parameters. Defaults follow common LoRA SFT practice (TRL/PEFT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Base learning rate (2e-4, a usual LoRA rate; use ~1e-5 for full fine-tuning).
    pub lr: f64,
    /// Schedule (constant).
    pub schedule: LrSchedule,
    /// AdamW β1 (0.9).
    pub beta_1: f32,
    /// AdamW β2 (0.999).
    pub beta_2: f32,
    /// AdamW ε (1e-8, PyTorch's; Burn's default is 1e-5).
    pub epsilon: f32,
    /// Decoupled weight decay (0, transformers' default).
    pub weight_decay: f32,
    /// Clip the global L2 norm of all gradients to this (1.0, transformers' default); `None`
    /// disables clipping. Global as in `torch.nn.utils.clip_grad_norm_`, not per tensor.
    pub max_grad_norm: Option<f64>,
    /// Micro-batches per optimizer step (1). Each micro-batch loss is divided by this before
    /// backward, so the accumulated gradient is the mean.
    pub grad_accum_steps: usize,
}

impl TrainConfig {
    /// A fresh AdamW with these settings' betas, epsilon and weight decay (the learning rate
    /// is given at each step): the one constructor the trainer and SAM/XSAM wrappers share.
    pub fn adamw(&self) -> ModuleOptimizer {
        AdamWConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(self.weight_decay)
            .init()
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 2e-4,
            schedule: LrSchedule::Constant,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
            grad_accum_steps: 1,
        }
    }
}

/// Sets which parameters train for `mode`: for LoRA, everything frozen but the adapter; for
/// full fine-tuning, everything trainable. Also gives every parameter an id derived from its
/// path (see [`stable_param_ids`]), so optimizer state saved in one run loads in the next.
pub fn prepare_model(model: CausalLm, mode: &TrainMode) -> Result<CausalLm, FinetuneError> {
    let model = stable_param_ids(model);
    match mode {
        TrainMode::Lora { adapter } => {
            let mut model = lora::freeze_base(model);
            if lora::adapter_num_params(&model, adapter) == 0 {
                return Err(FinetuneError::NoAdapter(adapter.clone()));
            }
            lora::set_active_adapter(&mut model, adapter)
                .map_err(|_| FinetuneError::NoAdapter(adapter.clone()))?;
            lora::set_adapter_trainable(&mut model, adapter, true);
            Ok(model)
        }
        TrainMode::Full => Ok(model.set_require_grad(true)),
    }
}

/// Number of values that require a gradient.
pub fn num_trainable_params<M: Module>(model: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0 += param.shape().num_elements();
            }
        }
    }
    let mut c = Count(0);
    model.visit(&mut c);
    c.0
}

/// Re-ids every parameter from its module path (`model.layers.0.mlp.up_proj.weight`), except
/// adapter factors, whose ids already derive from layer path and adapter name.
pub fn stable_param_ids<M: Module>(model: M) -> M {
    struct Ids(Vec<String>);
    impl ModuleMapper for Ids {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if self.0.iter().any(|s| s == "adapters") {
                return param;
            }
            let path = self.0.join(".");
            let (_, value, mapper) = param.consume();
            Param::from_mapped_value(ParamId::from(backbone::random::fnv1a(&path)), value, mapper)
        }
    }
    model.map(&mut Ids(Vec::new()))
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Optimizer step index (0-based) that was applied.
    pub step: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// The resumable counters of a [`Trainer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TrainerState {
    /// Optimizer steps taken.
    pub step: usize,
}

/// AdamW with schedule, clipping and accumulation. One call per micro-batch:
///
/// ```ignore
/// let parts = finetune::objective(&mut model, Reference::AdaptersOff, &batch, None, &obj);
/// let (m, info) = trainer.backward_step(model, parts.total);
/// model = m; // info is Some(..) when an optimizer step was taken
/// ```
pub struct Trainer {
    config: TrainConfig,
    optim: ModuleOptimizer,
    grads: Option<GradientsParams>,
    micro: usize,
    state: TrainerState,
}

impl Trainer {
    /// A trainer with fresh AdamW state.
    pub fn new(config: TrainConfig) -> Self {
        let optim = config.adamw();
        Self {
            config,
            optim,
            grads: None,
            micro: 0,
            state: TrainerState::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Optimizer steps taken so far.
    pub fn step_count(&self) -> usize {
        self.state.step
    }

    /// The rate the next optimizer step will use.
    pub fn current_lr(&self) -> f64 {
        self.config.schedule.lr(self.config.lr, self.state.step)
    }

    /// Back-propagates one micro-batch loss and accumulates its gradients; after
    /// `grad_accum_steps` micro-batches, clips and applies an AdamW step. Returns the (possibly
    /// updated) model and, when a step was taken, what it did.
    pub fn backward_step<M: Module>(&mut self, model: M, loss: Tensor<1>) -> (M, Option<StepInfo>) {
        let k = self.config.grad_accum_steps.max(1);
        let loss = if k > 1 {
            loss.div_scalar(k as f64)
        } else {
            loss
        };
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.accumulate(&model, grads);
        if self.micro < k {
            return (model, None);
        }
        self.apply(model)
    }

    /// Accumulates gradients computed elsewhere (a SAM/XSAM wrapper's update gradient) as one
    /// micro-batch, then steps like [`backward_step`](Self::backward_step): clipping, schedule
    /// and accumulation apply to them too.
    pub fn grads_step<M: Module>(
        &mut self,
        model: M,
        grads: GradientsParams,
    ) -> (M, Option<StepInfo>) {
        let k = self.config.grad_accum_steps.max(1);
        let grads = if k > 1 {
            scale_grads(&model, grads, 1.0 / k as f64)
        } else {
            grads
        };
        self.accumulate(&model, grads);
        if self.micro < k {
            return (model, None);
        }
        self.apply(model)
    }

    fn accumulate<M: Module>(&mut self, model: &M, grads: GradientsParams) {
        self.grads = Some(match self.grads.take() {
            None => grads,
            Some(mut acc) => {
                add_grads(model, &mut acc, grads);
                acc
            }
        });
        self.micro += 1;
    }

    /// Applies the accumulated gradients now (also when fewer than `grad_accum_steps`
    /// micro-batches were seen, e.g. at the end of an epoch).
    pub fn apply<M: Module>(&mut self, model: M) -> (M, Option<StepInfo>) {
        if self.micro == 0 {
            return (model, None);
        }
        let Some(mut grads) = self.grads.take() else {
            return (model, None);
        };
        self.micro = 0;
        let grad_norm = global_grad_norm(&model, &grads);
        if let Some(max) = self.config.max_grad_norm
            && grad_norm > max
        {
            grads = scale_grads(&model, grads, max / (grad_norm + 1e-6));
        }
        let lr = self.current_lr();
        let model = self.optim.step(lr, model, grads);
        let info = StepInfo {
            step: self.state.step,
            lr,
            grad_norm,
        };
        self.state.step += 1;
        (model, Some(info))
    }

    /// Saves the optimizer moments (`optimizer.bpk`, Burn's burnpack) and counters
    /// (`trainer.json`) into `dir`. Call it at an accumulation boundary: partly accumulated
    /// gradients are not saved.
    pub fn save(&self, dir: &Path) -> Result<(), FinetuneError> {
        std::fs::create_dir_all(dir).map_err(|e| FinetuneError::io(dir, e))?;
        let optim = dir.join("optimizer.bpk");
        self.optim
            .save(&optim)
            .map_err(|e| FinetuneError::Record(format!("{}: {e}", optim.display())))?;
        let json = serde_json::json!({ "state": self.state, "config": self.config });
        let path = dir.join("trainer.json");
        std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json"))
            .map_err(|e| FinetuneError::io(&path, e))
    }

    /// Restores what [`save`](Self::save) wrote (the configuration stays this trainer's).
    /// Parameters must have the ids they had when saved: use [`prepare_model`] (or
    /// [`stable_param_ids`]) in both runs. Burn materialises the moments on `Device::default()`
    /// (they move to the parameters' device at the next step): set `BURN_DEVICE` to the training
    /// device (`flex` for the CPU) so that loading does not start another backend.
    pub fn load(mut self, dir: &Path) -> Result<Self, FinetuneError> {
        let path = dir.join("trainer.json");
        let text = std::fs::read_to_string(&path).map_err(|e| FinetuneError::io(&path, e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| FinetuneError::Record(e.to_string()))?;
        self.state = serde_json::from_value(v["state"].clone())
            .map_err(|e| FinetuneError::Record(e.to_string()))?;
        self.optim = self
            .optim
            .load(dir.join("optimizer.bpk"))
            .map_err(|e| FinetuneError::Record(e.to_string()))?;
        self.micro = 0;
        self.grads = None;
        Ok(self)
    }
}

/// `acc += new`, parameter by parameter.
fn add_grads<M: Module>(model: &M, acc: &mut GradientsParams, mut new: GradientsParams) {
    struct Add<'a> {
        acc: &'a mut GradientsParams,
        new: &'a mut GradientsParams,
    }
    impl ModuleVisitor for Add<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.new.remove::<D>(param.id) {
                let sum = match self.acc.remove::<D>(param.id) {
                    Some(a) => a + g,
                    None => g,
                };
                self.acc.register::<D>(param.id, sum);
            }
        }
    }
    model.visit(&mut Add { acc, new: &mut new });
}

/// Global L2 norm over every gradient of `model`'s parameters.
pub fn global_grad_norm<M: Module>(model: &M, grads: &GradientsParams) -> f64 {
    struct Norm<'a> {
        grads: &'a GradientsParams,
        sq: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.sq = Some(match self.sq.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
        }
    }
    let mut v = Norm { grads, sq: None };
    model.visit(&mut v);
    v.sq.map_or(0.0, |s| (s.into_scalar::<f32>() as f64).sqrt())
}

fn scale_grads<M: Module>(model: &M, mut grads: GradientsParams, factor: f64) -> GradientsParams {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads
                    .register::<D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    model.visit(&mut Scale {
        grads: &mut grads,
        factor,
    });
    grads
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn warmup_cosine_rises_linearly_then_decays_to_the_floor() {
        let s = LrSchedule::WarmupCosine {
            warmup_steps: 4,
            total_steps: 12,
            min_ratio: 0.1,
        };
        let lr = |t| s.lr(1.0, t);
        assert_eq!(lr(0), 0.0);
        assert!((lr(2) - 0.5).abs() < 1e-12);
        assert!((lr(4) - 1.0).abs() < 1e-12);
        // Half-way through the decay: 0.1 + 0.9 · 0.5.
        assert!((lr(8) - 0.55).abs() < 1e-12);
        assert!((lr(12) - 0.1).abs() < 1e-12);
        assert!((lr(100) - 0.1).abs() < 1e-12);
        assert_eq!(LrSchedule::Constant.lr(3e-4, 1000), 3e-4);
    }

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    #[test]
    fn global_norm_spans_all_tensors_and_scaling_reaches_each() {
        let device = Device::flex();
        let two = Two {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![3.0f32], [1]),
                &device,
            )),
            b: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![0.0f32, 4.0], [1, 2]),
                &device,
            )),
        };
        let mut grads = GradientsParams::new();
        grads.register(
            two.a.id,
            Tensor::<1>::from_data(TensorData::new(vec![3.0f32], [1]), &device),
        );
        grads.register(
            two.b.id,
            Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 4.0], [1, 2]), &device),
        );
        // √(3² + 4²) = 5 over both tensors (per-tensor clipping would see 3 and 4).
        assert!((global_grad_norm(&two, &grads) - 5.0).abs() < 1e-6);
        let grads = scale_grads(&two, grads, 0.2);
        assert!((global_grad_norm(&two, &grads) - 1.0).abs() < 1e-6);
        let b: Vec<f32> = grads
            .get::<2>(two.b.id)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(b, vec![0.0, 0.8]);
    }

    #[test]
    fn stable_ids_depend_on_the_path_only() {
        let device = Device::flex();
        let make = || Two {
            a: Param::from_tensor(Tensor::zeros([1], &device)),
            b: Param::from_tensor(Tensor::zeros([1, 2], &device)),
        };
        let (x, y) = (stable_param_ids(make()), stable_param_ids(make()));
        assert_eq!(x.a.id, y.a.id);
        assert_eq!(x.b.id, y.b.id);
        assert_ne!(x.a.id, x.b.id);
    }
}
