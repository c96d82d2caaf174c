//! DER++ (Buzzega et al. 2020, "Dark Experience for General Continual Learning"): replayed
//! samples are trained on their labels (the SFT loss of the step's batch, which holds them)
//! and on the model's own earlier outputs for them:
//!
//! ```text
//! α · mean over stored (position, token) of (log p_θ(token | position) − stored value)²
//! ```
//!
//! What is stored (our choices, for a language model's vocabulary-sized outputs): for each
//! answer position of a sample, the `top_k` largest log-probabilities and their token ids,
//! taken from the forward pass of the last step that trained the sample in its own task (for
//! a sample trained once: the step it was offered to the buffer). Log-probabilities rather
//! than logits: logits are defined only up to a per-position shift the model is free to
//! change. Stored outputs are dropped at each task's end for samples the buffer no longer
//! holds. The label term's weight `β` is the replayed rows' share of the batch (the method
//! file's replay ratio), since they are averaged with the task's rows.
//!
//! A DER++ method file replays with `fixed_interval` every step (`experiments/methods/
//! derpp.toml`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use backbone::CausalLm;
use burn::tensor::{Int, Tensor, TensorData};
use finetune::ForwardNeeds;
use replay_buffer::SampleRef;
use serde::{Deserialize, Serialize};

use super::{
    LossContext, LossTerm, MethodPlugin, PassKind, PluginConfig, PluginInit, Spent, StageContext,
};
use crate::EngineError;

/// `[[plugins]] kind = "derpp"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DerppConfig {
    /// `α`, the weight of the output-matching term (0.5; the paper's grid spans 0.1-1).
    pub alpha: f64,
    /// Stored log-probabilities per answer position (8).
    pub top_k: usize,
}

impl Default for DerppConfig {
    fn default() -> Self {
        Self {
            alpha: 0.5,
            top_k: 8,
        }
    }
}

#[typetag::serde(name = "derpp")]
impl PluginConfig for DerppConfig {
    fn init(&self, _run: &PluginInit<'_>) -> Result<Box<dyn MethodPlugin>, EngineError> {
        Ok(Box::new(Derpp {
            config: self.clone(),
            stored: BTreeMap::new(),
        }))
    }

    fn check(&self) -> Result<(), (String, String)> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(("alpha".into(), format!("{} must be >= 0", self.alpha)));
        }
        if self.top_k == 0 {
            return Err(("top_k".into(), "must be at least 1".into()));
        }
        Ok(())
    }
}

/// A sample's stored outputs: per answer position (in order), `top_k` (token, log-prob).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    positions: Vec<Vec<(u32, f32)>>,
}

/// The DER++ plugin.
pub struct Derpp {
    config: DerppConfig,
    stored: BTreeMap<SampleRef, Stored>,
}

const STORED: &str = "stored.json";

/// The `k` largest entries of `row` as (index, value), largest first.
pub fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    let k = k.min(row.len());
    idx.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
        row[b as usize].total_cmp(&row[a as usize])
    });
    let mut top: Vec<(u32, f32)> = idx[..k].iter().map(|&i| (i, row[i as usize])).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top
}

impl Derpp {
    /// Stores the outputs of the task rows of this step's forward pass.
    fn record(&mut self, ctx: &LossContext<'_>, lp: &Tensor<2>) {
        let positions: Vec<(usize, usize)> = ctx
            .forward
            .positions()
            .enumerate()
            .filter(|(_, (row, _, answer))| *answer && *row < ctx.task_rows)
            .map(|(i, (row, _, _))| (i, row))
            .collect();
        if positions.is_empty() {
            return;
        }
        let [_, vocab] = lp.dims();
        let idx: Vec<i64> = positions.iter().map(|&(i, _)| i as i64).collect();
        let n = idx.len();
        let host: Vec<f32> = lp
            .clone()
            .detach()
            .select(
                0,
                Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), &lp.device()),
            )
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32");
        let mut by_row: BTreeMap<usize, Vec<Vec<(u32, f32)>>> = BTreeMap::new();
        for (j, &(_, row)) in positions.iter().enumerate() {
            let values = &host[j * vocab..(j + 1) * vocab];
            by_row
                .entry(row)
                .or_default()
                .push(top_k(values, self.config.top_k));
        }
        for (row, positions) in by_row {
            self.stored.insert(ctx.samples[row], Stored { positions });
        }
    }

    /// The output-matching term over the replayed rows with stored outputs.
    fn matching_term(&self, ctx: &LossContext<'_>, lp: &Tensor<2>) -> Option<Tensor<1>> {
        let [_, vocab] = lp.dims();
        let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
        let (mut flat, mut targets) = (Vec::new(), Vec::new());
        for (i, (row, _, answer)) in ctx.forward.positions().enumerate() {
            if !answer || row < ctx.task_rows {
                continue;
            }
            let j = seen.entry(row).or_default();
            if let Some(pos) = self
                .stored
                .get(&ctx.samples[row])
                .and_then(|s| s.positions.get(*j))
            {
                for &(token, value) in pos {
                    flat.push((i * vocab + token as usize) as i64);
                    targets.push(value);
                }
            }
            *j += 1;
        }
        if flat.is_empty() {
            return None;
        }
        let device = lp.device();
        let n = flat.len();
        let current = lp.clone().reshape([lp.dims()[0] * vocab]).select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(flat, [n]), &device),
        );
        let target = Tensor::<1>::from_data(TensorData::new(targets, [n]), &device);
        Some((current - target).square().mean())
    }
}

impl MethodPlugin for Derpp {
    fn name(&self) -> &str {
        "derpp"
    }

    fn needs(&self) -> ForwardNeeds {
        ForwardNeeds {
            log_probs: true,
            all_positions: false,
        }
    }

    fn before_backward(&mut self, ctx: &mut LossContext<'_>) -> Vec<LossTerm> {
        let lp = ctx.forward.log_probs.clone().expect("asked for in needs()");
        if ctx.evaluation == 0 {
            self.record(ctx, &lp);
        }
        let Some(value) = self.matching_term(ctx, &lp) else {
            return Vec::new();
        };
        vec![LossTerm {
            name: "der",
            value,
            weight: self.config.alpha,
            extra: (PassKind::Plugin, Spent::default()),
        }]
    }

    fn after_training_exp(&mut self, ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        let buffer = ctx.data.buffer();
        let kept: BTreeSet<SampleRef> = buffer
            .tasks()
            .flat_map(|t| buffer.task_slots(t).iter().map(|&s| buffer.sample(s)))
            .collect();
        self.stored.retain(|s, _| kept.contains(s));
        ctx.log.push(
            serde_json::json!({"type": "derpp", "step": ctx.step, "task": ctx.task,
            "stored_samples": self.stored.len()}),
        );
        Ok(())
    }

    fn save(&self, dir: &Path) -> Result<(), EngineError> {
        let entries: Vec<(&SampleRef, &Stored)> = self.stored.iter().collect();
        crate::results::write_json(
            &dir.join(STORED),
            &serde_json::to_value(entries).expect("serialises"),
        )
    }

    fn load(&mut self, dir: &Path, _model: &mut CausalLm) -> Result<(), EngineError> {
        let path = dir.join(STORED);
        let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
        let entries: Vec<(SampleRef, Stored)> = serde_json::from_str(&text)
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", path.display())))?;
        self.stored = entries.into_iter().collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_largest_entries_largest_first() {
        let row = [-3.0, -0.5, -2.0, -0.1, -4.0];
        assert_eq!(top_k(&row, 2), vec![(3, -0.1), (1, -0.5)]);
        assert_eq!(top_k(&row, 9).len(), 5);
    }
}
