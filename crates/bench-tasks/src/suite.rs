//! Suites: TOML files that name tasks, their order, subsample sizes, seeds, metrics and probes.
//!
//! ```toml
//! name = "quick"
//! seed = 1234                  # subsample seed (default 0); each task mixes in its name
//! max_len = 256                # formatter limit for this suite (optional)
//!
//! [defaults]                   # for every task and probe unless it sets its own
//! train = 64                   # records drawn from the train split (absent: all)
//! test = 32                    # records drawn from the test split (absent: all)
//! max_prompt_chars = 1000      # drop longer records before drawing (absent: no limit)
//! max_answer_chars = 400
//!
//! [[tasks]]
//! name = "agnews"              # unique in the suite
//! source = "llm-cl/agnews"     # see `Source`
//! metric = "gen_accuracy"      # absent: the kind's default metric
//!
//! [[tasks]]
//! name = "lima"
//! source = "llm-cl/Lima"
//! test_split = "train"         # same split as train: the two draws are disjoint
//!
//! [[probes]]                   # general-ability probes, evaluated like tasks, never trained
//! name = "mmlu"
//! source = "mmlu"
//! train = 0
//! test = 200
//!
//! [orders]                     # optional named task orders
//! order4 = ["agnews", "lima"]
//! ```
//!
//! A suite trains its tasks in the order `default_order = "order4"` (a top-level key) names,
//! else in the `[[tasks]]` order; [`SuiteSpec::load`] takes another name of `[orders]`. Order
//! names are letters, digits, `-`, `_` and `.` (not first): `cargo xtask suite --order` writes
//! to `results/<suite>@<order>/`.
//!
//! Sources (relative to the data directory; splits in brackets, defaults first):
//! `llm-cl/<Task>` (`llm-cl-benchmark-500/<Task>/{train,test,eval}.json`),
//! `superni/<task dir>` (`{train,test,dev}`), `gsm8k` (`{train,test}.jsonl`),
//! `arc-easy` (`{train,test,validation}.json`), `arc-challenge` (`{train,test}.jsonl`),
//! `mmlu` or `mmlu/<subject>` (`{dev,test}`: train defaults to `dev`),
//! `commonsenseqa` (`{train,valid}`: test defaults to `valid`, the labelled split), and
//! `smoke` (generated: `generator = "label_map" | "offset_add"`, `variant = n`).
//!
//! A split a task draws from must hold records, and a classification or multiple-choice record
//! whose answer is none of its options is an error naming the file, the record and the field,
//! except the answer `-` (no gold label, as MNLI marks "no annotator majority"): such records
//! are skipped and counted ([`SplitCounts`]).
//!
//! Subsampling is deterministic: records longer than the limits, and those without a gold
//! label, are dropped (an error when nothing is left to draw from); then each split is
//! shuffled with a ChaCha8 generator seeded from the task's seed (the suite seed unless the
//! task sets `seed`) and an FNV-1a hash of its name, the first `n` are taken and put back in file
//! order. When train and test name the same split, the test records are drawn first and the
//! train records from the rest, so they never overlap.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Location, Result};
use crate::loaders;
use crate::smoke::{self, SmokeGenerator};
use crate::task::{Metric, Record, SplitCounts, Task, TaskKind};

/// Values shared by every task of a suite unless the task sets its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDefaults {
    /// Train records to draw. Absent: all.
    pub train: Option<usize>,
    /// Test records to draw. Absent: all.
    pub test: Option<usize>,
    /// Drop records whose prompt has more characters. Absent: no limit.
    pub max_prompt_chars: Option<usize>,
    /// Drop records whose answer has more characters. Absent: no limit.
    pub max_answer_chars: Option<usize>,
}

/// One task (or probe) of a suite file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Name, unique within the suite.
    pub name: String,
    /// Where the records come from (see the module doc).
    pub source: String,
    /// Train records to draw (overrides the defaults; absent: defaults, else all).
    pub train: Option<usize>,
    /// Test records to draw (overrides the defaults; absent: defaults, else all).
    pub test: Option<usize>,
    /// Split for training records. Absent: the source's train split.
    pub train_split: Option<String>,
    /// Split for test records. Absent: the source's labelled test split.
    pub test_split: Option<String>,
    /// Metric. Absent: the kind's default ([`TaskKind::default_metric`]).
    pub metric: Option<Metric>,
    /// Subsample seed. Absent: the suite's seed.
    pub seed: Option<u64>,
    /// Prompt length limit in characters (overrides the defaults).
    pub max_prompt_chars: Option<usize>,
    /// Answer length limit in characters (overrides the defaults).
    pub max_answer_chars: Option<usize>,
    /// System text for the chat template. Absent: none.
    pub system: Option<String>,
    /// The task's family for per-family tables (`multiple_choice`, `generation`,
    /// `reasoning`, ...): a label the report groups by, nothing in training reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// How a multiple-choice record is posed. `lettered` (the default): the options are listed
    /// under the question and the answer is their letter. `cloze`: the prompt is the question
    /// alone and the options are the answer texts, as lm-evaluation-harness poses ARC and
    /// CommonsenseQA to small models, which score at chance on letters (pair it with
    /// `metric = "rank_accuracy_norm"`). Only multiple-choice sources take `cloze`.
    #[serde(default, skip_serializing_if = "PromptFormat::is_lettered")]
    pub format: PromptFormat,
    /// Smoke tasks: the generator.
    pub generator: Option<SmokeGenerator>,
    /// Smoke tasks: the variant (which answer mapping). Default 0.
    #[serde(default)]
    pub variant: u64,
}

/// How a multiple-choice task's records are posed ([`TaskSpec::format`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    /// Options listed with letters under the question; the answer is a letter.
    #[default]
    Lettered,
    /// The question alone; the options are the answer texts.
    Cloze,
}

impl PromptFormat {
    fn is_lettered(&self) -> bool {
        *self == PromptFormat::Lettered
    }
}

/// A parsed suite file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSpec {
    /// Suite name.
    pub name: String,
    /// What the suite is for.
    #[serde(default)]
    pub description: String,
    /// Subsample seed. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Defaults for tasks and probes.
    #[serde(default)]
    pub defaults: TaskDefaults,
    /// Tasks, in their default training order.
    pub tasks: Vec<TaskSpec>,
    /// General-ability probes (evaluated at every point, never trained).
    #[serde(default)]
    pub probes: Vec<TaskSpec>,
    /// Named alternative task orders (each a list of task names).
    #[serde(default)]
    pub orders: BTreeMap<String, Vec<String>>,
    /// The order [`SuiteSpec::load`] uses unless given another. Absent: the `[[tasks]]` order.
    pub default_order: Option<String>,
    /// Names of `corpus/<name>.jsonl` files for approximate replay. Default: none.
    #[serde(default)]
    pub replay_corpus: Vec<String>,
    /// Maximum tokens of prompt plus answer for this suite's formatter
    /// ([`crate::FormatConfig::max_len`]). Absent: the caller's default.
    pub max_len: Option<usize>,
    /// Training settings for this suite (steps, batch size, learning rate, ...), read by the
    /// continual engine (`continual::TrainSettings`); this crate only carries them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<toml::Table>,
    /// Where the spec was read from (for error messages).
    #[serde(skip)]
    pub path: PathBuf,
}

/// A loaded suite: tasks in training order with their subsampled records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    /// Suite name.
    pub name: String,
    /// The order used: the one asked for, else the suite's `default_order` (`None`: the
    /// `[[tasks]]` order).
    pub order: Option<String>,
    /// Tasks in training order.
    pub tasks: Vec<Task>,
    /// Probes.
    pub probes: Vec<Task>,
    /// Replay corpus names (load with [`load_corpus`]).
    pub replay_corpus: Vec<String>,
    /// The suite's formatter length limit, if it sets one.
    pub max_len: Option<usize>,
}

impl Suite {
    /// Loads a suite file and its tasks in the suite's default order.
    pub fn load(path: &Path, data_dir: &Path) -> Result<Suite> {
        SuiteSpec::from_path(path)?.load(data_dir, None)
    }

    /// Loads a suite file with a named order from its `[orders]` table.
    pub fn load_order(path: &Path, data_dir: &Path, order: &str) -> Result<Suite> {
        SuiteSpec::from_path(path)?.load(data_dir, Some(order))
    }
}

/// Reads `corpus/<name>.jsonl` of the data directory (passages for approximate replay).
pub fn load_corpus(data_dir: &Path, name: &str) -> Result<Vec<String>> {
    loaders::load_corpus(&data_dir.join("corpus").join(format!("{name}.jsonl")))
}

/// The answer that marks a classification record without a gold label (MNLI: no annotator
/// majority); such records are skipped, never an error.
const NO_GOLD_LABEL: &str = "-";

/// FNV-1a, 64 bit: a stable hash of task names for seeding (std's hasher is not stable).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Indices `0..n` shuffled by `rng`.
fn shuffled(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(rng);
    idx
}

/// The records at `idx` in file order.
fn pick(records: &[Record], idx: &[usize]) -> Vec<Record> {
    let mut idx = idx.to_vec();
    idx.sort_unstable();
    idx.into_iter().map(|i| records[i].clone()).collect()
}

impl SuiteSpec {
    /// Reads and validates a suite file.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = loaders::read_text(path)?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates suite TOML; `path` is used in error messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self> {
        let mut spec: SuiteSpec = toml::from_str(text).map_err(|e| DataError::Syntax {
            path: path.to_path_buf(),
            at: e.span().map_or(crate::Location::File, |s| {
                // 1-based line of the span's start: newlines before it, plus one.
                crate::Location::Line(
                    text.as_bytes()[..s.start.min(text.len())]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count()
                        + 1,
                )
            }),
            message: e.message().to_string(),
        })?;
        spec.path = path.to_path_buf();
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<()> {
        let mut names = HashSet::new();
        for t in self.tasks.iter().chain(&self.probes) {
            if !names.insert(t.name.as_str()) {
                return Err(DataError::suite(
                    &self.path,
                    format!("duplicate task name `{}`", t.name),
                ));
            }
            if t.source == "smoke" && t.generator.is_none() {
                return Err(DataError::suite(
                    &self.path,
                    format!("smoke task `{}` needs a `generator`", t.name),
                ));
            }
        }
        for (order, list) in &self.orders {
            let usable = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            if order.is_empty() || order.starts_with('.') || !order.chars().all(usable) {
                return Err(DataError::suite(
                    &self.path,
                    format!(
                        "order name `{order}`: use letters, digits, `-`, `_` and `.` (not first); \
                         it names a results directory"
                    ),
                ));
            }
            let mut seen = HashSet::new();
            for n in list {
                if !self.tasks.iter().any(|t| &t.name == n) {
                    return Err(DataError::suite(
                        &self.path,
                        format!("order `{order}` names unknown task `{n}`"),
                    ));
                }
                if !seen.insert(n) {
                    return Err(DataError::suite(
                        &self.path,
                        format!("order `{order}` lists `{n}` twice"),
                    ));
                }
            }
        }
        if let Some(o) = &self.default_order
            && !self.orders.contains_key(o)
        {
            return Err(DataError::suite(
                &self.path,
                format!("default_order `{o}` is not in [orders]"),
            ));
        }
        Ok(())
    }

    /// The order `order` stands for: itself, else the suite's `default_order` (`None`: the
    /// `[[tasks]]` order).
    pub fn effective_order<'a>(&'a self, order: Option<&'a str>) -> Option<&'a str> {
        order.or(self.default_order.as_deref())
    }

    /// The task specs in an order (`None`: the suite's `default_order`, else the `[[tasks]]`
    /// order).
    pub fn ordered_tasks(&self, order: Option<&str>) -> Result<Vec<&TaskSpec>> {
        let Some(order) = self.effective_order(order) else {
            return Ok(self.tasks.iter().collect());
        };
        let list = self.orders.get(order).ok_or_else(|| {
            let known: Vec<_> = self.orders.keys().map(String::as_str).collect();
            DataError::suite(
                &self.path,
                format!("unknown order `{order}` (known: {})", known.join(", ")),
            )
        })?;
        Ok(list
            .iter()
            .filter_map(|n| self.tasks.iter().find(|t| &t.name == n))
            .collect())
    }

    /// Loads every task (in `order`; `None`: the suite's `default_order`, else the `[[tasks]]`
    /// order) and probe from `data_dir`.
    pub fn load(&self, data_dir: &Path, order: Option<&str>) -> Result<Suite> {
        let tasks = self
            .ordered_tasks(order)?
            .into_iter()
            .map(|t| self.load_task(t, data_dir))
            .collect::<Result<Vec<_>>>()?;
        let probes = self
            .probes
            .iter()
            .map(|t| self.load_task(t, data_dir))
            .collect::<Result<Vec<_>>>()?;
        Ok(Suite {
            name: self.name.clone(),
            order: self.effective_order(order).map(str::to_string),
            tasks,
            probes,
            replay_corpus: self.replay_corpus.clone(),
            max_len: self.max_len,
        })
    }

    /// Loads one task: source splits, filters, deterministic subsample.
    pub fn load_task(&self, spec: &TaskSpec, data_dir: &Path) -> Result<Task> {
        let d = &self.defaults;
        let n_train = spec.train.or(d.train);
        let n_test = spec.test.or(d.test);
        let seed = spec.seed.unwrap_or(self.seed) ^ fnv1a(&spec.name);
        let max_p = spec.max_prompt_chars.or(d.max_prompt_chars);
        let max_a = spec.max_answer_chars.or(d.max_answer_chars);

        if spec.source == "smoke" {
            let generator = spec.generator.ok_or_else(|| {
                DataError::suite(
                    &self.path,
                    format!("smoke task `{}` needs a `generator`", spec.name),
                )
            })?;
            let (n_train, n_test) = (n_train.unwrap_or(64), n_test.unwrap_or(32));
            let records =
                smoke::generate(generator, &spec.name, spec.variant, n_train + n_test, seed);
            let (train, test) = records.split_at(n_train);
            return Ok(Task {
                name: spec.name.clone(),
                kind: generator.kind(),
                train: train.to_vec(),
                test: test.to_vec(),
                metric: spec
                    .metric
                    .unwrap_or_else(|| generator.kind().default_metric()),
                system: spec.system.clone(),
                source_counts: SplitCounts {
                    train: n_train,
                    test: n_test,
                    ..Default::default()
                },
            });
        }

        let source = Source::parse(&spec.source).ok_or_else(|| {
            DataError::suite(
                &self.path,
                format!("task `{}`: unknown source `{}`", spec.name, spec.source),
            )
        })?;
        let train_split = spec
            .train_split
            .clone()
            .unwrap_or_else(|| source.default_train_split().to_string());
        let test_split = spec
            .test_split
            .clone()
            .unwrap_or_else(|| source.default_test_split().to_string());
        let train_pool = source.load_split(data_dir, &train_split)?;
        let test_pool = if test_split == train_split {
            train_pool.clone()
        } else {
            source.load_split(data_dir, &test_split)?
        };
        let kind = source.kind(data_dir, &train_pool)?;
        let (train_pool, test_pool) = match spec.format {
            PromptFormat::Lettered => (train_pool, test_pool),
            PromptFormat::Cloze => {
                if kind != TaskKind::MultipleChoice {
                    return Err(DataError::suite(
                        &self.path,
                        format!(
                            "task `{}`: format = \"cloze\" needs a multiple-choice source, and \
                             `{}` is not one",
                            spec.name, spec.source
                        ),
                    ));
                }
                let cloze = |pool: Vec<Record>, split: &str| -> Result<Vec<Record>> {
                    pool.iter()
                        .enumerate()
                        .map(|(i, r)| {
                            loaders::to_cloze(r).ok_or_else(|| {
                                DataError::suite(
                                    &self.path,
                                    format!(
                                        "task `{}`: record {i} of split `{split}` is not a \
                                         lettered multiple-choice prompt, so format = \"cloze\" \
                                         cannot pose it",
                                        spec.name
                                    ),
                                )
                            })
                        })
                        .collect()
                };
                (
                    cloze(train_pool, &train_split)?,
                    cloze(test_pool, &test_split)?,
                )
            }
        };
        let metric = spec.metric.unwrap_or_else(|| kind.default_metric());
        if metric.is_ranking()
            && !matches!(
                kind,
                TaskKind::Classification { .. } | TaskKind::MultipleChoice
            )
        {
            return Err(DataError::suite(
                &self.path,
                format!(
                    "task `{}`: metric {metric:?} ranks options, but the task has none",
                    spec.name
                ),
            ));
        }
        let files = [
            (source.split_path(data_dir, &train_split), n_train),
            (source.split_path(data_dir, &test_split), n_test),
        ];
        // A split the task draws records from must hold some.
        for ((file, n), pool) in files.iter().zip([&train_pool, &test_pool]) {
            if pool.is_empty() && *n != Some(0) {
                return Err(DataError::suite(
                    &self.path,
                    format!("task `{}`: {} has no records", spec.name, file.display()),
                ));
            }
        }
        // A classification or multiple-choice record whose answer is none of its options can be
        // neither trained on nor scored. The answer `-` marks a record without a gold label
        // (MNLI's "no annotator majority", two records of its test split): such records are
        // skipped and counted; any other answer outside the options is an error naming it.
        let mut no_label = [0usize; 2];
        for (((file, _), pool), count) in files
            .iter()
            .zip([&train_pool, &test_pool])
            .zip(&mut no_label)
        {
            for (i, r) in pool.iter().enumerate() {
                let Some(options) = kind.options_of(r) else {
                    continue;
                };
                if crate::score::gold_option(r, options).is_some() {
                    continue;
                }
                if r.answer.trim() == NO_GOLD_LABEL {
                    *count += 1;
                    continue;
                }
                let (at, field) = source.record_place(i);
                let record = match at {
                    Location::File => format!("record {i}: "),
                    _ => String::new(),
                };
                let set = match kind {
                    TaskKind::Classification { .. } => "label set",
                    _ => "options",
                };
                return Err(DataError::field(
                    file,
                    at,
                    field,
                    format!(
                        "{record}`{}` is not in the {set} {options:?} of task `{}`",
                        r.answer, spec.name
                    ),
                ));
            }
        }
        let source_counts = SplitCounts {
            train: train_pool.len(),
            test: test_pool.len(),
            train_no_label: no_label[0],
            test_no_label: no_label[1],
        };

        // Too long for the suite's limits, or without a gold label (the only answers outside the
        // options left): dropped before drawing.
        let keep = |r: &Record| {
            max_p.is_none_or(|m| r.prompt.chars().count() <= m)
                && max_a.is_none_or(|m| r.answer.chars().count() <= m)
                && kind
                    .options_of(r)
                    .is_none_or(|o| crate::score::gold_option(r, o).is_some())
        };
        let train_pool: Vec<Record> = train_pool.into_iter().filter(keep).collect();
        let test_pool: Vec<Record> = test_pool.into_iter().filter(keep).collect();
        // The filters must leave records to draw from.
        for ((file, n), (pool, before)) in files.iter().zip([
            (&train_pool, source_counts.train),
            (&test_pool, source_counts.test),
        ]) {
            if pool.is_empty() && *n != Some(0) {
                return Err(DataError::suite(
                    &self.path,
                    format!(
                        "task `{}`: none of the {before} records of {} is usable: each has a \
                         prompt longer than max_prompt_chars ({}), an answer longer than \
                         max_answer_chars ({}) or no gold label (`{NO_GOLD_LABEL}`)",
                        spec.name,
                        file.display(),
                        max_p.map_or_else(|| "none".to_string(), |m| m.to_string()),
                        max_a.map_or_else(|| "none".to_string(), |m| m.to_string()),
                    ),
                ));
            }
        }

        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (train, test) = if test_split == train_split {
            let idx = shuffled(train_pool.len(), &mut rng);
            let n_test = n_test.unwrap_or(idx.len()).min(idx.len());
            let rest = idx.len() - n_test;
            let n_train = n_train.unwrap_or(rest).min(rest);
            (
                pick(&train_pool, &idx[n_test..n_test + n_train]),
                pick(&train_pool, &idx[..n_test]),
            )
        } else {
            let ti = shuffled(test_pool.len(), &mut rng);
            let test = pick(&test_pool, &ti[..n_test.unwrap_or(ti.len()).min(ti.len())]);
            let tr = shuffled(train_pool.len(), &mut rng);
            let train = pick(
                &train_pool,
                &tr[..n_train.unwrap_or(tr.len()).min(tr.len())],
            );
            (train, test)
        };
        Ok(Task {
            name: spec.name.clone(),
            metric,
            kind,
            train,
            test,
            system: spec.system.clone(),
            source_counts,
        })
    }
}

/// Where a task's records come from; see the module doc for the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `llm-cl-benchmark-500/<task>`.
    LlmCl(String),
    /// `superni/<task dir>`.
    SuperNi(String),
    /// `gsm8k`.
    Gsm8k,
    /// `arc-easy` (JSON arrays).
    ArcEasy,
    /// `arc-challenge` (JSONL).
    ArcChallenge,
    /// `mmlu`, all subjects, or one subject.
    Mmlu(Option<String>),
    /// `commonsenseqa`.
    CommonsenseQa,
}

impl Source {
    /// Parses a suite's `source` string.
    pub fn parse(s: &str) -> Option<Self> {
        let (head, rest) = match s.split_once('/') {
            Some((h, r)) => (h, Some(r)),
            None => (s, None),
        };
        Some(match (head, rest) {
            ("llm-cl", Some(t)) if !t.is_empty() => Source::LlmCl(t.to_string()),
            ("superni", Some(t)) if !t.is_empty() => Source::SuperNi(t.to_string()),
            ("gsm8k", None) => Source::Gsm8k,
            ("arc-easy", None) => Source::ArcEasy,
            ("arc-challenge", None) => Source::ArcChallenge,
            ("mmlu", sub) => Source::Mmlu(sub.map(str::to_string)),
            ("commonsenseqa", None) => Source::CommonsenseQa,
            _ => return None,
        })
    }

    /// The split training records come from by default.
    pub fn default_train_split(&self) -> &'static str {
        match self {
            Source::Mmlu(_) => "dev",
            _ => "train",
        }
    }

    /// The split test records come from by default (a labelled one).
    pub fn default_test_split(&self) -> &'static str {
        match self {
            Source::CommonsenseQa => "valid",
            _ => "test",
        }
    }

    /// The file a split is read from (MMLU without a subject: the folder of its CSV files).
    pub fn split_path(&self, data_dir: &Path, split: &str) -> PathBuf {
        match self {
            Source::LlmCl(t) => data_dir
                .join("llm-cl-benchmark-500")
                .join(t)
                .join(format!("{split}.json")),
            Source::SuperNi(t) => data_dir
                .join("superni")
                .join(t)
                .join(format!("{split}.json")),
            Source::Gsm8k => data_dir.join("gsm8k").join(format!("{split}.jsonl")),
            Source::ArcEasy => data_dir.join("arc-easy").join(format!("{split}.json")),
            Source::ArcChallenge => data_dir
                .join("arc-challenge")
                .join(format!("{split}.jsonl")),
            Source::Mmlu(None) => data_dir.join("mmlu").join(split),
            Source::Mmlu(Some(sub)) => data_dir
                .join("mmlu")
                .join(split)
                .join(format!("{sub}_{split}.csv")),
            Source::CommonsenseQa => data_dir
                .join("commonsenseqa")
                .join(format!("{split}.jsonl")),
        }
    }

    /// Loads all records of a split.
    pub fn load_split(&self, data_dir: &Path, split: &str) -> Result<Vec<Record>> {
        let path = self.split_path(data_dir, split);
        match self {
            Source::LlmCl(t) => {
                let mut r = loaders::load_llm_cl(&path)?;
                if t == "ScienceQA" {
                    loaders::add_scienceqa_options(&mut r);
                }
                Ok(r)
            }
            Source::SuperNi(_) => Ok(loaders::load_superni(&path)?.instances),
            Source::Gsm8k => loaders::load_gsm8k(&path),
            Source::ArcEasy => loaders::load_arc_json(&path),
            Source::ArcChallenge => loaders::load_arc_jsonl(&path),
            Source::Mmlu(None) => loaders::load_mmlu_dir(&path),
            Source::Mmlu(Some(_)) => loaders::load_mmlu_csv(&path),
            Source::CommonsenseQa => loaders::load_commonsenseqa(&path),
        }
    }

    /// Where record `i` of a loaded split is in its file, and the field holding its answer:
    /// the array index for the JSON-array sources; the others (JSONL, CSV) are located by
    /// their loaders, which already reject an answer outside the options.
    fn record_place(&self, i: usize) -> (Location, &'static str) {
        match self {
            Source::LlmCl(_) => (Location::Index(i), "answer"),
            Source::SuperNi(_) => (Location::Index(i), "output"),
            Source::ArcEasy => (Location::Index(i), "answerKey"),
            Source::ArcChallenge | Source::CommonsenseQa => (Location::File, "answerKey"),
            Source::Gsm8k | Source::Mmlu(_) => (Location::File, "answer"),
        }
    }

    /// The task kind; classification labels come from `labels.json` or the (full) train split.
    pub fn kind(&self, data_dir: &Path, train: &[Record]) -> Result<TaskKind> {
        Ok(match self {
            Source::LlmCl(t) => {
                let labels =
                    loaders::load_llm_cl_labels(&data_dir.join("llm-cl-benchmark-500").join(t))?;
                loaders::llm_cl_kind(t, labels, train)
            }
            Source::SuperNi(t) => loaders::superni_kind(t, train),
            Source::Gsm8k => TaskKind::MathNumber,
            Source::ArcEasy | Source::ArcChallenge | Source::Mmlu(_) | Source::CommonsenseQa => {
                TaskKind::MultipleChoice
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml: &str) -> Result<SuiteSpec> {
        SuiteSpec::from_toml_str(toml, Path::new("test.toml"))
    }

    fn data_dir_with_llm_cl(n_train: usize, n_test: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("llm-cl-benchmark-500/toy");
        std::fs::create_dir_all(&t).unwrap();
        let rows = |n: usize, tag: &str| {
            let v: Vec<_> = (0..n)
                .map(|i| serde_json::json!({"prompt": format!("{tag} {i}"), "answer": if i % 2 == 0 {"yes"} else {"no"}}))
                .collect();
            serde_json::to_string(&v).unwrap()
        };
        std::fs::write(t.join("train.json"), rows(n_train, "tr")).unwrap();
        std::fs::write(t.join("test.json"), rows(n_test, "te")).unwrap();
        std::fs::write(t.join("labels.json"), r#"["yes","no"]"#).unwrap();
        dir
    }

    #[test]
    fn subsample_is_deterministic_and_sized() {
        let d = data_dir_with_llm_cl(50, 20);
        let s = spec(
            "name='s'\nseed=3\n[[tasks]]\nname='toy'\nsource='llm-cl/toy'\ntrain=10\ntest=5\n",
        )
        .unwrap();
        let a = s.load(d.path(), None).unwrap();
        let b = s.load(d.path(), None).unwrap();
        assert_eq!(a, b);
        let t = &a.tasks[0];
        assert_eq!((t.train.len(), t.test.len()), (10, 5));
        assert_eq!(
            t.source_counts,
            SplitCounts {
                train: 50,
                test: 20,
                ..Default::default()
            }
        );
        assert_eq!(
            t.kind,
            TaskKind::Classification {
                labels: vec!["yes".into(), "no".into()]
            }
        );
        assert_eq!(t.metric, Metric::GenAccuracy);
        assert!(t.train.iter().all(|r| r.prompt.starts_with("tr")));
    }

    const TOY: &str = "name='s'\n[[tasks]]\nname='toy'\nsource='llm-cl/toy'\n";

    /// The error of loading suite `toml` from `d`, as text.
    fn load_err(toml: &str, d: &tempfile::TempDir) -> String {
        spec(toml)
            .unwrap()
            .load(d.path(), None)
            .unwrap_err()
            .to_string()
    }

    /// Replaces the toy task's test split of `d` with `rows`.
    fn toy_test(d: &tempfile::TempDir, rows: &str) {
        std::fs::write(d.path().join("llm-cl-benchmark-500/toy/test.json"), rows).unwrap();
    }

    #[test]
    fn cloze_on_a_task_without_per_record_options_is_an_error_naming_the_setting() {
        let d = data_dir_with_llm_cl(4, 2);
        let e = load_err(&format!("{TOY}format='cloze'\n"), &d);
        assert!(
            e.contains("task `toy`: format = \"cloze\" needs a multiple-choice source"),
            "{e}"
        );
    }

    #[test]
    fn cloze_arc_records_carry_the_option_texts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("arc-easy")).unwrap();
        let rows = r#"[{"id":"1","question":"Hot?","choices":{"text":["sun","ice"],"label":["A","B"]},"answerKey":"A"},
                       {"id":"2","question":"Cold?","choices":{"text":["sun","ice"],"label":["1","2"]},"answerKey":"2"}]"#;
        for split in ["train", "test"] {
            std::fs::write(d.path().join(format!("arc-easy/{split}.json")), rows).unwrap();
        }
        let toml = "name='s'\n[[tasks]]\nname='arc'\nsource='arc-easy'\nformat='cloze'\n\
                    metric='rank_accuracy_norm'\n";
        let t = &spec(toml).unwrap().load(d.path(), None).unwrap().tasks[0];
        let mut got: Vec<(String, String)> = t
            .test
            .iter()
            .map(|r| (r.prompt.clone(), r.answer.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("Cold?\nAnswer:".to_string(), "ice".to_string()),
                ("Hot?\nAnswer:".to_string(), "sun".to_string())
            ]
        );
        assert!(
            t.test
                .iter()
                .all(|r| r.options == Some(vec!["sun".into(), "ice".into()]))
        );
    }

    #[test]
    fn an_empty_split_is_an_error_naming_file_and_task() {
        let d = data_dir_with_llm_cl(4, 0);
        let e = load_err(TOY, &d);
        assert!(
            e.starts_with("suite test.toml: task `toy`: ")
                && e.ends_with("llm-cl-benchmark-500/toy/test.json has no records"),
            "{e}"
        );
        // A split the task draws nothing from may be empty.
        let s = spec(&format!("{TOY}test=0\n")).unwrap();
        assert_eq!(s.load(d.path(), None).unwrap().tasks[0].test.len(), 0);
    }

    #[test]
    fn an_answer_outside_the_label_set_is_an_error_naming_the_record() {
        let d = data_dir_with_llm_cl(4, 2);
        toy_test(
            &d,
            r#"[{"prompt":"a","answer":"yes"},{"prompt":"b","answer":"maybe"}]"#,
        );
        let e = load_err(TOY, &d);
        assert!(
            e.ends_with(
                "toy/test.json, array index 1: field `answer`: `maybe` is not in the label set \
                 [\"yes\", \"no\"] of task `toy`"
            ),
            "{e}"
        );
    }

    #[test]
    fn records_without_a_gold_label_are_skipped_and_counted() {
        let d = data_dir_with_llm_cl(4, 2);
        toy_test(
            &d,
            r#"[{"prompt":"a","answer":"yes"},{"prompt":"b","answer":"-"},{"prompt":"c","answer":"no"}]"#,
        );
        let t = &spec(TOY).unwrap().load(d.path(), None).unwrap().tasks[0];
        assert_eq!(t.test.len(), 2);
        assert_eq!(
            (t.source_counts.test, t.source_counts.test_no_label),
            (3, 1)
        );
        // Nothing but records without a gold label leaves nothing to draw from.
        toy_test(&d, r#"[{"prompt":"b","answer":"-"}]"#);
        let e = load_err(TOY, &d);
        assert!(
            e.contains("task `toy`: none of the 1 records of ")
                && e.contains("toy/test.json is usable"),
            "{e}"
        );
    }

    #[test]
    fn length_filters_that_drop_every_record_are_an_error() {
        let d = data_dir_with_llm_cl(4, 2);
        let e = load_err(&format!("{TOY}max_prompt_chars=1\n"), &d);
        assert!(
            e.contains("none of the 4 records of ")
                && e.contains("toy/train.json is usable")
                && e.contains("max_prompt_chars (1)"),
            "{e}"
        );
    }

    #[test]
    fn different_seeds_draw_different_records() {
        let d = data_dir_with_llm_cl(50, 20);
        let load = |seed: u64| {
            spec(&format!("name='s'\nseed={seed}\n[[tasks]]\nname='toy'\nsource='llm-cl/toy'\ntrain=10\ntest=5\n"))
                .unwrap()
                .load(d.path(), None)
                .unwrap()
        };
        assert_ne!(load(1).tasks[0].train, load(2).tasks[0].train);
    }

    #[test]
    fn same_split_for_train_and_test_gives_disjoint_draws() {
        let d = data_dir_with_llm_cl(30, 5);
        let s = spec("name='s'\n[[tasks]]\nname='toy'\nsource='llm-cl/toy'\ntest_split='train'\ntrain=100\ntest=10\n").unwrap();
        let t = &s.load(d.path(), None).unwrap().tasks[0];
        assert_eq!((t.train.len(), t.test.len()), (20, 10));
        assert!(t.test.iter().all(|r| !t.train.contains(r)));
    }

    #[test]
    fn length_filters_apply_before_drawing() {
        let d = data_dir_with_llm_cl(20, 20);
        // prompts "tr 0".."tr 9" have 4 chars, "tr 10".. have 5.
        let s = spec("name='s'\n[defaults]\nmax_prompt_chars=4\n[[tasks]]\nname='toy'\nsource='llm-cl/toy'\n").unwrap();
        let t = &s.load(d.path(), None).unwrap().tasks[0];
        assert_eq!(t.train.len(), 10);
        assert_eq!(t.source_counts.train, 20);
    }

    #[test]
    fn named_orders_reorder_tasks() {
        let s = spec(
            "name='s'\n[[tasks]]\nname='a'\nsource='smoke'\ngenerator='label_map'\n\
             [[tasks]]\nname='b'\nsource='smoke'\ngenerator='offset_add'\n[orders]\nrev=['b','a']\n",
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        let names = |o| {
            s.load(d.path(), o)
                .unwrap()
                .tasks
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["a", "b"]);
        assert_eq!(names(Some("rev")), ["b", "a"]);
        let e = s.load(d.path(), Some("nope")).unwrap_err().to_string();
        assert!(e.ends_with("unknown order `nope` (known: rev)"), "{e}");
    }

    /// Three smoke tasks with the orders `fwd` (their own) and `rev`, and `default_order`.
    fn ordered_spec(default_order: &str) -> SuiteSpec {
        let task =
            |n: &str| format!("[[tasks]]\nname='{n}'\nsource='smoke'\ngenerator='label_map'\n");
        spec(&format!(
            "name='s'\n{default_order}\n[defaults]\ntrain=4\ntest=2\n{}{}{}\
             [orders]\nfwd=['a','b','c']\nrev=['c','b','a']\n",
            task("a"),
            task("b"),
            task("c")
        ))
        .unwrap()
    }

    #[test]
    fn default_order_is_the_order_loaded_when_none_is_named() {
        let d = tempfile::tempdir().unwrap();
        let names = |s: &Suite| s.tasks.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let s = ordered_spec("default_order='rev'");
        let default = s.load(d.path(), None).unwrap();
        assert_eq!(names(&default), ["c", "b", "a"]);
        assert_eq!(default.order.as_deref(), Some("rev"));
        let fwd = s.load(d.path(), Some("fwd")).unwrap();
        assert_eq!(
            (names(&fwd), fwd.order.as_deref()),
            (vec!["a".into(), "b".into(), "c".into()], Some("fwd"))
        );
        // Same task, same records, whatever the order.
        assert_eq!(fwd.tasks[0], default.tasks[2]);
        // Without a default_order: the [[tasks]] order, recorded as none.
        let plain = ordered_spec("").load(d.path(), None).unwrap();
        assert_eq!(
            (names(&plain), plain.order),
            (vec!["a".into(), "b".into(), "c".into()], None)
        );
        // Suite::load agrees with SuiteSpec::load.
        let file = d.path().join("s.toml");
        std::fs::write(&file, toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(Suite::load(&file, d.path()).unwrap(), default);
    }

    #[test]
    fn a_default_order_or_order_name_that_cannot_be_used_is_rejected() {
        let e = spec("name='s'\ndefault_order='o'\n[[tasks]]\nname='a'\nsource='gsm8k'\n")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("default_order `o` is not in [orders]"), "{e}");
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            let e = spec(&format!(
                "name='s'\n[[tasks]]\nname='a'\nsource='gsm8k'\n[orders]\n'{bad}'=['a']\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains(&format!("order name `{bad}`: use letters")),
                "{e}"
            );
        }
    }

    #[test]
    fn invalid_suites_are_rejected_with_reasons() {
        let dup = spec(
            "name='s'\n[[tasks]]\nname='a'\nsource='gsm8k'\n[[tasks]]\nname='a'\nsource='gsm8k'\n",
        );
        assert!(
            dup.unwrap_err()
                .to_string()
                .contains("duplicate task name `a`")
        );
        let bad_order = spec("name='s'\n[[tasks]]\nname='a'\nsource='gsm8k'\n[orders]\no=['x']\n");
        assert!(
            bad_order
                .unwrap_err()
                .to_string()
                .contains("unknown task `x`")
        );
        let unknown_field = spec("name='s'\n[[tasks]]\nname='a'\nsource='gsm8k'\ntrian=3\n");
        assert!(matches!(unknown_field, Err(DataError::Syntax { .. })));
    }

    #[test]
    fn ranking_metric_on_a_task_without_options_is_rejected() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("llm-cl-benchmark-500/Lima");
        std::fs::create_dir_all(&t).unwrap();
        for split in ["train", "test"] {
            std::fs::write(
                t.join(format!("{split}.json")),
                r#"[{"prompt":"p","answer":"a"}]"#,
            )
            .unwrap();
        }
        let s = spec(
            "name='s'\n[[tasks]]\nname='lima'\nsource='llm-cl/Lima'\nmetric='rank_accuracy'\n",
        )
        .unwrap();
        let e = s.load(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("ranks options"), "{e}");
    }

    #[test]
    fn unknown_source_is_an_error() {
        let s = spec("name='s'\n[[tasks]]\nname='a'\nsource='squad'\n").unwrap();
        let e = s.load(Path::new("."), None).unwrap_err().to_string();
        assert!(e.contains("unknown source `squad`"), "{e}");
    }

    #[test]
    fn sources_parse() {
        assert_eq!(
            Source::parse("llm-cl/agnews"),
            Some(Source::LlmCl("agnews".into()))
        );
        assert_eq!(Source::parse("mmlu"), Some(Source::Mmlu(None)));
        assert_eq!(
            Source::parse("mmlu/anatomy"),
            Some(Source::Mmlu(Some("anatomy".into())))
        );
        assert_eq!(Source::parse("llm-cl/"), None);
        assert_eq!(Source::Mmlu(None).default_train_split(), "dev");
        assert_eq!(Source::CommonsenseQa.default_test_split(), "valid");
    }

    #[test]
    fn fnv1a_is_stable() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
