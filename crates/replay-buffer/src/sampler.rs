//! Samplers decide WHAT to replay: which buffered samples, drawn without replacement.

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::buffer::ReplayBuffer;
use crate::sample::Slot;
use crate::weighted::{CHUNK, WeightedReservoir, weighted_sample_without_replacement};

/// The buffer entries a sampler may draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidates<'a> {
    /// Every slot of the buffer.
    All,
    /// Only these slots (for example one task's, from [`ReplayBuffer::task_slots`]).
    Slots(&'a [Slot]),
}

impl Candidates<'_> {
    /// Number of candidates.
    pub fn len(&self, buffer: &ReplayBuffer) -> usize {
        match self {
            Self::All => buffer.len(),
            Self::Slots(s) => s.len(),
        }
    }

    /// Whether there is no candidate.
    pub fn is_empty(&self, buffer: &ReplayBuffer) -> bool {
        self.len(buffer) == 0
    }

    /// The slot of the `pos`-th candidate.
    #[inline]
    pub fn slot(&self, pos: usize) -> Slot {
        match self {
            Self::All => pos as Slot,
            Self::Slots(s) => s[pos],
        }
    }
}

/// A rule for choosing which buffered samples to replay.
///
/// Implement [`weights`](Sampler::weights); [`sample`](Sampler::sample) then draws without
/// replacement with probability proportional to them (successive sampling). Override `sample`
/// only for a faster exact method (as [`UniformSampler`] does).
pub trait Sampler {
    /// Writes into `out` (cleared first) one unnormalised weight `≥ 0` per candidate, in
    /// candidate order, as of global step `step`.
    fn weights(
        &self,
        buffer: &ReplayBuffer,
        candidates: Candidates<'_>,
        step: u64,
        out: &mut Vec<f32>,
    );

    /// Draws `min(k, candidates)` distinct slots (fewer only if some weights are zero).
    fn sample(
        &self,
        buffer: &ReplayBuffer,
        candidates: Candidates<'_>,
        k: usize,
        step: u64,
        rng: &mut dyn RngCore,
    ) -> Vec<Slot> {
        let mut w = Vec::new();
        self.weights(buffer, candidates, step, &mut w);
        weighted_sample_without_replacement(rng, &w, k)
            .into_iter()
            .map(|p| candidates.slot(p))
            .collect()
    }
}

/// First-draw probabilities of `sampler` over `candidates`: its weights normalised to sum to 1
/// (all zero if every weight is zero).
pub fn probabilities<S: Sampler + ?Sized>(
    sampler: &S,
    buffer: &ReplayBuffer,
    candidates: Candidates<'_>,
    step: u64,
) -> Vec<f64> {
    let mut w = Vec::new();
    sampler.weights(buffer, candidates, step, &mut w);
    let total: f64 = w.iter().map(|&x| x.max(0.0) as f64).sum();
    w.iter()
        .map(|&x| {
            if total > 0.0 {
                x.max(0.0) as f64 / total
            } else {
                0.0
            }
        })
        .collect()
}

/// Draws `k` of `n` positions with weights computed chunk by chunk by `fill(start, out)`
/// (positions `start..start + out.len()`): the same draw as computing all the weights first
/// and calling [`weighted_sample_without_replacement`], without the `n`-sized buffer.
fn sample_chunked(
    n: usize,
    k: usize,
    rng: &mut dyn RngCore,
    mut fill: impl FnMut(usize, &mut [f32]),
) -> Vec<usize> {
    let mut reservoir = WeightedReservoir::new(k);
    let mut buf = [0.0f32; CHUNK];
    let mut start = 0;
    while start < n {
        let out = &mut buf[..CHUNK.min(n - start)];
        fill(start, out);
        reservoir.push_chunk(rng, start, out);
        start += out.len();
    }
    reservoir.finish()
}

/// Memory strengths of candidates `start..start + out.len()`.
fn fill_strengths(
    buffer: &ReplayBuffer,
    candidates: Candidates<'_>,
    step: u64,
    start: usize,
    out: &mut [f32],
) {
    let memory = buffer.memory();
    match candidates {
        Candidates::All => memory.strengths_range(start, step, out),
        Candidates::Slots(s) => {
            for (o, &i) in out.iter_mut().zip(&s[start..]) {
                *o = memory.strength(i as usize, step);
            }
        }
    }
}

/// Smoothed losses of candidates `start..start + out.len()`.
fn fill_losses(buffer: &ReplayBuffer, candidates: Candidates<'_>, start: usize, out: &mut [f32]) {
    let losses = &buffer.memory().smoothed_loss;
    match candidates {
        Candidates::All => out.copy_from_slice(&losses[start..start + out.len()]),
        Candidates::Slots(s) => {
            for (o, &i) in out.iter_mut().zip(&s[start..]) {
                *o = losses[i as usize];
            }
        }
    }
}

/// Uniform sampling without replacement (the ablation baseline).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UniformSampler;

impl Sampler for UniformSampler {
    fn weights(&self, buffer: &ReplayBuffer, c: Candidates<'_>, _: u64, out: &mut Vec<f32>) {
        out.clear();
        out.resize(c.len(buffer), 1.0);
    }

    fn sample(
        &self,
        buffer: &ReplayBuffer,
        candidates: Candidates<'_>,
        k: usize,
        _step: u64,
        rng: &mut dyn RngCore,
    ) -> Vec<Slot> {
        let n = candidates.len(buffer);
        // Floyd's algorithm: O(k), independent of the buffer size.
        rand::seq::index::sample(rng, n, k.min(n))
            .into_iter()
            .map(|p| candidates.slot(p))
            .collect()
    }
}

/// Loss-prioritised sampling: `p_i ∝ (l̄_i + eps)^alpha`, with `l̄_i` the sample's smoothed loss
/// from the memory state (its loss at insertion, updated by every replay).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LossPrioritisedSampler {
    /// Priority exponent (prioritised experience replay's α). Default 1 (our choice).
    pub alpha: f32,
    /// Added to every loss so that learned samples keep a chance. Default 0.01 (our choice).
    pub eps: f32,
}

impl Default for LossPrioritisedSampler {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            eps: 0.01,
        }
    }
}

impl LossPrioritisedSampler {
    /// Turns smoothed losses into weights, in place.
    fn weigh(&self, out: &mut [f32]) {
        if self.alpha == 1.0 {
            out.iter_mut().for_each(|l| *l += self.eps);
        } else {
            out.iter_mut()
                .for_each(|l| *l = (*l + self.eps).powf(self.alpha));
        }
    }
}

impl Sampler for LossPrioritisedSampler {
    fn weights(&self, buffer: &ReplayBuffer, c: Candidates<'_>, _: u64, out: &mut Vec<f32>) {
        out.clear();
        out.resize(c.len(buffer), 0.0);
        fill_losses(buffer, c, 0, out);
        self.weigh(out);
    }

    fn sample(
        &self,
        buffer: &ReplayBuffer,
        c: Candidates<'_>,
        k: usize,
        _: u64,
        rng: &mut dyn RngCore,
    ) -> Vec<Slot> {
        sample_chunked(c.len(buffer), k, rng, |start, out| {
            fill_losses(buffer, c, start, out);
            self.weigh(out);
        })
        .into_iter()
        .map(|p| c.slot(p))
        .collect()
    }
}

/// MSSR's sampler: `p_i ∝ (1 / (m_i(t) + eps))^(1/temperature)`, where `m_i(t)` is the memory
/// strength. Weak (fading or badly recalled) samples are replayed first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StrengthSampler {
    /// `ε`. Default 0.05: since `m ∈ [0, 1]`, the priority ratio is at most
    /// `(1 + ε)/ε = 21` (METHODS.md section 3).
    pub eps: f32,
    /// Temperature `τ > 0`: `τ < 1` sharpens the preference for weak samples, `τ > 1`
    /// flattens it towards uniform. Default 1 (the plain rule).
    pub temperature: f32,
}

impl Default for StrengthSampler {
    fn default() -> Self {
        Self {
            eps: 0.05,
            temperature: 1.0,
        }
    }
}

impl StrengthSampler {
    /// The weight of a sample of strength `m`.
    #[inline]
    pub fn weight(&self, m: f32) -> f32 {
        let w = 1.0 / (m + self.eps);
        if self.temperature == 1.0 {
            w
        } else {
            w.powf(1.0 / self.temperature)
        }
    }
}

impl StrengthSampler {
    /// Turns strengths into weights, in place.
    fn weigh(&self, out: &mut [f32]) {
        if self.temperature == 1.0 {
            out.iter_mut().for_each(|m| *m = 1.0 / (*m + self.eps));
        } else {
            out.iter_mut().for_each(|m| *m = self.weight(*m));
        }
    }
}

impl Sampler for StrengthSampler {
    fn weights(&self, buffer: &ReplayBuffer, c: Candidates<'_>, step: u64, out: &mut Vec<f32>) {
        out.clear();
        out.resize(c.len(buffer), 0.0);
        fill_strengths(buffer, c, step, 0, out);
        self.weigh(out);
    }

    /// Exact successive sampling, by one of two methods:
    ///
    /// - when `4·k ≤ n`, rejection: since `0 ≤ m ≤ 1`, every weight lies in
    ///   `[w(1), w(0)]` (a ratio of at most 21 at the defaults), so drawing a uniform
    ///   candidate not yet chosen and accepting it with probability `w / w(0)` picks it with
    ///   probability proportional to its weight among the remaining ones. It evaluates about
    ///   `k · w(0) / mean(w) ≤ 21·k` strengths, independent of `n`.
    /// - otherwise (or if rejection takes implausibly many tries, e.g. a tiny temperature):
    ///   one fused pass over all candidates ([`WeightedReservoir`]).
    fn sample(
        &self,
        buffer: &ReplayBuffer,
        c: Candidates<'_>,
        k: usize,
        step: u64,
        rng: &mut dyn RngCore,
    ) -> Vec<Slot> {
        let n = c.len(buffer);
        let k = k.min(n);
        if k > 0
            && 4 * k <= n
            && let Some(slots) = self.sample_by_rejection(buffer, c, n, k, step, rng)
        {
            return slots;
        }
        sample_chunked(n, k, rng, |start, out| {
            fill_strengths(buffer, c, step, start, out);
            self.weigh(out);
        })
        .into_iter()
        .map(|p| c.slot(p))
        .collect()
    }
}

impl StrengthSampler {
    /// Rejection sampling of `k` of the `n` candidates; `None` after too many tries.
    fn sample_by_rejection(
        &self,
        buffer: &ReplayBuffer,
        c: Candidates<'_>,
        n: usize,
        k: usize,
        step: u64,
        rng: &mut dyn RngCore,
    ) -> Option<Vec<Slot>> {
        let (w_max, w_min) = (self.weight(0.0), self.weight(1.0));
        if !(w_max.is_finite() && w_min > 0.0) {
            return None;
        }
        // Expected tries are at most k·(w_max/w_min)·(4/3) (duplicates are redrawn, at most
        // a quarter of the candidates are chosen); allow 8 times that.
        let max_tries = 8 * k * ((w_max / w_min).ceil() as usize + 1) + 64;
        let memory = buffer.memory();
        let mut chosen: Vec<Slot> = Vec::with_capacity(k);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..max_tries {
            let slot = c.slot(rng.random_range(0..n));
            let duplicate = if k <= 64 {
                chosen.contains(&slot)
            } else {
                seen.contains(&slot)
            };
            if duplicate {
                continue;
            }
            let w = self.weight(memory.strength(slot as usize, step));
            if rng.random::<f32>() * w_max < w {
                chosen.push(slot);
                if k > 64 {
                    seen.insert(slot);
                }
                if chosen.len() == k {
                    return Some(chosen);
                }
            }
        }
        None
    }
}

/// The built-in samplers, as serialisable configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SamplerKind {
    /// [`UniformSampler`].
    #[default]
    Uniform,
    /// [`LossPrioritisedSampler`].
    LossPrioritised(LossPrioritisedSampler),
    /// [`StrengthSampler`] (MSSR).
    Strength(StrengthSampler),
}

impl Sampler for SamplerKind {
    fn weights(&self, buffer: &ReplayBuffer, c: Candidates<'_>, step: u64, out: &mut Vec<f32>) {
        match self {
            Self::Uniform => UniformSampler.weights(buffer, c, step, out),
            Self::LossPrioritised(s) => s.weights(buffer, c, step, out),
            Self::Strength(s) => s.weights(buffer, c, step, out),
        }
    }

    fn sample(
        &self,
        buffer: &ReplayBuffer,
        c: Candidates<'_>,
        k: usize,
        step: u64,
        rng: &mut dyn RngCore,
    ) -> Vec<Slot> {
        match self {
            Self::Uniform => UniformSampler.sample(buffer, c, k, step, rng),
            Self::LossPrioritised(s) => s.sample(buffer, c, k, step, rng),
            Self::Strength(s) => s.sample(buffer, c, k, step, rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Buffer, CapacityPolicy, InsertionPolicy, ReplayBufferConfig};
    use crate::sample::SampleRef;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn buffer_with_losses(losses: &[f32]) -> ReplayBuffer {
        let mut b = ReplayBufferConfig {
            capacity: CapacityPolicy::Total {
                capacity: losses.len().max(1),
            },
            insertion: InsertionPolicy::FirstK,
            ..Default::default()
        }
        .init();
        for (i, &l) in losses.iter().enumerate() {
            b.offer(SampleRef::new((i % 3) as u32, i as u32), l, 0, None);
        }
        b
    }

    #[test]
    fn strength_weights_match_hand_computed_values() {
        // At step 0 (R = 1): m = exp(-l̄). l̄ = 0 → m = 1, w = 1/1.05 = 0.952381;
        // l̄ = ln 2 → m = 0.5, w = 1/0.55 = 1.818182; l̄ = 100 → m ≈ 0, w = 1/0.05 = 20.
        let b = buffer_with_losses(&[0.0, std::f32::consts::LN_2, 100.0]);
        let mut w = Vec::new();
        StrengthSampler::default().weights(&b, Candidates::All, 0, &mut w);
        assert!((w[0] - 0.952_381).abs() < 1e-5);
        assert!((w[1] - 1.818_182).abs() < 1e-5);
        assert!((w[2] - 20.0).abs() < 1e-3);
        // Temperature 2 takes the square root: sqrt(20) = 4.472136.
        let hot = StrengthSampler {
            temperature: 2.0,
            ..Default::default()
        };
        assert!((hot.weight(0.0) - 4.472_136).abs() < 1e-5);
    }

    #[test]
    fn uniform_sampler_draws_distinct_candidates_only() {
        let b = buffer_with_losses(&[0.5; 30]);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let slots = b.task_slots(1).to_vec();
        let mut s = UniformSampler.sample(&b, Candidates::Slots(&slots), 100, 0, &mut rng);
        assert_eq!(s.len(), 10);
        s.sort();
        let mut expected = slots.clone();
        expected.sort();
        assert_eq!(s, expected);
    }

    #[test]
    fn fused_sampling_draws_the_same_as_the_generic_path() {
        // 3000 entries span three chunks; the fused path must equal weights-then-draw.
        let losses: Vec<f32> = (0..3000).map(|i| (i % 37) as f32 * 0.1).collect();
        let b = buffer_with_losses(&losses);
        let slots = b.task_slots(2).to_vec();
        for kind in [
            SamplerKind::Strength(StrengthSampler::default()),
            SamplerKind::Strength(StrengthSampler {
                eps: 0.1,
                temperature: 0.5,
            }),
            SamplerKind::LossPrioritised(LossPrioritisedSampler::default()),
        ] {
            for c in [Candidates::All, Candidates::Slots(&slots)] {
                let mut w = Vec::new();
                kind.weights(&b, c, 50, &mut w);
                let mut r1 = ChaCha8Rng::seed_from_u64(4);
                let mut r2 = ChaCha8Rng::seed_from_u64(4);
                let k = if c == Candidates::All { 1000 } else { 300 };
                let generic: Vec<Slot> = weighted_sample_without_replacement(&mut r1, &w, k)
                    .into_iter()
                    .map(|p| c.slot(p))
                    .collect();
                assert_eq!(kind.sample(&b, c, k, 50, &mut r2), generic, "{kind:?}");
            }
        }
    }

    #[test]
    fn rejection_sampling_follows_the_strength_weights() {
        // 400 samples in 4 groups of losses 0, 0.5, 1.5, 4 (at step 0, m = exp(-l)):
        // m = 1, 0.60653, 0.22313, 0.018316; weights 1/(m + 0.05) = 0.95238, 1.52316,
        // 3.66126, 14.6379, sum 20.7747 → per-group first-draw probabilities w/Σw = 0.04584,
        // 0.07332, 0.17624, 0.70460 (the ×100 samples per group cancels).
        let losses: Vec<f32> = (0..400).map(|i| [0.0, 0.5, 1.5, 4.0][i % 4]).collect();
        let b = buffer_with_losses(&losses);
        let sampler = StrengthSampler::default();
        let p = probabilities(&sampler, &b, Candidates::All, 0);
        let expected: Vec<f64> = (0..4).map(|g| p.iter().skip(g).step_by(4).sum()).collect();
        assert!((expected[3] - 0.7046).abs() < 1e-4, "{expected:?}");
        assert!((expected[0] - 0.04584).abs() < 1e-4, "{expected:?}");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0usize; 4];
        let draws = 20_000;
        for _ in 0..draws {
            // k = 1 of 400: the rejection path
            counts[sampler.sample(&b, Candidates::All, 1, 0, &mut rng)[0] as usize % 4] += 1;
        }
        for g in 0..4 {
            let f = counts[g] as f64 / draws as f64;
            let sd = (expected[g] * (1.0 - expected[g]) / draws as f64).sqrt();
            assert!(
                (f - expected[g]).abs() < 4.0 * sd,
                "group {g}: {f} vs {}",
                expected[g]
            );
        }
    }

    #[test]
    fn loss_prioritised_weights_are_loss_plus_eps() {
        let b = buffer_with_losses(&[0.0, 1.0, 3.0]);
        let mut w = Vec::new();
        LossPrioritisedSampler::default().weights(&b, Candidates::Slots(&[2, 0]), 0, &mut w);
        assert_eq!(w, vec![3.01, 0.01]);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::buffer::{Buffer, CapacityPolicy, InsertionPolicy, ReplayBufferConfig};
    use crate::sample::{SampleRef, SlotLoss};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn kinds() -> impl Strategy<Value = SamplerKind> {
        prop_oneof![
            Just(SamplerKind::Uniform),
            (0.1f32..3.0, 0.001f32..1.0).prop_map(|(alpha, eps)| SamplerKind::LossPrioritised(
                LossPrioritisedSampler { alpha, eps }
            )),
            (0.01f32..0.5, 0.2f32..5.0).prop_map(|(eps, temperature)| SamplerKind::Strength(
                StrengthSampler { eps, temperature }
            )),
        ]
    }

    /// A buffer with arbitrary losses, insertion steps and some replays.
    fn buffer(entries: &[(f32, u64)], replays: &[(usize, f32)]) -> ReplayBuffer {
        let mut b = ReplayBufferConfig {
            capacity: CapacityPolicy::Total { capacity: 10_000 },
            insertion: InsertionPolicy::FirstK,
            ..Default::default()
        }
        .init();
        for (i, &(l, t)) in entries.iter().enumerate() {
            b.offer(SampleRef::new((i % 4) as u32, i as u32), l, t, None);
        }
        let losses: Vec<SlotLoss> = replays
            .iter()
            .map(|&(i, loss)| SlotLoss {
                slot: (i % b.len()) as Slot,
                loss,
            })
            .collect();
        b.record_replay(1000, &losses);
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn probabilities_sum_to_one(
            kind in kinds(),
            entries in proptest::collection::vec((0.0f32..10.0, 0u64..1000), 1..200),
            replays in proptest::collection::vec((0usize..200, 0.0f32..5.0), 0..50),
            step in 1000u64..5000,
        ) {
            let b = buffer(&entries, &replays);
            let p = probabilities(&kind, &b, Candidates::All, step);
            let total: f64 = p.iter().sum();
            prop_assert!((total - 1.0).abs() < 1e-9, "{total}");
            prop_assert!(p.iter().all(|&x| x >= 0.0));
            let slots = b.task_slots(0).to_vec();
            let p = probabilities(&kind, &b, Candidates::Slots(&slots), step);
            prop_assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }

        #[test]
        fn sampling_without_replacement_never_repeats(
            kind in kinds(),
            entries in proptest::collection::vec((0.0f32..10.0, 0u64..1000), 1..200),
            k in 0usize..250,
            seed in 0u64..1000,
        ) {
            let b = buffer(&entries, &[]);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut s = kind.sample(&b, Candidates::All, k, 1000, &mut rng);
            prop_assert_eq!(s.len(), k.min(b.len()));
            s.sort();
            let n = s.len();
            s.dedup();
            prop_assert_eq!(s.len(), n);
            prop_assert!(s.iter().all(|&x| (x as usize) < b.len()));
        }

        #[test]
        fn weaker_samples_get_more_weight(
            entries in proptest::collection::vec((0.0f32..10.0, 0u64..1000), 2..100),
            replays in proptest::collection::vec((0usize..100, 0.0f32..5.0), 0..30),
            eps in 0.01f32..0.5,
            temperature in 0.2f32..5.0,
            step in 1000u64..5000,
        ) {
            let b = buffer(&entries, &replays);
            let sampler = StrengthSampler { eps, temperature };
            let p = probabilities(&sampler, &b, Candidates::All, step);
            for i in 0..b.len() {
                for j in 0..b.len() {
                    let (mi, mj) = (b.memory().strength(i, step), b.memory().strength(j, step));
                    if mi < mj {
                        prop_assert!(p[i] >= p[j], "m {mi} < {mj} but p {} < {}", p[i], p[j]);
                    }
                }
            }
        }
    }
}
