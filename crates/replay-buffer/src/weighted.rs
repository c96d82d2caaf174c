//! Weighted sampling without replacement in one pass (Efraimidis–Spirakis with exponential
//! jumps).

use rand::{Rng, RngCore};

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
    let mut reservoir: Vec<(f64, usize)> = Vec::with_capacity(k);
    if k == 0 {
        return Vec::new();
    }
    let valid = |w: f32| w > 0.0; // false for NaN
    // u in (0, 1], so ln(u) is finite and ≤ 0.
    let unit = |rng: &mut dyn RngCore| 1.0 - rng.random::<f64>();
    let mut i = 0;
    while reservoir.len() < k && i < weights.len() {
        let w = weights[i];
        if valid(w) {
            reservoir.push((unit(rng).ln() / w as f64, i));
        }
        i += 1;
    }
    if reservoir.len() == k && i < weights.len() {
        let (mut min_pos, mut threshold) = min_key(&reservoir);
        // Weight to skip before the next insertion: X = ln(r) / ln(T), T = e^threshold.
        let mut skip = unit(rng).ln() / threshold;
        for (j, &w) in weights.iter().enumerate().skip(i) {
            if !valid(w) {
                continue;
            }
            let w = w as f64;
            skip -= w;
            if skip <= 0.0 {
                // The new key is uniform on (T^w, 1] raised to 1/w, i.e. above the threshold.
                let tw = (w * threshold).exp();
                let r2 = tw + (1.0 - tw) * unit(rng);
                reservoir[min_pos] = (r2.ln() / w, j);
                (min_pos, threshold) = min_key(&reservoir);
                skip = unit(rng).ln() / threshold;
            }
        }
    }
    reservoir.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    reservoir.into_iter().map(|(_, i)| i).collect()
}

fn min_key(reservoir: &[(f64, usize)]) -> (usize, f64) {
    let mut best = 0;
    for (j, e) in reservoir.iter().enumerate() {
        if e.0 < reservoir[best].0 {
            best = j;
        }
    }
    (best, reservoir[best].0)
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
