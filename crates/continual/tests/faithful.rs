//! Each method does in the engine what its settings say, and the run's bookkeeping counts only
//! what happened. Passes and tokens are counted independently of the engine, by the model
//! itself (`backbone::model::forward_count`, every forward goes through `hidden_states`), and
//! compared with the engine's cost counters and with values worked out by hand.

mod common;

use std::path::Path;

use backbone::model::forward_count;
use common::{config_for, log_events, root, smoke_spec};
use continual::engine::RunConfig;
use continual::{HookContext, MethodConfig, Plugin, StepRecord};

/// A method from TOML text.
fn method(name: &str, toml: &str) -> MethodConfig {
    let mut m = MethodConfig::from_toml_str(toml, Path::new(&format!("{name}.toml"))).unwrap();
    m.name = name.into();
    m
}

/// A shipped method file.
fn shipped(name: &str) -> MethodConfig {
    MethodConfig::from_path(&root().join(format!("experiments/methods/{name}.toml"))).unwrap()
}

/// The smoke suite cut to its first `tasks` tasks, with `set` over its training table.
fn short(method: MethodConfig, out: &Path, tasks: usize, set: &str) -> RunConfig {
    let mut spec = smoke_spec(set);
    spec.tasks.truncate(tasks);
    config_for(method, out, spec)
}

/// Forward passes and tokens per step, counted by the model: inside the update (between
/// `before_backward` and `after_update`), before it (the strategy's probes), and in the
/// protocol's evaluations.
#[derive(Default)]
struct PassCounter {
    mark: (u64, u64),
    /// Per step: (forwards, tokens) of the update.
    update: Vec<(u64, u64)>,
    /// Per step: (forwards, tokens) between the previous step's end and this step's update.
    before: Vec<(u64, u64)>,
    /// Forwards and tokens of the protocol's evaluations.
    eval: (u64, u64),
    at_start: (u64, u64),
}

fn delta(now: (u64, u64), then: (u64, u64)) -> (u64, u64) {
    (now.0 - then.0, now.1 - then.1)
}

impl Plugin for PassCounter {
    fn before_backward(&mut self, _: &HookContext<'_>, _: &finetune::SftBatch) {
        let now = forward_count();
        self.before.push(delta(now, self.mark));
        self.mark = now;
    }
    fn after_update(&mut self, _: &HookContext<'_>, _: &StepRecord) {
        let now = forward_count();
        self.update.push(delta(now, self.mark));
        self.mark = now;
    }
    fn before_eval(&mut self, _: &HookContext<'_>, _: usize) {
        self.at_start = forward_count();
    }
    fn after_eval(&mut self, _: &HookContext<'_>, _: usize, _: &[f64], _: &[f64]) {
        let now = forward_count();
        let d = delta(now, self.at_start);
        self.eval = (self.eval.0 + d.0, self.eval.1 + d.1);
        self.mark = now;
    }
}

/// Runs `cfg` with a pass counter; returns it with the run's metrics.
fn counted(cfg: &RunConfig) -> (PassCounter, serde_json::Value) {
    let mut counter = PassCounter {
        mark: forward_count(),
        ..Default::default()
    };
    let start = forward_count();
    let out = continual::run(cfg, &mut [&mut counter]).unwrap();
    let total = delta(forward_count(), start);
    let cost = &out.metrics["cost"];
    // Every forward outside the protocol's evaluations is the method's, and counted.
    assert_eq!(
        cost["forward_passes"].as_u64().unwrap(),
        total.0 - counter.eval.0,
        "{}: forward passes",
        cfg.method.name
    );
    assert_eq!(
        cost["tokens"].as_u64().unwrap(),
        total.1 - counter.eval.1,
        "{}: tokens",
        cfg.method.name
    );
    (counter, out.metrics)
}

const ONE_TASK: &str = "steps_per_task = 3\neval_limit = 4\nsharpness_rho = 0.0\nlandscape_points = 0\ncheckpoint_every = 1000\n";

#[test]
fn forward_and_backward_passes_per_step_are_what_each_optimizer_and_objective_runs() {
    let dir = tempfile::tempdir().unwrap();
    // (method, forwards per step by the model, backwards per step by hand)
    let cases: Vec<(MethodConfig, Vec<u64>, Vec<u64>)> = vec![
        (shipped("sequential"), vec![1, 1, 1], vec![1, 1, 1]),
        // SAM k = 1: the gradient at θ, then at θ + ε.
        (shipped("sam"), vec![2, 2, 2], vec![2, 2, 2]),
        (
            method("sam-k2", "[optimizer]\nkind = \"sam\"\nascent_steps = 2\n"),
            vec![3, 3, 3],
            vec![3, 3, 3],
        ),
        // XSAM searches α at its first step: 21 forward-only candidates (0, 0.1, ..., 2.0) on top
        // of SAM's two passes; afterwards it keeps α* (period 100).
        (shipped("xsam"), vec![23, 2, 2], vec![2, 2, 2]),
        // KL: the batch through the model and through the frozen reference, one backward.
        (shipped("kl"), vec![2, 2, 2], vec![1, 1, 1]),
        // KL + corpus, one corpus batch every 4 steps (global steps 0, 4, ...).
        (shipped("kl-corpus"), vec![3, 2, 2], vec![1, 1, 1]),
    ];
    for (m, forwards, backwards) in cases {
        let name = m.name.clone();
        let mut cfg = short(m, &dir.path().join(&name), 1, ONE_TASK);
        cfg.corpus = vec!["the quick brown fox jumps over the lazy dog and runs away".into(); 4];
        let (counter, metrics) = counted(&cfg);
        let by_model: Vec<u64> = counter.update.iter().map(|p| p.0).collect();
        assert_eq!(by_model, forwards, "{name}: forwards by the model");
        let steps = log_events(&cfg.out_dir, "step");
        let logged: Vec<(u64, u64)> = steps
            .iter()
            .map(|e| {
                (
                    e["forwards"].as_u64().unwrap(),
                    e["backwards"].as_u64().unwrap(),
                )
            })
            .collect();
        let expected: Vec<(u64, u64)> = forwards
            .iter()
            .copied()
            .zip(backwards.iter().copied())
            .collect();
        assert_eq!(logged, expected, "{name}: the step log");
        let cost = &metrics["cost"];
        assert_eq!(
            cost["backward_passes"].as_u64().unwrap(),
            backwards.iter().sum::<u64>(),
            "{name}"
        );
        // Tokens by pass kind: the batch's tokens once per model forward, once per reference
        // forward, and the corpus batch's at its steps.
        let batch_tokens: Vec<u64> = steps
            .iter()
            .map(|e| e["tokens"].as_u64().unwrap())
            .collect();
        let corpus_tokens: u64 = steps
            .iter()
            .map(|e| e["corpus_tokens"].as_u64().unwrap())
            .sum();
        let by = &cost["tokens_by_pass"];
        let kl = u64::from(name.starts_with("kl"));
        let sft_passes: Vec<u64> = by_model
            .iter()
            .map(|&f| if name.starts_with("kl") { 1 } else { f })
            .collect();
        let sft: u64 = batch_tokens
            .iter()
            .zip(&sft_passes)
            .map(|(t, p)| t * p)
            .sum();
        assert_eq!(by["sft"].as_u64().unwrap(), sft, "{name}");
        assert_eq!(
            by["kl_reference"].as_u64().unwrap(),
            kl * batch_tokens.iter().sum::<u64>(),
            "{name}"
        );
        assert_eq!(by["corpus"].as_u64().unwrap(), corpus_tokens, "{name}");
        assert_eq!(corpus_tokens > 0, name == "kl-corpus", "{name}");
        // The model's own token count of the update equals the engine's.
        let model_tokens: u64 = counter.update.iter().map(|p| p.1).sum();
        assert_eq!(
            model_tokens,
            sft + by["kl_reference"].as_u64().unwrap() + corpus_tokens,
            "{name}"
        );
    }
}

#[test]
fn probe_passes_are_counted_where_they_run_and_charged_to_the_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let m = method(
        "probing",
        "[replay.scheduler]\nkind = \"loss_driven\"\nprobe_every = 2\nprobe_size = 5\n",
    );
    let cfg = short(
        m,
        &dir.path().join("probing"),
        2,
        "steps_per_task = 4\neval_limit = 4\nsharpness_rho = 0.0\nlandscape_points = 0\ncheckpoint_every = 1000\n",
    );
    let (counter, metrics) = counted(&cfg);
    // Steps 5..7 of task 1 (step 4 follows the stage's evaluation and end-of-task probe): a
    // probe forward of 5 buffered samples before the update at steps 6, none at 5 and 7.
    let before: Vec<u64> = counter.before[5..].iter().map(|p| p.0).collect();
    assert_eq!(before, vec![0, 1, 0]);
    let cost = &metrics["cost"];
    // Probes: task 0's 32 buffered samples at its end, 5 at steps 4 and 6, task 1's 32 at its end.
    assert_eq!(cost["probe_forwards"].as_u64().unwrap(), 32 + 5 + 5 + 32);
    assert!(cost["tokens_by_pass"]["probe"].as_u64().unwrap() > 0);
    // Each probe has its `probe` line, triggered or not; a replay line exactly where a probe
    // says it replayed, and a probe below its threshold did not trigger.
    let probes = log_events(&cfg.out_dir, "probe");
    let at: Vec<u64> = probes.iter().map(|p| p["step"].as_u64().unwrap()).collect();
    assert_eq!(at, vec![4, 6]);
    let replayed_at: Vec<u64> = log_events(&cfg.out_dir, "replay")
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    for p in &probes {
        assert_eq!(p["samples"], 5);
        let (loss, threshold) = (
            p["probe_loss"].as_f64().unwrap(),
            p["threshold"].as_f64().unwrap(),
        );
        assert_eq!(p["triggered"].as_bool().unwrap(), loss > threshold, "{p}");
        let step = p["step"].as_u64().unwrap();
        assert_eq!(
            p["replayed"].as_bool().unwrap(),
            replayed_at.contains(&step),
            "{p}"
        );
    }
}

#[test]
fn the_corpus_term_runs_every_corpus_every_steps() {
    let dir = tempfile::tempdir().unwrap();
    for (every, expected) in [(4u64, vec![0u64, 4]), (1, (0..8).collect())] {
        let set = format!(
            "steps_per_task = 4\neval_limit = 2\nsharpness_rho = 0.0\nlandscape_points = 0\ncorpus_every = {every}\ncorpus_batch_size = 3\n"
        );
        let mut cfg = short(
            shipped("kl-corpus"),
            &dir.path().join(format!("every-{every}")),
            2,
            &set,
        );
        cfg.corpus = (0..5)
            .map(|i| format!("passage number {i} of an open corpus"))
            .collect();
        continual::run(&cfg, &mut []).unwrap();
        let with_ntp: Vec<u64> = log_events(&cfg.out_dir, "step")
            .iter()
            .filter(|e| !e["ntp"].is_null())
            .map(|e| e["step"].as_u64().unwrap())
            .collect();
        assert_eq!(with_ntp, expected, "corpus_every = {every}");
    }
}

#[test]
fn a_stage_start_kl_reference_is_the_model_at_the_stages_start() {
    let dir = tempfile::tempdir().unwrap();
    let set = "steps_per_task = 3\neval_limit = 2\nsharpness_rho = 0.0\nlandscape_points = 0\ncheckpoint_every = 1000\n";
    let first_kl_of_stage_2 = |reference: &str| -> f64 {
        let m = method(
            &format!("kl-{reference}"),
            &format!("[objective]\nkl_weight = 0.01\nkl_reference = \"{reference}\"\n"),
        );
        let cfg = short(m, &dir.path().join(reference), 2, set);
        continual::run(&cfg, &mut []).unwrap();
        let steps = log_events(&cfg.out_dir, "step");
        // At step 0 the model is its own reference either way.
        assert!(
            steps[0]["kl"].as_f64().unwrap().abs() < 1e-6,
            "{reference}: {}",
            steps[0]
        );
        steps[3]["kl"].as_f64().unwrap()
    };
    // The model at stage 2's start is the reference: no divergence before its first update.
    assert!(first_kl_of_stage_2("stage_start").abs() < 1e-6);
    // The initial model is 3 updates away by then.
    assert!(first_kl_of_stage_2("initial") > 1e-4);
}

/// The text of a byte-level batch row (the tiny model's vocabulary is bytes).
fn rows_text(batch: &finetune::SftBatch) -> Vec<String> {
    let t = &batch.tokens;
    (0..t.batch)
        .map(|r| {
            let bytes: Vec<u8> = (0..t.seq)
                .filter(|&i| t.mask[r * t.seq + i])
                .filter_map(|i| u8::try_from(t.ids[r * t.seq + i]).ok())
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

/// Collects the text of every training batch row.
#[derive(Default)]
struct Batches(Vec<String>);

impl Plugin for Batches {
    fn before_backward(&mut self, _: &HookContext<'_>, batch: &finetune::SftBatch) {
        self.0.extend(rows_text(batch));
    }
}

#[test]
fn validation_records_are_held_out_of_training_and_replay_and_score_the_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let set = "epochs = 1\neval_limit = 4\nsharpness_rho = 0.0\nlandscape_points = 0\n";
    let cfg = short(
        shipped("accuracy-supervised"),
        &dir.path().join("acc"),
        3,
        set,
    );
    let mut batches = Batches::default();
    let out = continual::run(&cfg, &mut [&mut batches]).unwrap();
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.out_dir.join("run.json")).unwrap())
            .unwrap();
    assert_eq!(
        run["validation_records_held_out"],
        serde_json::json!([8, 8, 8])
    );
    assert_eq!(run["train_records_used"], serde_json::json!([64, 64, 64]));
    // No held-out record (the last 8 of each task's train records) is in any training or
    // replay batch; every trained record is.
    let trained = |r: &bench_tasks::Record| {
        batches
            .0
            .iter()
            .any(|row| row.contains(r.answer.trim()) && row.contains(r.prompt.trim()))
    };
    // The generated tasks repeat some texts, so only held-out records whose text no training
    // record shares can tell.
    let mut distinct = 0;
    for task in &cfg.suite.tasks {
        let (train, held) = task.train.split_at(task.train.len() - 8);
        let same = |a: &bench_tasks::Record, b: &bench_tasks::Record| {
            a.prompt == b.prompt && a.answer == b.answer
        };
        for r in held.iter().filter(|r| !train.iter().any(|t| same(t, r))) {
            distinct += 1;
            assert!(
                !trained(r),
                "{}: the held-out record {r:?} was trained on",
                task.name
            );
        }
        assert!(
            train.iter().all(trained),
            "{}: a training record was never trained on",
            task.name
        );
    }
    assert!(
        distinct >= 6,
        "only {distinct} held-out records have texts of their own"
    );
    // The strategy scored 8 records per past task per check: at each task's end and at every
    // 16th step with past tasks (steps 16, 32, 48 in tasks 1 and 2).
    let checks_at_end = 3 * 8;
    let steps_per_task = 8;
    let periodic: u64 = (steps_per_task..3 * steps_per_task)
        .filter(|s| s % 16 == 0)
        .map(|s| if s < 16 { 1 } else { 2 } * 8)
        .sum();
    assert_eq!(
        out.metrics["cost"]["strategy_eval_examples"]
            .as_u64()
            .unwrap(),
        checks_at_end + periodic
    );
    // Each periodic check has its `check` line with every past task's score, and the tasks it
    // flags are the ones replayed until the next check.
    let checks = log_events(&cfg.out_dir, "check");
    let at: Vec<u64> = checks.iter().map(|c| c["step"].as_u64().unwrap()).collect();
    assert_eq!(at, vec![16]);
    assert_eq!(checks[0]["scores"].as_array().unwrap().len(), 2);
    let flagged: Vec<u64> = checks[0]["scores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["flagged"] == true)
        .map(|c| c["task"].as_u64().unwrap())
        .collect();
    // On this run the check flags no task, so nothing is replayed (the flagged case is the
    // scheduler's unit test, `a_check_that_flags_a_task_says_so_in_its_line`).
    let replays = log_events(&cfg.out_dir, "replay");
    assert_eq!(
        replays.is_empty(),
        flagged.is_empty(),
        "flagged {flagged:?}"
    );
    for r in replays {
        assert!(flagged.contains(&r["task"].as_u64().unwrap()), "{r}");
    }
}

#[test]
fn mssr_gives_a_forgotten_task_a_shorter_interval_than_a_retained_one() {
    // Stage 1 learns a label map, stage 2 a conflicting map on the same inputs, stage 3 the
    // first map again: in stage 3 task 0 is retained (trained again) and task 1 is forgotten.
    let dir = tempfile::tempdir().unwrap();
    let mut spec = smoke_spec(
        "epochs = 4\neval_limit = 4\nsharpness_rho = 0.0\nlandscape_points = 0\ncheckpoint_every = 1000\n",
    );
    spec.training.as_mut().unwrap().remove("replay_budget");
    let map_a = spec.tasks[0].clone();
    let map_b = spec.tasks[2].clone();
    let mut again = map_a.clone();
    again.name = "map-a-again".into();
    spec.tasks = vec![map_a, map_b, again];
    let cfg = config_for(shipped("mssr"), &dir.path().join("mssr"), spec);
    continual::run(&cfg, &mut []).unwrap();
    let steps = log_events(&cfg.out_dir, "step");
    let first_of_stage_3 = steps.iter().find(|e| e["task"] == 2).unwrap()["step"]
        .as_u64()
        .unwrap();
    let intervals = |task: u64| -> Vec<f64> {
        log_events(&cfg.out_dir, "interval")
            .iter()
            .filter(|e| e["task"] == task && e["step"].as_u64().unwrap() >= first_of_stage_3)
            .map(|e| e["interval"].as_f64().unwrap())
            .collect()
    };
    let (retained, forgotten) = (intervals(0), intervals(1));
    eprintln!(
        "stage 3 intervals: task 0 (retained) {retained:?}\n  task 1 (forgotten) {forgotten:?}"
    );
    assert!(!retained.is_empty() && !forgotten.is_empty());
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&forgotten) < mean(&retained),
        "forgotten {forgotten:?} vs retained {retained:?}"
    );
    assert!(
        forgotten.last() < retained.last(),
        "forgotten {forgotten:?} vs retained {retained:?}"
    );
    // Both branches fire: the retained task's interval grows, the forgotten one's shrinks
    // (2 → 1 on 2026-12-07, before replay restores it and it grows again).
    assert!(retained.windows(2).any(|w| w[1] > w[0]), "{retained:?}");
    assert!(forgotten.windows(2).any(|w| w[1] < w[0]), "{forgotten:?}");
}

#[test]
fn the_landscape_slice_is_logged_after_every_stage_and_centres_on_the_models_loss() {
    let dir = tempfile::tempdir().unwrap();
    let set = "steps_per_task = 3\neval_limit = 2\nsharpness_rho = 0.05\nlandscape_points = 5\nlandscape_span = 0.5\n";
    let cfg = short(shipped("sequential"), &dir.path().join("landscape"), 2, set);
    let metrics = continual::run(&cfg, &mut []).unwrap().metrics;
    let slices = log_events(&cfg.out_dir, "landscape");
    let probes = log_events(&cfg.out_dir, "sharpness_probe");
    assert_eq!(slices.len(), 2);
    for (slice, probe) in slices.iter().zip(&probes) {
        assert_eq!(slice["stage"], probe["stage"]);
        let a: Vec<f64> = slice["a"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(a, vec![-0.5, -0.25, 0.0, 0.25, 0.5]);
        assert_eq!(slice["records"], 2 * 8);
        // At a = 0 the slice is the model itself: the sharpness probe's unperturbed loss on the
        // same held-out records.
        let centre = slice["losses"][2][0].as_f64().unwrap();
        let loss = probe["loss"].as_f64().unwrap();
        assert!(
            (centre - loss).abs() < 1e-5 * loss.abs().max(1.0),
            "{centre} vs {loss}"
        );
    }
    // A measurement: its forwards are not the method's, which are one per step.
    assert_eq!(metrics["cost"]["forward_passes"].as_u64().unwrap(), 6);
}

#[test]
fn holding_out_every_training_record_is_an_error_naming_the_suite_and_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = short(
        shipped("sequential"),
        &dir.path().join("all-held"),
        1,
        "validation_records = 72\n",
    );
    let e = continual::run(&cfg, &mut []).unwrap_err().to_string();
    assert!(
        e.contains("smoke.toml")
            && e.contains("training.validation_records = 72")
            && e.contains("map-a"),
        "{e}"
    );
}

/// Joint training (the upper bound) trains stage `k` on batches drawn from tasks `0..=k`, and
/// its step lines say from which; sequential training draws only the stage's own task and
/// leaves the field out.
#[test]
fn joint_training_draws_every_stage_from_all_tasks_so_far_and_logs_the_mix() {
    let dir = tempfile::tempdir().unwrap();
    let set = "steps_per_task = 12\ncheckpoint_every = 1000\n";
    let out = dir.path().join("joint");
    continual::run(&short(shipped("joint"), &out, 3, set), &mut []).unwrap();
    let steps = log_events(&out, "step");
    assert_eq!(steps.len(), 36);
    for k in 0..3 {
        let mut seen = std::collections::BTreeMap::<usize, u64>::new();
        for s in steps.iter().filter(|s| s["task"] == k) {
            let mix = s["trained_by_task"]
                .as_object()
                .expect("a joint step's mix");
            assert_eq!(
                mix.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
                8,
                "{s}"
            );
            for (t, n) in mix {
                let t: usize = t.parse().unwrap();
                assert!(t <= k, "stage {k} trained on task {t}: {s}");
                *seen.entry(t).or_default() += n.as_u64().unwrap();
            }
        }
        // 12 steps of 8 from k + 1 equal pools: every task so far is drawn, none left out.
        assert_eq!(seen.len(), k + 1, "stage {k}: {seen:?}");
        assert!(seen.values().all(|&n| n >= 8), "stage {k}: {seen:?}");
    }
    let out = dir.path().join("sequential");
    continual::run(&short(shipped("sequential"), &out, 3, set), &mut []).unwrap();
    assert!(
        log_events(&out, "step")
            .iter()
            .all(|s| s.get("trained_by_task").is_none())
    );
}
