//! Mean and sample standard deviation over seeds.

/// Mean and spread of one quantity over `n` runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (`n - 1` denominator); `None` for a single value.
    pub std: Option<f64>,
    /// Number of values.
    pub n: usize,
}

/// Mean and sample standard deviation of `values`; `None` when `values` is empty.
///
/// `[0.5, 0.7]` gives mean 0.6 and std `sqrt(((-0.1)² + 0.1²) / 1) = 0.1414`.
pub fn mean_std(values: &[f64]) -> Option<Stat> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = (n > 1)
        .then(|| (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    Some(Stat { mean, std, n })
}

/// `mean ± std` with `decimals` digits; `–` for the std of a single value, and `–` alone for no
/// value at all.
pub(crate) fn fmt_stat(stat: Option<Stat>, decimals: usize) -> String {
    match stat {
        None => "–".into(),
        Some(s) => match s.std {
            Some(sd) => format!("{:.*} ± {:.*}", decimals, s.mean, decimals, sd),
            None => format!("{:.*} ± –", decimals, s.mean),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std_of_two_values_match_the_hand_computation() {
        let s = mean_std(&[0.5, 0.7]).unwrap();
        assert!((s.mean - 0.6).abs() < 1e-12);
        // sqrt((0.01 + 0.01) / (2 - 1)) = sqrt(0.02) = 0.141421…
        assert!((s.std.unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
        assert!((s.std.unwrap() - 0.1414).abs() < 1e-4);
        assert_eq!(s.n, 2);
    }

    #[test]
    fn sample_std_uses_n_minus_one() {
        // [1, 2, 3, 4]: mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, / 3 → 1.2910
        let s = mean_std(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert!((s.std.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn single_value_has_no_std_and_empty_has_no_stat() {
        let s = mean_std(&[0.42]).unwrap();
        assert_eq!((s.mean, s.std, s.n), (0.42, None, 1));
        assert_eq!(mean_std(&[]), None);
        assert_eq!(fmt_stat(Some(s), 3), "0.420 ± –");
        assert_eq!(fmt_stat(None, 3), "–");
        assert_eq!(fmt_stat(mean_std(&[0.5, 0.7]), 3), "0.600 ± 0.141");
    }
}
