//! `cargo xtask rescore`: finished runs' final adapters, and the backbone without them, scored
//! again on more test records of one task or probe.
//!
//! ```sh
//! # ↓F of every quick-suite run on all 64 records of its probe (the runs scored 6)
//! cargo xtask rescore --results experiments/results --suite quick --task arc-challenge-probe --limit 64
//! cargo xtask rescore --suite quick --task arc-challenge-probe --methods sequential,kl,kl-corpus
//! # the loss on 64 passages of text no run trained on
//! cargo xtask rescore --results experiments/results --suite quick --corpus openwebtext --limit 64
//! ```
//!
//! Writes `<results>/<suite>/rescore/<task>-<limit>.json`: the backbone's score (row 0), each
//! run's final score (row T) and their difference `p[0] − p[T]` (↓F of that task), with the
//! per-record scores so that methods can be compared record by record, and the provenance. With
//! `--corpus NAME` the score is the mean next-token loss on held-out pre-training-like text and
//! the forgetting is its increase (`corpus-<NAME>-<limit>.json`). The file is rewritten
//! atomically after every run; a second call skips the runs it holds.

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
    #[arg(long, required_unless_present = "corpus", conflicts_with = "corpus")]
    task: Option<String>,
    /// Instead of a task: the mean next-token loss on the first `--limit` passages of
    /// `corpus/<NAME>.jsonl` (pre-training-like text; take one the runs did not replay).
    #[arg(long, value_name = "NAME")]
    corpus: Option<String>,
    /// Tokens per corpus passage (the rest is cut).
    #[arg(long, default_value_t = 128)]
    corpus_max_tokens: usize,
    /// Test records to score (the first N of the task's test records), or corpus passages.
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
    /// A probe the runs never saw, added to their suite as a `[[probes]]` table in TOML syntax:
    /// `--add-probe 'name = "sst2-probe", source = "llm-cl/SST-2", train = 0, test = 128,
    /// metric = "rank_accuracy"'` (then `--task sst2-probe`). ↓F needs only rows 0 and T, and
    /// those are exactly what a rescore computes.
    #[arg(long, value_name = "TOML")]
    add_probe: Option<String>,
    /// First rebuild every O-LoRA run's `adapter/` from its last checkpoint and score it
    /// again, replacing its entry: runs written before 2026-12-07 saved the fresh adapter that
    /// follows O-LoRA's last fold, so they scored as the bare backbone.
    #[arg(long)]
    rebuild_olora_adapters: bool,
}

/// Runs `cargo xtask rescore`.
pub fn run(args: RescoreArgs) -> anyhow::Result<()> {
    let suite_dir = args.results.join(&args.suite);
    let mut runs = complete_lora_runs(&suite_dir, &args.methods)?;
    if let Some(probe) = &args.add_probe {
        // An inline table's body (`name = "x", source = "y"`) or TOML lines.
        let table = toml::from_str::<toml::Table>(&format!("probe = {{ {probe} }}"))
            .ok()
            .and_then(|mut t| t.remove("probe"))
            .and_then(|v| v.as_table().cloned())
            .map_or_else(|| toml::from_str::<toml::Table>(probe), Ok);
        let spec: bench_tasks::TaskSpec = table
            .context("--add-probe: not a TOML table")?
            .try_into()
            .context("--add-probe")?;
        for run in &mut runs {
            anyhow::ensure!(
                !run.suite_spec
                    .tasks
                    .iter()
                    .chain(&run.suite_spec.probes)
                    .any(|t| t.name == spec.name),
                "--add-probe: {} already has a task or probe named `{}`",
                run.dir.display(),
                spec.name
            );
            run.suite_spec.probes.push(spec.clone());
        }
    }
    anyhow::ensure!(
        !runs.is_empty(),
        "{}: no complete LoRA runs of methods {}",
        suite_dir.display(),
        args.methods
    );
    let (device_name, device) = crate::device_named(args.device.as_deref())?;
    let data_dir = bench_tasks::resolve_data_dir(args.data_dir.as_deref())
        .unwrap_or_else(|_| PathBuf::from("."));
    let (what, passages) = match (&args.task, &args.corpus) {
        (Some(task), _) => (task.clone(), None),
        (None, Some(corpus)) => {
            let mut passages = bench_tasks::load_corpus(&data_dir, corpus)?;
            passages.truncate(args.limit);
            (format!("corpus-{corpus}"), Some(passages))
        }
        (None, None) => unreachable!("clap requires --task or --corpus"),
    };
    let out_path = suite_dir
        .join("rescore")
        .join(format!("{what}-{}.json", args.limit));
    let out_dir = out_path.parent().unwrap();
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut out: Value = match std::fs::read_to_string(&out_path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not JSON; move it away to start afresh",
                out_path.display()
            )
        })?,
        Err(_) => json!({
            "suite": args.suite, "task": args.task, "corpus": args.corpus, "corpus_max_tokens": args.corpus.as_ref().map(|_| args.corpus_max_tokens),
            "limit": args.limit, "device": device_name, "provenance": crate::provenance(), "added_probe": args.add_probe,
            "forgetting": if passages.is_some() { "score[T] - score[0] (mean NLL per token, nats: higher is worse)" } else { "score[0] - score[T]" },
            "records": null, "bases": {}, "runs": [],
        }),
    };
    anyhow::ensure!(
        out["limit"] == args.limit
            && out["task"] == json!(args.task)
            && out["corpus"] == json!(args.corpus)
            && out["added_probe"] == json!(args.add_probe),
        "{}: written for another task, corpus, limit or --add-probe",
        out_path.display()
    );
    for run in &runs {
        let key = run.dir.display().to_string();
        let rebuild = args.rebuild_olora_adapters && is_olora(&run.dir);
        if rebuild {
            out["runs"]
                .as_array_mut()
                .unwrap()
                .retain(|r| r["dir"] != key.as_str());
        }
        if out["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dir"] == key.as_str())
        {
            eprintln!("{key}: scored already, skipped");
            continue;
        }
        let t0 = std::time::Instant::now();
        let suite = run.suite_spec.load(&data_dir, None)?;
        let target = match (&args.task, &passages) {
            (Some(name), _) => Target::Task(
                suite
                    .tasks
                    .iter()
                    .chain(&suite.probes)
                    .find(|t| &t.name == name)
                    .with_context(|| {
                        format!(
                            "{}: the suite has no task or probe `{name}`",
                            run.dir.join("run.json").display()
                        )
                    })?,
            ),
            (None, Some(p)) => Target::Corpus(p),
            (None, None) => unreachable!("clap requires --task or --corpus"),
        };
        // Paired comparisons need every run to score the same records.
        let texts: Vec<&str> = match target {
            Target::Task(t) => t
                .test
                .iter()
                .take(args.limit)
                .map(|r| r.prompt.as_str())
                .collect(),
            Target::Corpus(p) => p.iter().map(String::as_str).collect(),
        };
        let digest = sha256_hex(&texts.join("\u{1e}"));
        match &out["records"] {
            Value::Null => out["records"] = json!({"count": texts.len(), "texts_sha256": digest}),
            known => anyhow::ensure!(
                known["texts_sha256"] == digest.as_str(),
                "{}: its suite draws other records of `{what}` than the runs in {}",
                run.dir.display(),
                out_path.display()
            ),
        }
        let mut scorer = Scorer::new(&run.model, run.seed, &run.settings, &suite, &device)?;
        if rebuild {
            let k = scorer.rebuild_olora_adapter(&run.dir)?;
            scorer.remove_adapter();
            eprintln!("{key}: adapter/ rebuilt from the checkpoint's {k} O-LoRA folds");
        }
        let score = |scorer: &Scorer| -> (f64, Vec<f64>) {
            match target {
                Target::Task(t) => {
                    let r = scorer.score(t, args.limit);
                    (r.score, r.per_record)
                }
                Target::Corpus(p) => {
                    let r = scorer.corpus_nll(p, args.corpus_max_tokens);
                    (r.mean_nll, r.per_passage)
                }
            }
        };
        // The backbone is the same for every run of a loaded model; a random one is per seed.
        let base_key = match &run.model {
            continual::ModelSource::TinyRandom => format!("tiny-random seed {}", run.seed),
            continual::ModelSource::Path { path } => path.display().to_string(),
        };
        if out["bases"].get(&base_key).is_none() {
            let (base, per) = score(&scorer);
            eprintln!("{base_key}: {what} = {base:.4} on {} records", per.len());
            out["bases"][&base_key] = json!({"score": base, "per_record": per});
        }
        let base = out["bases"][&base_key]["score"].as_f64().unwrap();
        scorer.load_adapter(&run.dir.join("adapter"))?;
        let (last, per) = score(&scorer);
        // A task's score falls when the run forgets, a loss rises.
        let forgetting = match target {
            Target::Task(_) => base - last,
            Target::Corpus(_) => last - base,
        };
        let row_t = args
            .task
            .as_deref()
            .and_then(|t| last_row_score(&run.dir, t));
        eprintln!(
            "{key}: {last:.4} (row T of the run on its own records: {}), forgetting {forgetting:+.4}, {:.0}s",
            row_t.map_or("-".into(), |x| format!("{x:.4}")),
            t0.elapsed().as_secs_f64()
        );
        out["runs"].as_array_mut().unwrap().push(json!({
            "method": run.method, "seed": run.seed, "dir": key, "base": base_key,
            "score": last, "forgetting": forgetting, "run_row_t_score": row_t, "per_record": per,
        }));
        out["summary"] = summary(&out["runs"]);
        continual::results::write_json(&out_path, &out)?;
    }
    for (method, s) in out["summary"].as_object().into_iter().flatten() {
        eprintln!(
            "{method:<22} forgetting {:+.4} ± {:.4} (n = {})",
            s["mean_forgetting"].as_f64().unwrap_or(f64::NAN),
            s["std_forgetting"].as_f64().unwrap_or(f64::NAN),
            s["n"]
        );
    }
    eprintln!("wrote {}", out_path.display());
    Ok(())
}

/// Whether the run's method file has an O-LoRA plugin (`[[plugins]] kind = "olora"`).
fn is_olora(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| {
            v.pointer("/method_config/plugins")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["kind"] == "olora"))
        })
}

/// What a rescore scores: a task's first test records, or corpus passages (by their loss).
#[derive(Clone, Copy)]
enum Target<'a> {
    Task(&'a bench_tasks::Task),
    Corpus(&'a [String]),
}

/// Complete LoRA runs under `results/<suite>/<method>/<seed>`, sorted by method and seed.
fn complete_lora_runs(suite_dir: &Path, methods: &str) -> anyhow::Result<Vec<SavedRun>> {
    let wanted: Option<Vec<&str>> =
        (methods != "all").then(|| methods.split(',').map(str::trim).collect());
    let mut runs = Vec::new();
    let entries =
        std::fs::read_dir(suite_dir).with_context(|| format!("reading {}", suite_dir.display()))?;
    for method_dir in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        let name = method_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        if name == "rescore" || wanted.as_ref().is_some_and(|w| !w.contains(&name.as_str())) {
            continue;
        }
        for seed_dir in std::fs::read_dir(&method_dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("run.json").exists())
        {
            match SavedRun::read(&seed_dir) {
                Ok(run) if run.dir.join("adapter").exists() => runs.push(run),
                Ok(run) => eprintln!(
                    "{}: no adapter/ (only kept locally), skipped",
                    run.dir.display()
                ),
                Err(e) => eprintln!("skipped: {e}"),
            }
        }
    }
    runs.sort_by(|a, b| (&a.method, a.seed).cmp(&(&b.method, b.seed)));
    if let Some(w) = wanted {
        for m in w {
            anyhow::ensure!(
                runs.iter().any(|r| r.method == m),
                "{}: no complete run of method `{m}` with an adapter",
                suite_dir.display()
            );
        }
    }
    Ok(runs)
}

/// The run's own final score of `task` (its last matrix row, on `eval_limit` records).
fn last_row_score(dir: &Path, task: &str) -> Option<f64> {
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("matrix.json")).ok()?).ok()?;
    for (names, rows) in [("tasks", "rows"), ("probes", "probe_rows")] {
        if let Some(i) = m[names].as_array()?.iter().position(|n| n == task) {
            return m[rows].as_array()?.last()?[i].as_f64();
        }
    }
    None
}

/// Mean and sample standard deviation of the forgetting per method.
fn summary(runs: &Value) -> Value {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in runs.as_array().unwrap() {
        by.entry(r["method"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(r["forgetting"].as_f64().unwrap_or(f64::NAN));
    }
    by.into_iter()
        .map(|(m, xs)| {
            let st = report::mean_std(&xs).expect("a method has runs");
            (m, json!({"n": st.n, "mean_forgetting": st.mean, "std_forgetting": st.std.unwrap_or(0.0), "forgetting": xs}))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}
