//! Forgetting curves: how much of a sample is retained `dt` steps after its last review.

use serde::{Deserialize, Serialize};

/// The forgetting curve `R(dt, S)`: retention after `dt` steps for a memory of stability `S`.
///
/// Both curves satisfy `R(0, S) = 1`, fall monotonically towards 0, and have the same initial
/// slope `dR/dt = -1/S` at `dt = 0`, so a stability learned under one curve means roughly the
/// same thing under the other for short gaps; they differ in the tail.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetentionModel {
    /// Ebbinghaus' exponential curve (METHODS.md section 3, the default):
    /// `R = exp(-dt / S)`.
    #[default]
    Exponential,
    /// A power law with a heavier tail (our choice of the alternative):
    /// `R = (1 + dt / (k·S))^(-k)`.
    ///
    /// With `k = 1` this is `1 / (1 + dt/S)`, the hyperbolic curve of the memory literature;
    /// FSRS uses the same family (`(1 + dt/(9S))^-1`, i.e. `S` rescaled so that `R(S) = 0.9`).
    /// As `k → ∞` it tends to the exponential curve. `k` must be positive.
    PowerLaw {
        /// The decay exponent `k` (> 0). Default 1.
        k: f32,
    },
}

impl RetentionModel {
    /// The power-law curve with `k = 1`: `R = 1 / (1 + dt/S)`.
    pub fn power_law() -> Self {
        Self::PowerLaw { k: 1.0 }
    }

    /// Retention `R(dt, S)` after `dt` steps at stability `stability` (> 0).
    #[inline]
    pub fn retention(&self, dt: f32, stability: f32) -> f32 {
        let x = dt.max(0.0) / stability;
        match *self {
            Self::Exponential => (-x).exp(),
            Self::PowerLaw { k } => {
                if k == 1.0 {
                    1.0 / (1.0 + x)
                } else {
                    (1.0 + x / k).powf(-k)
                }
            }
        }
    }

    /// `-ln R(dt, S)`: the "forgetting exponent". Memory strength is
    /// `exp(-(forgetting + smoothed loss))`, which needs one `exp` per sample.
    #[inline]
    pub fn neg_log_retention(&self, dt: f32, stability: f32) -> f32 {
        let x = dt.max(0.0) / stability;
        match *self {
            Self::Exponential => x,
            Self::PowerLaw { k } => k * (x / k).ln_1p(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_retention_matches_hand_computed_values() {
        let m = RetentionModel::Exponential;
        // dt = 100, S = 200: exp(-0.5) = 0.606531
        assert!((m.retention(100.0, 200.0) - 0.606_531).abs() < 1e-6);
        // dt = S: exp(-1) = 0.367879
        assert!((m.retention(50.0, 50.0) - 0.367_879).abs() < 1e-6);
        // no time elapsed: fully retained
        assert_eq!(m.retention(0.0, 200.0), 1.0);
    }

    #[test]
    fn power_law_retention_matches_hand_computed_values() {
        // k = 1, dt = 100, S = 200: 1 / (1 + 0.5) = 0.666667
        let m = RetentionModel::power_law();
        assert!((m.retention(100.0, 200.0) - 0.666_667).abs() < 1e-6);
        // k = 2, dt = 100, S = 200: (1 + 0.5/2)^-2 = 1.25^-2 = 0.64
        let m2 = RetentionModel::PowerLaw { k: 2.0 };
        assert!((m2.retention(100.0, 200.0) - 0.64).abs() < 1e-6);
    }

    #[test]
    fn power_law_has_heavier_tail_than_exponential() {
        // Same initial slope, but after 5 stabilities: exp(-5) = 0.0067 vs 1/6 = 0.1667.
        let e = RetentionModel::Exponential.retention(1000.0, 200.0);
        let p = RetentionModel::power_law().retention(1000.0, 200.0);
        assert!(p > 10.0 * e);
    }

    #[test]
    fn neg_log_retention_is_minus_ln_of_retention() {
        for m in [
            RetentionModel::Exponential,
            RetentionModel::power_law(),
            RetentionModel::PowerLaw { k: 3.0 },
        ] {
            for (dt, s) in [(0.0, 1.0), (10.0, 200.0), (1000.0, 70.0)] {
                let r = m.retention(dt, s);
                assert!(
                    (m.neg_log_retention(dt, s) + r.ln()).abs() < 1e-4,
                    "{m:?} {dt} {s}"
                );
            }
        }
    }

    #[test]
    fn negative_elapsed_time_counts_as_zero() {
        assert_eq!(RetentionModel::Exponential.retention(-5.0, 10.0), 1.0);
    }
}
