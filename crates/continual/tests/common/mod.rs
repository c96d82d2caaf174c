//! What the engine's integration tests share: a run of the smoke suite with settings laid
//! over its `[training]` table, and the events of a run's log.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use continual::engine::{ModelSource, RunConfig};
use continual::{HookContext, MethodConfig, Plugin, StepRecord};

/// Crashes the run (a panic unwinds out of the engine, like a kill) at a given step.
pub struct CrashAt(pub u64);

impl Plugin for CrashAt {
    fn after_update(&mut self, _ctx: &HookContext<'_>, step: &StepRecord) {
        if step.step == self.0 {
            panic!("simulated crash at step {}", self.0);
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A run of `method` on the smoke suite with `set` (TOML) laid over its `[training]` table.
pub fn config(method: &str, out: &Path, set: &str) -> RunConfig {
    config_with(method, out, set, |_| {})
}

/// [`config`] with the suite file edited before it is loaded.
pub fn config_with(
    method: &str,
    out: &Path,
    set: &str,
    edit: impl FnOnce(&mut bench_tasks::SuiteSpec),
) -> RunConfig {
    let mut spec =
        bench_tasks::SuiteSpec::from_path(&root().join("experiments/suites/smoke.toml")).unwrap();
    edit(&mut spec);
    set_training(&mut spec, set);
    let method =
        MethodConfig::from_path(&root().join(format!("experiments/methods/{method}.toml")))
            .unwrap();
    config_for(method, out, spec)
}

/// A run of `method` on the suite `spec` (its `[training]` table as given).
pub fn config_for(method: MethodConfig, out: &Path, spec: bench_tasks::SuiteSpec) -> RunConfig {
    let suite = spec.load(&root(), None).unwrap();
    let settings = method
        .train_settings(spec.training.as_ref(), &spec.path)
        .unwrap();
    RunConfig {
        suite_spec: spec,
        suite,
        method,
        settings,
        seed: 3,
        model: ModelSource::TinyRandom,
        device_name: "cpu".into(),
        device: burn::tensor::Device::flex(),
        out_dir: out.to_path_buf(),
        index_path: Some(out.join("../index.jsonl")),
        resume: false,
        provenance: serde_json::json!({"test": true}),
        corpus: vec![],
    }
}

/// The events of `kind` in a run's `log.jsonl`.
pub fn log_events(run: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == kind)
        .collect()
}

/// The smoke suite with `set` (TOML) laid over its `[training]` table.
pub fn smoke_spec(set: &str) -> bench_tasks::SuiteSpec {
    let mut spec =
        bench_tasks::SuiteSpec::from_path(&root().join("experiments/suites/smoke.toml")).unwrap();
    set_training(&mut spec, set);
    spec
}

fn set_training(spec: &mut bench_tasks::SuiteSpec, set: &str) {
    let over: toml::Table = toml::from_str(set).unwrap();
    let training = spec.training.get_or_insert_with(Default::default);
    for (k, v) in over {
        training.insert(k, v);
    }
}
