//! Scoring a finished run again: its final LoRA adapter, or the backbone without it, on a
//! suite's tasks and probes with as many test records as asked.
//!
//! A run evaluates every task and probe after every stage on `eval_limit` records, which on a
//! small CPU is a handful. Measures that need only the first and the last row, such as the
//! general-ability forgetting `↓F = p[0] − p[T]`, can be sharpened afterwards: row 0 is the
//! backbone without the adapter, row T the backbone with the run's saved `adapter/`. Every
//! run of a suite scores the same records, so differences between methods are paired by
//! record.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use continual::rescore::{SavedRun, Scorer};
//! use std::path::Path;
//! let run = SavedRun::read(Path::new("results/quick/kl/0"))?;
//! let suite = run.suite_spec.load(Path::new("../shared/data"), None)?;
//! let mut scorer = Scorer::new(&run.model, run.seed, &run.settings, &suite, &burn::tensor::Device::flex())?;
//! let probe = suite.probes.iter().find(|t| t.name == "arc-challenge-probe").unwrap();
//! let base = scorer.score(probe, 64);
//! scorer.load_adapter(&run.dir.join("adapter"))?;
//! let last = scorer.score(probe, 64);
//! println!("↓F on 64 records: {}", base.score - last.score);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use backbone::CausalLm;
use bench_tasks::format::Formatter;
use bench_tasks::{EvalReport, Suite, SuiteSpec, Task};
use burn::tensor::Device;
use serde_json::Value;

use crate::EngineError;
use crate::engine::{ADAPTER, ModelSource, corpus_ids, load_backbone};
use crate::lm::{TextCodec, evaluate_records};
use crate::method::{TrainModeName, TrainSettings};

/// What `run.json` of a finished run says about how to rebuild its model and suite.
#[derive(Debug, Clone)]
pub struct SavedRun {
    /// The run directory (`results/<suite>/<method>/<seed>`).
    pub dir: PathBuf,
    /// Method name.
    pub method: String,
    /// The run's seed (a random backbone is rebuilt from it).
    pub seed: u64,
    /// The suite file as the run parsed it.
    pub suite_spec: SuiteSpec,
    /// The resolved training settings (generation length, batch size, mode).
    pub settings: TrainSettings,
    /// The backbone.
    pub model: ModelSource,
}

impl SavedRun {
    /// Reads `dir/run.json`. Fails, naming the file and field, when the run is not complete,
    /// trained the full model (no adapter to load), or a field is missing or malformed.
    pub fn read(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join("run.json");
        let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| EngineError::config(&path, e.to_string()))?;
        let field = |name: &str| -> Result<&Value, EngineError> {
            v.get(name)
                .ok_or_else(|| EngineError::config(&path, format!("no `{name}` field")))
        };
        let parse =
            |name: &str, e: serde_json::Error| EngineError::config(&path, format!("`{name}`: {e}"));
        if field("status")? != "complete" {
            return Err(EngineError::config(
                &path,
                format!("`status` is {}, not \"complete\"", v["status"]),
            ));
        }
        let settings: TrainSettings =
            serde_json::from_value(field("training")?.clone()).map_err(|e| parse("training", e))?;
        if settings.mode != TrainModeName::Lora {
            return Err(EngineError::config(
                &path,
                "`training.mode` is full: the run saved no adapter to score".into(),
            ));
        }
        let model = match field("model")?.as_str() {
            Some("tiny-random") => ModelSource::TinyRandom,
            Some(p) => ModelSource::Path {
                path: PathBuf::from(p),
            },
            None => return Err(EngineError::config(&path, "`model` is not a string".into())),
        };
        let mut suite_spec: SuiteSpec = serde_json::from_value(field("suite_spec")?.clone())
            .map_err(|e| parse("suite_spec", e))?;
        suite_spec.path = path.clone();
        Ok(Self {
            dir: dir.to_path_buf(),
            method: field("method")?.as_str().unwrap_or_default().to_string(),
            seed: field("seed")?
                .as_u64()
                .ok_or_else(|| EngineError::config(&path, "`seed` is not an integer".into()))?,
            suite_spec,
            settings,
            model,
        })
    }
}

/// A backbone ready to score tasks, with or without a run's adapter.
pub struct Scorer {
    model: CausalLm,
    formatter: Formatter<TextCodec>,
    stop_ids: Vec<u32>,
    settings: TrainSettings,
    device: Device,
}

impl Scorer {
    /// Loads the backbone as a run of `settings` and `seed` on `suite` did (tokenizer, chat
    /// template, maximum length), without an adapter.
    pub fn new(
        model: &ModelSource,
        seed: u64,
        settings: &TrainSettings,
        suite: &Suite,
        device: &Device,
    ) -> Result<Self, EngineError> {
        let (model, formatter, stop_ids) = load_backbone(model, seed, suite, device)?;
        Ok(Self {
            model,
            formatter,
            stop_ids,
            settings: settings.clone(),
            device: device.clone(),
        })
    }

    /// Loads a PEFT adapter directory (a run's `adapter/`) in place of the current one.
    pub fn load_adapter(&mut self, dir: &Path) -> Result<(), EngineError> {
        lora::load_peft(&mut self.model, dir, ADAPTER, &self.device)
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", dir.display())))?;
        Ok(())
    }

    /// Rebuilds an O-LoRA run's final adapter from its last checkpoint and writes it as the
    /// run's `adapter/` (replacing what is there), then loads it. Runs written before O-LoRA's
    /// `after_training` hook (2026-12-07) saved the fresh adapter that follows the last fold,
    /// so their `adapter/` scored as the bare backbone; the checkpoint kept every finished
    /// task's factors (`ckpt/<LATEST>/plugins/olora/task-*.safetensors`), which side by side
    /// are the trained model. Returns the number of tasks' adapters.
    pub fn rebuild_olora_adapter(&mut self, run_dir: &Path) -> Result<usize, EngineError> {
        let ckpt = run_dir.join("ckpt");
        let latest = ckpt.join("LATEST");
        let name = std::fs::read_to_string(&latest).map_err(|e| EngineError::io(&latest, e))?;
        let folds = ckpt.join(name.trim()).join("plugins").join("olora");
        let mut finished = Vec::new();
        loop {
            let path = folds.join(format!("task-{:03}.safetensors", finished.len()));
            if !path.is_file() {
                break;
            }
            finished.push(crate::params::TrainableSnapshot::load(&path)?);
        }
        if finished.is_empty() {
            return Err(EngineError::Checkpoint(format!(
                "{}: no task-000.safetensors: not an O-LoRA checkpoint",
                folds.display()
            )));
        }
        self.add_fresh_adapter();
        crate::plugins::olora::install_side_by_side(&mut self.model, &finished);
        // Written beside the old one, then swapped in: a crash leaves the old `adapter/` or the
        // rebuilt `adapter.rebuilt/` whole.
        let adapter = run_dir.join("adapter");
        let rebuilt = run_dir.join("adapter.rebuilt");
        let err =
            |e: lora::LoraError| EngineError::Checkpoint(format!("{}: {e}", rebuilt.display()));
        lora::save_peft(&self.model, ADAPTER, &rebuilt, None).map_err(err)?;
        if adapter.exists() {
            std::fs::remove_dir_all(&adapter).map_err(|e| EngineError::io(&adapter, e))?;
        }
        std::fs::rename(&rebuilt, &adapter).map_err(|e| EngineError::io(&adapter, e))?;
        Ok(finished.len())
    }

    /// The model as it scores now (with the loaded adapter, if any).
    pub fn model(&self) -> &CausalLm {
        &self.model
    }

    /// The prompt formatter and its tokenizer.
    pub fn formatter(&self) -> &Formatter<TextCodec> {
        &self.formatter
    }

    /// The model as it scores now, taken out (to train it, e.g. on an autodiff device).
    pub fn into_model(self) -> CausalLm {
        self.model
    }

    /// The token ids that end a generation.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Adds a fresh adapter of the settings' LoRA configuration, as a run starts with: its `B`
    /// factors are zero, so the scores are row 0's but every projection pays the adapter's cost
    /// (what `cargo xtask bench --eval --suite` times).
    pub fn add_fresh_adapter(&mut self) {
        lora::add_adapter(&mut self.model, ADAPTER, &self.settings.lora, &self.device);
    }

    /// Drops the adapter: the backbone as at row 0.
    pub fn remove_adapter(&mut self) {
        lora::remove_adapter(&mut self.model, ADAPTER);
    }

    /// Scores the first `limit` test records of `task` (all of them when it has fewer), with
    /// the engine's metric, generation length and batch size.
    pub fn score(&self, task: &Task, limit: usize) -> EvalReport {
        let records = &task.test[..task.test.len().min(limit)];
        let model = crate::lm::inference_model(&self.model, self.settings.eval_merge_adapter);
        evaluate_records(
            &model,
            &self.formatter,
            &self.stop_ids,
            &self.settings,
            task,
            records,
        )
    }

    /// Mean next-token negative log-likelihood (nats per token) of `passages`, each cut to its
    /// first `max_tokens` tokens: the model's loss on pre-training-like text. Passages of fewer
    /// than 2 tokens are skipped.
    pub fn corpus_nll(&self, passages: &[String], max_tokens: usize) -> CorpusNll {
        let model = crate::lm::inference_model(&self.model, self.settings.eval_merge_adapter);
        let ids = corpus_ids(passages, self.formatter.tokenizer(), max_tokens);
        let mut per_passage = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.settings.eval_batch_size.max(1)) {
            let batch = backbone::TokenBatch::padded(chunk, 0, false);
            for lps in backbone::score::token_logprobs(&model, &batch) {
                let lps: Vec<f64> = lps.into_iter().flatten().map(|x| -f64::from(x)).collect();
                per_passage.push((lps.iter().sum::<f64>(), lps.len()));
            }
        }
        let tokens: usize = per_passage.iter().map(|p| p.1).sum();
        CorpusNll {
            mean_nll: per_passage.iter().map(|p| p.0).sum::<f64>() / tokens.max(1) as f64,
            tokens,
            per_passage: per_passage.iter().map(|p| p.0 / p.1 as f64).collect(),
        }
    }
}

/// [`Scorer::corpus_nll`]'s result.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusNll {
    /// Negative log-likelihood per predicted token over all passages (nats).
    pub mean_nll: f64,
    /// Tokens predicted.
    pub tokens: usize,
    /// Each passage's own mean NLL per token.
    pub per_passage: Vec<f64>,
}
