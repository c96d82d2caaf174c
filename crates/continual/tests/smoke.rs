//! The engine end to end on the smoke suite (tiny random byte-level model, generated
//! interfering tasks): forgetting shows, replay reduces it, and a crashed run resumes to the
//! same accuracy matrix bit for bit.

mod common;

use common::{CrashAt, config, config_with, log_events, root};
use continual::engine::RunConfig;

/// Compared over six seeds: a single run's forgetting is decided by training noise on this
/// tiny model (a change of float rounding in the 7th digit, such as another summation order,
/// grows to 10% loss differences within 60 steps at lr 0.01 and moves one seed's F by 0.1 or
/// more, either way). The means are what the methods are expected to order.
#[test]
fn sequential_training_forgets_and_replay_forgets_less() {
    let dir = tempfile::tempdir().unwrap();
    const SEEDS: u64 = 6;
    let mean = |method: &str| -> (f64, f64) {
        let (mut f, mut aa) = (0.0, 0.0);
        for seed in 0..SEEDS {
            let mut cfg = config(method, &dir.path().join(format!("{method}-{seed}")), "");
            cfg.seed = seed;
            let out = continual::run(&cfg, &mut []).unwrap();
            assert_eq!(out.rows.len(), 5);
            assert!(out.rows.iter().all(|r| r.len() == 4));
            let replayed = out.metrics["cost"]["replayed_samples"].as_u64().unwrap();
            assert_eq!(
                replayed,
                if method == "sequential" { 0 } else { 576 },
                "the budget caps replay"
            );
            eprintln!("{method} seed {seed}: {:?}\n  {}", out.rows, out.metrics);
            f += out.metrics["forgetting"].as_f64().unwrap() / SEEDS as f64;
            aa += out.metrics["aa"].as_f64().unwrap() / SEEDS as f64;
        }
        (f, aa)
    };
    let (f_seq, aa_seq) = mean("sequential");
    let (f_rep, aa_rep) = mean("fixed-replay");
    assert!(
        f_seq > 0.1,
        "sequential fine-tuning should forget the interfering tasks: mean F = {f_seq}"
    );
    assert!(
        f_rep < f_seq,
        "replay should forget less: mean F {f_rep} vs {f_seq}"
    );
    assert!(
        aa_rep > aa_seq,
        "replay should end with more: mean AA {aa_rep} vs {aa_seq}"
    );
    let index = std::fs::read_to_string(dir.path().join("index.jsonl")).unwrap();
    assert_eq!(index.lines().count(), 2 * SEEDS as usize);
}

#[test]
fn a_crashed_run_resumes_to_the_same_matrix_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    // MSSR exercises the buffer, the memory state and the scheduler RNG across the resume.
    let set = "epochs = 2\ncheckpoint_every = 5\n";
    let whole = continual::run(&config("mssr", &dir.path().join("whole"), set), &mut []).unwrap();
    let out = dir.path().join("crashed");
    let crashed = std::panic::catch_unwind(|| {
        let mut crash = CrashAt(23);
        let _ = continual::run(&config("mssr", &out, set), &mut [&mut crash]);
    });
    assert!(crashed.is_err());
    let mut cfg = config("mssr", &out, set);
    assert!(
        continual::run(&cfg, &mut []).is_err(),
        "a started run is not silently restarted"
    );
    cfg.resume = true;
    let resumed = continual::run(&cfg, &mut []).unwrap();
    assert_eq!(whole.rows, resumed.rows);
    assert_eq!(
        whole.metrics["cost"]["replayed_samples"],
        resumed.metrics["cost"]["replayed_samples"]
    );
    let log = |d: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.path().join(d).join("log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "step" || v["type"] == "replay")
            .collect()
    };
    assert_eq!(
        log("whole"),
        log("crashed"),
        "the log holds every step exactly once"
    );
    assert!(
        continual::run(&cfg, &mut []).is_err(),
        "a finished run is not run again"
    );
}

#[test]
fn a_diverging_run_stops_with_an_error_naming_task_step_and_term() {
    let dir = tempfile::tempdir().unwrap();
    // A learning rate of 1e20 without clipping blows the weights up within a few steps.
    let mut cfg = config("sequential", &dir.path().join("nan"), "epochs = 1\n");
    cfg.settings.optim.lr = 1e20;
    cfg.settings.optim.max_grad_norm = None;
    let err = continual::run(&cfg, &mut []).unwrap_err().to_string();
    assert!(
        err.contains("training diverged on task \"map-a\" at step"),
        "{err}"
    );
    assert!(err.contains("NaN") || err.contains("inf"), "{err}");
}

#[test]
fn the_sharpness_probe_is_logged_after_every_stage_and_changes_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let plain = continual::run(
        &config(
            "sequential",
            &dir.path().join("plain"),
            "epochs = 2\nsharpness_rho = 0.0",
        ),
        &mut [],
    )
    .unwrap();
    let out = dir.path().join("probed");
    let probed = continual::run(
        &config("sequential", &out, "epochs = 2\nsharpness_rho = 0.05"),
        &mut [],
    )
    .unwrap();
    // A measurement only: the model, RNG streams and matrix are untouched.
    assert_eq!(plain.rows, probed.rows);
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "sharpness_probe")
        .collect();
    assert_eq!(
        events
            .iter()
            .map(|e| e["stage"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    for e in &events {
        let (loss, perturbed, sharp) = (
            e["loss"].as_f64().unwrap(),
            e["perturbed_loss"].as_f64().unwrap(),
            e["sharpness"].as_f64().unwrap(),
        );
        assert!(
            loss.is_finite() && loss > 0.0 && perturbed.is_finite(),
            "{e}"
        );
        assert!((sharp - (perturbed - loss)).abs() < 1e-9, "{e}");
        assert!(e["grad_norm"].as_f64().unwrap() > 0.0, "{e}");
        // The probe set is every task's last `validation_records` (8) training records.
        assert_eq!(e["records"], 32, "{e}");
        assert_eq!(e["rho"], 0.05);
    }
    // A step of ρ along the gradient raises the loss of a trained model at this scale.
    assert!(
        events
            .iter()
            .all(|e| e["sharpness"].as_f64().unwrap() > 0.0),
        "{events:?}"
    );
}

/// `lr = 1e20` without clipping diverges within a few steps (see above); the rollback factor
/// brings it to 1e-2, the suite's own rate, where training is stable.
const ROLLBACK: &str = "epochs = 1\non_divergence = \"rollback\"\ndivergence_lr_factor = 1e-22\ndivergence_max_rollbacks = 1\n";

fn huge_lr(mut cfg: RunConfig) -> RunConfig {
    cfg.settings.optim.lr = 1e20;
    cfg.settings.optim.max_grad_norm = None;
    cfg
}

#[test]
fn a_diverging_run_rolls_back_to_the_last_checkpoint_with_a_lower_learning_rate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rollback");
    let done = continual::run(&huge_lr(config("sequential", &out, ROLLBACK)), &mut []).unwrap();
    assert_eq!(done.metrics["divergence_rollbacks"], 1);
    let rollbacks = log_events(&out, "rollback");
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    let r = &rollbacks[0];
    assert_eq!(r["task"], "map-a", "{r}");
    assert!(r["term"].is_string() && r["rollback"] == 1, "{r}");
    let (at, to, lr) = (
        r["step"].as_u64().unwrap(),
        r["to_step"].as_u64().unwrap(),
        r["lr"].as_f64().unwrap(),
    );
    assert!(to < at, "{r}");
    assert!((lr - 1e-2).abs() < 1e-9, "{r}");
    // Every step is logged once; the retried ones (from the checkpoint on) with the new rate.
    let steps = log_events(&out, "step");
    assert_eq!(
        steps
            .iter()
            .map(|s| s["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (0..32).collect::<Vec<_>>()
    );
    for s in &steps {
        let (step, lr) = (s["step"].as_u64().unwrap(), s["lr"].as_f64().unwrap());
        let want = if step < to { 1e20 } else { 1e-2 };
        assert!(
            (lr / want - 1.0).abs() < 1e-9,
            "step {step}: lr {lr}, want {want}"
        );
    }
    assert!(done.rows.iter().flatten().all(|x| x.is_finite()));

    // The lowered rate is part of the checkpoint: a crash after the rollback resumes to the
    // same matrix.
    let out2 = dir.path().join("crashed");
    let crashed = std::panic::catch_unwind(|| {
        let mut crash = CrashAt(20);
        let _ = continual::run(
            &huge_lr(config("sequential", &out2, ROLLBACK)),
            &mut [&mut crash],
        );
    });
    assert!(crashed.is_err());
    let mut cfg = huge_lr(config("sequential", &out2, ROLLBACK));
    cfg.resume = true;
    let resumed = continual::run(&cfg, &mut []).unwrap();
    assert_eq!(resumed.rows, done.rows);
    assert_eq!(log_events(&out2, "rollback"), rollbacks);
}

#[test]
fn a_run_that_keeps_diverging_stops_once_its_rollbacks_are_spent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spent");
    // Halving 1e20 twice does not help: the third divergence stops the run.
    let cfg = huge_lr(config(
        "sequential",
        &out,
        "epochs = 1\non_divergence = \"rollback\"\ndivergence_max_rollbacks = 2\n",
    ));
    let err = continual::run(&cfg, &mut []).unwrap_err().to_string();
    assert!(
        err.contains("training diverged on task \"map-a\" at step"),
        "{err}"
    );
    assert!(
        err.contains("after 2 rollback(s)") && err.contains("divergence_max_rollbacks"),
        "{err}"
    );
    let lrs: Vec<f64> = log_events(&out, "rollback")
        .iter()
        .map(|r| r["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs, [5e19, 2.5e19]);
    // Nothing was written as finished, and the last checkpoint is whole.
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["status"], "running");
    assert!(!out.join("metrics.json").exists());
    assert!(
        continual::checkpoint::latest(&out.join("ckpt"))
            .unwrap()
            .is_some()
    );
}

#[test]
fn even_pacing_spends_the_budget_no_faster_than_the_elapsed_share_plus_one_batch() {
    // 4 tasks × 3 epochs × 8 steps: 96 steps, replay possible from step 24 (t₁), batches of 8.
    let set = "epochs = 3\nreplay_budget = 32\nreplay_pacing = \"even\"\ncheckpoint_every = 1000\n";
    let dir = tempfile::tempdir().unwrap();
    for method in ["mssr", "fixed-replay"] {
        let run = dir.path().join(method);
        let out = continual::run(&config(method, &run, set), &mut []).unwrap();
        let mut spent = 0u64;
        let mut last_replay_step = 0;
        for e in log_events(&run, "step") {
            let (step, n) = (e["step"].as_u64().unwrap(), e["replayed"].as_u64().unwrap());
            spent += n;
            if n > 0 {
                last_replay_step = step;
            }
            // The cap by hand: ⌊32 · (t − 24) / (96 − 24)⌋ + 8 with t = step + 1, at most 32.
            let t = step as f64 + 1.0;
            let cap = ((32.0 * ((t - 24.0) / 72.0).clamp(0.0, 1.0)).floor() as u64 + 8).min(32);
            assert!(
                spent <= cap,
                "{method}: {spent} replayed by step {step}, cap {cap}"
            );
        }
        assert_eq!(
            out.metrics["cost"]["replayed_samples"].as_u64(),
            Some(spent),
            "{method}"
        );
        // MSSR alone would spend 32 samples within a few steps of t₁ (its first intervals are
        // 4 steps per past task); paced, it is still replaying in the last task.
        assert!(
            last_replay_step >= 72,
            "{method}: last replay at step {last_replay_step}"
        );
    }
}

#[test]
fn probes_are_scored_on_probe_eval_limit_records_and_tasks_on_eval_limit() {
    // A probe made of the first task's generator (never trained on), 32 test records.
    let add_probe = |spec: &mut bench_tasks::SuiteSpec| {
        let mut probe = spec.tasks[0].clone();
        probe.name = "map-a-probe".into();
        spec.probes.push(probe);
    };
    let dir = tempfile::tempdir().unwrap();
    // 4 tasks, 5 evaluations (before training and after each task).
    for (set, per_eval) in [("", 4 * 4 + 4), ("probe_eval_limit = 16\n", 4 * 4 + 16)] {
        let run = dir.path().join(format!("run-{per_eval}"));
        let set = format!("epochs = 1\neval_limit = 4\ncheckpoint_every = 1000\n{set}");
        let out =
            continual::run(&config_with("sequential", &run, &set, add_probe), &mut []).unwrap();
        assert_eq!(
            out.metrics["cost"]["eval_examples"].as_u64(),
            Some(5 * per_eval),
            "{set}"
        );
        let matrix: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("matrix.json")).unwrap())
                .unwrap();
        assert_eq!(matrix["probes"], serde_json::json!(["map-a-probe"]));
        // A probe score is a fraction of the records scored: a multiple of 1/4 or of 1/16.
        let denom = if set.contains("probe_eval_limit") {
            16.0
        } else {
            4.0
        };
        for row in matrix["probe_rows"].as_array().unwrap() {
            let x = row[0].as_f64().unwrap() * denom;
            assert!(
                (x - x.round()).abs() < 1e-9,
                "{row} is not a multiple of 1/{denom}"
            );
        }
    }
}

#[test]
fn a_saved_adapter_rescored_gives_the_last_row_and_the_bare_backbone_gives_row_0() {
    // Two label maps (LoRA on the tiny model learns each at its stage), and a probe made of the
    // first's generator. O-LoRA folds each task's adapter into the
    // frozen weights, so its saved adapter must bring the folds back (two adapters side by
    // side, rank 2r); the rebuild from its checkpoint must give the same.
    let add_probe = |spec: &mut bench_tasks::SuiteSpec| {
        spec.tasks.remove(1);
        spec.tasks.truncate(2);
        let mut probe = spec.tasks[0].clone();
        probe.name = "map-a-probe".into();
        spec.probes.push(probe);
    };
    let dir = tempfile::tempdir().unwrap();
    for method in ["sequential", "olora"] {
        let run = dir.path().join(method);
        // The smoke suite trains the full model; a LoRA run saves an adapter.
        let set =
            "mode = \"lora\"\neval_limit = 4\nprobe_eval_limit = 16\ncheckpoint_every = 1000\n";
        let out = continual::run(&config_with(method, &run, set, add_probe), &mut []).unwrap();

        let saved = continual::rescore::SavedRun::read(&run).unwrap();
        assert_eq!((saved.method.as_str(), saved.seed), (method, 3));
        let suite = saved.suite_spec.load(&root(), None).unwrap();
        let device = burn::tensor::Device::flex();
        let mut scorer = continual::rescore::Scorer::new(
            &saved.model,
            saved.seed,
            &saved.settings,
            &suite,
            &device,
        )
        .unwrap();
        let probe = &suite.probes[0];
        let scores = |scorer: &continual::rescore::Scorer| -> (Vec<f64>, f64) {
            (
                suite
                    .tasks
                    .iter()
                    .map(|t| scorer.score(t, 4).score)
                    .collect(),
                scorer.score(probe, 16).score,
            )
        };
        assert_eq!(
            scores(&scorer),
            (out.rows[0].clone(), out.probe_rows[0][0]),
            "{method}: backbone vs row 0"
        );
        scorer.load_adapter(&run.join("adapter")).unwrap();
        let last = out.rows.len() - 1;
        let row_t = (out.rows[last].clone(), out.probe_rows[last][0]);
        assert_eq!(scores(&scorer), row_t, "{method}: adapter vs row T");
        // Training moved the scores, so the comparison above is not between two untouched
        // models.
        assert_ne!(out.rows[0], out.rows[last], "{method}");
        scorer.remove_adapter();
        assert_eq!(scores(&scorer).0, out.rows[0], "{method}: adapter removed");
        if method == "olora" {
            let config = std::fs::read_to_string(run.join("adapter/adapter_config.json")).unwrap();
            let config: serde_json::Value = serde_json::from_str(&config).unwrap();
            let r = saved.settings.lora.settings.rank as u64;
            assert_eq!(config["r"], 2 * r, "two tasks' adapters side by side");
            std::fs::remove_dir_all(run.join("adapter")).unwrap();
            assert_eq!(scorer.rebuild_olora_adapter(&run).unwrap(), 2);
            assert_eq!(
                scores(&scorer),
                row_t,
                "the adapter rebuilt from the checkpoint"
            );
        }
    }
}

#[test]
fn rescoring_refuses_an_unfinished_run_naming_run_json_and_its_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.json"), r#"{"status": "running"}"#).unwrap();
    let err = continual::rescore::SavedRun::read(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("run.json") && err.contains("status") && err.contains("running"),
        "{err}"
    );
}

#[test]
fn corpus_nll_in_padded_batches_equals_the_token_weighted_mean_of_single_passages() {
    use bench_tasks::format::TokenCounter;
    let spec =
        bench_tasks::SuiteSpec::from_path(&root().join("experiments/suites/smoke.toml")).unwrap();
    let suite = spec.load(&root(), None).unwrap();
    let settings = continual::TrainSettings {
        eval_batch_size: 3,
        ..Default::default()
    };
    let device = burn::tensor::Device::flex();
    let scorer = continual::rescore::Scorer::new(
        &continual::ModelSource::TinyRandom,
        5,
        &settings,
        &suite,
        &device,
    )
    .unwrap();
    // Lengths 1 (skipped: nothing to predict), 4, 9, 25 and 40 cut to 12: padding in every batch.
    let passages: Vec<String> = [
        "a",
        "abcd",
        "the cat s",
        "a longer passage of text.",
        &"x".repeat(40),
    ]
    .map(String::from)
    .to_vec();
    let got = scorer.corpus_nll(&passages, 12);
    let (mut sum, mut tokens, mut per) = (0.0, 0, vec![]);
    for p in &passages {
        let mut ids = scorer.formatter().tokenizer().encode(p);
        ids.truncate(12);
        if ids.len() < 2 {
            continue;
        }
        let lps: Vec<f64> =
            backbone::score::token_logprobs(scorer.model(), &backbone::TokenBatch::single(&ids))[0]
                .iter()
                .map(|x| -f64::from(x.unwrap()))
                .collect();
        per.push(lps.iter().sum::<f64>() / lps.len() as f64);
        sum += lps.iter().sum::<f64>();
        tokens += lps.len();
    }
    assert_eq!(got.tokens, tokens);
    assert_eq!(got.per_passage.len(), 4);
    assert!(
        (got.mean_nll - sum / tokens as f64).abs() < 1e-4,
        "{} vs {}",
        got.mean_nll,
        sum / tokens as f64
    );
    for (a, b) in got.per_passage.iter().zip(&per) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    // A random byte-level model is close to uniform over its vocabulary: about ln(vocab) nats.
    let vocab = scorer.model().config.vocab_size as f64;
    assert!(
        (got.mean_nll - vocab.ln()).abs() < 1.0,
        "{} vs ln {vocab}",
        got.mean_nll
    );
}
