//! The result files: `matrix.json` after every evaluation, `run.json`, `metrics.json`, the
//! final adapter, and the suite's index row.

use serde_json::json;

use super::{ADAPTER, ModelSource, Run, RunOutcome};
use crate::EngineError;
use crate::method::TrainModeName;
use crate::metrics::{AccuracyMatrix, general_forgetting};
use crate::results::{ensure_index_row, write_json};

impl Run<'_> {
    pub(super) fn write_matrix(&self) -> Result<(), EngineError> {
        write_json(
            &self.cfg.out_dir.join("matrix.json"),
            &json!({
                "tasks": self.cfg.suite.tasks.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "probes": self.cfg.suite.probes.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "rows": self.state.rows,
                "probe_rows": self.state.probe_rows,
            }),
        )
    }

    pub(super) fn write_run_json(&self, status: &str) -> Result<(), EngineError> {
        let c = self.cfg;
        write_json(
            &c.out_dir.join("run.json"),
            &json!({
                "suite": c.suite.name, "method": c.method.name, "seed": c.seed, "status": status,
                "method_config": c.method, "training": c.settings, "suite_spec": c.suite_spec,
                "model": match &c.model { ModelSource::TinyRandom => "tiny-random".to_string(), ModelSource::Path { path } => path.display().to_string() },
                "device": c.device_name, "replay_budget": c.settings.replay_budget,
                "provenance": c.provenance,
                "tasks": c.suite.tasks.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "probes": c.suite.probes.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "train_records_used": (0..self.train.len()).map(|t| self.train[t][..self.pool_len(t)].iter().flatten().count()).collect::<Vec<_>>(),
                "validation_records_held_out": self.cfg.suite.tasks.iter().map(|t| super::data::held_out(t.train.len(), c.settings.validation_records)).collect::<Vec<_>>(),
            }),
        )
    }

    pub(super) fn finish(mut self) -> Result<RunOutcome, EngineError> {
        let matrix = AccuracyMatrix::new(self.state.rows.clone()).map_err(EngineError::Metrics)?;
        let m = matrix.metrics();
        let c = &self.state.cost;
        let wall = c.train_seconds + c.eval_seconds;
        let metrics = json!({
            "aa": m.aa, "bwt": m.bwt, "forgetting": m.forgetting, "fwt": m.fwt, "ans": m.ans,
            "general_forgetting": general_forgetting(&self.state.probe_rows),
            "cost": {
                "optimizer_steps": c.optimizer_steps, "forward_passes": c.forward_passes, "backward_passes": c.backward_passes,
                "tokens": c.tokens, "tokens_by_pass": c.tokens_by_pass, "replayed_samples": c.replayed_samples, "probe_forwards": c.probe_forwards,
                "plugin_forwards": c.plugin_forwards, "plugin_backwards": c.plugin_backwards,
                "strategy_eval_examples": c.strategy_eval_examples, "eval_examples": c.eval_examples,
                "wall_seconds": wall, "train_seconds": c.train_seconds, "eval_seconds": c.eval_seconds,
                "this_process_seconds": self.started.elapsed().as_secs_f64(),
            },
            "replay_budget": self.cfg.settings.replay_budget,
            "divergence_rollbacks": self.state.rollbacks,
        });
        write_json(&self.cfg.out_dir.join("metrics.json"), &metrics)?;
        if self.cfg.settings.mode == TrainModeName::Lora {
            let model = self.model.as_mut().expect("model");
            for p in self.plugins.iter_mut() {
                p.after_training(model)?;
            }
            lora::save_peft(model, ADAPTER, &self.cfg.out_dir.join("adapter"), None)
                .map_err(|e| EngineError::Checkpoint(format!("saving the final adapter: {e}")))?;
        }
        self.log.sync()?;
        self.write_run_json("complete")?;
        crate::test_pause("index-append");
        if let Some(index) = &self.cfg.index_path {
            // Built from run.json and metrics.json, so a kill right here is repaired later
            // (`ensure_index_row` on the next `cargo xtask suite`).
            ensure_index_row(index, &self.cfg.out_dir)?;
        }
        Ok(RunOutcome {
            rows: self.state.rows,
            probe_rows: self.state.probe_rows,
            metrics,
        })
    }
}
