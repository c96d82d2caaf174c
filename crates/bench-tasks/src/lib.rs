//! Continual-learning task data: loaders, suites, prompt formatting and scorers.
//!
//! ```text
//! data dir ──loaders──▶ Record{prompt, answer, options} ──Suite::load──▶ Vec<Task> (ordered, subsampled)
//!                                                   │
//!                     Formatter (chat template, max_len, few-shot) ──▶ token ids + answer mask
//!                     score::* / evaluate(task, model) ──▶ per-task score in [0, 1]
//! ```
//!
//! The data directory is resolved by [`resolve_data_dir`]: `--data-dir`, then the
//! `CONTINUAL_DATA_DIR` environment variable, then `../shared/data`. Suites are TOML files under
//! `experiments/suites/` ([`SuiteSpec`]).
#![warn(missing_docs)]

pub mod data_dir;
pub mod error;
pub mod fetch;
pub mod format;
pub mod loaders;
pub mod score;
pub mod smoke;
pub mod suite;
pub mod task;

pub use data_dir::{DATA_DIR_ENV, resolve_data_dir};
pub use error::{DataError, Location, Result};
pub use format::{
    ByteTokenizer, Encoded, FormatConfig, FormatError, Formatter, RecordFormatError, TokenCounter,
};
pub use score::{EvalReport, LengthNorm, OptionScore, TaskModel, evaluate, evaluate_generative};
pub use suite::{Suite, SuiteSpec, TaskSpec, load_corpus};
pub use task::{Metric, Record, SplitCounts, Task, TaskKind};
