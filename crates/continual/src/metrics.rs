//! Continual-learning metrics derived from the accuracy matrix.
//!
//! `a[j][i]` is the score on task `i` after training stage `j`, for `j = 0..=T` (row 0 is the
//! model before any training) and `i = 0..T` (tasks are 0-based here; the formulas below use the
//! papers' 1-based task numbers, so task `i` is trained in stage `i`).

use serde::{Deserialize, Serialize};

/// The accuracy matrix: `T + 1` rows (stages 0..=T) of `T` scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyMatrix {
    /// `rows[j][i]`: score on task `i` after stage `j`.
    pub rows: Vec<Vec<f64>>,
}

/// Every metric of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Average accuracy after the last stage.
    pub aa: f64,
    /// Backward transfer (negative = forgetting); `None` with one task.
    pub bwt: Option<f64>,
    /// Average (max-based) forgetting; `None` with one task.
    pub forgetting: Option<f64>,
    /// Forward transfer; `None` with one task.
    pub fwt: Option<f64>,
    /// Average normalised score.
    pub ans: f64,
}

impl AccuracyMatrix {
    /// Checks the shape: at least one task, `T + 1` rows of `T` finite entries.
    pub fn new(rows: Vec<Vec<f64>>) -> Result<Self, String> {
        let t = rows.first().map_or(0, Vec::len);
        if t == 0 {
            return Err("accuracy matrix has no tasks".into());
        }
        if rows.len() != t + 1 {
            return Err(format!(
                "accuracy matrix has {} rows for {t} tasks (needs {})",
                rows.len(),
                t + 1
            ));
        }
        if let Some((j, _)) = rows.iter().enumerate().find(|(_, r)| r.len() != t) {
            return Err(format!("row {j} has {} entries, not {t}", rows[j].len()));
        }
        if rows.iter().flatten().any(|x| !x.is_finite()) {
            return Err("accuracy matrix has a non-finite entry".into());
        }
        Ok(Self { rows })
    }

    /// Number of tasks `T`.
    pub fn tasks(&self) -> usize {
        self.rows[0].len()
    }

    fn a(&self, stage: usize, task: usize) -> f64 {
        self.rows[stage][task]
    }

    /// Average accuracy `AA = (1/T) Σ_i a[T][i]`.
    pub fn average_accuracy(&self) -> f64 {
        let t = self.tasks();
        self.rows[t].iter().sum::<f64>() / t as f64
    }

    /// Backward transfer `BWT = (1/(T-1)) Σ_{i<T} (a[T][i] - a[i][i])` (1-based `i`): the
    /// change on each earlier task from just after it was learned to the end. The denominator is
    /// `T-1` (the last task cannot be forgotten yet). `None` when `T = 1`.
    pub fn backward_transfer(&self) -> Option<f64> {
        let t = self.tasks();
        (t > 1).then(|| {
            (0..t - 1)
                .map(|i| self.a(t, i) - self.a(i + 1, i))
                .sum::<f64>()
                / (t - 1) as f64
        })
    }

    /// Average forgetting `F = (1/(T-1)) Σ_{i<T} max_{l ∈ i..T-1} (a[l][i] - a[T][i])`
    /// (1-based): the drop from the best score a task ever had after being learned to its final
    /// score. Max-based, not first-vs-last: a task that rose after its own stage and then fell is
    /// measured from its peak. `None` when `T = 1`.
    pub fn average_forgetting(&self) -> Option<f64> {
        let t = self.tasks();
        (t > 1).then(|| {
            (0..t - 1)
                .map(|i| {
                    let best = (i + 1..t)
                        .map(|l| self.a(l, i))
                        .fold(f64::NEG_INFINITY, f64::max);
                    best - self.a(t, i)
                })
                .sum::<f64>()
                / (t - 1) as f64
        })
    }

    /// Forward transfer `FWT = (1/(T-1)) Σ_{i>1} (a[i-1][i] - a[0][i])` (1-based): how much
    /// training on the earlier tasks helped a task before its own stage, against the untrained
    /// model. `None` when `T = 1`.
    pub fn forward_transfer(&self) -> Option<f64> {
        let t = self.tasks();
        (t > 1).then(|| (1..t).map(|i| self.a(i, i) - self.a(0, i)).sum::<f64>() / (t - 1) as f64)
    }

    /// Average normalised score `ANS = (1/T) Σ_i a[T][i] / a[i][i]` (1-based; our choice of
    /// normaliser: the score just after the task's own stage). Guard: a task never learned
    /// (`a[i][i] = 0`) contributes 1 if its final score is 0 too, else its final score, so the
    /// ratio stays bounded.
    pub fn average_normalised_score(&self) -> f64 {
        let t = self.tasks();
        (0..t)
            .map(|i| {
                let own = self.a(i + 1, i);
                let last = self.a(t, i);
                if own.abs() < 1e-12 {
                    if last.abs() < 1e-12 { 1.0 } else { last }
                } else {
                    last / own
                }
            })
            .sum::<f64>()
            / t as f64
    }

    /// All metrics.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            aa: self.average_accuracy(),
            bwt: self.backward_transfer(),
            forgetting: self.average_forgetting(),
            fwt: self.forward_transfer(),
            ans: self.average_normalised_score(),
        }
    }
}

/// General-ability forgetting `↓F = mean over probes (p[0] - p[T])`: how much the scores on
/// general-ability probes (an MMLU subset, say) fell from the untrained model to the end.
/// `probe_rows[j][k]` is probe `k` after stage `j`.
pub fn general_forgetting(probe_rows: &[Vec<f64>]) -> Option<f64> {
    let first = probe_rows.first()?;
    let last = probe_rows.last()?;
    if first.is_empty() || first.len() != last.len() {
        return None;
    }
    Some(first.iter().zip(last).map(|(a, b)| a - b).sum::<f64>() / first.len() as f64)
}

/// Tokens through the training forward passes, by kind of pass. A pass that runs several
/// times in a step (SAM's ascents, XSAM's α grid) counts each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PassTokens {
    /// The step's batch (task and replayed samples) through the trained model.
    pub sft: u64,
    /// The same batch through the KL reference (adapters off or a frozen copy).
    pub kl_reference: u64,
    /// Corpus passages for the next-token term.
    pub corpus: u64,
    /// Buffered samples through the strategy's forward-only probes.
    pub probe: u64,
    /// Forwards of method plugins other than the KL and corpus terms (a baseline's teacher,
    /// reference gradients, importance estimates).
    #[serde(default)]
    pub plugin: u64,
}

impl PassTokens {
    /// The sum over pass kinds.
    pub fn total(&self) -> u64 {
        self.sft + self.kl_reference + self.corpus + self.probe + self.plugin
    }
}

/// What a run spent (METHODS.md section 1, "Cost"), kept across resumes. The protocol's own
/// evaluations after every stage are counted apart (`eval_examples`, `eval_seconds`): every
/// method pays them equally. What a strategy asks for itself (probe forwards, validation
/// evaluations) is charged to it. Wall time = `train_seconds + eval_seconds`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Optimizer steps.
    pub optimizer_steps: u64,
    /// Forward passes of training (with KL references, corpus batches, SAM ascents, XSAM's α
    /// grid and the strategy's probes).
    pub forward_passes: u64,
    /// Backward passes.
    pub backward_passes: u64,
    /// Tokens through the training forward passes, of every kind (the sum of
    /// `tokens_by_pass`).
    pub tokens: u64,
    /// The same tokens by pass kind.
    #[serde(default)]
    pub tokens_by_pass: PassTokens,
    /// Samples replayed from the buffer.
    pub replayed_samples: u64,
    /// Probe forwards asked for by the strategy (one per sample).
    pub probe_forwards: u64,
    /// Forward passes method plugins ran besides the objective's batch, KL reference and
    /// corpus passes (LwF's teacher, A-GEM's reference batch, EWC's Fisher samples).
    #[serde(default)]
    pub plugin_forwards: u64,
    /// Backward passes method plugins ran besides the step's (A-GEM, EWC's Fisher).
    #[serde(default)]
    pub plugin_backwards: u64,
    /// Validation examples the strategy asked to evaluate.
    pub strategy_eval_examples: u64,
    /// The protocol's own evaluation examples (not charged to the method).
    pub eval_examples: u64,
    /// Seconds spent training (including the strategy's passes).
    pub train_seconds: f64,
    /// Seconds spent in the protocol's evaluations.
    pub eval_seconds: f64,
}

impl Cost {
    /// Adds `tokens` to the by-kind counts and to `tokens`, which stays their sum.
    pub fn add_tokens(&mut self, tokens: PassTokens) {
        let by = &mut self.tokens_by_pass;
        by.sft += tokens.sft;
        by.kl_reference += tokens.kl_reference;
        by.corpus += tokens.corpus;
        by.probe += tokens.probe;
        by.plugin += tokens.plugin;
        self.tokens += tokens.total();
    }

    /// Adds the passes a method plugin ran outside the objective (at a stage boundary or in a
    /// gradient hook).
    pub fn add_plugin_spend(&mut self, spent: crate::plugins::Spent) {
        self.forward_passes += spent.forwards;
        self.backward_passes += spent.backwards;
        self.plugin_forwards += spent.forwards;
        self.plugin_backwards += spent.backwards;
        self.add_tokens(PassTokens {
            plugin: spent.tokens,
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // T = 3. Rows: before training, after stage 1, 2, 3.
    fn worked() -> AccuracyMatrix {
        AccuracyMatrix::new(vec![
            vec![0.10, 0.20, 0.30],
            vec![0.80, 0.25, 0.35],
            vec![0.90, 0.70, 0.40],
            vec![0.60, 0.50, 0.90],
        ])
        .unwrap()
    }

    #[test]
    fn average_accuracy_is_the_mean_of_the_last_row() {
        // (0.60 + 0.50 + 0.90) / 3 = 0.6667
        assert!((worked().average_accuracy() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn backward_transfer_divides_by_t_minus_one() {
        // task 1: 0.60 - 0.80 = -0.20; task 2: 0.50 - 0.70 = -0.20; / (T-1 = 2) = -0.20
        // (dividing by T = 3 would give -0.1333: the denominator trap)
        assert!((worked().backward_transfer().unwrap() + 0.20).abs() < 1e-12);
    }

    #[test]
    fn forgetting_is_measured_from_the_peak_not_the_first_score() {
        // task 1 peaks at 0.90 after stage 2: 0.90 - 0.60 = 0.30 (first-vs-last would say 0.20);
        // task 2: max(0.70) - 0.50 = 0.20; mean over T-1 = 2 tasks = 0.25
        assert!((worked().average_forgetting().unwrap() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn forward_transfer_compares_with_the_untrained_model() {
        // task 2: a[1][2] - a[0][2] = 0.25 - 0.20 = 0.05; task 3: a[2][3] - a[0][3] = 0.40 - 0.30 = 0.10
        // mean = 0.075
        assert!((worked().forward_transfer().unwrap() - 0.075).abs() < 1e-12);
    }

    #[test]
    fn normalised_score_divides_by_the_own_stage_score() {
        // 0.60/0.80 = 0.75, 0.50/0.70 = 0.714286, 0.90/0.90 = 1 → mean 0.821429
        let want = (0.75 + 0.5 / 0.7 + 1.0) / 3.0;
        assert!((worked().average_normalised_score() - want).abs() < 1e-12);
    }

    #[test]
    fn single_task_has_no_transfer_metrics_and_bad_shapes_are_errors() {
        let m = AccuracyMatrix::new(vec![vec![0.1], vec![0.9]])
            .unwrap()
            .metrics();
        assert_eq!((m.bwt, m.forgetting, m.fwt), (None, None, None));
        assert!(AccuracyMatrix::new(vec![vec![0.1, 0.2], vec![0.9, 0.1]]).is_err());
        assert!(AccuracyMatrix::new(vec![vec![0.1], vec![f64::NAN]]).is_err());
    }

    #[test]
    fn general_forgetting_averages_probe_drops() {
        // probes (0.5, 0.4) → (0.3, 0.4): drops 0.2 and 0 → 0.1
        let f = general_forgetting(&[vec![0.5, 0.4], vec![0.45, 0.4], vec![0.3, 0.4]]).unwrap();
        assert!((f - 0.1).abs() < 1e-12);
    }

    proptest::proptest! {
        #[test]
        fn no_change_after_learning_means_no_forgetting(scores in proptest::collection::vec(0.0f64..1.0, 2..6)) {
            // Each task jumps to its final score at its own stage and stays there.
            let t = scores.len();
            let mut rows = vec![vec![0.0; t]];
            for j in 1..=t {
                rows.push((0..t).map(|i| if i < j { scores[i] } else { 0.0 }).collect());
            }
            let m = AccuracyMatrix::new(rows).unwrap();
            proptest::prop_assert!(m.average_forgetting().unwrap().abs() < 1e-12);
            proptest::prop_assert!(m.backward_transfer().unwrap().abs() < 1e-12);
        }
    }
}
