//! Scorers: pure functions from a prediction and a reference to a score in `[0, 1]`, and a small
//! driver ([`evaluate`]) that batches a task's records through a model.
//!
//! - Option ranking ([`rank_options`]): argmax of summed or length-normalised log-likelihoods.
//! - Label matching after generation ([`match_label`]).
//! - SQuAD normalisation, exact match and token F1 ([`squad_normalize`], [`exact_match`],
//!   [`token_f1`]), identical to the official SQuAD v1.1 evaluation script.
//! - Final-number extraction for GSM8K and NumGLUE ([`final_number`], [`numbers_match`]).
//! - ROUGE-L F-measure from the longest common subsequence of tokens ([`rouge_l`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::task::{Metric, Record, Task, TaskKind};

/// The model's log-likelihood of one option's tokens given the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptionScore {
    /// Sum of the option tokens' log-probabilities (natural log, ≤ 0).
    pub logprob: f64,
    /// Number of option tokens (≥ 1 for a meaningful mean).
    pub n_tokens: usize,
}

/// How option log-likelihoods are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LengthNorm {
    /// Summed log-likelihood (favours short options).
    #[default]
    Sum,
    /// Mean log-likelihood per token.
    Mean,
}

/// The index of the best option (ties go to the first), or `None` when there are no options.
pub fn rank_options(scores: &[OptionScore], norm: LengthNorm) -> Option<usize> {
    let value = |s: &OptionScore| match norm {
        LengthNorm::Sum => s.logprob,
        LengthNorm::Mean => s.logprob / s.n_tokens.max(1) as f64,
    };
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in scores.iter().enumerate() {
        let v = value(s);
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Label normalisation: lower-case, punctuation to spaces, white space collapsed.
pub fn normalize_label(s: &str) -> String {
    let mapped: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_punctuation() { ' ' } else { c })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Which label a generation names: the first non-empty line of the generation, normalised
/// ([`normalize_label`]), is compared with each normalised label; an exact match wins, else the
/// longest label that the line starts with (followed by a space or its end), so `"B. water"`
/// names `B` and `"very positive!"` names `very positive`, not `positive`. `None` when no label
/// fits (counted as wrong).
pub fn match_label(generated: &str, labels: &[String]) -> Option<usize> {
    let line = generated
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let g = normalize_label(line);
    let norm: Vec<String> = labels.iter().map(|l| normalize_label(l)).collect();
    if let Some(i) = norm.iter().position(|l| *l == g) {
        return Some(i);
    }
    norm.iter()
        .enumerate()
        .filter(|(_, l)| {
            !l.is_empty() && g.starts_with(l.as_str()) && g[l.len()..].starts_with(' ')
        })
        .max_by_key(|(_, l)| l.len())
        .map(|(i, _)| i)
}

/// The index of the option that a record's answer (or one of its references) names.
pub fn gold_option(record: &Record, options: &[String]) -> Option<usize> {
    record
        .all_answers()
        .find_map(|a| options.iter().position(|o| o == a))
        .or_else(|| {
            record.all_answers().find_map(|a| {
                let a = normalize_label(a);
                options.iter().position(|o| normalize_label(o) == a)
            })
        })
}

/// SQuAD v1.1 `normalize_answer`: lower-case, remove ASCII punctuation, remove the articles
/// `a`/`an`/`the` as whole words, collapse white space.
pub fn squad_normalize(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punc: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // `re.sub(r'\b(a|an|the)\b', ' ', text)`: a match is a whole run of word characters.
    let mut out = String::with_capacity(no_punc.len());
    let mut word = String::new();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in no_punc.chars() {
        if is_word(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// SQuAD exact match (1.0 or 0.0) after [`squad_normalize`], max over references.
pub fn exact_match<'a>(prediction: &str, references: impl IntoIterator<Item = &'a str>) -> f64 {
    let p = squad_normalize(prediction);
    references
        .into_iter()
        .map(|r| if squad_normalize(r) == p { 1.0 } else { 0.0 })
        .fold(0.0, f64::max)
}

/// SQuAD token F1 after [`squad_normalize`], max over references.
pub fn token_f1<'a>(prediction: &str, references: impl IntoIterator<Item = &'a str>) -> f64 {
    references
        .into_iter()
        .map(|r| token_f1_single(prediction, r))
        .fold(0.0, f64::max)
}

fn token_f1_single(prediction: &str, reference: &str) -> f64 {
    let p = squad_normalize(prediction);
    let r = squad_normalize(reference);
    let pt: Vec<&str> = p.split_whitespace().collect();
    let rt: Vec<&str> = r.split_whitespace().collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &rt {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pt {
        if let Some(c) = counts.get_mut(t)
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pt.len() as f64;
    let recall = same as f64 / rt.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// All numbers in a text, in order: optional minus, digits with optional thousands commas, an
/// optional decimal part. Commas are dropped (`1,000` → 1000).
fn numbers(text: &str) -> Vec<f64> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let neg = i > 0 && b[i - 1] == b'-' && (i < 2 || !b[i - 2].is_ascii_alphanumeric());
            let mut s = String::new();
            if neg {
                s.push('-');
            }
            let mut j = i;
            while j < b.len() {
                let c = b[j];
                if c.is_ascii_digit() {
                    s.push(c as char);
                } else if c == b',' && j + 1 < b.len() && b[j + 1].is_ascii_digit() {
                    // thousands separator
                } else if c == b'.'
                    && j + 1 < b.len()
                    && b[j + 1].is_ascii_digit()
                    && !s.contains('.')
                {
                    s.push('.');
                } else {
                    break;
                }
                j += 1;
            }
            if let Ok(v) = s.parse() {
                out.push(v);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The final number of a solution: the first number after the last `####` when there is one
/// (GSM8K's answer marker), else the last number in the text (NumGLUE answers, free-form model
/// outputs). `None` when the text has no number.
pub fn final_number(text: &str) -> Option<f64> {
    match text.rfind("####") {
        Some(pos) => numbers(&text[pos + 4..])
            .first()
            .copied()
            .or_else(|| numbers(text).last().copied()),
        None => numbers(text).last().copied(),
    }
}

/// Whether two numbers are equal up to a relative tolerance of 1e-6 (so `17.480` equals
/// `17.48`).
pub fn numbers_match(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// Final-number accuracy of a generation against a reference solution (1.0 or 0.0).
pub fn final_number_match(generated: &str, reference: &str) -> f64 {
    match (final_number(generated), final_number(reference)) {
        (Some(g), Some(r)) if numbers_match(g, r) => 1.0,
        _ => 0.0,
    }
}

/// ROUGE tokens: lower-cased runs of alphanumeric characters; each CJK ideograph is a token of
/// its own (so Chinese text is compared character by character).
pub fn rouge_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.to_lowercase().chars() {
        let cjk = matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF);
        if cjk {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(c.to_string());
        } else if c.is_alphanumeric() {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Length of the longest common subsequence of two token sequences.
pub fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L F-measure (β = 1): `P = LCS/|pred|`, `R = LCS/|ref|`, `F = 2PR/(P+R)`, on
/// [`rouge_tokens`]; max over references. 0 when either side has no tokens.
pub fn rouge_l<'a>(prediction: &str, references: impl IntoIterator<Item = &'a str>) -> f64 {
    let p = rouge_tokens(prediction);
    references
        .into_iter()
        .map(|r| {
            let r = rouge_tokens(r);
            let lcs = lcs_len(&p, &r);
            if lcs == 0 {
                return 0.0;
            }
            let precision = lcs as f64 / p.len() as f64;
            let recall = lcs as f64 / r.len() as f64;
            2.0 * precision * recall / (precision + recall)
        })
        .fold(0.0, f64::max)
}

/// Scores one generation under a generation metric (everything but the ranking metrics, which
/// score as [`score_ranking`] with the default normalisation if given a generation is impossible:
/// they fall back to label matching here).
pub fn score_generation(metric: Metric, kind: &TaskKind, record: &Record, generated: &str) -> f64 {
    match metric {
        Metric::GenAccuracy | Metric::RankAccuracy | Metric::RankAccuracyNorm => {
            let Some(options) = kind.options_of(record) else {
                return 0.0;
            };
            match (
                match_label(generated, options),
                gold_option(record, options),
            ) {
                (Some(p), Some(g)) if p == g => 1.0,
                _ => 0.0,
            }
        }
        Metric::ExactMatch => exact_match(generated, record.all_answers()),
        Metric::TokenF1 => token_f1(generated, record.all_answers()),
        Metric::FinalNumber => record
            .all_answers()
            .map(|r| final_number_match(generated, r))
            .fold(0.0, f64::max),
        Metric::RougeL => rouge_l(generated, record.all_answers()),
    }
}

/// Scores one record from its options' log-likelihoods (1.0 when the best option is the gold
/// one). The normalisation follows the metric: `rank_accuracy_norm` uses the mean.
pub fn score_ranking(
    metric: Metric,
    kind: &TaskKind,
    record: &Record,
    scores: &[OptionScore],
) -> f64 {
    let norm = if metric == Metric::RankAccuracyNorm {
        LengthNorm::Mean
    } else {
        LengthNorm::Sum
    };
    let Some(options) = kind.options_of(record) else {
        return 0.0;
    };
    match (rank_options(scores, norm), gold_option(record, options)) {
        (Some(p), Some(g)) if p == g => 1.0,
        _ => 0.0,
    }
}

/// The model side of evaluation. Implementations format prompts (see
/// [`crate::format::Formatter`]) and run the model; both methods take a batch.
pub trait TaskModel {
    /// Greedy generations for a batch of records of `task`, already cut at the chat template's
    /// stop strings (the answer text only).
    fn generate(&mut self, task: &Task, batch: &[&Record]) -> Vec<String>;

    /// Greedy generations for a batch of records of several tasks, each formatted as its own
    /// task asks: what [`evaluate_generative`] calls, so that one decoding pass serves the
    /// records of every generative task. The default calls [`TaskModel::generate`] once per run
    /// of records of the same task; a model that decodes a batch for the cost of one row
    /// overrides it.
    fn generate_mixed(&mut self, batch: &[(&Task, &Record)]) -> Vec<String> {
        let mut out = Vec::with_capacity(batch.len());
        let mut start = 0;
        while start < batch.len() {
            let task = batch[start].0;
            let end = start
                + batch[start..]
                    .iter()
                    .take_while(|(t, _)| std::ptr::eq(*t, task))
                    .count();
            let records: Vec<&Record> = batch[start..end].iter().map(|(_, r)| *r).collect();
            out.extend(self.generate(task, &records));
            start = end;
        }
        out
    }

    /// Log-likelihood of every option (as the continuation of the record's prompt), for a
    /// batch of records; one `Vec` per record, one [`OptionScore`] per option, same order.
    fn score_options(
        &mut self,
        task: &Task,
        batch: &[(&Record, &[String])],
    ) -> Vec<Vec<OptionScore>>;
}

/// Per-record scores and their mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Mean of `per_record` (0 for no records).
    pub score: f64,
    /// One score in `[0, 1]` per record, in order.
    pub per_record: Vec<f64>,
}

/// Scores `records` of `task` with its metric, `batch_size` records per model call.
pub fn evaluate(
    task: &Task,
    records: &[Record],
    model: &mut dyn TaskModel,
    batch_size: usize,
) -> EvalReport {
    let mut per_record = Vec::with_capacity(records.len());
    for chunk in records.chunks(batch_size.max(1)) {
        let options: Vec<&[String]> = chunk
            .iter()
            .map(|r| task.kind.options_of(r).unwrap_or(&[]))
            .collect();
        if task.metric.is_ranking() && options.iter().all(|o| !o.is_empty()) {
            let batch: Vec<(&Record, &[String])> = chunk.iter().zip(options).collect();
            let scores = model.score_options(task, &batch);
            for ((r, _), s) in batch.iter().zip(&scores) {
                per_record.push(score_ranking(task.metric, &task.kind, r, s));
            }
        } else {
            let batch: Vec<&Record> = chunk.iter().collect();
            let gens = model.generate(task, &batch);
            for (r, g) in batch.iter().zip(&gens) {
                per_record.push(score_generation(task.metric, &task.kind, r, g));
            }
        }
    }
    let score = if per_record.is_empty() {
        0.0
    } else {
        per_record.iter().sum::<f64>() / per_record.len() as f64
    };
    EvalReport { score, per_record }
}

/// Scores several generative tasks together: the records of every set, in order, go to
/// [`TaskModel::generate_mixed`] in batches of `batch_size` that may span tasks, so that a
/// decoding pass (whose cost is reading the weights, nearly the same for 6 rows or 30) serves
/// them all. One report per set, each as [`evaluate`] would give it for a set whose metric
/// generates.
pub fn evaluate_generative(
    sets: &[(&Task, &[Record])],
    model: &mut dyn TaskModel,
    batch_size: usize,
) -> Vec<EvalReport> {
    let items: Vec<(&Task, &Record)> = sets
        .iter()
        .flat_map(|(t, recs)| recs.iter().map(move |r| (*t, r)))
        .collect();
    let mut scores = Vec::with_capacity(items.len());
    for chunk in items.chunks(batch_size.max(1)) {
        let gens = model.generate_mixed(chunk);
        for ((task, r), g) in chunk.iter().zip(&gens) {
            scores.push(score_generation(task.metric, &task.kind, r, g));
        }
    }
    let mut scores = scores.into_iter();
    sets.iter()
        .map(|(_, recs)| {
            let per_record: Vec<f64> = scores.by_ref().take(recs.len()).collect();
            let score = if per_record.is_empty() {
                0.0
            } else {
                per_record.iter().sum::<f64>() / per_record.len() as f64
            };
            EvalReport { score, per_record }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::SplitCounts;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn rank_sum_prefers_highest_total_and_mean_prefers_per_token() {
        // A: -2.0 over 1 token (mean -2.0); B: -3.0 over 3 tokens (mean -1.0).
        let s = [
            OptionScore {
                logprob: -2.0,
                n_tokens: 1,
            },
            OptionScore {
                logprob: -3.0,
                n_tokens: 3,
            },
        ];
        assert_eq!(rank_options(&s, LengthNorm::Sum), Some(0));
        assert_eq!(rank_options(&s, LengthNorm::Mean), Some(1));
        assert_eq!(rank_options(&[], LengthNorm::Sum), None);
    }

    #[test]
    fn rank_ties_go_to_first_option() {
        let s = [OptionScore {
            logprob: -1.0,
            n_tokens: 1,
        }; 2];
        assert_eq!(rank_options(&s, LengthNorm::Sum), Some(0));
    }

    #[test]
    fn match_label_normalises_and_prefers_longest_prefix() {
        let labels: Vec<String> = ["positive", "very positive", "Science or Technology"]
            .map(String::from)
            .to_vec();
        assert_eq!(match_label("  Very Positive!", &labels), Some(1));
        assert_eq!(match_label("positive review", &labels), Some(0));
        assert_eq!(match_label("science or technology.", &labels), Some(2));
        assert_eq!(
            match_label("\nB. water\nmore", &["A".into(), "B".into()]),
            Some(1)
        );
        assert_eq!(match_label("positively", &labels), None);
        assert_eq!(match_label("", &labels), None);
    }

    #[test]
    fn squad_normalize_matches_official_script() {
        // normalize_answer("The Cat's  hat!") -> lower "the cat's  hat!" -> no punc
        // "the cats  hat" -> articles " cats  hat" -> "cats hat".
        assert_eq!(squad_normalize("The Cat's  hat!"), "cats hat");
        assert_eq!(squad_normalize("An apple, a day"), "apple day");
        // articles only as whole words
        assert_eq!(squad_normalize("theory another"), "theory another");
    }

    #[test]
    fn exact_match_on_squad_examples() {
        // SQuAD v1.1 dev, "Which NFL team represented the AFC at Super Bowl 50?"
        // gold answers: "Denver Broncos" (x3).
        let gold = ["Denver Broncos", "Denver Broncos", "Denver Broncos"];
        assert_eq!(exact_match("the Denver Broncos", gold), 1.0);
        assert_eq!(exact_match("Broncos", gold), 0.0);
        // "Where did Super Bowl 50 take place?" gold: "Santa Clara, California",
        // "Levi's Stadium", "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California."
        let gold2 = [
            "Santa Clara, California",
            "Levi's Stadium",
            "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California.",
        ];
        assert_eq!(exact_match("Levis Stadium", gold2), 1.0);
    }

    #[test]
    fn token_f1_on_squad_examples() {
        // pred "Broncos won" vs "Denver Broncos": common 1, P = 1/2, R = 1/2, F1 = 1/2.
        assert!(close(token_f1("Broncos won", ["Denver Broncos"]), 0.5));
        // pred "Santa Clara" vs gold2: vs "Santa Clara, California": common 2, P = 2/2,
        // R = 2/3, F1 = 2·(2/3)/(5/3) = 0.8; vs the long one (normalised "levis stadium in san
        // francisco bay area at santa clara california", 11 tokens): P = 1, R = 2/11,
        // F1 = (4/11)/(13/11) = 4/13. Max = 0.8.
        let gold2 = [
            "Santa Clara, California",
            "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California.",
        ];
        assert!(close(token_f1("Santa Clara", gold2), 0.8));
        assert!(close(token_f1("Santa Clara", [gold2[1]]), 4.0 / 13.0));
        assert_eq!(token_f1("nothing shared", ["Denver Broncos"]), 0.0);
    }

    #[test]
    fn token_f1_counts_repeated_tokens_once_each() {
        // pred "a b b" → tokens [b, b] after dropping the article? "a" is an article: pred
        // tokens ["b","b"], ref "b c" tokens ["b","c"]: common 1, P = 1/2, R = 1/2, F1 = 1/2.
        assert!(close(token_f1("a b b", ["b c"]), 0.5));
    }

    #[test]
    fn gsm8k_final_number_follows_marker() {
        let sol = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = \
                   <<48+24=72>>72 clips altogether in April and May.\n#### 72";
        assert_eq!(final_number(sol), Some(72.0));
        assert_eq!(
            final_number("so the total is #### 1,000 dollars"),
            Some(1000.0)
        );
        assert_eq!(final_number("The answer is -3."), Some(-3.0));
        assert_eq!(final_number("no digits"), None);
    }

    #[test]
    fn numglue_final_number_is_last_number() {
        assert_eq!(final_number("17.48"), Some(17.48));
        assert_eq!(
            final_number("38 seconds at 460 m/s gives 17.480 km"),
            Some(17.48)
        );
        assert_eq!(final_number_match("He covers 17.480 km", "17.48"), 1.0);
        assert_eq!(final_number_match("18", "17.48"), 0.0);
        assert_eq!(final_number("range 5-3"), Some(3.0));
    }

    #[test]
    fn rouge_l_is_lcs_f_measure() {
        // ref "the cat sat on the mat" (6), pred "the cat on the mat" (5), LCS 5:
        // P = 1, R = 5/6, F = 2·(5/6)/(11/6) = 10/11.
        assert!(close(
            rouge_l("the cat on the mat", ["the cat sat on the mat"]),
            10.0 / 11.0
        ));
        // pred "mat the" vs ref "the mat": LCS 1, P = R = 1/2, F = 1/2.
        assert!(close(rouge_l("mat the", ["the mat"]), 0.5));
        assert_eq!(rouge_l("", ["x"]), 0.0);
        assert!(close(rouge_l("The, CAT!", ["the cat"]), 1.0));
    }

    #[test]
    fn rouge_tokens_split_cjk_characters() {
        assert_eq!(rouge_tokens("支持A, b"), ["支", "持", "a", "b"]);
    }

    #[test]
    fn lcs_of_classic_example() {
        let a: Vec<char> = "ABCBDAB".chars().collect();
        let b: Vec<char> = "BDCABA".chars().collect();
        assert_eq!(lcs_len(&a, &b), 4);
    }

    fn task(kind: TaskKind, metric: Metric, test: Vec<Record>) -> Task {
        Task {
            name: "t".into(),
            kind,
            train: vec![],
            test,
            metric,
            system: None,
            source_counts: SplitCounts::default(),
        }
    }

    struct Fixed;
    impl TaskModel for Fixed {
        fn generate(&mut self, _: &Task, batch: &[&Record]) -> Vec<String> {
            batch.iter().map(|_| "yes".to_string()).collect()
        }
        fn score_options(
            &mut self,
            _: &Task,
            batch: &[(&Record, &[String])],
        ) -> Vec<Vec<OptionScore>> {
            // Always prefers the second option.
            batch
                .iter()
                .map(|(_, o)| {
                    (0..o.len())
                        .map(|i| OptionScore {
                            logprob: if i == 1 { -0.1 } else { -5.0 },
                            n_tokens: 1,
                        })
                        .collect()
                })
                .collect()
        }
    }

    #[test]
    fn evaluate_generation_averages_label_matches() {
        let kind = TaskKind::Classification {
            labels: vec!["yes".into(), "no".into()],
        };
        let test = vec![
            Record::new("a", "yes"),
            Record::new("b", "no"),
            Record::new("c", "yes"),
        ];
        let t = task(kind, Metric::GenAccuracy, test.clone());
        let rep = evaluate(&t, &test, &mut Fixed, 2);
        assert_eq!(rep.per_record, [1.0, 0.0, 1.0]);
        assert!(close(rep.score, 2.0 / 3.0));
    }

    #[test]
    fn evaluate_ranking_uses_option_scores() {
        let mut r1 = Record::new("q", "B");
        r1.options = Some(vec!["A".into(), "B".into(), "C".into()]);
        let mut r2 = Record::new("q", "A");
        r2.options = Some(vec!["A".into(), "B".into()]);
        let test = vec![r1, r2];
        let t = task(TaskKind::MultipleChoice, Metric::RankAccuracy, test.clone());
        let rep = evaluate(&t, &test, &mut Fixed, 8);
        assert_eq!(rep.per_record, [1.0, 0.0]);
    }

    /// Answers each prompt with its own text, or "wrong" for the task named "misses", and
    /// records the tasks of every `generate` call.
    #[derive(Default)]
    struct Echo {
        calls: Vec<Vec<String>>,
    }
    impl TaskModel for Echo {
        fn generate(&mut self, task: &Task, batch: &[&Record]) -> Vec<String> {
            self.calls
                .push(batch.iter().map(|_| task.name.clone()).collect());
            batch
                .iter()
                .map(|r| {
                    if task.name == "misses" {
                        "wrong".to_string()
                    } else {
                        r.prompt.clone()
                    }
                })
                .collect()
        }
        fn score_options(&mut self, _: &Task, _: &[(&Record, &[String])]) -> Vec<Vec<OptionScore>> {
            unreachable!("generative tasks only")
        }
    }

    #[test]
    fn generative_sets_scored_together_match_each_set_alone_and_batches_span_tasks() {
        // Exact match against answers equal to the prompts: the "misses" task's answers miss,
        // the others hit; batches of 3 over 2 + 3 + 1 records span the tasks.
        let recs =
            |ps: &[&str]| -> Vec<Record> { ps.iter().map(|p| Record::new(*p, *p)).collect() };
        let mut a = task(
            TaskKind::ShortAnswerQa,
            Metric::ExactMatch,
            recs(&["a", "b"]),
        );
        a.name = "hits".into();
        let mut b = task(
            TaskKind::ShortAnswerQa,
            Metric::ExactMatch,
            recs(&["c", "d", "e"]),
        );
        b.name = "misses".into();
        let mut c = task(TaskKind::ShortAnswerQa, Metric::ExactMatch, recs(&["f"]));
        c.name = "hits2".into();
        let sets: Vec<(&Task, &[Record])> = vec![(&a, &a.test), (&b, &b.test), (&c, &c.test)];
        let mut model = Echo::default();
        let together = evaluate_generative(&sets, &mut model, 3);
        assert_eq!(
            model.calls,
            [
                vec!["hits", "hits"],
                vec!["misses"],
                vec!["misses", "misses"],
                vec!["hits2"]
            ]
        );
        let alone: Vec<EvalReport> = sets
            .iter()
            .map(|(t, r)| evaluate(t, r, &mut Echo::default(), 3))
            .collect();
        assert_eq!(together, alone);
        assert_eq!(together[0].per_record, [1.0, 1.0]);
        assert_eq!(together[1].per_record, [0.0, 0.0, 0.0]);
        assert_eq!(together[2].score, 1.0);
    }

    #[test]
    fn scienceqa_style_reference_is_gold_option() {
        let mut r = Record::new("q", "B\nBecause ...");
        r.options = Some(vec!["A".into(), "B".into()]);
        r.references = vec!["B".into()];
        assert_eq!(
            score_generation(Metric::GenAccuracy, &TaskKind::MultipleChoice, &r, "B\nSo."),
            1.0
        );
        assert_eq!(
            score_generation(Metric::GenAccuracy, &TaskKind::MultipleChoice, &r, "A"),
            0.0
        );
    }
}
