//! Stage ends and evaluations: the strategy's end-of-task passes, the plugins' stage end,
//! the sharpness and landscape measurements, and the evaluation rows of the matrix.

use std::time::Instant;

use backbone::CausalLm;
use bench_tasks::{Record, Task};
use replay_buffer::{HookPoint, Signals};
use report::events::{EvalLine, LandscapeLine, LogEvent, SharpnessProbeLine, StrengthsLine};

use super::{Run, mix};
use crate::lm::{evaluate_records, evaluate_row};
use crate::{EngineError, Plugin};

impl Run<'_> {
    /// The model as evaluation runs it ([`crate::lm::inference_model`]).
    pub(super) fn inference_model(&self) -> CausalLm {
        crate::lm::inference_model(
            self.model.as_ref().expect("model"),
            self.cfg.settings.eval_merge_adapter,
        )
    }

    pub(super) fn score_task(
        &self,
        model: &CausalLm,
        task: &Task,
        records: &[Record],
    ) -> Result<f64, EngineError> {
        Ok(evaluate_records(
            model,
            &self.formatter,
            &self.stop_ids,
            &self.cfg.settings,
            task,
            records,
        )
        .score)
    }

    /// The strategy's end-of-task passes, the memory-strength snapshot and the method
    /// plugins' stage end (WiSE-FT, importance estimates, ...).
    pub(super) fn end_of_task(
        &mut self,
        k: usize,
        plugins: &mut [&mut dyn Plugin],
    ) -> Result<(), EngineError> {
        let step = self.state.global_step;
        let passes = self.state.replay.wants(HookPoint::AfterTrainingExp {
            task: k as u32,
            step,
        });
        let (probe, scores) = self.extra_passes(&passes)?;
        self.state.replay.after_training_exp(
            k as u32,
            &Signals {
                step,
                probe_losses: &probe,
                scores: &scores,
                ..Default::default()
            },
        );
        let mut strengths = Vec::new();
        self.state
            .replay
            .buffer
            .memory()
            .strengths_into(None, step, &mut strengths);
        if !strengths.is_empty() {
            self.log.write(
                &LogEvent::Strengths(StrengthsLine {
                    step,
                    stage: k + 1,
                    values: strengths.iter().map(|&v| finite(f64::from(v))).collect(),
                })
                .to_value(),
            )?;
        }
        self.method_stage_hook(k, false)?;
        let steps = self.steps_in_task(k);
        for p in plugins.iter_mut() {
            p.after_training_exp(&self.ctx(k, steps));
        }
        Ok(())
    }

    /// A 1-D loss-landscape slice around the model that finished task `k`, along a random
    /// filter-normalised direction of the trainable parameters (seeded by the run, the same
    /// draw at every stage), on the held-out validation records of every task. A
    /// measurement: logged as a `landscape` event, outside the cost counters.
    pub(super) fn landscape_slice(&mut self, k: usize) -> Result<(), EngineError> {
        let refs = self.validation_refs();
        if refs.is_empty() {
            return Ok(());
        }
        let batch = self.sft_batch(&refs);
        let s = &self.cfg.settings;
        let config = sharpness::LandscapeConfig::new()
            .with_points(s.landscape_points)
            .with_span(s.landscape_span)
            .with_seed(mix(&[self.cfg.seed, 3]));
        let model = self.model.as_ref().expect("model");
        let slice = config.evaluate(model, |m| finetune::sft_loss(m, &batch).mean);
        let line = LogEvent::Landscape(LandscapeLine {
            stage: k + 1,
            step: self.state.global_step,
            losses: slice
                .losses
                .iter()
                .map(|row| row.iter().map(|&l| finite(l)).collect())
                .collect(),
            a: slice.a,
            b: slice.b,
            seed: Some(slice.seed),
            records: Some(refs.len() as u64),
        });
        self.log.write(&line.to_value())
    }

    /// The SAM sharpness of the model that finished task `k`, on a probe set fixed for the whole
    /// run (the validation records of every task), so stages and methods compare on equal terms.
    pub(super) fn sharpness_probe(&mut self, k: usize) -> Result<(), EngineError> {
        let refs = self.validation_refs();
        if refs.is_empty() {
            return Ok(());
        }
        let batch = self.sft_batch(&refs);
        let rho = self.cfg.settings.sharpness_rho;
        let model = self.model.as_ref().expect("model");
        let m = sharpness::measures::sam_sharpness(model, rho, 1e-12, |m| {
            finetune::sft_loss(m, &batch).mean
        });
        for (term, value) in [
            ("sharpness probe loss", m.loss),
            ("sharpness probe perturbed loss", m.perturbed_loss),
        ] {
            if !value.is_finite() {
                let task = self.cfg.suite.tasks[k].name.clone();
                return Err(EngineError::Diverged {
                    task,
                    step: self.state.global_step,
                    term: term.into(),
                    value,
                });
            }
        }
        let line = LogEvent::SharpnessProbe(SharpnessProbeLine {
            stage: k + 1,
            step: Some(self.state.global_step),
            rho,
            records: Some(refs.len() as u64),
            loss: m.loss,
            perturbed_loss: Some(m.perturbed_loss),
            sharpness: m.sharpness,
            grad_norm: Some(m.grad_norm),
        });
        self.log.write(&line.to_value())?;
        Ok(())
    }

    /// Evaluates every task and probe: row `stage` of the matrix.
    pub(super) fn evaluate(
        &mut self,
        stage: usize,
        plugins: &mut [&mut dyn Plugin],
    ) -> Result<(), EngineError> {
        let t0 = Instant::now();
        let task = stage.saturating_sub(1);
        for p in plugins.iter_mut() {
            p.before_eval(&self.ctx(task, 0), stage);
        }
        let n_tasks = self.num_tasks();
        let sets = crate::lm::eval_sets(&self.cfg.suite, &self.cfg.settings);
        let model = self.inference_model();
        let mut task_seconds: Vec<Option<f64>> = vec![None; sets.len()];
        let mut scored = 0;
        let report = evaluate_row(
            &model,
            &self.formatter,
            &self.stop_ids,
            &self.cfg.settings,
            &sets,
            |i, secs| {
                task_seconds[i] = secs;
                scored += 1;
                for p in plugins.iter_mut() {
                    p.eval_progress(scored, sets.len());
                }
                crate::test_pause("eval");
            },
        );
        self.state.cost.eval_examples += sets.iter().map(|(_, r)| r.len() as u64).sum::<u64>();
        let scores: Vec<f64> = report.reports.iter().map(|r| r.score).collect();
        let (row, probes) = (scores[..n_tasks].to_vec(), scores[n_tasks..].to_vec());
        let secs = t0.elapsed().as_secs_f64();
        self.state.cost.eval_seconds += secs;
        let line = LogEvent::Eval(EvalLine {
            stage,
            step: self.state.global_step,
            scores: row.clone(),
            probe_scores: probes.clone(),
            seconds: Some(secs),
            task_seconds,
            generative_seconds: Some(report.generative_seconds),
            per_record: report
                .reports
                .iter()
                .map(|r| r.per_record.clone())
                .collect(),
        });
        self.log.write(&line.to_value())?;
        for p in plugins.iter_mut() {
            p.after_eval(&self.ctx(task, 0), stage, &row, &probes);
        }
        self.state.rows.push(row);
        self.state.probe_rows.push(probes);
        self.write_matrix()
    }
}

/// `v`, or `None` when it is not finite (JSON has no NaN; serde_json would write `null`).
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}
