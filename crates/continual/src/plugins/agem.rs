//! A-GEM (Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM"): after the backward
//! pass, the step's gradient `g` is compared with the gradient `g_ref` of a batch drawn from
//! the replay buffer (earlier tasks' samples); if they conflict (`g·g_ref < 0`) `g` is
//! projected onto the half-space where the buffer's loss does not rise:
//!
//! ```text
//! g ← g − (g·g_ref / g_ref·g_ref) · g_ref     if g·g_ref < 0, else unchanged
//! ```
//!
//! The buffer is the run's replay buffer (filled by the engine whatever the strategy; an
//! A-GEM method file replays nothing itself). `g_ref` costs one forward and one backward of
//! `sample_size` buffered samples per step, charged to the method. The samples are drawn
//! uniformly without replacement from the buffer's earlier tasks, seeded by (run seed, step),
//! so a resumed run draws the same ones.

use rand::SeedableRng;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use std::path::Path;

use backbone::CausalLm;

use super::trainable::ParamVec;
use super::{GradContext, MethodPlugin, PluginConfig, PluginInit, StageContext};
use crate::EngineError;
use crate::engine::mix;

/// `[[plugins]] kind = "agem"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgemConfig {
    /// Buffered samples in the reference batch (8, the smoke and quick suites' `|B|`; the
    /// paper's 256 is for image classifiers).
    pub sample_size: usize,
}

impl Default for AgemConfig {
    fn default() -> Self {
        Self { sample_size: 8 }
    }
}

#[typetag::serde(name = "agem")]
impl PluginConfig for AgemConfig {
    fn init(&self, run: &PluginInit<'_>) -> Result<Box<dyn MethodPlugin>, EngineError> {
        Ok(Box::new(Agem {
            sample_size: self.sample_size,
            seed: mix(&[run.seed, 0xA6E4]),
            counts: StageCounts::default(),
        }))
    }

    fn check(&self) -> Result<(), (String, String)> {
        if self.sample_size == 0 {
            return Err(("sample_size".into(), "must be at least 1".into()));
        }
        Ok(())
    }
}

/// The A-GEM plugin.
pub struct Agem {
    sample_size: usize,
    seed: u64,
    counts: StageCounts,
}

/// What A-GEM did in the current task, logged at its end (`agem` lines) and checkpointed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StageCounts {
    /// Steps with a reference gradient (an earlier task in the buffer).
    checked: u64,
    /// Of those, steps whose gradient was projected.
    projected: u64,
}

const COUNTS: &str = "counts.json";

/// A-GEM's projection coefficient: `Some(g·g_ref / g_ref·g_ref)` when the gradients conflict
/// (`g·g_ref < 0`), `None` (no projection) otherwise or when `g_ref` is zero.
pub fn projection_coefficient(dot: f64, ref_squared_norm: f64) -> Option<f64> {
    (dot < 0.0 && ref_squared_norm > 0.0).then(|| dot / ref_squared_norm)
}

/// Projects `g` against `g_ref` in place; returns whether it was changed.
pub fn project(g: &mut ParamVec, g_ref: &ParamVec) -> bool {
    match projection_coefficient(g.dot(g_ref), g_ref.dot(g_ref)) {
        Some(c) => {
            *g = g.minus_scaled(c, g_ref);
            true
        }
        None => false,
    }
}

impl MethodPlugin for Agem {
    fn name(&self) -> &str {
        "agem"
    }

    fn after_backward(&mut self, ctx: &mut GradContext<'_>) -> Result<(), EngineError> {
        // Earlier tasks' buffered samples only: the current task's are in the step's batch.
        let buffer = ctx.data.buffer();
        let pool: Vec<_> = buffer
            .tasks()
            .filter(|&t| (t as usize) < ctx.task)
            .flat_map(|t| buffer.task_slots(t).iter().map(|&s| buffer.sample(s)))
            .collect();
        if pool.is_empty() {
            return Ok(());
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(&[self.seed, ctx.step]));
        let refs: Vec<_> = sample(&mut rng, pool.len(), self.sample_size.min(pool.len()))
            .into_iter()
            .map(|i| pool[i])
            .collect();
        let batch = ctx.data.batch(&refs);
        let loss = finetune::sft_loss(ctx.model, &batch).mean;
        let reference = burn::optim::GradientsParams::from_grads(loss.backward(), ctx.model);
        ctx.spent.forwards += 1;
        ctx.spent.backwards += 1;
        ctx.spent.tokens += batch.tokens.real_tokens() as u64;
        let g_ref = ParamVec::grads(ctx.model, &reference);
        let mut g = ParamVec::grads(ctx.model, ctx.grads);
        self.counts.checked += 1;
        if project(&mut g, &g_ref) {
            g.write_grads(ctx.model, ctx.grads);
            self.counts.projected += 1;
        }
        Ok(())
    }

    fn after_training_exp(&mut self, ctx: &mut StageContext<'_>) -> Result<(), EngineError> {
        let c = std::mem::take(&mut self.counts);
        ctx.log.push(
            serde_json::json!({"type": "agem", "step": ctx.step, "task": ctx.task,
            "steps_checked": c.checked, "steps_projected": c.projected}),
        );
        Ok(())
    }

    fn save(&self, dir: &Path) -> Result<(), EngineError> {
        crate::results::write_json(&dir.join(COUNTS), &self.counts)
    }

    fn load(&mut self, dir: &Path, _model: &mut CausalLm) -> Result<(), EngineError> {
        let path = dir.join(COUNTS);
        let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
        self.counts = serde_json::from_str(&text)
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", path.display())))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Tensor, TensorData};

    fn vec_of(parts: &[&[f32]]) -> ParamVec {
        let device = Device::flex();
        ParamVec(
            parts
                .iter()
                .map(|p| Tensor::from_data(TensorData::new(p.to_vec(), [p.len()]), &device))
                .collect(),
        )
    }

    fn host(v: &ParamVec) -> Vec<Vec<f32>> {
        v.0.iter()
            .map(|t| t.clone().into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn a_conflicting_gradient_is_projected_onto_the_reference_half_space() {
        // g = ([1, 2], [3]), g_ref = ([1, 0], [-1]): g·g_ref = 1 − 3 = −2, |g_ref|² = 2,
        // coefficient −1, so g ← g + g_ref = ([2, 2], [2]); then g·g_ref = 2 − 2 = 0.
        let mut g = vec_of(&[&[1.0, 2.0], &[3.0]]);
        let g_ref = vec_of(&[&[1.0, 0.0], &[-1.0]]);
        assert_eq!(projection_coefficient(-2.0, 2.0), Some(-1.0));
        assert!(project(&mut g, &g_ref));
        assert_eq!(host(&g), vec![vec![2.0, 2.0], vec![2.0]]);
        assert!(g.dot(&g_ref).abs() < 1e-6);
    }

    #[test]
    fn an_agreeing_or_orthogonal_gradient_is_left_alone() {
        // g·g_ref = 1·2 + 2·1 = 4 > 0: no projection.
        let mut g = vec_of(&[&[1.0, 2.0]]);
        assert!(!project(&mut g, &vec_of(&[&[2.0, 1.0]])));
        assert_eq!(host(&g), vec![vec![1.0, 2.0]]);
        // Orthogonal (g·g_ref = 0): no projection either, nor with a zero reference.
        assert!(!project(&mut g, &vec_of(&[&[2.0, -1.0]])));
        assert!(!project(&mut g, &vec_of(&[&[0.0, 0.0]])));
        assert_eq!(projection_coefficient(0.0, 5.0), None);
        assert_eq!(projection_coefficient(-1.0, 0.0), None);
    }
}
