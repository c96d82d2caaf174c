//! Next-token prediction on open, pre-training-like text (METHODS.md section 5): every
//! `corpus_every` steps a batch of `corpus_batch_size` passages joins the objective with
//! weight `ntp_weight`. Configured by `[objective] ntp_weight` and the `corpus_*` training
//! settings.

use super::{LossContext, LossTerm, MethodPlugin, PassKind, PluginInit, Spent};

/// The corpus plugin.
pub struct CorpusNtp {
    weight: f64,
    corpus: Vec<Vec<u32>>,
    batch_size: usize,
    every: u64,
}

impl CorpusNtp {
    /// The plugin with the run's corpus and settings.
    pub fn new(weight: f64, run: &PluginInit<'_>) -> Self {
        Self {
            weight,
            corpus: run.corpus.to_vec(),
            batch_size: run.settings.corpus_batch_size,
            every: run.settings.corpus_every.max(1) as u64,
        }
    }

    /// The corpus batch of global step `step`: one every `corpus_every` steps, walking the
    /// corpus in order (batch `step / corpus_every` holds passages `b·n .. b·n + n`, wrapping).
    pub fn batch(&self, step: u64) -> Option<backbone::TokenBatch> {
        let n = self.batch_size;
        if self.corpus.is_empty() || n == 0 || !step.is_multiple_of(self.every) {
            return None;
        }
        let b = (step / self.every) as usize;
        let seqs: Vec<Vec<u32>> = (0..n)
            .map(|i| self.corpus[(b * n + i) % self.corpus.len()].clone())
            .collect();
        Some(backbone::TokenBatch::padded(&seqs, 0, false))
    }
}

impl MethodPlugin for CorpusNtp {
    fn name(&self) -> &str {
        "corpus"
    }

    fn before_backward(&mut self, ctx: &mut LossContext<'_>) -> Vec<LossTerm> {
        let Some(batch) = self.batch(ctx.step) else {
            return Vec::new();
        };
        let spent = Spent {
            forwards: 1,
            backwards: 0,
            tokens: batch.real_tokens() as u64,
        };
        vec![LossTerm {
            name: "ntp",
            value: finetune::ntp_loss(ctx.model, &batch),
            weight: self.weight,
            extra: (PassKind::Corpus, spent),
        }]
    }
}
