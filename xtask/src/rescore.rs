//! `cargo xtask rescore`: finished runs' final adapters, and the backbone without them, scored
//! again on more test records of one task or probe.
//!
//! ```sh
//! # ↓F of every quick-suite run on all 64 records of its probe (the runs scored 6)
//! cargo xtask rescore --results experiments/results --suite quick --task arc-challenge-probe --limit 64
//! cargo xtask rescore --suite quick --task arc-challenge-probe --methods sequential,kl,kl-corpus
//! ```
//!
//! Writes `<results>/<suite>/rescore/<task>-<limit>.json`: the backbone's score (row 0), each
//! run's final score (row T) and their difference `p[0] − p[T]` (↓F of that task), with the
//! per-record scores so that methods can be compared record by record, and the provenance. The
//! file is rewritten atomically after every run; a second call skips the runs it holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use continual::rescore::{SavedRun, Scorer};
use serde_json::{Value, json};

/// Arguments of `cargo xtask rescore`.
#[derive(clap::Args)]
pub struct RescoreArgs {
    /// Results root.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Suite name (a directory under the results root).
    #[arg(long, default_value = "quick")]
    suite: String,
    /// The task or probe to score.
    #[arg(long)]
    task: String,
    /// Test records to score (the first N of the task's test records).
    #[arg(long, default_value_t = 64)]
    limit: usize,
    /// Comma-separated method names, or `all`.
    #[arg(long, default_value = "all")]
    methods: String,
    /// Task data directory (default: $CONTINUAL_DATA_DIR, then ../shared/data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Device: cpu, wgpu, vulkan or cuda (default: $BURN_DEVICE, else cpu).
    #[arg(long)]
    device: Option<String>,
}

/// Runs `cargo xtask rescore`.
pub fn run(args: RescoreArgs) -> anyhow::Result<()> {
    let suite_dir = args.results.join(&args.suite);
    let runs = complete_lora_runs(&suite_dir, &args.methods)?;
    anyhow::ensure!(!runs.is_empty(), "{}: no complete LoRA runs of methods {}", suite_dir.display(), args.methods);
    let device_name = args.device.clone().or_else(|| std::env::var("BURN_DEVICE").ok()).unwrap_or_else(|| "cpu".into());
    let device = backbone::select_device(Some(&device_name)).map_err(anyhow::Error::msg)?;
    let data_dir = bench_tasks::resolve_data_dir(args.data_dir.as_deref()).unwrap_or_else(|_| PathBuf::from("."));
    let out_path = suite_dir.join("rescore").join(format!("{}-{}.json", args.task, args.limit));
    std::fs::create_dir_all(out_path.parent().unwrap()).with_context(|| format!("creating {}", out_path.parent().unwrap().display()))?;
    let mut out: Value = match std::fs::read_to_string(&out_path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("{}: not JSON; move it away to start afresh", out_path.display()))?,
        Err(_) => json!({
            "suite": args.suite, "task": args.task, "limit": args.limit, "device": device_name,
            "provenance": crate::provenance(), "records": null, "bases": {}, "runs": [],
        }),
    };
    anyhow::ensure!(out["limit"] == args.limit && out["task"] == args.task.as_str(), "{}: written for another task or limit", out_path.display());
    for run in &runs {
        let key = run.dir.display().to_string();
        if out["runs"].as_array().unwrap().iter().any(|r| r["dir"] == key.as_str()) {
            eprintln!("{key}: scored already, skipped");
            continue;
        }
        let t0 = std::time::Instant::now();
        let suite = run.suite_spec.load(&data_dir, None)?;
        let task = suite
            .tasks
            .iter()
            .chain(&suite.probes)
            .find(|t| t.name == args.task)
            .with_context(|| format!("{}: the suite has no task or probe `{}`", run.dir.join("run.json").display(), args.task))?;
        let records = &task.test[..task.test.len().min(args.limit)];
        // Paired comparisons need every run to score the same records.
        let prompts: Vec<&str> = records.iter().map(|r| r.prompt.as_str()).collect();
        match &out["records"] {
            Value::Null => out["records"] = json!({"count": records.len(), "prompts_sha256": sha256_hex(&prompts.join("\u{1e}"))}),
            known => anyhow::ensure!(
                known["prompts_sha256"] == sha256_hex(&prompts.join("\u{1e}")).as_str(),
                "{}: its suite draws other test records of `{}` than the runs in {}",
                run.dir.display(),
                args.task,
                out_path.display()
            ),
        }
        let mut scorer = Scorer::new(&run.model, run.seed, &run.settings, &suite, &device)?;
        // The backbone is the same for every run of a loaded model; a random one is per seed.
        let base_key = match &run.model {
            continual::ModelSource::TinyRandom => format!("tiny-random seed {}", run.seed),
            continual::ModelSource::Path { path } => path.display().to_string(),
        };
        if out["bases"].get(&base_key).is_none() {
            let base = scorer.score(task, args.limit);
            eprintln!("{base_key}: {} = {:.4} on {} records", args.task, base.score, base.per_record.len());
            out["bases"][&base_key] = json!({"score": base.score, "per_record": base.per_record});
        }
        let base = out["bases"][&base_key]["score"].as_f64().unwrap();
        scorer.load_adapter(&run.dir.join("adapter"))?;
        let last = scorer.score(task, args.limit);
        let row_t = last_row_score(&run.dir, &args.task);
        eprintln!(
            "{key}: {:.4} (row T of the run on its own records: {}), drop {:+.4}, {:.0}s",
            last.score,
            row_t.map_or("-".into(), |x| format!("{x:.4}")),
            base - last.score,
            t0.elapsed().as_secs_f64()
        );
        out["runs"].as_array_mut().unwrap().push(json!({
            "method": run.method, "seed": run.seed, "dir": key, "base": base_key,
            "score": last.score, "drop": base - last.score, "run_row_t_score": row_t, "per_record": last.per_record,
        }));
        out["summary"] = summary(&out["runs"]);
        continual::results::write_json(&out_path, &out)?;
    }
    for (method, s) in out["summary"].as_object().into_iter().flatten() {
        eprintln!("{method:<22} drop {:+.4} ± {:.4} (n = {})", s["mean_drop"].as_f64().unwrap_or(f64::NAN), s["std_drop"].as_f64().unwrap_or(f64::NAN), s["n"]);
    }
    eprintln!("wrote {}", out_path.display());
    Ok(())
}

/// Complete LoRA runs under `results/<suite>/<method>/<seed>`, sorted by method and seed.
fn complete_lora_runs(suite_dir: &Path, methods: &str) -> anyhow::Result<Vec<SavedRun>> {
    let wanted: Option<Vec<&str>> = (methods != "all").then(|| methods.split(',').map(str::trim).collect());
    let mut runs = Vec::new();
    let entries = std::fs::read_dir(suite_dir).with_context(|| format!("reading {}", suite_dir.display()))?;
    for method_dir in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        let name = method_dir.file_name().unwrap().to_string_lossy().to_string();
        if name == "rescore" || wanted.as_ref().is_some_and(|w| !w.contains(&name.as_str())) {
            continue;
        }
        for seed_dir in std::fs::read_dir(&method_dir)?.flatten().map(|e| e.path()).filter(|p| p.join("run.json").exists()) {
            match SavedRun::read(&seed_dir) {
                Ok(run) if run.dir.join("adapter").exists() => runs.push(run),
                Ok(run) => eprintln!("{}: no adapter/ (only kept locally), skipped", run.dir.display()),
                Err(e) => eprintln!("skipped: {e}"),
            }
        }
    }
    runs.sort_by(|a, b| (&a.method, a.seed).cmp(&(&b.method, b.seed)));
    if let Some(w) = wanted {
        for m in w {
            anyhow::ensure!(runs.iter().any(|r| r.method == m), "{}: no complete run of method `{m}` with an adapter", suite_dir.display());
        }
    }
    Ok(runs)
}

/// The run's own final score of `task` (its last matrix row, on `eval_limit` records).
fn last_row_score(dir: &Path, task: &str) -> Option<f64> {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("matrix.json")).ok()?).ok()?;
    for (names, rows) in [("tasks", "rows"), ("probes", "probe_rows")] {
        if let Some(i) = m[names].as_array()?.iter().position(|n| n == task) {
            return m[rows].as_array()?.last()?[i].as_f64();
        }
    }
    None
}

/// Mean and sample standard deviation of the drop per method.
fn summary(runs: &Value) -> Value {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in runs.as_array().unwrap() {
        by.entry(r["method"].as_str().unwrap_or_default().to_string()).or_default().push(r["drop"].as_f64().unwrap_or(f64::NAN));
    }
    by.into_iter()
        .map(|(m, xs)| {
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let std = if xs.len() > 1 { (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
            (m, json!({"n": xs.len(), "mean_drop": mean, "std_drop": std, "drops": xs}))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}
