//! Bootstrap intervals over seeds and test records, paired between two methods.
//!
//! Every run of a suite scores the same test records (drawn from the suite's seed), so record
//! `k` of task `t` is the same record in every run and every row of the accuracy matrix: a
//! difference between two methods pairs by seed *and* by record. One bootstrap replicate
//!
//! 1. draws `n` seeds with replacement from the `n` seeds both methods ran,
//! 2. draws, for every column (a task, a probe, a corpus), as many record indices with
//!    replacement as the column has records: one draw, used for both methods, every drawn seed
//!    and every row,
//! 3. recomputes each drawn seed's metric from the resampled cells (a cell is the mean of its
//!    drawn records), for the method and for the reference, and
//! 4. averages `method − reference` over the drawn seeds.
//!
//! The interval is the 2.5th to 97.5th percentile of `B` replicates (default 2000); the point
//! estimate resamples nothing: it is the mean over the shared seeds of the metric computed from
//! the cells as the runs recorded them, so it equals the mean of their `metrics.json` values.
//! Where any run lacks the per-record scores (logs written before they were recorded), or they
//! do not average to the recorded cells, only seeds are resampled ([`Resampling::SeedsOnly`]).
//! A single method's interval ([`single`]) is the same with no reference.
//!
//! The random numbers come from SplitMix64 seeded by [`BootstrapConfig::seed`] and a stream
//! number per comparison, so a report is the same every time it is rendered.

/// How many replicates, and the generator's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// Bootstrap replicates `B` (at least 1 is used).
    pub replicates: usize,
    /// Seed of the random number generator (mixed with a stream number per comparison).
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            replicates: 2000,
            seed: 21,
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): 64 bits of state, passes BigCrush, enough for
/// drawing indices.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by the multiply-shift map of a 64-bit draw (bias below
    /// `n / 2^64`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// A stream number for a comparison: FNV-1a of its parts, so each comparison draws its own
/// numbers and adding one leaves the others' intervals unchanged.
pub(crate) fn stream(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// One run's cells for one statistic: `points[row][col]` as the run recorded them, and, where
/// known, every record's score behind each cell (`records[row][col]`, whose mean is the cell).
/// Column `col` holds the same records in every row and in every run of the suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The recorded cells.
    pub points: Vec<Vec<f64>>,
    /// Every record's score behind each cell, if logged.
    pub records: Option<Vec<Vec<Vec<f64>>>>,
}

/// A metric computed from a grid of cells (`None` where it is not defined, e.g. forgetting of
/// one task).
pub type Statistic<'a> = &'a dyn Fn(&[Vec<f64>]) -> Option<f64>;

/// What a replicate resampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resampling {
    /// Seeds and test records.
    SeedsAndRecords,
    /// Seeds only: some run lacks per-record scores.
    SeedsOnly,
}

impl Resampling {
    /// `seeds × records` or `seeds only`.
    pub fn label(self) -> &'static str {
        match self {
            Resampling::SeedsAndRecords => "seeds × records",
            Resampling::SeedsOnly => "seeds only",
        }
    }
}

/// A point estimate with its 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The estimate without resampling.
    pub point: f64,
    /// 2.5th percentile of the replicates.
    pub lo: f64,
    /// 97.5th percentile of the replicates.
    pub hi: f64,
    /// Seeds the estimate averages over.
    pub seeds: usize,
    /// What the replicates resampled.
    pub resampling: Resampling,
}

/// `method − reference` for each statistic: `method[k]` and `reference[k]` are the grids of
/// the same seed. `None` for a statistic undefined on some grid, and for all of them when there
/// is no seed or the two sides have different numbers of seeds.
pub fn paired(
    method: &[Grid],
    reference: &[Grid],
    stats: &[Statistic<'_>],
    cfg: &BootstrapConfig,
    stream: u64,
) -> Vec<Option<Estimate>> {
    if method.len() != reference.len() {
        return vec![None; stats.len()];
    }
    bootstrap(method, Some(reference), stats, cfg, stream)
}

/// Each statistic of one method, averaged over its seeds, with the interval resampling its
/// seeds and records.
pub fn single(
    method: &[Grid],
    stats: &[Statistic<'_>],
    cfg: &BootstrapConfig,
    stream: u64,
) -> Vec<Option<Estimate>> {
    bootstrap(method, None, stats, cfg, stream)
}

/// The number of records of every column when every grid has per-record scores that average to
/// its cells and every column has the same positive number of records in every row and grid;
/// otherwise `None` (resample seeds only).
fn record_counts(grids: &[&Grid]) -> Option<Vec<usize>> {
    let first = grids.first()?;
    let cols = first.points.first()?.len();
    let mut counts: Option<Vec<usize>> = None;
    for g in grids {
        let records = g.records.as_ref()?;
        if records.len() != g.points.len() {
            return None;
        }
        for (row, cells) in records.iter().zip(&g.points) {
            if row.len() != cols || cells.len() != cols {
                return None;
            }
            let lens: Vec<usize> = row.iter().map(Vec::len).collect();
            if lens.contains(&0) {
                return None;
            }
            match &counts {
                None => counts = Some(lens),
                Some(c) if *c != lens => return None,
                Some(_) => {}
            }
            for (recs, &cell) in row.iter().zip(cells) {
                let mean = recs.iter().sum::<f64>() / recs.len() as f64;
                if (mean - cell).abs() > 1e-9 {
                    return None;
                }
            }
        }
    }
    counts
}

/// `grid`'s cells recomputed from the records drawn: `weights[col][k]` is how often record `k`
/// of column `col` was drawn (the weights of a column sum to its record count).
fn resample(records: &[Vec<Vec<f64>>], weights: &[Vec<u32>]) -> Vec<Vec<f64>> {
    records
        .iter()
        .map(|row| {
            row.iter()
                .zip(weights)
                .map(|(recs, w)| {
                    let sum: f64 = recs.iter().zip(w).map(|(x, &w)| x * w as f64).sum();
                    sum / recs.len() as f64
                })
                .collect()
        })
        .collect()
}

fn bootstrap(
    method: &[Grid],
    reference: Option<&[Grid]>,
    stats: &[Statistic<'_>],
    cfg: &BootstrapConfig,
    stream: u64,
) -> Vec<Option<Estimate>> {
    let n = method.len();
    if n == 0 {
        return vec![None; stats.len()];
    }
    // `method − reference` of one seed's cells (the reference's cells alongside).
    let diff = |stat: Statistic<'_>, m: &[Vec<f64>], r: Option<&[Vec<f64>]>| -> Option<f64> {
        let v = stat(m)?;
        match r {
            Some(r) => Some(v - stat(r)?),
            None => Some(v),
        }
    };
    let points: Vec<Option<f64>> = stats
        .iter()
        .map(|&stat| {
            let mut sum = 0.0;
            for k in 0..n {
                let r = reference.map(|r| r[k].points.as_slice());
                sum += diff(stat, &method[k].points, r)?;
            }
            Some(sum / n as f64)
        })
        .collect();
    if points.iter().all(Option::is_none) {
        return vec![None; stats.len()];
    }

    let all: Vec<&Grid> = method
        .iter()
        .chain(reference.into_iter().flatten())
        .collect();
    let counts = record_counts(&all);
    let resampling = if counts.is_some() {
        Resampling::SeedsAndRecords
    } else {
        Resampling::SeedsOnly
    };
    let b = cfg.replicates.max(1);
    let mut rng = SplitMix64::new(cfg.seed ^ stream);
    let mut replicates: Vec<Vec<f64>> = vec![Vec::with_capacity(b); stats.len()];
    let mut seed_draws = vec![0u32; n];
    let mut weights: Vec<Vec<u32>> = counts
        .as_ref()
        .map_or_else(Vec::new, |c| c.iter().map(|&len| vec![0; len]).collect());
    for _ in 0..b {
        // Seeds first, then each column's records: one draw for both methods.
        seed_draws.fill(0);
        for _ in 0..n {
            seed_draws[rng.below(n)] += 1;
        }
        for w in &mut weights {
            w.fill(0);
            let len = w.len();
            for _ in 0..len {
                w[rng.below(len)] += 1;
            }
        }
        let mut sums = vec![0.0; stats.len()];
        for (k, &times) in seed_draws.iter().enumerate() {
            if times == 0 {
                continue;
            }
            let cells = |g: &Grid| match &g.records {
                Some(recs) if counts.is_some() => resample(recs, &weights),
                _ => g.points.clone(),
            };
            let m = cells(&method[k]);
            let r = reference.map(|r| cells(&r[k]));
            for (s, &stat) in stats.iter().enumerate() {
                let v = diff(stat, &m, r.as_deref()).unwrap_or(f64::NAN);
                sums[s] += times as f64 * v;
            }
        }
        for (reps, sum) in replicates.iter_mut().zip(sums) {
            reps.push(sum / n as f64);
        }
    }
    points
        .into_iter()
        .zip(replicates)
        .map(|(point, mut reps)| {
            let point = point?;
            if reps.iter().any(|v| !v.is_finite()) {
                return None;
            }
            reps.sort_by(f64::total_cmp);
            Some(Estimate {
                point,
                lo: percentile(&reps, 0.025),
                hi: percentile(&reps, 0.975),
                seeds: n,
                resampling,
            })
        })
        .collect()
}

/// The `q`-quantile of sorted `xs` by linear interpolation between order statistics (position
/// `q·(len − 1)`, R's type 7).
pub(crate) fn percentile(xs: &[f64], q: f64) -> f64 {
    let pos = q * (xs.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    if i + 1 < xs.len() {
        xs[i] + f * (xs[i + 1] - xs[i])
    } else {
        xs[i]
    }
}

// The metrics of `../shared/docs/METHODS.md` on a grid of `T + 1` rows (row 0 before training,
// row `j` after stage `j`, which trains task `j − 1`) of `T` tasks, restricted to the tasks in
// `tasks` (all of them for the suite's own metrics, a family's for per-family tables). Each
// sums in task order and divides by the count, as `crates/continual/src/metrics.rs` does, so on
// a run's own matrix they give its `metrics.json` values.

/// `AA = mean_i a[T][i]`.
pub fn average_accuracy(a: &[Vec<f64>], tasks: &[usize]) -> Option<f64> {
    let t = a.first()?.len();
    if tasks.is_empty() || a.len() != t + 1 {
        return None;
    }
    Some(tasks.iter().map(|&i| a[t][i]).sum::<f64>() / tasks.len() as f64)
}

/// The tasks of `tasks` before the last one (those that can have been forgotten).
fn earlier(a: &[Vec<f64>], tasks: &[usize]) -> Option<(usize, Vec<usize>)> {
    let t = a.first()?.len();
    let earlier: Vec<usize> = tasks.iter().copied().filter(|&i| i + 1 < t).collect();
    (a.len() == t + 1 && !earlier.is_empty()).then_some((t, earlier))
}

/// `BWT = mean_{i<T} (a[T][i] − a[i][i])` (1-based tasks).
pub fn backward_transfer(a: &[Vec<f64>], tasks: &[usize]) -> Option<f64> {
    let (t, tasks) = earlier(a, tasks)?;
    Some(tasks.iter().map(|&i| a[t][i] - a[i + 1][i]).sum::<f64>() / tasks.len() as f64)
}

/// `F = mean_{i<T} max_{l ∈ i..T−1} (a[l][i] − a[T][i])` (1-based tasks).
pub fn forgetting(a: &[Vec<f64>], tasks: &[usize]) -> Option<f64> {
    let (t, tasks) = earlier(a, tasks)?;
    Some(
        tasks
            .iter()
            .map(|&i| {
                let best = (i + 1..t)
                    .map(|l| a[l][i])
                    .fold(f64::NEG_INFINITY, f64::max);
                best - a[t][i]
            })
            .sum::<f64>()
            / tasks.len() as f64,
    )
}

/// What each task's own stage taught it: `mean_i (a[i][i] − a[i−1][i])` (1-based tasks).
pub fn learning(a: &[Vec<f64>], tasks: &[usize]) -> Option<f64> {
    let t = a.first()?.len();
    if tasks.is_empty() || a.len() != t + 1 {
        return None;
    }
    Some(tasks.iter().map(|&i| a[i + 1][i] - a[i][i]).sum::<f64>() / tasks.len() as f64)
}

/// `mean_p (a[0][p] − a[last][p])` over the columns of a two-or-more-row grid: ↓F of probes
/// (row 0 the backbone, the last row the final model).
pub fn first_minus_last(a: &[Vec<f64>]) -> Option<f64> {
    let (first, last) = (a.first()?, a.last()?);
    if a.len() < 2 || first.is_empty() || first.len() != last.len() {
        return None;
    }
    Some(first.iter().zip(last).map(|(x, y)| x - y).sum::<f64>() / first.len() as f64)
}

/// `mean_p (a[last][p] − a[0][p])`: the increase of a loss (the text-loss change).
pub fn last_minus_first(a: &[Vec<f64>]) -> Option<f64> {
    first_minus_last(a).map(|v| -v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid of `rows × cols` cells whose records are `records[row][col]`, with the cells
    /// their means.
    fn grid(records: Vec<Vec<Vec<f64>>>) -> Grid {
        let points = records
            .iter()
            .map(|row| {
                row.iter()
                    .map(|r| r.iter().sum::<f64>() / r.len() as f64)
                    .collect()
            })
            .collect();
        Grid {
            points,
            records: Some(records),
        }
    }

    /// The mean of a one-row, one-column grid.
    fn mean_of(a: &[Vec<f64>]) -> Option<f64> {
        Some(a[0][0])
    }

    /// `n` records, each 1 with probability `p`, from `rng`.
    fn bernoulli(rng: &mut SplitMix64, n: usize, p: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                if (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p {
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn splitmix_matches_the_reference_sequence_and_draws_uniform_indices() {
        // The first outputs of SplitMix64 seeded with 1234567 (from the reference C code).
        let mut r = SplitMix64::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[r.below(4)] += 1;
        }
        // Each of four indices about 10 000 times (binomial sd 87).
        assert!(
            counts.iter().all(|&c| (9_600..10_400).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn percentile_interpolates_between_order_statistics() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&xs, 0.0), 1.0);
        assert_eq!(percentile(&xs, 1.0), 5.0);
        assert_eq!(percentile(&xs, 0.5), 3.0);
        // Position 0.025 · 4 = 0.1: 1 + 0.1 · (2 − 1).
        assert!((percentile(&xs, 0.025) - 1.1).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.975), 7.0);
    }

    #[test]
    fn matrix_metrics_match_the_hand_computation() {
        // Three tasks; row j after stage j.
        let a = vec![
            vec![0.1, 0.2, 0.3],
            vec![0.8, 0.2, 0.3],
            vec![0.7, 0.8, 0.3],
            vec![0.5, 0.6, 0.9],
        ];
        let all = [0, 1, 2];
        // AA = (0.5 + 0.6 + 0.9) / 3.
        assert!((average_accuracy(&a, &all).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // BWT = ((0.5 − 0.8) + (0.6 − 0.8)) / 2 = −0.25.
        assert!((backward_transfer(&a, &all).unwrap() + 0.25).abs() < 1e-12);
        // F = ((max(0.8, 0.7) − 0.5) + (0.8 − 0.6)) / 2 = 0.25.
        assert!((forgetting(&a, &all).unwrap() - 0.25).abs() < 1e-12);
        // Learning = ((0.8 − 0.1) + (0.8 − 0.2) + (0.9 − 0.3)) / 3 = 0.6333.
        assert!((learning(&a, &all).unwrap() - 1.9 / 3.0).abs() < 1e-12);
        // Restricted to task 1: AA 0.6, F 0.2; to task 2 (the last): no forgetting defined.
        assert!((average_accuracy(&a, &[1]).unwrap() - 0.6).abs() < 1e-12);
        assert!((forgetting(&a, &[1]).unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(forgetting(&a, &[2]), None);
        assert_eq!(backward_transfer(&a, &[2]), None);
        // Probes: 0.5 before, 0.47 after → ↓F 0.03; a loss 3.0 → 3.2 rose by 0.2.
        assert!(
            (first_minus_last(&[vec![0.5], vec![0.49], vec![0.47]]).unwrap() - 0.03).abs() < 1e-12
        );
        assert!((last_minus_first(&[vec![3.0], vec![3.2]]).unwrap() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn a_large_paired_difference_is_covered_and_excludes_zero() {
        // Three seeds, one task of 48 records: the method scores 0.8, the reference 0.4.
        let mut rng = SplitMix64::new(7);
        let mut m = Vec::new();
        let mut r = Vec::new();
        for _ in 0..3 {
            m.push(grid(vec![vec![bernoulli(&mut rng, 48, 0.8)]]));
            r.push(grid(vec![vec![bernoulli(&mut rng, 48, 0.4)]]));
        }
        let e = paired(&m, &r, &[&mean_of], &BootstrapConfig::default(), 1)[0].unwrap();
        assert_eq!((e.seeds, e.resampling), (3, Resampling::SeedsAndRecords));
        assert!(e.lo < 0.4 && 0.4 < e.hi, "{e:?}");
        assert!(e.lo > 0.0, "{e:?}");
        assert!(e.lo < e.point && e.point < e.hi, "{e:?}");
    }

    #[test]
    fn no_difference_gives_an_interval_around_zero() {
        // Both methods score each record with the same probability 0.5.
        let mut rng = SplitMix64::new(11);
        let m: Vec<Grid> = (0..3)
            .map(|_| grid(vec![vec![bernoulli(&mut rng, 48, 0.5)]]))
            .collect();
        let r: Vec<Grid> = (0..3)
            .map(|_| grid(vec![vec![bernoulli(&mut rng, 48, 0.5)]]))
            .collect();
        let e = paired(&m, &r, &[&mean_of], &BootstrapConfig::default(), 2)[0].unwrap();
        assert!(e.lo < 0.0 && 0.0 < e.hi, "{e:?}");
    }

    #[test]
    fn pairing_by_record_narrows_the_interval_of_a_small_shift() {
        // Records differ a lot in difficulty; the method scores every record 0.05 higher than
        // the reference. Paired by record, the difficulty cancels, and the interval is tight
        // around 0.05; resampling each side's records separately would make it about ±0.13.
        let mut rng = SplitMix64::new(3);
        let mut m = Vec::new();
        let mut r = Vec::new();
        let difficulty: Vec<f64> = (0..48)
            .map(|_| 0.9 * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .collect();
        for s in 0..3 {
            let base: Vec<f64> = difficulty.iter().map(|d| d + 0.01 * s as f64).collect();
            r.push(grid(vec![vec![base.clone()]]));
            m.push(grid(vec![vec![base.iter().map(|x| x + 0.05).collect()]]));
        }
        let e = paired(&m, &r, &[&mean_of], &BootstrapConfig::default(), 3)[0].unwrap();
        assert!((e.point - 0.05).abs() < 1e-12);
        assert!(e.lo > 0.049 && e.hi < 0.051, "{e:?}");
    }

    #[test]
    fn the_interval_covers_a_known_difference_in_forgetting_most_of_the_time() {
        // 40 synthetic suites of two tasks × 3 seeds × 64 records. Task 0 is learned to 0.8 in
        // stage 1; after stage 2 the method still scores it 0.8, the reference 0.4. With two
        // tasks F is a[1][0] − a[2][0] (the max runs over row 1 alone), so the true F is 0 for
        // the method and 0.4 for the reference: ΔF = −0.4. The 95% interval must exclude 0 every
        // time and cover −0.4 nearly every time.
        let mut rng = SplitMix64::new(5);
        let cfg = BootstrapConfig {
            replicates: 400,
            seed: 1,
        };
        let mut covered = 0;
        for trial in 0..40 {
            let side = |rng: &mut SplitMix64, last: f64| {
                (0..3)
                    .map(|_| {
                        grid(vec![
                            vec![bernoulli(rng, 64, 0.2), bernoulli(rng, 64, 0.2)],
                            vec![bernoulli(rng, 64, 0.8), bernoulli(rng, 64, 0.2)],
                            vec![bernoulli(rng, 64, last), bernoulli(rng, 64, 0.8)],
                        ])
                    })
                    .collect::<Vec<_>>()
            };
            let m = side(&mut rng, 0.8);
            let r = side(&mut rng, 0.4);
            let f = |a: &[Vec<f64>]| forgetting(a, &[0, 1]);
            let e = paired(&m, &r, &[&f], &cfg, trial)[0].unwrap();
            assert!(e.hi < 0.0, "trial {trial}: {e:?}");
            if e.lo <= -0.4 && -0.4 <= e.hi {
                covered += 1;
            }
        }
        assert!(covered >= 34, "{covered} of 40");
    }

    #[test]
    fn without_per_record_scores_only_seeds_are_resampled() {
        let g = |v: f64| Grid {
            points: vec![vec![v]],
            records: None,
        };
        let m = [g(0.6), g(0.7), g(0.8)];
        let r = [g(0.5), g(0.5), g(0.5)];
        let e = paired(&m, &r, &[&mean_of], &BootstrapConfig::default(), 4)[0].unwrap();
        assert_eq!(e.resampling, Resampling::SeedsOnly);
        assert!((e.point - 0.2).abs() < 1e-12);
        // Seed means range from 0.1 (all draws 0.6) to 0.3 (all 0.8).
        assert!(
            e.lo >= 0.1 - 1e-12 && e.hi <= 0.3 + 1e-12 && e.lo < e.hi,
            "{e:?}"
        );
        // One side with records and one without: seeds only too.
        let mixed = [grid(vec![vec![vec![1.0, 0.0]]]), g(0.5), g(0.5)];
        let e = paired(&mixed, &r, &[&mean_of], &BootstrapConfig::default(), 4)[0].unwrap();
        assert_eq!(e.resampling, Resampling::SeedsOnly);
    }

    #[test]
    fn the_point_estimate_is_the_mean_of_the_recorded_cells_and_undefined_stats_are_none() {
        let m = [
            grid(vec![vec![vec![1.0, 0.0]]]),
            grid(vec![vec![vec![1.0, 1.0]]]),
        ];
        let r = [
            grid(vec![vec![vec![0.0, 0.0]]]),
            grid(vec![vec![vec![1.0, 0.0]]]),
        ];
        let none = |_: &[Vec<f64>]| None;
        let out = paired(&m, &r, &[&mean_of, &none], &BootstrapConfig::default(), 5);
        // ((0.5 − 0) + (1 − 0.5)) / 2.
        assert!((out[0].unwrap().point - 0.5).abs() < 1e-12);
        assert_eq!(out[1], None);
        assert!(paired(&m, &r[..1], &[&mean_of], &BootstrapConfig::default(), 5)[0].is_none());
        assert!(single(&[], &[&mean_of], &BootstrapConfig::default(), 5)[0].is_none());
    }

    #[test]
    fn the_same_inputs_give_the_same_interval() {
        // Scores spread over [0, 1), so that two streams' percentiles differ.
        let mut rng = SplitMix64::new(9);
        let m: Vec<Grid> = (0..3)
            .map(|_| {
                let recs = (0..20)
                    .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
                    .collect();
                grid(vec![vec![recs]])
            })
            .collect();
        let cfg = BootstrapConfig::default();
        assert_eq!(
            single(&m, &[&mean_of], &cfg, 8),
            single(&m, &[&mean_of], &cfg, 8)
        );
        assert_ne!(
            single(&m, &[&mean_of], &cfg, 8),
            single(&m, &[&mean_of], &cfg, 9)
        );
    }
}
