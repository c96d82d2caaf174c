//! Accuracy-supervised replay: evaluate past tasks every `K_eval` steps and replay the tasks
//! whose score dropped.

use crate::rng::ReplayRng;
use serde::{Deserialize, Serialize};

use crate::buffer::ReplayBuffer;
use crate::idmap::IdMap;
use crate::sampler::{Candidates, Sampler, SamplerKind};
use crate::scheduler::{
    EvalRequest, ExtraPasses, HookPoint, PastTasks, ReplayBatch, ReplayDecision, ReplayReason,
    ReplaySize, Scheduler, Signals,
};

/// Configuration of [`AccuracySupervised`] (METHODS.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccuracySupervisedConfig {
    /// `K_eval`: evaluate at every step `t` with `t % K_eval == 0`. Default 50.
    pub eval_every: u64,
    /// Validation examples per task and evaluation. Default 32.
    pub eval_examples: usize,
    /// `δ_acc`: a task is replayed while `reference - score > δ_acc` (absolute). Default 0.02.
    pub drop_threshold: f32,
    /// Replay batch size `r·|B|`.
    pub size: ReplaySize,
    /// At most this many replay batches per step, each from a different flagged task, taken
    /// round-robin. Default 1 (our choice, like MSSR's `max_replay_batches`).
    pub max_replay_batches: usize,
    /// How samples are drawn within a task. Default uniform.
    pub sampler: SamplerKind,
    /// RNG seed.
    pub seed: u64,
}

impl Default for AccuracySupervisedConfig {
    fn default() -> Self {
        Self {
            eval_every: 50,
            eval_examples: 32,
            drop_threshold: 0.02,
            size: ReplaySize::default(),
            max_replay_batches: 1,
            sampler: SamplerKind::Uniform,
            seed: 0,
        }
    }
}

impl AccuracySupervisedConfig {
    /// The scheduler.
    pub fn init(&self) -> AccuracySupervised {
        AccuracySupervised {
            config: *self,
            past: PastTasks::default(),
            reference: IdMap::default(),
            flagged: Vec::new(),
            cursor: 0,
            last_check: None,
            rng: ReplayRng::seed_from_u64(self.seed),
        }
    }
}

/// Accuracy-supervised replay. At each task's end it asks for that task's score on a fixed
/// validation slice (the post-stage reference). Every `K_eval` steps it asks for the scores of
/// all past tasks and flags those that fell more than `δ_acc` below their reference; until the
/// next check, every step replays one batch from a flagged task (round-robin). The evaluation
/// cost is the engine's to charge: it runs what [`Scheduler::wants`] requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracySupervised {
    config: AccuracySupervisedConfig,
    past: PastTasks,
    reference: IdMap<f32>,
    /// Flagged tasks with their score at the last check.
    flagged: Vec<(u32, f32)>,
    cursor: usize,
    rng: ReplayRng,
    /// The check made at the last `before_update`, for its `check` log line. Not checkpointed:
    /// the line is written at the step the check was made.
    #[serde(skip)]
    last_check: Option<(u64, Vec<CheckedTask>)>,
}

/// One past task at a check: the `scores` of the `check` line of `log.jsonl`
/// (`{"type": "check", "step": ..., "scores": [...]}`), which says why a run replayed what it did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckedTask {
    /// The task.
    pub task: u32,
    /// Its score on the validation slice now.
    pub score: f32,
    /// Its score when its stage ended.
    pub reference: f32,
    /// Whether it fell more than `δ_acc` below the reference (it is replayed until the next
    /// check, as the paced budget allows).
    pub flagged: bool,
}

impl AccuracySupervised {
    /// The configuration.
    pub fn config(&self) -> &AccuracySupervisedConfig {
        &self.config
    }

    /// Tasks currently replayed, with their score at the last check.
    pub fn flagged(&self) -> &[(u32, f32)] {
        &self.flagged
    }
}

impl Scheduler for AccuracySupervised {
    fn name(&self) -> &str {
        "accuracy-supervised"
    }

    fn wants(&mut self, at: HookPoint, _: &ReplayBuffer) -> ExtraPasses {
        let tasks = match at {
            HookPoint::AfterTrainingExp { task, .. } => vec![task],
            HookPoint::BeforeUpdate { step } => {
                if self.past.is_empty() || !step.is_multiple_of(self.config.eval_every.max(1)) {
                    return ExtraPasses::none();
                }
                self.past.tasks().to_vec()
            }
        };
        ExtraPasses {
            probe: None,
            evaluate: Some(EvalRequest {
                tasks,
                examples_per_task: self.config.eval_examples,
            }),
        }
    }

    fn after_training_exp(&mut self, task: u32, signals: &Signals<'_>, _: &ReplayBuffer) {
        self.past.end(task);
        if let Some(s) = signals.scores.iter().find(|s| s.task == task) {
            self.reference.get_or_insert_with(task, || s.score);
        }
    }

    fn before_update(&mut self, signals: &Signals<'_>, buffer: &ReplayBuffer) -> ReplayDecision {
        self.last_check = None;
        if !signals.scores.is_empty() {
            // A check happened: the flagged set lasts until the next one.
            let checked: Vec<CheckedTask> = signals
                .scores
                .iter()
                .map(|s| {
                    let reference = self.reference.get(s.task).copied().unwrap_or(f32::NAN);
                    CheckedTask {
                        task: s.task,
                        score: s.score,
                        reference,
                        flagged: reference - s.score > self.config.drop_threshold,
                    }
                })
                .collect();
            self.flagged = checked
                .iter()
                .filter(|c| c.flagged)
                .map(|c| (c.task, c.score))
                .collect();
            self.cursor = 0;
            self.last_check = Some((signals.step, checked));
        }
        let mut batches = Vec::new();
        let n = self.flagged.len();
        let size = self.config.size.samples();
        let batches_now = n
            .min(self.config.max_replay_batches)
            .min(signals.whole_batches(size));
        for _ in 0..batches_now {
            let (task, score) = self.flagged[self.cursor % n];
            self.cursor += 1;
            let slots = self.config.sampler.sample(
                buffer,
                Candidates::Slots(buffer.task_slots(task)),
                size,
                signals.step,
                &mut self.rng,
            );
            if !slots.is_empty() {
                let reference = self.reference.get(task).copied().unwrap_or(f32::NAN);
                batches.push(ReplayBatch::new(
                    buffer,
                    Some(task),
                    slots,
                    ReplayReason::AccuracyDrop {
                        task,
                        score,
                        reference,
                    },
                ));
            }
        }
        ReplayDecision { batches }
    }
}

#[typetag::serde(name = "accuracy_supervised")]
impl crate::strategy::StrategyConfig for AccuracySupervisedConfig {
    fn init(&self, run: &crate::strategy::StrategyInit) -> Box<dyn crate::strategy::Strategy> {
        Box::new(
            Self {
                size: run.size,
                seed: run.seed,
                ..*self
            }
            .init(),
        )
    }

    fn check(
        &self,
        run: &crate::strategy::StrategyInit,
    ) -> Result<(), crate::strategy::StrategyConfigError> {
        crate::strategy::check_period("eval_every", self.eval_every as f64)?;
        // A strategy's validation slice is the size it asks for, or the run does not start.
        if self.eval_examples > run.validation_records {
            return Err(crate::strategy::StrategyConfigError::new(
                "eval_examples",
                format!(
                    "= {} exceeds training.validation_records = {} (the records held out per task): lower one or raise the other",
                    self.eval_examples, run.validation_records
                ),
            ));
        }
        Ok(())
    }
}

#[typetag::serde(name = "accuracy_supervised")]
impl crate::strategy::Strategy for AccuracySupervised {
    /// A `check` line for every check (see [`CheckedTask`]).
    fn step_events(&self, step: u64) -> Vec<serde_json::Value> {
        self.last_check
            .iter()
            .filter(|(at, _)| *at == step)
            .map(|(at, scores)| serde_json::json!({"type": "check", "step": at, "scores": scores}))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Buffer, CapacityPolicy, ReplayBufferConfig};
    use crate::sample::{SampleRef, TaskScore};

    #[test]
    fn replays_tasks_whose_score_fell_until_the_next_check() {
        let mut b = ReplayBufferConfig {
            capacity: CapacityPolicy::PerTask { quota: 10 },
            ..Default::default()
        }
        .init();
        for task in 0..3 {
            for i in 0..10 {
                b.offer(SampleRef::new(task, i), 0.5, 0, None);
            }
        }
        let mut s = AccuracySupervisedConfig::default().init();
        for (task, score) in [(0, 0.80), (1, 0.60)] {
            let want = s.wants(HookPoint::AfterTrainingExp { task, step: 0 }, &b);
            assert_eq!(want.evaluate.unwrap().tasks, vec![task]);
            let scores = [TaskScore { task, score }];
            s.after_training_exp(
                task,
                &Signals {
                    scores: &scores,
                    ..Default::default()
                },
                &b,
            );
        }
        assert!(s.wants(HookPoint::BeforeUpdate { step: 49 }, &b).is_empty());
        let want = s.wants(HookPoint::BeforeUpdate { step: 50 }, &b);
        assert_eq!(want.evaluate.as_ref().unwrap().tasks, vec![0, 1]);
        assert_eq!(want.evaluate.unwrap().examples_per_task, 32);
        // Task 0: 0.80 → 0.79, a drop of 0.01 ≤ 0.02: fine. Task 1: 0.60 → 0.55, drop 0.05.
        let scores = [
            TaskScore {
                task: 0,
                score: 0.79,
            },
            TaskScore {
                task: 1,
                score: 0.55,
            },
        ];
        let d = s.before_update(
            &Signals {
                step: 50,
                scores: &scores,
                ..Default::default()
            },
            &b,
        );
        assert_eq!(d.batches.len(), 1);
        assert_eq!(d.batches[0].task, Some(1));
        assert!(d.batches[0].samples.iter().all(|x| x.task == 1));
        // Still replaying at the following steps, without a new check...
        assert_eq!(s.before_update(&Signals::at(51), &b).batches.len(), 1);
        // ...until a check shows the task recovered.
        let scores = [
            TaskScore {
                task: 0,
                score: 0.8,
            },
            TaskScore {
                task: 1,
                score: 0.59,
            },
        ];
        let d = s.before_update(
            &Signals {
                step: 100,
                scores: &scores,
                ..Default::default()
            },
            &b,
        );
        assert!(d.batches.is_empty());
        // Each check is logged with every task's score against its reference, flagged or not;
        // the steps between checks log nothing.
        use crate::strategy::Strategy;
        let line = s.step_events(100);
        assert_eq!(line.len(), 1);
        assert_eq!(line[0]["type"], "check");
        assert_eq!(line[0]["step"], 100);
        let tasks: Vec<(u64, bool)> = line[0]["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["task"].as_u64().unwrap(), c["flagged"].as_bool().unwrap()))
            .collect();
        // 0.60 → 0.59 is a drop of 0.01: no longer flagged.
        assert_eq!(tasks, [(0, false), (1, false)]);
        assert!((line[0]["scores"][1]["reference"].as_f64().unwrap() - 0.6).abs() < 1e-6);
        s.before_update(&Signals::at(101), &b);
        assert!(s.step_events(101).is_empty());
        assert!(
            s.step_events(100).is_empty(),
            "the line belongs to its own step only"
        );
    }

    #[test]
    fn a_check_that_flags_a_task_says_so_in_its_line() {
        use crate::strategy::Strategy;
        let b = ReplayBufferConfig::default().init();
        let mut s = AccuracySupervisedConfig::default().init();
        let scores = [TaskScore {
            task: 0,
            score: 0.5,
        }];
        let end = Signals {
            scores: &scores,
            ..Default::default()
        };
        s.after_training_exp(0, &end, &b);
        let scores = [TaskScore {
            task: 0,
            score: 0.4,
        }];
        let check = Signals {
            step: 50,
            scores: &scores,
            ..Default::default()
        };
        s.before_update(&check, &b);
        let line = &s.step_events(50)[0];
        assert_eq!(line["scores"][0]["flagged"], true);
        assert!((line["scores"][0]["score"].as_f64().unwrap() - 0.4).abs() < 1e-6);
    }
}
