//! The baselines (EWC, LwF, A-GEM, DER++, O-LoRA) through the smoke suite: each does what its
//! method file says (its term or its hook shows in the log, its passes are counted), keeps its
//! state across a crash and resume bit for bit, and refuses bad settings by name.

mod common;

use common::{CrashAt, config, log_events};
use continual::MethodConfig;

/// Four tasks of 16 steps; a checkpoint every 5 steps.
const SHORT: &str = "epochs = 2\ncheckpoint_every = 5\n";

#[test]
fn each_baseline_logs_what_it_does_and_pays_for_its_passes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |m: &str| {
        let out = dir.path().join(m);
        let outcome = continual::run(&config(m, &out, SHORT), &mut []).unwrap();
        (out, outcome.metrics)
    };
    let (_, plain) = run("sequential");
    let steps = plain["cost"]["optimizer_steps"].as_u64().unwrap();
    assert_eq!(steps, 64);
    let passes = |m: &serde_json::Value, k: &str| m["cost"][k].as_u64().unwrap();

    // EWC: no penalty in the first task, then one at every step; 32 Fisher samples per task.
    let (out, m) = run("ewc");
    let terms: Vec<_> = log_events(&out, "step")
        .iter()
        .map(|s| s["terms"]["ewc"].as_f64())
        .collect();
    assert!(terms[..16].iter().all(Option::is_none) && terms[16..].iter().all(Option::is_some));
    assert!(terms[17].unwrap() > 0.0, "the weights moved away from θ*");
    assert_eq!(log_events(&out, "ewc").len(), 4);
    assert_eq!(passes(&m, "forward_passes"), steps + 4 * 32);
    assert_eq!(passes(&m, "backward_passes"), steps + 4 * 32);
    assert_eq!(passes(&m, "plugin_forwards"), 4 * 32);
    assert_eq!(passes(&m, "plugin_backwards"), 4 * 32);

    // LwF: the teacher is the stage-start model, so its term starts at zero in every task.
    let (out, m) = run("lwf");
    let lwf: Vec<f64> = log_events(&out, "step")[16..]
        .iter()
        .map(|s| s["terms"]["lwf"].as_f64().unwrap())
        .collect();
    assert!(lwf[0].abs() < 1e-5 && lwf[15] > 1e-4, "{lwf:?}");
    assert_eq!(
        passes(&m, "forward_passes"),
        steps + 48,
        "one teacher forward per step"
    );
    assert_eq!(passes(&m, "plugin_forwards"), 48);

    // A-GEM: a reference gradient at every step after the first task, some projected.
    let (out, m) = run("agem");
    let stages = log_events(&out, "agem");
    assert_eq!(stages[0]["steps_checked"], 0);
    assert!(stages[1..].iter().all(|s| s["steps_checked"] == 16));
    let projected: u64 = stages
        .iter()
        .map(|s| s["steps_projected"].as_u64().unwrap())
        .sum();
    assert!(projected > 0, "{stages:?}");
    assert_eq!(passes(&m, "backward_passes"), steps + 48);
    assert_eq!(passes(&m, "plugin_backwards"), 48);

    // DER++: replays every step within the budget, matching stored outputs when it does.
    let (out, m) = run("derpp");
    for s in log_events(&out, "step") {
        assert_eq!(
            s["replayed"].as_u64().unwrap() > 0,
            s["terms"].get("der").is_some(),
            "{s}"
        );
    }
    assert!(passes(&m, "replayed_samples") > 0);

    // WiSE-FT: one interpolation per task, keeping α = 0.5 of how far the stage moved.
    let (out, _) = run("wise-ft");
    let lines = log_events(&out, "wise_ft");
    assert_eq!(lines.len(), 4);
    for l in &lines {
        let (moved, kept) = (l["moved"].as_f64().unwrap(), l["kept"].as_f64().unwrap());
        assert!(moved > 0.0, "{l}");
        assert!((kept - 0.5 * moved).abs() < 1e-4 * moved, "{l}");
    }

    // O-LoRA: the orthogonality term from the second task on, one fold per task.
    let (out, _) = run("olora");
    let orth: Vec<_> = log_events(&out, "step")
        .iter()
        .map(|s| s["terms"]["olora_orth"].as_f64())
        .collect();
    assert!(orth[..16].iter().all(Option::is_none) && orth[16..].iter().all(Option::is_some));
    let folds: Vec<_> = log_events(&out, "olora")
        .iter()
        .map(|e| e["folded_adapters"].as_u64().unwrap())
        .collect();
    assert_eq!(folds, vec![1, 2, 3, 4]);
}

#[test]
fn every_baseline_resumes_from_a_crash_to_the_same_run() {
    for method in ["ewc", "lwf", "agem", "derpp", "olora", "wise-ft"] {
        let dir = tempfile::tempdir().unwrap();
        let whole =
            continual::run(&config(method, &dir.path().join("whole"), SHORT), &mut []).unwrap();
        // Step 43 is inside the third task; the last checkpoint before it is at step 40.
        let out = dir.path().join("crashed");
        let crashed = std::panic::catch_unwind(|| {
            let mut crash = CrashAt(43);
            let _ = continual::run(&config(method, &out, SHORT), &mut [&mut crash]);
        });
        assert!(crashed.is_err());
        let mut cfg = config(method, &out, SHORT);
        cfg.resume = true;
        let resumed = continual::run(&cfg, &mut []).unwrap();
        assert_eq!(whole.rows, resumed.rows, "{method}");
        let steps = |d: &std::path::Path| log_events(d, "step");
        assert_eq!(
            steps(&dir.path().join("whole")),
            steps(&out),
            "{method}: the step log"
        );
        assert_eq!(
            whole.metrics["cost"]["forward_passes"], resumed.metrics["cost"]["forward_passes"],
            "{method}"
        );
    }
}

#[test]
fn bad_plugin_settings_are_refused_naming_the_field() {
    let parse = |t: &str| {
        MethodConfig::from_toml_str(t, std::path::Path::new("m.toml"))
            .unwrap_err()
            .to_string()
    };
    let e = parse("[[plugins]]\nkind = \"ewc\"\nlambda = -1.0\n");
    assert!(
        e.contains("m.toml") && e.contains("plugins[0].lambda"),
        "{e}"
    );
    let e = parse("[[plugins]]\nkind = \"lwf\"\ntemprature = 2.0\n");
    assert!(e.contains("temprature"), "{e}");
    let e = parse("[[plugins]]\nkind = \"ewk\"\n");
    assert!(e.contains("ewk"), "{e}");
    let e = parse("[[plugins]]\nkind = \"derpp\"\n[[plugins]]\nkind = \"agem\"\nsample_size = 0\n");
    assert!(e.contains("plugins[1].sample_size"), "{e}");
}

/// Every line the engine writes is a `report::events::LogEvent` that reads back to the same
/// JSON; the only other lines are the strategies' and plugins' own.
#[test]
fn the_log_holds_typed_events_and_the_plugins_own_lines() {
    let dir = tempfile::tempdir().unwrap();
    let set = "epochs = 1\nsharpness_rho = 0.05\nlandscape_points = 3\n";
    let mut seen = std::collections::BTreeSet::new();
    for method in ["mssr-xsam", "ewc", "agem"] {
        let out = dir.path().join(method);
        continual::run(&config(method, &out, set), &mut []).unwrap();
        let text = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let kind = value["type"].as_str().unwrap().to_string();
            if ["ewc", "agem"].contains(&kind.as_str()) {
                continue;
            }
            let event: report::events::LogEvent = serde_json::from_value(value.clone())
                .unwrap_or_else(|e| panic!("{method}: {e}: {line}"));
            assert_eq!(event.to_value(), value, "{method}: {line}");
            seen.insert(kind);
        }
    }
    let want = [
        "eval",
        "interval",
        "landscape",
        "replay",
        "sharpness",
        "sharpness_probe",
        "stage",
        "step",
        "strengths",
    ];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), want);
}
