//! One method on the smoke suite with the tiny random model, from Rust rather than `cargo xtask`:
//!
//! ```sh
//! cargo run -p continual --example smoke_run -- mssr /tmp/smoke-mssr [seed]
//! ```
//!
//! Prints the accuracy matrix and the metrics; the result files land in the given directory.

use std::path::{Path, PathBuf};

use continual::engine::{ModelSource, RunConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let method = args.get(1).map_or("sequential", String::as_str);
    let out = PathBuf::from(args.get(2).map_or("/tmp/smoke-run", String::as_str));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let spec = bench_tasks::SuiteSpec::from_path(&root.join("experiments/suites/smoke.toml"))?;
    let suite = spec.load(&root, None)?;
    let method = continual::MethodConfig::from_path(
        &root.join(format!("experiments/methods/{method}.toml")),
    )?;
    let settings = method.train_settings(spec.training.as_ref(), &spec.path)?;
    let cfg = RunConfig {
        suite_spec: spec,
        suite,
        method,
        settings,
        seed: args.get(3).map_or(Ok(0), |s| s.parse())?,
        model: ModelSource::TinyRandom,
        device_name: "cpu".into(),
        device: burn::tensor::Device::flex(),
        out_dir: out,
        index_path: None,
        resume: false,
        provenance: serde_json::json!({}),
        corpus: vec![],
    };
    let mut progress = continual::Progress::default();
    let result = continual::run(&cfg, &mut [&mut progress])?;
    for (j, row) in result.rows.iter().enumerate() {
        println!("after stage {j}: {row:.2?}");
    }
    println!("{}", serde_json::to_string_pretty(&result.metrics)?);
    Ok(())
}
