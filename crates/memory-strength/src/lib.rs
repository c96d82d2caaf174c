//! Per-sample memory state for memory-aware replay (MSSR): forgetting curves, recall quality,
//! memory strength and the lazy stability update, in pure Rust.
//!
//! This crate implements section 3 of `shared/docs/METHODS.md`. Each buffered sample `i` has
//!
//! - `l̄_i`, its smoothed loss; `q_i = exp(-l̄_i)` is its *recall quality*;
//! - `t_i`, the global step of its last review;
//! - `S_i > 0`, its *stability* in steps;
//! - `n_i`, how many times it has been replayed.
//!
//! Its retention is `R_i(t) = exp(-(t - t_i)/S_i)` (or a power law, see [`RetentionModel`]) and
//! its *memory strength* is `m_i(t) = R_i(t) · q_i`. After a sample is replayed with loss `l`
//! the [lazy update](MemoryState::update_after_replay) smooths the loss, grows `S_i` when the
//! sample was recalled well (most when it was close to being forgotten) and cuts it on a lapse.
//!
//! The state is stored as a struct of arrays ([`MemoryState`]) whose index `i` is the replay
//! buffer's slot: the buffer keeps both aligned, also across `swap_remove`.
//!
//! ```
//! use memory_strength::MemoryConfig;
//!
//! let mut memory = MemoryConfig::default().init();
//! let i = memory.insert(1.0, 0); // a sample with loss 1.0 enters at step 0
//! // After S0 = 200 steps its retention is exp(-1), its quality exp(-1.0).
//! assert!((memory.strength(i, 200) - (-2.0f32).exp()).abs() < 1e-6);
//! memory.update_after_replay(&[i], &[0.2], 200); // rehearsed well: stability grows
//! assert!(memory.stability[i] > 200.0);
//! ```
#![warn(missing_docs)]

mod retention;

pub use retention::RetentionModel;

use serde::{Deserialize, Serialize};

/// Every constant of the memory model, with the METHODS.md section 3 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryConfig {
    /// `S0`: stability (in steps) of a sample when it enters the buffer. Default 200.
    pub initial_stability: f32,
    /// `β`: weight of the old smoothed loss, `l̄ ← β·l̄ + (1-β)·l`. Default 0.7.
    pub loss_smoothing: f32,
    /// `γ`: stability gain, `S ← S·(1 + γ·q·(1-R))` on a successful recall. Default 2.
    pub stability_gain: f32,
    /// `q_min`: a replay with recall quality `exp(-l) ≥ q_min` is a success, otherwise a
    /// lapse. Default 0.5 (a loss of `ln 2 ≈ 0.693`).
    pub min_recall_quality: f32,
    /// `λ_lapse`: stability factor on a lapse, `S ← max(S_min, S·λ_lapse)`. Default 0.5.
    pub lapse_factor: f32,
    /// `S_min`: lower bound on stability, in steps. Default 1 (our choice: one step, the
    /// shortest meaningful memory; it also keeps `S > 0`).
    pub min_stability: f32,
    /// `S_max`: upper bound on stability, in steps. Default 1e5 (our choice: far longer than a
    /// fine-tuning run, so the cap only guards against overflow).
    pub max_stability: f32,
    /// Losses are clamped to `[0, loss_cap]` before use; a NaN loss at insertion counts as
    /// `loss_cap`, a NaN loss in an update is ignored. Default 100 (our choice:
    /// `exp(-100) ≈ 0`, and the state stays finite, hence serialisable as JSON).
    pub loss_cap: f32,
    /// The forgetting curve. Default [`RetentionModel::Exponential`].
    pub retention: RetentionModel,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            initial_stability: 200.0,
            loss_smoothing: 0.7,
            stability_gain: 2.0,
            min_recall_quality: 0.5,
            lapse_factor: 0.5,
            min_stability: 1.0,
            max_stability: 1e5,
            loss_cap: 100.0,
            retention: RetentionModel::Exponential,
        }
    }
}

impl MemoryConfig {
    /// An empty [`MemoryState`] using this configuration.
    pub fn init(&self) -> MemoryState {
        MemoryState {
            config: *self,
            smoothed_loss: Vec::new(),
            last_review: Vec::new(),
            stability: Vec::new(),
            reviews: Vec::new(),
        }
    }

    /// The stability after a review with recall quality `q` at retention `r`
    /// (the strength update with its lapse rule).
    ///
    /// `q ≥ q_min`: `min(S_max, S·(1 + γ·q·(1-R)))`; otherwise `max(S_min, S·λ_lapse)`.
    #[inline]
    pub fn next_stability(&self, stability: f32, retention: f32, quality: f32) -> f32 {
        if quality >= self.min_recall_quality {
            (stability * (1.0 + self.stability_gain * quality * (1.0 - retention)))
                .min(self.max_stability)
        } else {
            (stability * self.lapse_factor).max(self.min_stability)
        }
    }

    #[inline]
    fn clamp_loss(&self, loss: f32) -> f32 {
        if loss.is_nan() {
            self.loss_cap
        } else {
            loss.clamp(0.0, self.loss_cap)
        }
    }
}

/// Recall quality `q = exp(-l̄)` of a (smoothed) loss: the per-token likelihood of the answer.
#[inline]
pub fn recall_quality(loss: f32) -> f32 {
    (-loss).exp()
}

/// Per-sample memory state as a struct of arrays; index `i` is the replay buffer's slot.
///
/// Invariants: the four arrays have the same length; `stability` lies in `[S_min, S_max]`;
/// `smoothed_loss` lies in `[0, loss_cap]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryState {
    /// The configuration used by every update.
    pub config: MemoryConfig,
    /// `l̄_i`: exponentially smoothed loss.
    pub smoothed_loss: Vec<f32>,
    /// `t_i`: global step of the last review (or of insertion).
    pub last_review: Vec<u64>,
    /// `S_i`: stability in steps.
    pub stability: Vec<f32>,
    /// `n_i`: number of replays.
    pub reviews: Vec<u32>,
}

impl Default for MemoryState {
    fn default() -> Self {
        MemoryConfig::default().init()
    }
}

impl MemoryState {
    /// Number of samples tracked.
    pub fn len(&self) -> usize {
        self.stability.len()
    }

    /// Whether no sample is tracked.
    pub fn is_empty(&self) -> bool {
        self.stability.is_empty()
    }

    /// Appends a sample that enters the buffer at `step` with loss `loss`
    /// (`t_i = step`, `S_i = S0`, `l̄_i = loss`, `n_i = 0`) and returns its index.
    pub fn insert(&mut self, loss: f32, step: u64) -> usize {
        let loss = self.config.clamp_loss(loss);
        self.smoothed_loss.push(loss);
        self.last_review.push(step);
        self.stability.push(self.config.initial_stability);
        self.reviews.push(0);
        self.len() - 1
    }

    /// Resets index `i` to a fresh sample entering at `step` with `loss` (used when an
    /// insertion policy overwrites a slot).
    pub fn reset(&mut self, i: usize, loss: f32, step: u64) {
        self.smoothed_loss[i] = self.config.clamp_loss(loss);
        self.last_review[i] = step;
        self.stability[i] = self.config.initial_stability;
        self.reviews[i] = 0;
    }

    /// Removes index `i` by moving the last sample into its place (`Vec::swap_remove` on every
    /// array), exactly as the buffer does with its own arrays, so indices stay aligned.
    pub fn swap_remove(&mut self, i: usize) {
        self.smoothed_loss.swap_remove(i);
        self.last_review.swap_remove(i);
        self.stability.swap_remove(i);
        self.reviews.swap_remove(i);
    }

    /// Retention `R_i(t)` of sample `i` at step `t`.
    #[inline]
    pub fn retention(&self, i: usize, t: u64) -> f32 {
        let dt = t.saturating_sub(self.last_review[i]) as f32;
        self.config.retention.retention(dt, self.stability[i])
    }

    /// Recall quality `q_i = exp(-l̄_i)` of sample `i`.
    #[inline]
    pub fn recall_quality(&self, i: usize) -> f32 {
        recall_quality(self.smoothed_loss[i])
    }

    /// Memory strength `m_i(t) = R_i(t) · q_i`, computed as `exp(-(-ln R + l̄))` with one
    /// `exp`.
    #[inline]
    pub fn strength(&self, i: usize, t: u64) -> f32 {
        let dt = t.saturating_sub(self.last_review[i]) as f32;
        let forgetting = self
            .config
            .retention
            .neg_log_retention(dt, self.stability[i]);
        (-(forgetting + self.smoothed_loss[i])).exp()
    }

    /// Strengths at step `t` of the indices `start..start + out.len()`, written to `out`:
    /// the same values as [`strength`](Self::strength), reading the arrays sequentially.
    pub fn strengths_range(&self, start: usize, t: u64, out: &mut [f32]) {
        let end = start + out.len();
        match self.config.retention {
            RetentionModel::Exponential => {
                let last = &self.last_review[start..end];
                let stability = &self.stability[start..end];
                let loss = &self.smoothed_loss[start..end];
                for (((o, &l), &s), &lb) in out.iter_mut().zip(last).zip(stability).zip(loss) {
                    let dt = t.saturating_sub(l) as f32;
                    *o = (-(dt / s + lb)).exp();
                }
            }
            _ => {
                for (o, i) in out.iter_mut().zip(start..end) {
                    *o = self.strength(i, t);
                }
            }
        }
    }

    /// Strengths at step `t` of the given indices (all indices when `None`), written to `out`.
    pub fn strengths_into(&self, indices: Option<&[u32]>, t: u64, out: &mut Vec<f32>) {
        out.clear();
        match indices {
            None => {
                out.resize(self.len(), 0.0);
                self.strengths_range(0, t, out);
            }
            Some(ix) => out.extend(ix.iter().map(|&i| self.strength(i as usize, t))),
        }
    }

    /// Mean strength at step `t` over `indices` (`None` if `indices` is empty).
    pub fn mean_strength(&self, indices: &[u32], t: u64) -> Option<f32> {
        if indices.is_empty() {
            return None;
        }
        let sum: f64 = indices
            .iter()
            .map(|&i| self.strength(i as usize, t) as f64)
            .sum();
        Some((sum / indices.len() as f64) as f32)
    }

    /// The lazy update of one sample replayed at `step` with per-sample loss `loss`:
    ///
    /// `R = R_i(step)`, `l̄_i ← β·l̄_i + (1-β)·l`, `q = exp(-l)`, then the strength update with
    /// its lapse rule ([`MemoryConfig::next_stability`]), `t_i ← step`, `n_i ← n_i + 1`.
    /// A NaN loss leaves the sample untouched.
    #[inline]
    pub fn update_one(&mut self, i: usize, loss: f32, step: u64) {
        if loss.is_nan() {
            return;
        }
        let cfg = self.config;
        let loss = cfg.clamp_loss(loss);
        let r = self.retention(i, step);
        self.smoothed_loss[i] =
            cfg.loss_smoothing * self.smoothed_loss[i] + (1.0 - cfg.loss_smoothing) * loss;
        let q = recall_quality(loss);
        self.stability[i] = cfg.next_stability(self.stability[i], r, q);
        // Never move the review time backwards (a late-arriving loss from an older step).
        self.last_review[i] = self.last_review[i].max(step);
        self.reviews[i] = self.reviews[i].saturating_add(1);
    }

    /// The lazy update after a replay batch trained at `step`: `losses[j]` is the per-sample
    /// loss of `indices[j]` from the replay batch's own forward pass (no extra passes).
    ///
    /// # Panics
    /// If the slices differ in length or an index is out of range.
    pub fn update_after_replay(&mut self, indices: &[usize], losses: &[f32], step: u64) {
        assert_eq!(
            indices.len(),
            losses.len(),
            "one loss per replayed sample is required"
        );
        for (&i, &l) in indices.iter().zip(losses) {
            self.update_one(i, l, step);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn defaults_match_methods_md() {
        let c = MemoryConfig::default();
        assert_eq!(c.initial_stability, 200.0);
        assert_eq!(c.loss_smoothing, 0.7);
        assert_eq!(c.stability_gain, 2.0);
        assert_eq!(c.min_recall_quality, 0.5);
        assert_eq!(c.lapse_factor, 0.5);
        assert_eq!(c.retention, RetentionModel::Exponential);
    }

    #[test]
    fn inserted_sample_starts_with_initial_state() {
        let mut m = MemoryConfig::default().init();
        let i = m.insert(0.4, 17);
        assert_eq!(i, 0);
        assert_eq!(m.smoothed_loss[i], 0.4);
        assert_eq!(m.last_review[i], 17);
        assert_eq!(m.stability[i], 200.0);
        assert_eq!(m.reviews[i], 0);
    }

    #[test]
    fn strength_is_retention_times_recall_quality() {
        let mut m = MemoryConfig::default().init();
        // l̄ = ln 2 → q = 0.5; dt = 100, S = 200 → R = exp(-0.5) = 0.606531.
        let i = m.insert(std::f32::consts::LN_2, 0);
        assert!(close(m.recall_quality(i), 0.5, 1e-6));
        assert!(close(m.retention(i, 100), 0.606_531, 1e-6));
        // m = 0.606531 · 0.5 = 0.303265
        assert!(close(m.strength(i, 100), 0.303_265, 1e-6));
    }

    #[test]
    fn good_recall_of_a_fading_sample_grows_stability() {
        let mut m = MemoryConfig::default().init();
        let i = m.insert(1.0, 0);
        // Replayed at t = 100 with loss 0.2:
        //   R = exp(-100/200) = 0.606531
        //   l̄ = 0.7·1.0 + 0.3·0.2 = 0.76
        //   q = exp(-0.2) = 0.818731 ≥ 0.5 → success
        //   S = 200·(1 + 2·0.818731·(1 - 0.606531)) = 200·(1 + 0.644292) = 328.858
        m.update_after_replay(&[i], &[0.2], 100);
        assert!(close(m.smoothed_loss[i], 0.76, 1e-6));
        assert!(close(m.stability[i], 328.858, 1e-2), "{}", m.stability[i]);
        assert_eq!(m.last_review[i], 100);
        assert_eq!(m.reviews[i], 1);
        // Just reviewed: R = 1, so m = q(l̄) = exp(-0.76) = 0.467666
        assert!(close(m.strength(i, 100), 0.467_666, 1e-6));
    }

    #[test]
    fn lapse_halves_stability() {
        let mut m = MemoryConfig::default().init();
        let i = m.insert(0.1, 0);
        // Replayed at t = 50 with loss 1.0: q = exp(-1) = 0.3679 < 0.5 → lapse, S = 200·0.5.
        m.update_after_replay(&[i], &[1.0], 50);
        assert_eq!(m.stability[i], 100.0);
        // l̄ = 0.7·0.1 + 0.3·1.0 = 0.37
        assert!(close(m.smoothed_loss[i], 0.37, 1e-6));
    }

    #[test]
    fn stability_is_clamped_to_its_bounds() {
        let cfg = MemoryConfig {
            min_stability: 60.0,
            max_stability: 250.0,
            ..MemoryConfig::default()
        };
        // Lapse: 100·0.5 = 50 → clamped up to 60.
        assert_eq!(cfg.next_stability(100.0, 0.5, 0.1), 60.0);
        // Success with R = 0, q = 1: 200·(1 + 2) = 600 → clamped down to 250.
        assert_eq!(cfg.next_stability(200.0, 0.0, 1.0), 250.0);
    }

    #[test]
    fn immediate_review_does_not_change_stability() {
        // R = 1 at dt = 0, so the gain term γ·q·(1-R) vanishes (spacing effect: massed
        // repetition does not strengthen).
        let cfg = MemoryConfig::default();
        assert_eq!(cfg.next_stability(200.0, 1.0, 0.9), 200.0);
    }

    #[test]
    fn nan_loss_is_ignored_in_updates_and_capped_at_insertion() {
        let mut m = MemoryConfig::default().init();
        let i = m.insert(f32::NAN, 0);
        assert_eq!(m.smoothed_loss[i], 100.0);
        let before = m.clone();
        m.update_after_replay(&[i], &[f32::NAN], 10);
        assert_eq!(m, before);
    }

    #[test]
    fn swap_remove_keeps_arrays_aligned() {
        let mut m = MemoryConfig::default().init();
        for k in 0..4 {
            m.insert(k as f32, k);
        }
        m.swap_remove(1);
        assert_eq!(m.len(), 3);
        // The last sample (loss 3, step 3) moved into index 1.
        assert_eq!(m.smoothed_loss[1], 3.0);
        assert_eq!(m.last_review[1], 3);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut m = MemoryConfig {
            retention: RetentionModel::PowerLaw { k: 2.0 },
            ..MemoryConfig::default()
        }
        .init();
        for k in 0..10 {
            m.insert(0.1 * k as f32, k);
        }
        m.update_after_replay(&[1, 3, 5], &[0.3, 2.0, 0.01], 77);
        let json = serde_json::to_string(&m).unwrap();
        let back: MemoryState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn batch_strengths_equal_single_strengths() {
        for retention in [RetentionModel::Exponential, RetentionModel::power_law()] {
            let mut m = MemoryConfig {
                retention,
                ..Default::default()
            }
            .init();
            for k in 0..50u64 {
                m.insert((k % 7) as f32 * 0.3, k * 3);
            }
            m.update_after_replay(&[3, 9, 27], &[0.1, 2.0, 0.5], 200);
            let mut all = Vec::new();
            m.strengths_into(None, 400, &mut all);
            for (i, &s) in all.iter().enumerate() {
                assert_eq!(s, m.strength(i, 400));
            }
        }
    }

    #[test]
    fn mean_strength_of_no_samples_is_none() {
        let m = MemoryConfig::default().init();
        assert_eq!(m.mean_strength(&[], 0), None);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn stability_stays_within_bounds_under_any_updates(
            ops in proptest::collection::vec((0u64..500, 0.0f32..20.0), 1..60),
        ) {
            let mut m = MemoryConfig::default().init();
            let i = m.insert(1.0, 0);
            let mut t = 0;
            for (gap, loss) in ops {
                t += gap;
                m.update_after_replay(&[i], &[loss], t);
                let s = m.stability[i];
                prop_assert!((1.0..=1e5).contains(&s), "{s}");
                let st = m.strength(i, t + gap);
                prop_assert!((0.0..=1.0).contains(&st));
            }
        }

        #[test]
        fn strength_decreases_with_time_and_with_loss(
            loss in 0.0f32..10.0, dt in 0u64..10_000, extra in 1u64..1000,
        ) {
            let mut m = MemoryConfig::default().init();
            let a = m.insert(loss, 0);
            let b = m.insert(loss + 0.5, 0);
            prop_assert!(m.strength(a, dt + extra) <= m.strength(a, dt));
            prop_assert!(m.strength(b, dt) <= m.strength(a, dt));
        }
    }
}
