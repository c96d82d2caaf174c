//! The example strategy, defined in this crate only, selected by `kind = "recent_task"` from a
//! method file and run by the engine through the smoke suite.

use std::path::{Path, PathBuf};

use continual::MethodConfig;
use continual::engine::{ModelSource, RunConfig};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn smoke_run(method: MethodConfig, out: &Path) -> RunConfig {
    let spec =
        bench_tasks::SuiteSpec::from_path(&root().join("experiments/suites/smoke.toml")).unwrap();
    let suite = spec.load(&root(), None).unwrap();
    let settings = method
        .train_settings(spec.training.as_ref(), &spec.path)
        .unwrap();
    RunConfig {
        suite_spec: spec,
        suite,
        method,
        settings,
        seed: 5,
        model: ModelSource::TinyRandom,
        device_name: "cpu".into(),
        device: burn::tensor::Device::flex(),
        out_dir: out.to_path_buf(),
        index_path: None,
        resume: false,
        provenance: serde_json::json!({"test": true}),
        corpus: vec![],
    }
}

fn events(run: &Path, kind: &str) -> Vec<Value> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == kind)
        .collect()
}

#[test]
fn a_strategy_from_its_own_crate_runs_through_the_smoke_suite_as_its_method_file_says() {
    // The registration is in this crate: make sure the linker keeps it.
    let _ = strategy_example::RecentTaskConfig::default();
    let method = MethodConfig::from_path(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("methods/recent-task.toml"),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("recent-task");
    let cfg = smoke_run(method, &out);
    let batch = cfg.settings.batch_size;
    // The smoke suite's replay budget (576 samples, unpaced) bounds every replay method.
    let budget = cfg.settings.replay_budget.unwrap() as usize;
    continual::engine::run(&cfg, &mut []).unwrap();

    let steps = events(&out, "step");
    let replays = events(&out, "replay");
    let own = events(&out, "recent_task");
    assert!(!replays.is_empty(), "the strategy never replayed");
    assert_eq!(
        own.len(),
        replays.len(),
        "one log line of its own per batch"
    );
    // Stage boundaries: the first step of each task.
    let first_step_of = |task: u64| {
        steps
            .iter()
            .find(|s| s["task"] == task)
            .map(|s| s["step"].as_u64().unwrap())
            .unwrap()
    };
    for (r, mine) in replays.iter().zip(&own) {
        let step = r["step"].as_u64().unwrap();
        // Every `every = 2` steps, one whole batch, from task 1 on.
        assert_eq!(step % 2, 0, "{r}");
        assert_eq!(r["n"].as_u64().unwrap() as usize, batch, "{r}");
        assert_eq!(r["reason"]["label"], "most recent task", "{r}");
        // Only the most recently finished task is replayed: the one before the current.
        let current = steps.iter().find(|s| s["step"] == step).unwrap()["task"]
            .as_u64()
            .unwrap();
        assert!(current >= 1 && step >= first_step_of(1), "{r}");
        let by_task = r["samples_by_task"].as_object().unwrap();
        assert_eq!(
            by_task.keys().collect::<Vec<_>>(),
            vec![&(current - 1).to_string()],
            "{r}"
        );
        assert_eq!(mine["tasks"], serde_json::json!([current - 1]));
    }
    // Every even step after the first task replays (the buffer holds the previous task),
    // until the run's replay budget is spent, and not one sample beyond it.
    let even: Vec<u64> = steps
        .iter()
        .filter(|s| s["task"].as_u64().unwrap() >= 1 && s["step"].as_u64().unwrap() % 2 == 0)
        .map(|s| s["step"].as_u64().unwrap())
        .collect();
    let expected = even.len().min(budget / batch);
    assert!(expected < even.len(), "the budget should bind in this test");
    let at: Vec<u64> = replays
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        at,
        even[..expected],
        "replayed at the first {expected} even steps"
    );
    let spent: usize = replays
        .iter()
        .map(|r| r["n"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(spent, budget);
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["status"], "complete");
    assert_eq!(
        run["method_config"]["replay"]["scheduler"]["kind"],
        "recent_task"
    );
}

#[test]
fn the_strategy_checkpoints_and_restores_under_its_registered_name() {
    use replay_buffer::{ReplaySize, SampleRef, Signals, StrategyConfig, StrategyInit};
    let config: Box<dyn StrategyConfig> =
        toml::from_str("kind = \"recent_task\"\nevery = 1\n").unwrap();
    let run = StrategyInit {
        size: ReplaySize {
            batch_size: 2,
            ratio: 1.0,
        },
        seed: 11,
        validation_records: 0,
    };
    let buffer = replay_buffer::ReplayBufferConfig::default().init();
    let mut replay = replay_buffer::Replay::new(buffer, config.init(&run));
    for t in 0..3u32 {
        replay.before_training_exp(t);
        for i in 0..4 {
            replay.offer(SampleRef::new(t, i), 1.0, u64::from(t * 4 + i), None);
        }
        replay.after_training_exp(t, &Signals::at(u64::from(t * 4 + 3)));
    }
    let json = serde_json::to_string(&replay).unwrap();
    assert!(json.contains("\"kind\":\"recent_task\""), "{json}");
    let mut back: replay_buffer::Replay<Box<dyn replay_buffer::Strategy>> =
        serde_json::from_str(&json).unwrap();
    // The restored strategy continues exactly as the original (same RNG, same past tasks).
    for step in 12..20 {
        let a = replay.before_update(&Signals::at(step));
        let b = back.before_update(&Signals::at(step));
        assert_eq!(a, b);
        assert!(a.batches[0].samples.iter().all(|s| s.task == 2));
    }
    // A misspelt kind is an error naming it.
    let err = toml::from_str::<Box<dyn StrategyConfig>>("kind = \"recent_tsak\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("recent_tsak"), "{err}");
}
