//! Weighted sampling without replacement in one pass (Efraimidis–Spirakis with exponential
//! jumps).

use rand::{Rng, RngCore};

/// Weights are processed in chunks of this many positions.
pub(crate) const CHUNK: usize = 1024;

/// Draws `min(k, #positive weights)` distinct positions of `weights`, with the distribution of
/// successive sampling: each draw picks a remaining position with probability proportional to
/// its weight. Positions whose weight is zero, negative or NaN are never drawn.
///
/// This is Efraimidis & Spirakis' A-ExpJ ("Weighted random sampling with a reservoir", 2006):
/// every position gets the key `u^(1/w)` (here `ln(u)/w`, the same order without underflow)
/// and the `k` largest keys win; instead of drawing a key for each position, it draws how much
/// weight to skip before the next position enters the reservoir. One pass over the weights,
/// `O(k·log(n/k))` random numbers, and a reservoir of `k` entries scanned linearly (fine for
/// replay batch sizes). The positions are returned in the order of decreasing key, i.e. a
/// sample of the successive-sampling process in draw order.
pub fn weighted_sample_without_replacement(
    rng: &mut dyn RngCore,
    weights: &[f32],
    k: usize,
) -> Vec<usize> {
    let mut r = WeightedReservoir::new(k);
    for (c, chunk) in weights.chunks(CHUNK).enumerate() {
        r.push_chunk(rng, c * CHUNK, chunk);
    }
    r.finish()
}

/// The streaming form of [`weighted_sample_without_replacement`]: feed the weights chunk by
/// chunk (so they can be computed into a small buffer that stays in cache), then
/// [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub struct WeightedReservoir {
    k: usize,
    /// (key = ln(u)/w, position)
    reservoir: Vec<(f64, usize)>,
    min_pos: usize,
    /// The smallest key in the reservoir (`ln T`, ≤ 0).
    threshold: f64,
    /// Weight still to skip before the next insertion.
    skip: f64,
}

#[inline]
fn valid(w: f32) -> bool {
    w > 0.0 // false for NaN
}

/// u in (0, 1], so ln(u) is finite and ≤ 0.
#[inline]
fn unit(rng: &mut dyn RngCore) -> f64 {
    1.0 - rng.random::<f64>()
}

impl WeightedReservoir {
    /// An empty reservoir for `k` positions.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            reservoir: Vec::with_capacity(k),
            min_pos: 0,
            threshold: 0.0,
            skip: 0.0,
        }
    }

    fn full(&self) -> bool {
        self.reservoir.len() == self.k
    }

    /// Feeds the weights of positions `offset..offset + weights.len()`.
    pub fn push_chunk(&mut self, rng: &mut dyn RngCore, offset: usize, weights: &[f32]) {
        if self.k == 0 {
            return;
        }
        let mut i = 0;
        while !self.full() && i < weights.len() {
            let w = weights[i];
            if valid(w) {
                self.reservoir.push((unit(rng).ln() / w as f64, offset + i));
                if self.full() {
                    self.reset_threshold(rng);
                }
            }
            i += 1;
        }
        let rest = &weights[i..];
        if rest.is_empty() {
            return;
        }
        // Fast path: the whole rest of the chunk is skipped.
        let total = chunk_sum(rest);
        if self.skip > total {
            self.skip -= total;
            return;
        }
        for (j, &w) in rest.iter().enumerate() {
            if !valid(w) {
                continue;
            }
            let w = w as f64;
            self.skip -= w;
            if self.skip <= 0.0 {
                // The new key is uniform on (T^w, 1] raised to 1/w, i.e. above the threshold.
                let tw = (w * self.threshold).exp();
                let r2 = tw + (1.0 - tw) * unit(rng);
                self.reservoir[self.min_pos] = (r2.ln() / w, offset + i + j);
                self.reset_threshold(rng);
            }
        }
    }

    /// Recomputes the smallest key and draws the next skip: `X = ln(r) / ln(T)`.
    fn reset_threshold(&mut self, rng: &mut dyn RngCore) {
        let mut best = 0;
        for (j, e) in self.reservoir.iter().enumerate() {
            if e.0 < self.reservoir[best].0 {
                best = j;
            }
        }
        self.min_pos = best;
        self.threshold = self.reservoir[best].0;
        self.skip = unit(rng).ln() / self.threshold;
    }

    /// The drawn positions, in draw order (decreasing key).
    pub fn finish(mut self) -> Vec<usize> {
        self.reservoir
            .sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.reservoir.into_iter().map(|(_, i)| i).collect()
    }
}

/// Sum of the valid weights, with eight independent accumulators so that it vectorises.
fn chunk_sum(w: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = w.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x.max(0.0) as f64; // NaN.max(0) = 0
        }
    }
    let mut total: f64 = acc.iter().sum();
    for &x in tail {
        total += x.max(0.0) as f64;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn returns_k_distinct_positions() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let w: Vec<f32> = (0..1000).map(|i| 1.0 + (i % 7) as f32).collect();
        let mut s = weighted_sample_without_replacement(&mut rng, &w, 64);
        assert_eq!(s.len(), 64);
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 64);
    }

    #[test]
    fn equal_weights_give_equal_inclusion_over_many_chunks() {
        // 3000 positions of weight 1 (three chunks), k = 30: each position is included with
        // probability 1/100. Over 2000 draws, count per block of 300 positions: expected
        // 2000·30/10 = 6000 each, sd ≈ 73; allow 4 sd.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let w = vec![1.0f32; 3000];
        let mut blocks = [0usize; 10];
        for _ in 0..2000 {
            for p in weighted_sample_without_replacement(&mut rng, &w, 30) {
                blocks[p / 300] += 1;
            }
        }
        for b in blocks {
            assert!((b as f64 - 6000.0).abs() < 300.0, "{blocks:?}");
        }
    }

    #[test]
    fn zero_weights_are_never_drawn() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let w = [0.0, 1.0, 0.0, f32::NAN, 2.0, -1.0];
        let mut s = weighted_sample_without_replacement(&mut rng, &w, 5);
        s.sort();
        assert_eq!(s, vec![1, 4]);
    }

    #[test]
    fn first_draw_frequencies_follow_the_weights() {
        // Weights 1:2:3:4 over 10 → first-draw probabilities 0.1, 0.2, 0.3, 0.4. With
        // 20000 draws the standard error is at most 0.0035, so a 0.015 tolerance is > 4 σ.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let w = [1.0, 2.0, 3.0, 4.0];
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            counts[weighted_sample_without_replacement(&mut rng, &w, 1)[0]] += 1;
        }
        for (c, p) in counts.iter().zip([0.1, 0.2, 0.3, 0.4]) {
            assert!((*c as f64 / 20_000.0 - p).abs() < 0.015, "{counts:?}");
        }
    }

    #[test]
    fn inclusion_frequencies_match_successive_sampling() {
        // Weights [1, 1, 2], k = 2. Successive sampling: P(exclude 2) = P(0 then 1) +
        // P(1 then 0) = 1/4·1/3 + 1/4·1/3 = 1/6, so position 2 is included with p = 5/6 and
        // positions 0 and 1 each with (2 - 5/6)/2 = 7/12.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let w = [1.0, 1.0, 2.0];
        let mut counts = [0usize; 3];
        let n = 30_000;
        for _ in 0..n {
            for i in weighted_sample_without_replacement(&mut rng, &w, 2) {
                counts[i] += 1;
            }
        }
        let f: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
        assert!((f[2] - 5.0 / 6.0).abs() < 0.01, "{f:?}");
        assert!((f[0] - 7.0 / 12.0).abs() < 0.015, "{f:?}");
    }
}
