//! Checkpoints and divergence recovery: what a resume or a rollback restores.

use std::path::Path;

use finetune::Trainer;
use report::events::{LogEvent, RollbackLine};
use serde_json::Value;

use super::Run;
use crate::EngineError;
use crate::method::DivergencePolicy;
use crate::params::TrainableSnapshot;
use crate::results::JsonlLog;

impl Run<'_> {
    pub(super) fn checkpoint(&mut self) -> Result<(), EngineError> {
        self.log.sync()?;
        self.state.log_len = self.log.len();
        self.state.sam = self.sam.as_ref().map(|s| s.to_record());
        let model = self.model.as_ref().expect("model");
        let plugins = &self.plugins;
        let save_plugins = |dir: &Path| -> Result<(), EngineError> {
            for p in plugins {
                let d = dir.join(p.name());
                std::fs::create_dir_all(&d).map_err(|e| EngineError::io(&d, e))?;
                p.save(&d)?;
            }
            Ok(())
        };
        crate::checkpoint::save(
            &self.cfg.out_dir.join("ckpt"),
            self.state.global_step,
            self.state.task,
            &crate::checkpoint::Contents {
                trainable: &TrainableSnapshot::of(model),
                plugins: &save_plugins,
                trainer: &self.trainer,
                state: &serde_json::to_value(&self.state).expect("state serialises"),
            },
            usize::from(self.cfg.settings.on_divergence == DivergencePolicy::Rollback),
        )
    }

    pub(super) fn restore(&mut self, dir: &Path) -> Result<(), EngineError> {
        let loaded = crate::checkpoint::load(dir)?;
        self.state = serde_json::from_value(loaded.state)
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", dir.display())))?;
        let mut model = loaded
            .trainable
            .restore(self.model.take().expect("model"))?;
        for p in self.plugins.iter_mut() {
            let d = dir.join("plugins").join(p.name());
            p.load(&d, &mut model)?;
        }
        self.model = Some(model);
        self.load_trainer(dir)?;
        if let (Some(sam), Some(rec)) = (self.sam.take(), self.state.sam.clone()) {
            self.sam = Some(sam.load_record(rec));
        }
        self.log = JsonlLog::open(&self.cfg.out_dir.join("log.jsonl"), self.state.log_len)?;
        Ok(())
    }

    /// The optimizer moments and step of checkpoint `dir`, with the learning rate of the
    /// current state (the base rate times `lr_scale`).
    fn load_trainer(&mut self, dir: &Path) -> Result<(), EngineError> {
        let mut optim = self.cfg.settings.optim.clone();
        optim.lr *= self.state.lr_scale;
        self.trainer = Trainer::new(optim)
            .load(&dir.join("trainer"))
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", dir.display())))?;
        Ok(())
    }

    /// After an error inside a task: a divergence under `on_divergence = "rollback"` with
    /// rollbacks left restores the last checkpoint (weights, optimizer, buffer, scheduler,
    /// counters, log), multiplies the learning rate by `divergence_lr_factor` and logs a
    /// `rollback` line; the caller then retries from there. Any other error, and a divergence
    /// without rollbacks left, is returned: a run never goes on silently.
    pub(super) fn roll_back(&mut self, err: EngineError) -> Result<(), EngineError> {
        let cfg = self.cfg;
        let s = &cfg.settings;
        let (task, step, term, value) = match &err {
            EngineError::Diverged {
                task,
                step,
                term,
                value,
                ..
            } if s.on_divergence == DivergencePolicy::Rollback => {
                (task.clone(), *step, term.clone(), *value)
            }
            _ => return Err(err),
        };
        if self.state.rollbacks >= s.divergence_max_rollbacks {
            let lr = s.optim.lr * self.state.lr_scale;
            return Err(EngineError::DivergedAfterRollbacks {
                last: Box::new(err),
                rollbacks: self.state.rollbacks,
                lr,
            });
        }
        // The newest checkpoint taken before the diverging step: one taken at that very step
        // holds weights that already give the non-finite loss.
        let root = cfg.out_dir.join("ckpt");
        let Some(dir) = crate::checkpoint::before(&root, step)? else {
            return Err(EngineError::Checkpoint(format!(
                "{err}; no checkpoint before step {step} to roll back to"
            )));
        };
        crate::checkpoint::republish(&root, &dir)?;
        let (rollbacks, lr_scale) = (
            self.state.rollbacks + 1,
            self.state.lr_scale * s.divergence_lr_factor,
        );
        let log_path = cfg.out_dir.join("log.jsonl");
        let old_log = std::fs::read(&log_path).map_err(|e| EngineError::io(&log_path, e))?;
        self.restore(&dir)?;
        // Earlier rollbacks logged since that checkpoint are history, not retried work: the
        // cut-back log keeps them.
        let since = old_log
            .get(self.state.log_len as usize..)
            .unwrap_or_default();
        for line in String::from_utf8_lossy(since).lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && v["type"] == "rollback"
            {
                self.log.write(&v)?;
            }
        }
        self.state.rollbacks = rollbacks;
        self.state.lr_scale = lr_scale;
        self.load_trainer(&dir)?;
        let lr = s.optim.lr * lr_scale;
        tracing::warn!(
            "{err}: rollback {rollbacks} to {} (step {}), learning rate now {lr:e}",
            dir.display(),
            self.state.global_step
        );
        let line = LogEvent::Rollback(RollbackLine {
            task,
            step,
            term,
            value: value.is_finite().then_some(value),
            to_step: self.state.global_step,
            rollback: rollbacks,
            lr_scale,
            lr,
        });
        self.log.write(&line.to_value())?;
        Ok(())
    }
}
