//! One training step, top to bottom: what to replay, the batch, the forward pass, the method
//! plugins' loss terms, the backward pass, their gradient hooks, the optimizer step (AdamW or
//! SAM/XSAM around it), the strategy's feedback, the cost and the log.

use backbone::CausalLm;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use finetune::{ForwardNeeds, SftBatch, SftForward};
use replay_buffer::{ReplayDecision, SampleRef};
use std::collections::BTreeMap;

use report::events::{LogEvent, ReplayLine, SharpnessLine, StepLine};

use super::Run;
use super::data::Data;
use crate::method::Protocol;
use crate::metrics::PassTokens;
use crate::plugins::{GradContext, LossContext, LossTerm, MethodPlugin, PassKind, Spent};
use crate::{EngineError, Plugin, StepRecord};

impl Run<'_> {
    /// One training step of task `k`.
    pub(super) fn train_step(
        &mut self,
        k: usize,
        observers: &mut [&mut dyn Plugin],
    ) -> Result<StepRecord, EngineError> {
        let step = self.state.global_step;
        // 1. What to replay (the strategy's passes and decision, within the paced budget).
        let task_samples = self.task_samples(k, self.state.step_in_task);
        let (decision, allowance) = self.replay_decision(step)?;
        // 2. One batch [|B| + R, S]: the task's samples, then the replayed ones.
        let samples: Vec<SampleRef> = task_samples
            .iter()
            .chain(decision.batches.iter().flat_map(|b| &b.samples))
            .copied()
            .collect();
        let batch = self.sft_batch(&samples);
        for p in observers.iter_mut() {
            p.before_backward(&self.ctx(k, 0), &batch);
        }
        // 3. Forward, loss terms, backward, gradient hooks, optimizer step.
        let losses = self.update(k, &batch, &samples, task_samples.len())?;
        self.guard(k, step, &losses)?;
        crate::test_pause("step");
        // 4. Feedback: replayed samples' losses to the memory, the task's samples to the buffer.
        self.replay_feedback(step, &decision, &task_samples, &losses.per_sample);
        // 5. Accounting and the log.
        self.account(&batch, &decision, &losses);
        self.log_step(
            k,
            step,
            &batch,
            &task_samples,
            (&decision, allowance),
            &losses,
        )
    }

    /// Runs the objective, the backward pass and the plugins' gradient hooks, and takes the
    /// optimizer step (AdamW, or SAM/XSAM around it).
    fn update(
        &mut self,
        k: usize,
        batch: &SftBatch,
        samples: &[SampleRef],
        task_rows: usize,
    ) -> Result<StepLosses, EngineError> {
        let input = StepInput {
            task: k,
            step: self.state.global_step,
            batch,
            samples,
            task_rows,
            needs: crate::plugins::forward_needs(&self.plugins),
            sft_weight: self.cfg.method.objective.sft_weight,
        };
        let mut model = self.model.take().expect("model present between steps");
        let plugins = &mut self.plugins;
        let (mut grads, mut losses) = match self.sam.as_mut() {
            None => {
                let (total, losses) = objective(&mut model, plugins, &input, 0);
                (
                    GradientsParams::from_grads(total.backward(), &model),
                    losses,
                )
            }
            Some(sam) => {
                let (mut first, mut calls) = (None::<StepLosses>, 0u64);
                let (grads, stats) = sam.grads(&model, |m: &CausalLm| {
                    let mut m = m.clone();
                    let (total, losses) = objective(&mut m, plugins, &input, calls);
                    calls += 1;
                    first.get_or_insert(losses);
                    total
                });
                let mut losses = first.expect("SAM evaluates the loss at least once");
                // Every evaluation runs its forwards; XSAM's α grid evaluations are among
                // `calls` and are forward-only, the others each take a backward.
                let log = stats.read();
                let grid = log.alpha_losses.as_ref().map_or(0, Vec::len) as u64;
                losses.passes = losses.passes.times(calls);
                losses.passes.backward = calls - grid;
                losses.sharpness = Some(log);
                (grads, losses)
            }
        };
        let data = Data::new(
            &self.train,
            self.cfg.settings.validation_records,
            &self.state.replay.buffer,
        );
        let mut spent = Spent::default();
        for p in self.plugins.iter_mut() {
            p.after_backward(&mut GradContext {
                task: k,
                step: input.step,
                model: &model,
                grads: &mut grads,
                data: &data,
                spent: &mut spent,
            })?;
        }
        losses.hooks = spent;
        let (model, info) = self.trainer.grads_step(model, grads);
        self.model = Some(model);
        let info = info.expect("one micro-batch per step");
        (losses.grad_norm, losses.lr) = (info.grad_norm, info.lr);
        Ok(losses)
    }

    /// Divergence guard: a non-finite loss term or gradient stops the run, naming the place.
    fn guard(&self, k: usize, step: u64, l: &StepLosses) -> Result<(), EngineError> {
        let bad = std::iter::once(("sft", l.sft))
            .chain(l.terms.iter().map(|&(name, v)| (name, v)))
            .chain([("total", l.total), ("gradient norm", l.grad_norm)])
            .find(|(_, v)| !v.is_finite());
        match bad {
            Some((term, value)) => Err(EngineError::Diverged {
                task: self.cfg.suite.tasks[k].name.clone(),
                step,
                term: term.to_string(),
                value,
            }),
            None => Ok(()),
        }
    }

    /// Adds the step's passes, tokens and replayed samples to the run's cost.
    fn account(&mut self, batch: &SftBatch, decision: &ReplayDecision, l: &StepLosses) {
        let c = &mut self.state.cost;
        let (p, tokens) = (&l.passes, batch.tokens.real_tokens() as u64);
        c.optimizer_steps += 1;
        c.replayed_samples += decision.num_samples() as u64;
        c.add_tokens(PassTokens {
            sft: tokens * p.sft,
            kl_reference: l.extra_tokens.kl_reference * p.evaluations,
            corpus: l.extra_tokens.corpus * p.evaluations,
            plugin: l.extra_tokens.plugin * p.evaluations,
            probe: 0,
        });
        c.forward_passes += p.forwards();
        c.backward_passes += p.backward;
        c.plugin_forwards += p.plugin;
        c.add_plugin_spend(l.hooks);
    }

    /// The step's `step` line, its `replay` lines with the strategy's own, and `sharpness`.
    fn log_step(
        &mut self,
        k: usize,
        step: u64,
        batch: &SftBatch,
        task_samples: &[SampleRef],
        (decision, allowance): (&ReplayDecision, Option<usize>),
        l: &StepLosses,
    ) -> Result<StepRecord, EngineError> {
        let term = |name: &str| l.terms.iter().find(|(n, _)| *n == name).map(|&(_, v)| v);
        let record = StepRecord {
            task: k,
            step,
            lr: l.lr,
            loss: l.total,
            sft: l.sft,
            kl: term("kl"),
            ntp: term("ntp"),
            grad_norm: l.grad_norm,
            replayed: decision.num_samples(),
            tokens: batch.tokens.real_tokens() as u64,
        };
        let p = &l.passes;
        let line = LogEvent::Step(StepLine {
            task: k,
            step,
            lr: l.lr,
            loss: l.total,
            sft: l.sft,
            kl: record.kl,
            ntp: record.ntp,
            terms: l.terms.iter().map(|&(n, v)| (n.to_string(), v)).collect(),
            grad_norm: l.grad_norm,
            replayed: record.replayed,
            allowance,
            tokens: record.tokens,
            corpus_tokens: l.extra_tokens.corpus,
            forwards: p.forwards() + l.hooks.forwards,
            backwards: p.backward + l.hooks.backwards,
            trained_by_task: trained_by_task(self.cfg.method.protocol, task_samples),
        });
        self.log.write(&line.to_value())?;
        // The probe or check behind the decision, then the batches it decided.
        for event in self.state.replay.scheduler.step_events(step) {
            self.log.write(&event)?;
        }
        for b in &decision.batches {
            let mut samples_by_task = BTreeMap::<String, u64>::new();
            for r in &b.samples {
                *samples_by_task.entry(r.task.to_string()).or_default() += 1;
            }
            let line = LogEvent::Replay(ReplayLine {
                step,
                task: b.task.map(|t| t as usize),
                n: b.slots.len() as u64,
                samples_by_task,
                reason: Some(serde_json::to_value(&b.reason).expect("serialises")),
            });
            self.log.write(&line.to_value())?;
            for event in self.state.replay.scheduler.log_events(b, step) {
                self.log.write(&event)?;
            }
        }
        if let Some(sh) = &l.sharpness {
            let line = LogEvent::Sharpness(SharpnessLine {
                step,
                loss: Some(sh.loss),
                grad_norm: Some(sh.grad_norm),
                psi: sh.psi,
                alpha: sh.alpha,
            });
            self.log.write(&line.to_value())?;
        }
        Ok(record)
    }
}

/// What one evaluation of the objective reads.
struct StepInput<'a> {
    task: usize,
    step: u64,
    batch: &'a SftBatch,
    samples: &'a [SampleRef],
    task_rows: usize,
    needs: ForwardNeeds,
    sft_weight: f64,
}

/// The objective: the batch's forward pass, then `sft_weight · L_SFT + Σ weight · term` over
/// the plugins' loss terms, with the values read back for the log.
fn objective(
    model: &mut CausalLm,
    plugins: &mut [Box<dyn MethodPlugin>],
    input: &StepInput<'_>,
    evaluation: u64,
) -> (Tensor<1>, StepLosses) {
    let forward: SftForward = finetune::sft_forward(model, input.batch, input.needs);
    let mut terms: Vec<LossTerm> = Vec::new();
    for p in plugins.iter_mut() {
        terms.extend(p.before_backward(&mut LossContext {
            task: input.task,
            step: input.step,
            model: &mut *model,
            batch: input.batch,
            samples: input.samples,
            task_rows: input.task_rows,
            forward: &forward,
            evaluation,
        }));
    }
    let mut total = forward.sft.mean.clone().mul_scalar(input.sft_weight);
    for t in &terms {
        total = total + t.value.clone().mul_scalar(t.weight);
    }
    let losses = StepLosses::read(&total, &forward, &terms);
    (total, losses)
}

/// The passes of one optimizer step, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Passes {
    /// Evaluations of the objective (1, or SAM's and XSAM's several).
    evaluations: u64,
    /// Forwards of the step's batch through the trained model.
    sft: u64,
    /// Forwards the loss terms ran besides it (KL reference, corpus, others).
    extra: u64,
    /// Of those, the forwards of plugins other than the KL and corpus terms.
    plugin: u64,
    /// Backward passes.
    backward: u64,
}

impl Passes {
    /// `n` evaluations of an objective that runs `self` once.
    fn times(self, n: u64) -> Self {
        Self {
            evaluations: self.evaluations * n,
            sft: self.sft * n,
            extra: self.extra * n,
            plugin: self.plugin * n,
            backward: self.backward * n,
        }
    }

    fn forwards(&self) -> u64 {
        self.sft + self.extra
    }
}

/// Loss values of one step, read back to the host.
struct StepLosses {
    total: f64,
    sft: f64,
    /// The plugins' terms by name, unweighted.
    terms: Vec<(&'static str, f64)>,
    per_sample: Vec<f32>,
    passes: Passes,
    /// Tokens of one evaluation's extra forwards, by kind.
    extra_tokens: PassTokens,
    /// Passes of the gradient hooks.
    hooks: Spent,
    sharpness: Option<sharpness::StepLog>,
    grad_norm: f64,
    lr: f64,
}

impl StepLosses {
    fn read(total: &Tensor<1>, forward: &SftForward, terms: &[LossTerm]) -> Self {
        let scalar = |t: &Tensor<1>| f64::from(t.clone().into_scalar::<f32>());
        let mut extra_tokens = PassTokens::default();
        let (mut extra, mut plugin) = (0, 0);
        for t in terms {
            let (kind, spent) = t.extra;
            extra += spent.forwards;
            if kind == PassKind::Plugin {
                plugin += spent.forwards;
            }
            *match kind {
                PassKind::KlReference => &mut extra_tokens.kl_reference,
                PassKind::Corpus => &mut extra_tokens.corpus,
                PassKind::Plugin => &mut extra_tokens.plugin,
            } += spent.tokens;
        }
        Self {
            total: scalar(total),
            sft: scalar(&forward.sft.mean),
            terms: terms.iter().map(|t| (t.name, scalar(&t.value))).collect(),
            per_sample: forward
                .sft
                .per_sample
                .clone()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32"),
            passes: Passes {
                evaluations: 1,
                sft: 1,
                extra,
                plugin,
                backward: 1,
            },
            extra_tokens,
            hooks: Spent::default(),
            sharpness: None,
            grad_norm: f64::NAN,
            lr: 0.0,
        }
    }
}

/// Joint training: the task batch's samples per source task. Empty under sequential training,
/// where every task sample is the stage's own.
fn trained_by_task(protocol: Protocol, task_samples: &[SampleRef]) -> BTreeMap<String, u64> {
    let mut by_task = BTreeMap::new();
    if protocol == Protocol::Joint {
        for r in task_samples {
            *by_task.entry(r.task.to_string()).or_insert(0) += 1;
        }
    }
    by_task
}
