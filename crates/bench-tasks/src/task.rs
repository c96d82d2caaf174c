//! The task model: records, task kinds, metrics.

use serde::{Deserialize, Serialize};

/// One example: the prompt (instruction and input, without chat markup), the reference answer
/// (the training target), and for multiple choice the option strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The user-turn text.
    pub prompt: String,
    /// The reference answer; the only training target.
    pub answer: String,
    /// Per-record options for multiple choice (the answer is one of them); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// Further acceptable answers for scoring (SQuAD-style max over references, e.g. quoref's
    /// several outputs); scoring uses `answer` and these. Empty for most tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

impl Record {
    /// A record with a prompt and an answer only.
    pub fn new(prompt: impl Into<String>, answer: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            answer: answer.into(),
            options: None,
            references: Vec::new(),
        }
    }

    /// Every reference answer: `answer` first, then `references`.
    pub fn all_answers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.answer.as_str()).chain(self.references.iter().map(String::as_str))
    }
}

/// What kind of output a task asks for; decides the default metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum TaskKind {
    /// One label out of a fixed set shared by every record (the answer is the label text).
    Classification {
        /// The label set, in a fixed order.
        labels: Vec<String>,
    },
    /// One option out of per-record options ([`Record::options`]); the answer is one of them.
    MultipleChoice,
    /// A short free-text answer, scored by SQuAD exact match / token F1.
    ShortAnswerQa,
    /// A maths word problem whose final number is compared.
    MathNumber,
    /// Open-ended generation (instructions, summaries, code), scored by ROUGE-L.
    OpenGeneration,
}

impl TaskKind {
    /// The metric used when a suite names none.
    pub fn default_metric(&self) -> Metric {
        match self {
            TaskKind::Classification { .. } | TaskKind::MultipleChoice => Metric::GenAccuracy,
            TaskKind::ShortAnswerQa => Metric::TokenF1,
            TaskKind::MathNumber => Metric::FinalNumber,
            TaskKind::OpenGeneration => Metric::RougeL,
        }
    }

    /// The options of a record under this kind: the label set for classification, the record's
    /// own options for multiple choice, none otherwise.
    pub fn options_of<'a>(&'a self, record: &'a Record) -> Option<&'a [String]> {
        match self {
            TaskKind::Classification { labels } => Some(labels),
            TaskKind::MultipleChoice => record.options.as_deref(),
            _ => None,
        }
    }
}

/// How a task is scored. Every metric gives a per-record score in `[0, 1]`; the task's score is
/// their mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Accuracy: the option with the highest summed log-likelihood is the prediction.
    RankAccuracy,
    /// Accuracy: the option with the highest mean per-token log-likelihood is the prediction.
    RankAccuracyNorm,
    /// Accuracy: greedy generation, matched to the options after label normalisation
    /// ([`crate::score::match_label`]).
    GenAccuracy,
    /// SQuAD exact match after normalisation, max over references.
    ExactMatch,
    /// SQuAD token F1 after normalisation, max over references.
    TokenF1,
    /// The final number of the generation equals the reference's (GSM8K `#### `, NumGLUE).
    FinalNumber,
    /// ROUGE-L F-measure (LCS of whitespace tokens), max over references.
    RougeL,
}

impl Metric {
    /// Whether the metric ranks options by log-likelihood (else it needs a generation).
    pub fn is_ranking(self) -> bool {
        matches!(self, Metric::RankAccuracy | Metric::RankAccuracyNorm)
    }
}

/// Record counts of a task's source splits before subsampling (for checks and reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SplitCounts {
    /// Records in the source split the train subsample is drawn from.
    pub train: usize,
    /// Records in the source split the test subsample is drawn from.
    pub test: usize,
    /// Records of the train split skipped because they carry no gold label (the answer `-`,
    /// MNLI's "no annotator majority"); included in `train`.
    #[serde(default)]
    pub train_no_label: usize,
    /// The same for the test split; included in `test`.
    #[serde(default)]
    pub test_no_label: usize,
}

/// A task of a suite: its records (already subsampled) and how to score it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The task's name in the suite (unique within it).
    pub name: String,
    /// Kind of output.
    pub kind: TaskKind,
    /// Training records.
    pub train: Vec<Record>,
    /// Test records.
    pub test: Vec<Record>,
    /// Primary metric.
    pub metric: Metric,
    /// Optional system text for the chat template (e.g. a SuperNI definition); `None` for most.
    #[serde(default)]
    pub system: Option<String>,
    /// Sizes of the source splits before subsampling.
    #[serde(default)]
    pub source_counts: SplitCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_metric_follows_kind() {
        let c = TaskKind::Classification {
            labels: vec!["a".into()],
        };
        assert_eq!(c.default_metric(), Metric::GenAccuracy);
        assert_eq!(TaskKind::ShortAnswerQa.default_metric(), Metric::TokenF1);
        assert_eq!(TaskKind::MathNumber.default_metric(), Metric::FinalNumber);
        assert_eq!(TaskKind::OpenGeneration.default_metric(), Metric::RougeL);
    }

    #[test]
    fn options_come_from_labels_or_record() {
        let c = TaskKind::Classification {
            labels: vec!["yes".into(), "no".into()],
        };
        let mut r = Record::new("q", "yes");
        assert_eq!(c.options_of(&r).unwrap(), ["yes", "no"]);
        assert_eq!(TaskKind::MultipleChoice.options_of(&r), None);
        r.options = Some(vec!["A".into(), "B".into()]);
        assert_eq!(TaskKind::MultipleChoice.options_of(&r).unwrap(), ["A", "B"]);
    }

    #[test]
    fn all_answers_lists_answer_first() {
        let mut r = Record::new("q", "a");
        r.references = vec!["b".into()];
        assert_eq!(r.all_answers().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn metric_names_are_snake_case() {
        let m: Metric = serde_json::from_str("\"rank_accuracy_norm\"").unwrap();
        assert_eq!(m, Metric::RankAccuracyNorm);
        assert!(m.is_ranking());
        assert!(!Metric::RougeL.is_ranking());
    }
}
