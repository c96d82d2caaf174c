//! `cargo xtask suite`: every method × seed of a suite through the continual engine.
//!
//! ```sh
//! cargo xtask suite --suite smoke --methods all --seeds 3            # seconds, tiny random model
//! cargo xtask suite --suite quick --methods sequential,mssr --seeds 3 --device cpu
//! cargo xtask suite --suite quick --methods mssr --seeds 1 --resume  # continue a killed run
//! cargo xtask report                                                 # results/report.html + summary.md
//! ```
//!
//! Runs go to `results/<suite>/<method>/<seed>/` (see docs/results-format.md); a finished run
//! is skipped when asked again, a started one needs `--resume`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use continual::engine::{ModelSource, RunConfig};
use continual::{MethodConfig, Progress};

/// Arguments of `cargo xtask suite`.
#[derive(clap::Args)]
pub struct SuiteArgs {
    /// Suite name (experiments/suites/<name>.toml) or path.
    #[arg(long, default_value = "quick")]
    suite: String,
    /// Comma-separated method names (experiments/methods/<name>.toml) or paths, or `all`.
    #[arg(long, default_value = "sequential,mssr")]
    methods: String,
    /// Number of seeds (0..N).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Device: cpu, wgpu, vulkan or cuda (default: $BURN_DEVICE, else cpu).
    #[arg(long)]
    device: Option<String>,
    /// HF directory or .gguf file, or `tiny-random`; default: tiny-random for the smoke
    /// suite, the fetched SmolLM2-135M-Instruct otherwise (fetched when missing).
    #[arg(long)]
    model: Option<String>,
    /// Task data directory (default: $CONTINUAL_DATA_DIR, then ../shared/data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Task order name of the suite (default: its own).
    #[arg(long)]
    order: Option<String>,
    /// Results root.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Continue runs that have a checkpoint.
    #[arg(long)]
    resume: bool,
    /// Override a training setting, TOML syntax: `--set epochs=1 --set optim.lr=1e-4`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// Runs `cargo xtask suite`.
pub fn run(args: SuiteArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log_level).context("--log-level")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let suite_path = resolve(&args.suite, "experiments/suites");
    let mut spec = bench_tasks::SuiteSpec::from_path(&suite_path)?;
    let mut training = spec.training.take().unwrap_or_default();
    for kv in &args.set {
        let table: toml::Table = toml::from_str(kv).with_context(|| format!("--set {kv:?}: expected KEY=VALUE in TOML syntax"))?;
        continual::method::merge(&mut training, &table);
    }
    spec.training = Some(training);
    let data_dir = bench_tasks::resolve_data_dir(args.data_dir.as_deref()).unwrap_or_else(|_| PathBuf::from("."));
    let suite = spec.load(&data_dir, args.order.as_deref())?;
    let corpus = spec
        .replay_corpus
        .iter()
        .map(|c| bench_tasks::load_corpus(&data_dir, c))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let methods: Vec<PathBuf> = if args.methods == "all" {
        continual::method::method_files(Path::new("experiments/methods"))?.into_iter().map(|(_, p)| p).collect()
    } else {
        args.methods.split(',').map(|m| resolve(m.trim(), "experiments/methods")).collect()
    };
    let methods = methods.iter().map(|p| MethodConfig::from_path(p)).collect::<Result<Vec<_>, _>>()?;
    let model = match args.model.as_deref() {
        Some("tiny-random") => ModelSource::TinyRandom,
        Some(p) => ModelSource::Path { path: PathBuf::from(p) },
        None if spec.name == "smoke" => ModelSource::TinyRandom,
        None => {
            let path = crate::model::default_model_path();
            if !path.exists() {
                eprintln!("fetching the default model into {}", crate::model::default_cache_dir().display());
                crate::model::fetch_default_model(&crate::model::default_cache_dir(), None)?;
            }
            ModelSource::Path { path }
        }
    };
    let device_name = args.device.clone().or_else(|| std::env::var("BURN_DEVICE").ok()).unwrap_or_else(|| "cpu".into());
    let device = backbone::select_device(Some(&device_name)).map_err(anyhow::Error::msg)?;
    let suite_dir = args.out.join(&spec.name);
    std::fs::create_dir_all(&suite_dir).with_context(|| format!("creating {}", suite_dir.display()))?;
    let provenance = crate::provenance();
    for method in &methods {
        let settings = method.train_settings(spec.training.as_ref(), &spec.path)?;
        for seed in args.first_seed..args.first_seed + args.seeds {
            let out_dir = suite_dir.join(&method.name).join(seed.to_string());
            if is_complete(&out_dir) {
                eprintln!("{}: complete, skipped", out_dir.display());
                // A run killed between turning complete and its index append gets its row now.
                if continual::results::ensure_index_row(&suite_dir.join("index.jsonl"), &out_dir)? {
                    eprintln!("{}: its index.jsonl row was missing and is written now", out_dir.display());
                }
                continue;
            }
            eprintln!("== {} / {} / seed {seed} -> {}", spec.name, method.name, out_dir.display());
            let cfg = RunConfig {
                suite_spec: spec.clone(),
                suite: suite.clone(),
                method: method.clone(),
                settings: settings.clone(),
                seed,
                model: model.clone(),
                device_name: device_name.clone(),
                device: device.clone(),
                out_dir,
                index_path: Some(suite_dir.join("index.jsonl")),
                resume: args.resume,
                provenance: provenance.clone(),
                corpus: corpus.clone(),
            };
            let mut progress = Progress::default();
            let out = continual::run(&cfg, &mut [&mut progress])?;
            let m = &out.metrics;
            eprintln!(
                "   AA {:.3}  BWT {}  F {}  replayed {}  wall {:.1}s",
                m["aa"].as_f64().unwrap_or(f64::NAN),
                fmt(&m["bwt"]),
                fmt(&m["forgetting"]),
                m["cost"]["replayed_samples"],
                m["cost"]["wall_seconds"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

fn fmt(v: &serde_json::Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.3}"))
}

fn is_complete(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["status"] == "complete")
}

/// A name under `dir` (`<dir>/<name>.toml`) or a path as given.
fn resolve(name: &str, dir: &str) -> PathBuf {
    let p = PathBuf::from(name);
    if p.extension().is_some_and(|e| e == "toml") || p.components().count() > 1 {
        p
    } else {
        Path::new(dir).join(format!("{name}.toml"))
    }
}
