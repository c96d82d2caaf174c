//! The task data: encoded training records, the held-out validation split, the batches of
//! every step (a pure function of seed, task and step) and the corpus.

use std::path::Path;

use bench_tasks::format::Formatter;
use bench_tasks::{Encoded, Record, Task};
use finetune::SftBatch;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use replay_buffer::{ReplayBuffer, SampleRef};

use super::{Run, mix};
use crate::EngineError;
use crate::lm::{TextCodec, sft_batch};
use crate::method::{Protocol, TrainSettings};
use crate::plugins::RunData;

/// What method plugins read of the run's data ([`RunData`]).
pub(super) struct Data<'r> {
    train: &'r [Vec<Option<Encoded>>],
    validation_records: usize,
    buffer: &'r ReplayBuffer,
}

impl<'r> Data<'r> {
    pub(super) fn new(
        train: &'r [Vec<Option<Encoded>>],
        validation_records: usize,
        buffer: &'r ReplayBuffer,
    ) -> Self {
        Self {
            train,
            validation_records,
            buffer,
        }
    }
}

impl RunData for Data<'_> {
    fn batch(&self, samples: &[SampleRef]) -> SftBatch {
        batch_of(self.train, samples)
    }

    fn training_samples(&self, task: usize) -> Vec<SampleRef> {
        training_refs(self.train, task, self.validation_records)
    }

    fn buffer(&self) -> &ReplayBuffer {
        self.buffer
    }
}

/// The SFT batch of `samples` (rows in order).
fn batch_of(train: &[Vec<Option<Encoded>>], samples: &[SampleRef]) -> SftBatch {
    let encoded: Vec<&Encoded> = samples
        .iter()
        .map(|r| {
            train[r.task as usize][r.index as usize]
                .as_ref()
                .expect("only encodable records are drawn")
        })
        .collect();
    sft_batch(&encoded)
}

/// The trained-on samples of task `t` that fit the context, in record order.
fn training_refs(
    train: &[Vec<Option<Encoded>>],
    t: usize,
    validation_records: usize,
) -> Vec<SampleRef> {
    training_pool(&train[t], validation_records)
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_some())
        .map(|(i, _)| SampleRef::new(t as u32, i as u32))
        .collect()
}

impl Run<'_> {
    /// How many of task `t`'s training records are trained on: all but the held-out
    /// validation records at their end.
    pub(super) fn pool_len(&self, t: usize) -> usize {
        training_pool(&self.train[t], self.cfg.settings.validation_records).len()
    }

    /// The held-out validation records of every task that fit the context: the fixed probe
    /// set of the sharpness and landscape measurements.
    pub(super) fn validation_refs(&self) -> Vec<SampleRef> {
        (0..self.train.len())
            .flat_map(|t| {
                (self.pool_len(t)..self.train[t].len())
                    .filter(move |&i| self.train[t][i].is_some())
                    .map(move |i| SampleRef::new(t as u32, i as u32))
            })
            .collect()
    }

    /// The task samples of step `s` of task `k`: consecutive slices of per-epoch shuffles,
    /// each shuffle seeded by (seed, task, epoch). Joint training draws from tasks `0..=k`.
    pub(super) fn task_samples(&self, k: usize, s: usize) -> Vec<SampleRef> {
        let tasks: Vec<usize> = match self.cfg.method.protocol {
            Protocol::Sequential => vec![k],
            Protocol::Joint => (0..=k).collect(),
        };
        let pool: Vec<SampleRef> = tasks
            .iter()
            .flat_map(|&t| training_refs(&self.train, t, self.cfg.settings.validation_records))
            .collect();
        if pool.is_empty() {
            return vec![];
        }
        let b = self.cfg.settings.batch_size;
        // A batch spans at most a few epochs: shuffle each one once, not once per sample.
        let mut order: Option<(usize, Vec<usize>)> = None;
        (s * b..(s + 1) * b)
            .map(|pos| {
                let (epoch, i) = (pos / pool.len(), pos % pool.len());
                if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    let mut o: Vec<usize> = (0..pool.len()).collect();
                    o.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(mix(&[
                        self.cfg.seed,
                        k as u64,
                        epoch as u64,
                    ])));
                    order = Some((epoch, o));
                }
                pool[order.as_ref().expect("set above").1[i]]
            })
            .collect()
    }

    pub(super) fn sft_batch(&self, samples: &[SampleRef]) -> SftBatch {
        batch_of(&self.train, samples)
    }
}

/// Validation records held out of a task with `n` training records.
pub(super) fn held_out(n: usize, validation_records: usize) -> usize {
    validation_records.min(n)
}

/// The records of a task that are trained on: all but the held-out validation records at the
/// end.
pub(super) fn training_pool<T>(records: &[T], validation_records: usize) -> &[T] {
    &records[..records.len() - held_out(records.len(), validation_records)]
}

/// Optimizer steps per task: `steps_per_task`, or `epochs · ⌈n / |B|⌉` over the training
/// records (validation records held out) that fit.
pub(super) fn task_steps(s: &TrainSettings, train: &[Vec<Option<Encoded>>]) -> Vec<usize> {
    train
        .iter()
        .map(|t| {
            let pool = training_pool(t, s.validation_records);
            s.steps_per_task
                .unwrap_or_else(|| s.epochs * pool.iter().flatten().count().div_ceil(s.batch_size))
        })
        .collect()
}

/// A task's training records encoded; a record that does not fit the context (its answer alone
/// exceeds `max_len`) is skipped with a warning naming the task, the record's index in the task's
/// train records and the start of its prompt.
///
/// Every record is encoded, the held-out validation records at the end included (the
/// sharpness and landscape probes run on them); a task whose training records would all be
/// held out is an error naming `training.validation_records`.
pub(super) fn encode_train(
    formatter: &Formatter<TextCodec>,
    task: &Task,
    validation_records: usize,
    origin: &Path,
) -> Result<Vec<Option<Encoded>>, EngineError> {
    if !task.train.is_empty() && task.train.len() <= validation_records {
        return Err(EngineError::config(
            origin,
            format!(
                "training.validation_records = {validation_records} holds out all {1} training records of task `{0}`: lower it or give the task more records",
                task.name,
                task.train.len()
            ),
        ));
    }
    let origin = format!("task `{}` (train)", task.name);
    Ok(formatter
        .encode_each(task.system.as_deref(), &origin, &task.train)
        .into_iter()
        .map(|r| match r {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!("{e}: the record is skipped");
                None
            }
        })
        .collect())
}

/// Validation records of a task: the last `n` of its training records, held out of training
/// (`training.validation_records`), so neither trained on, buffered nor tested on; our choice,
/// METHODS.md leaves the split to the engine.
pub(super) fn validation_slice(task: &Task, n: usize) -> Vec<Record> {
    let start = task.train.len().saturating_sub(n);
    task.train[start..].to_vec()
}

/// Corpus passages as token ids, each cut to `max_tokens` (at least 2); shorter ones dropped.
pub(crate) fn corpus_ids(corpus: &[String], codec: &TextCodec, max_tokens: usize) -> Vec<Vec<u32>> {
    use bench_tasks::format::TokenCounter;
    corpus
        .iter()
        .map(|p| {
            let mut ids = codec.encode(p);
            ids.truncate(max_tokens.max(2));
            ids
        })
        .filter(|ids| ids.len() >= 2)
        .collect()
}
