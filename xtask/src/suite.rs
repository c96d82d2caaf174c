//! `cargo xtask suite`: every method × seed of a suite through the continual engine.
//!
//! ```sh
//! cargo xtask suite --suite smoke --methods all --seeds 3            # seconds, tiny random model
//! cargo xtask suite --suite quick --methods sequential,mssr --seeds 3 --device cpu
//! cargo xtask suite --suite quick --methods mssr --seeds 1 --resume  # continue a killed run
//! cargo xtask suite --suite quick --methods all --seeds 3 --jobs 2   # two runs at a time
//! cargo xtask report                                                 # results/report.html + summary.md
//! ```
//!
//! The tasks train in the order `--order` names, else in the suite's `default_order`, else in
//! its `[[tasks]]` order. Runs go to `results/<suite>/<method>/<seed>/`, those of an order other
//! than the suite's default to `results/<suite>@<order>/<method>/<seed>/` (see
//! docs/results-format.md); a finished run
//! is skipped when asked again, a started one needs `--resume`. With `--jobs N` each run is a
//! child process of its own (`RAYON_NUM_THREADS` = cores / N unless set), seeds outermost so
//! that every method gets seed 0 first; a child's console goes to `console.log` in its run
//! directory. On a small CPU the many small products of a 135M model do not keep several
//! threads busy: two one-thread runs finish 1.8x as many runs per hour as one two-thread run on
//! 2 cores (docs/performance.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use bench_tasks::{Suite, SuiteSpec};
use continual::MethodConfig;
use continual::engine::{ModelSource, RunConfig};

use crate::UsageError;

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
    /// Task orders of the suite's `[orders]` table, comma-separated (default: its
    /// `default_order`, else its `[[tasks]]` order); another than the default writes to
    /// `<out>/<suite>@<order>/`.
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
    /// Runs at a time, each in a child process with its share of the cores.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    jobs: usize,
    /// Where runs go: `local` (this machine) or `slurm` (writes a job array, see `--submit`).
    #[arg(long, value_enum, default_value_t = Launcher::Local)]
    launcher: Launcher,
    /// With `--launcher slurm`: submit the array and the report job (else only write them).
    #[arg(long)]
    submit: bool,
    /// A signal that, like SIGTERM, makes a run checkpoint at its next step and exit with
    /// status 75 (requeue), in Slurm's `--signal` syntax: `[B:]NAME[@SECONDS]`. With
    /// `--launcher slurm` it is the array's `--signal` (default `B:USR1@120`).
    #[arg(long, value_name = "SPEC")]
    signal: Option<String>,
    /// With `--launcher slurm`: a TOML file whose `[slurm]` table holds the settings below
    /// (flags win).
    #[arg(long, value_name = "FILE")]
    slurm_config: Option<PathBuf>,
    #[command(flatten)]
    slurm: crate::slurm::SlurmSettings,
    /// Write no TensorBoard events file (`events.out.tfevents.*` in each run's directory).
    #[arg(long)]
    no_tensorboard: bool,
}

/// Where `cargo xtask suite` runs its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Launcher {
    /// In this process, or `--jobs N` child processes.
    Local,
    /// As a Slurm job array (`xtask/src/slurm.rs`).
    Slurm,
}

/// Runs `cargo xtask suite`.
pub fn run(args: SuiteArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level).context("--log-level")?,
        )
        // Through the progress bars, so that a log line neither tears nor hides them.
        .with_writer(continual::progress::LogWriter::default)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let slurm = args.launcher == Launcher::Slurm;
    if !slurm && (args.submit || args.slurm_config.is_some()) {
        return Err(UsageError("--submit and --slurm-config need --launcher slurm".into()).into());
    }
    if slurm && args.jobs > 1 {
        return Err(UsageError(
            "--jobs is for --launcher local (with slurm: --max-parallel)".into(),
        )
        .into());
    }
    if let Some(sig) = &args.signal {
        continual::interrupt::parse_signal(sig).map_err(UsageError)?;
    }
    if !slurm {
        continual::interrupt::install(args.signal.as_deref()).map_err(UsageError)?;
    }
    let orders: Vec<Option<String>> = match args.order.as_deref() {
        None => vec![None],
        Some(list) => list
            .split(',')
            .map(|o| Some(o.trim().to_string()))
            .collect(),
    };
    let mut tasks = vec![];
    let mut first: Option<(String, Vec<String>)> = None;
    for order in &orders {
        let p = prepare(&args, order.as_deref())?;
        if slurm {
            for seed in args.first_seed..args.first_seed + args.seeds {
                for (path, m) in p.method_paths.iter().zip(&p.methods) {
                    let dir = args
                        .out
                        .join(&p.suite.name)
                        .join(&m.name)
                        .join(seed.to_string());
                    if is_complete(&dir) {
                        eprintln!("{}: complete, skipped", dir.display());
                    } else {
                        tasks.push(crate::slurm::Task {
                            method: path.clone(),
                            seed,
                            order: order.clone(),
                        });
                    }
                }
            }
            first.get_or_insert_with(|| (p.spec.name.clone(), common_args(&args, &p.model_arg)));
        } else {
            run_local(&args, order.as_deref(), p)?;
        }
        if continual::interrupt::requested() {
            return Err(crate::Requeue("a signal asked the suite to stop".into()).into());
        }
    }
    if let Some((name, common)) = first {
        launch_slurm(&args, &name, common, &tasks)?;
    }
    Ok(())
}

/// What every order's runs share, loaded once per order.
struct Prepared {
    spec: SuiteSpec,
    suite: Suite,
    corpus: Vec<String>,
    method_paths: Vec<PathBuf>,
    methods: Vec<MethodConfig>,
    model: ModelSource,
    /// `--model` for child processes and array tasks.
    model_arg: String,
}

fn prepare(args: &SuiteArgs, order: Option<&str>) -> anyhow::Result<Prepared> {
    let suite_path = resolve(&args.suite, "experiments/suites");
    let mut spec = SuiteSpec::from_path(&suite_path)?;
    let mut training = spec.training.take().unwrap_or_default();
    let suite_training = training.clone();
    for kv in &args.set {
        let table: toml::Table = toml::from_str(kv)
            .map_err(|_| UsageError(format!("--set {kv:?}: expected KEY=VALUE in TOML syntax")))?;
        continual::method::merge(&mut training, &table);
    }
    // A wrong `--set` key or type is named as such, before anything runs (when the suite's own
    // `[training]` is fine; otherwise the run below names the suite file).
    if !args.set.is_empty() {
        let plain = MethodConfig::from_toml_str("", &spec.path)?;
        if plain
            .train_settings(Some(&suite_training), &spec.path)
            .is_ok()
            && let Err(e) = plain.train_settings(Some(&training), Path::new("--set"))
        {
            return Err(UsageError(e.to_string()).into());
        }
    }
    spec.training = Some(training);
    let data_dir = bench_tasks::resolve_data_dir(args.data_dir.as_deref())
        .unwrap_or_else(|_| PathBuf::from("."));
    let suite = ordered_suite(&mut spec, order, &data_dir)?;
    let corpus = spec
        .replay_corpus
        .iter()
        .map(|c| bench_tasks::load_corpus(&data_dir, c))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let method_paths: Vec<PathBuf> = if args.methods == "all" {
        continual::method::method_files(Path::new("experiments/methods"))?
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    } else {
        args.methods
            .split(',')
            .map(|m| resolve(m.trim(), "experiments/methods"))
            .collect()
    };
    let methods = method_paths
        .iter()
        .map(|p| MethodConfig::from_path(p))
        .collect::<Result<Vec<_>, _>>()?;
    let model = match args.model.as_deref() {
        Some("tiny-random") => ModelSource::TinyRandom,
        Some(p) => ModelSource::Path {
            path: PathBuf::from(p),
        },
        None if spec.name == "smoke" => ModelSource::TinyRandom,
        None => {
            let path = crate::model::default_model_path();
            if !path.exists() {
                eprintln!(
                    "fetching the default model into {}",
                    crate::model::default_cache_dir().display()
                );
                crate::model::fetch_default_model(&crate::model::default_cache_dir(), None)?;
            }
            ModelSource::Path { path }
        }
    };
    let model_arg = match &model {
        ModelSource::TinyRandom => "tiny-random".to_string(),
        ModelSource::Path { path } => std::path::absolute(path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string(),
    };
    Ok(Prepared {
        spec,
        suite,
        corpus,
        method_paths,
        methods,
        model,
        model_arg,
    })
}

/// The runs of one order on this machine: in this process, or as `--jobs N` children.
fn run_local(args: &SuiteArgs, order: Option<&str>, p: Prepared) -> anyhow::Result<()> {
    let Prepared {
        spec,
        suite,
        corpus,
        method_paths,
        methods,
        model,
        model_arg,
    } = p;
    if args.jobs > 1 {
        let jobs: Vec<(PathBuf, String, u64)> = (args.first_seed..args.first_seed + args.seeds)
            .flat_map(|seed| {
                method_paths
                    .iter()
                    .zip(&methods)
                    .map(move |(p, m)| (p.clone(), m.name.clone(), seed))
            })
            .collect();
        return run_as_children(args, &suite.name, order, &model_arg, &jobs);
    }
    let (device_name, device) = crate::device_named(args.device.as_deref())?;
    let suite_dir = args.out.join(&suite.name);
    std::fs::create_dir_all(&suite_dir)
        .with_context(|| format!("creating {}", suite_dir.display()))?;
    let provenance = crate::provenance();
    let seeds = args.first_seed..args.first_seed + args.seeds;
    let sd = &suite_dir;
    let todo = methods
        .iter()
        .flat_map(|m| {
            seeds
                .clone()
                .map(move |seed| sd.join(&m.name).join(seed.to_string()))
        })
        .filter(|d| !is_complete(d))
        .count();
    let mut bars = continual::progress::SuiteProgress::new(todo);
    for method in &methods {
        let settings = method.train_settings(spec.training.as_ref(), &spec.path)?;
        for seed in seeds.clone() {
            if continual::interrupt::requested() {
                return Ok(());
            }
            let out_dir = suite_dir.join(&method.name).join(seed.to_string());
            if is_complete(&out_dir) {
                bars.println(&format!("{}: complete, skipped", out_dir.display()));
                // A run killed between turning complete and its index append gets its row now.
                if continual::results::ensure_index_row(&suite_dir.join("index.jsonl"), &out_dir)? {
                    bars.println(&format!(
                        "{}: its index.jsonl row was missing and is written now",
                        out_dir.display()
                    ));
                }
                continue;
            }
            bars.println(&format!(
                "== {} / {} / seed {seed} -> {}",
                suite.name,
                method.name,
                out_dir.display()
            ));
            let mut tensorboard = continual::tensorboard::TensorBoard::new(
                &out_dir,
                suite.tasks.iter().map(|t| t.name.clone()).collect(),
                suite.probes.iter().map(|t| t.name.clone()).collect(),
            );
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
            bars.started();
            let mut progress = bars.run_progress();
            let mut plugins: Vec<&mut dyn continual::Plugin> = vec![&mut progress];
            if !args.no_tensorboard {
                plugins.push(&mut tensorboard);
            }
            let out = continual::run(&cfg, &mut plugins);
            drop(plugins);
            drop(progress);
            bars.finished();
            let out = out?;
            bars.println(&format!("   {}", metrics_line(&out.metrics)));
        }
    }
    bars.finish();
    Ok(())
}

/// The `suite` arguments every array task shares (besides method, seed, order, `--out`).
fn common_args(args: &SuiteArgs, model: &str) -> Vec<String> {
    let abs = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut a: Vec<String> = vec![
        "--suite".into(),
        abs(&resolve(&args.suite, "experiments/suites")),
        "--model".into(),
        model.into(),
        "--log-level".into(),
        args.log_level.clone(),
    ];
    if let Some(d) = &args.device {
        a.extend(["--device".into(), d.clone()]);
    }
    if let Some(d) = &args.data_dir {
        a.extend(["--data-dir".into(), abs(d)]);
    }
    for kv in &args.set {
        a.extend(["--set".into(), kv.clone()]);
    }
    a
}

/// `--launcher slurm`: writes the array of `tasks` and the report job, and submits them with
/// `--submit`.
fn launch_slurm(
    args: &SuiteArgs,
    name: &str,
    common: Vec<String>,
    tasks: &[crate::slurm::Task],
) -> anyhow::Result<()> {
    let mut settings = args.slurm.clone();
    if let Some(f) = &args.slurm_config {
        settings = settings.or(crate::slurm::SlurmSettings::from_file(f)?);
    }
    let out = std::path::absolute(&args.out).context("--out")?;
    if tasks.is_empty() {
        eprintln!(
            "every run is complete: nothing to submit (`cargo xtask report --results {}` writes the report)",
            out.display()
        );
        return Ok(());
    }
    let tasks: Vec<crate::slurm::Task> = tasks
        .iter()
        .map(|t| crate::slurm::Task {
            method: std::path::absolute(&t.method).unwrap_or_else(|_| t.method.clone()),
            ..t.clone()
        })
        .collect();
    let plan = crate::slurm::Plan {
        name,
        workdir: std::env::current_dir().context("the working directory")?,
        exe: std::env::current_exe().context("locating the xtask binary")?,
        out,
        common,
        signal: args.signal.clone().unwrap_or_else(|| "B:USR1@120".into()),
        slurm: settings,
    };
    let w = crate::slurm::write(&plan, &tasks)?;
    eprintln!(
        "{} run(s) to do: {} and {}",
        tasks.len(),
        w.dir.join("array.sbatch").display(),
        w.dir.join("report.sbatch").display()
    );
    if args.submit {
        let out = std::process::Command::new("sh")
            .arg(&w.submit)
            .output()
            .with_context(|| format!("running {}", w.submit.display()))?;
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        print!("{}", String::from_utf8_lossy(&out.stdout));
        anyhow::ensure!(
            out.status.success(),
            "{} failed ({})",
            w.submit.display(),
            out.status
        );
    } else {
        eprintln!("submit with: sh {}", w.submit.display());
    }
    Ok(())
}

/// Loads the tasks of `spec` in the order `cargo xtask suite` runs: `order` (`--order`), else
/// the suite's `default_order`, else its `[[tasks]]` order. Records that order in `spec` (its
/// `default_order`, which run.json's `suite_spec` keeps) and names the suite for its results:
/// `<suite>` in the default order, `<suite>@<order>` in another, so that runs of different
/// orders neither share a directory nor an index row. An `order` not in `[orders]` is a
/// [`UsageError`] naming `--order` and the known orders.
fn ordered_suite(
    spec: &mut SuiteSpec,
    order: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<Suite> {
    if let Some(o) = order
        && !spec.orders.contains_key(o)
    {
        let known: Vec<&str> = spec.orders.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "it has no [orders] table".to_string()
        } else {
            format!("known: {}", known.join(", "))
        };
        return Err(UsageError(format!(
            "--order {o}: no such order in {} ({known})",
            spec.path.display()
        ))
        .into());
    }
    let name = match order {
        Some(o) if spec.default_order.as_deref() != Some(o) => format!("{}@{o}", spec.name),
        _ => spec.name.clone(),
    };
    spec.default_order = spec.effective_order(order).map(str::to_string);
    let mut suite = spec.load(data_dir, None)?;
    suite.name = name;
    Ok(suite)
}

/// `--jobs N`: every (method, seed) not yet complete as a child `cargo xtask suite` of one run,
/// at most N at a time. Fails after all children have ended if any of them failed.
fn run_as_children(
    args: &SuiteArgs,
    suite: &str,
    order: Option<&str>,
    model: &str,
    jobs: &[(PathBuf, String, u64)],
) -> anyhow::Result<()> {
    use std::process::{Child, Command, Stdio};
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("RAYON_NUM_THREADS")
        .unwrap_or_else(|_| (cores / args.jobs).max(1).to_string());
    let suite_dir = args.out.join(suite);
    let queue = jobs.iter().filter(|(_, name, seed)| {
        let dir = suite_dir.join(name).join(seed.to_string());
        let done = is_complete(&dir);
        if done {
            eprintln!("{}: complete, skipped", dir.display());
        }
        !done
    });
    let queue: Vec<_> = queue.collect();
    let mut bars = continual::progress::SuiteProgress::new(queue.len());
    let mut queue = queue.into_iter();
    let mut running: Vec<(Child, PathBuf, continual::progress::ChildProgress)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut forwarded = false;
    loop {
        if continual::interrupt::requested() && !forwarded {
            // Stop: no new child; the running ones checkpoint and exit (75).
            forwarded = true;
            for (child, _, _) in &running {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
            }
        }
        while running.len() < args.jobs && !forwarded {
            let Some((path, name, seed)) = queue.next() else {
                break;
            };
            let dir = suite_dir.join(name).join(seed.to_string());
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let console = dir.join("console.log");
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&console)
                .with_context(|| format!("opening {}", console.display()))?;
            let mut cmd = Command::new(&exe);
            cmd.args([
                "suite",
                "--suite",
                &args.suite,
                "--seeds",
                "1",
                "--model",
                model,
                "--log-level",
                &args.log_level,
            ])
            .arg("--methods")
            .arg(path)
            .args(["--first-seed", &seed.to_string()])
            .arg("--out")
            .arg(&args.out)
            .env("RAYON_NUM_THREADS", &threads)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
            for (flag, value) in [("--device", args.device.as_deref()), ("--order", order)] {
                if let Some(v) = value {
                    cmd.args([flag, v]);
                }
            }
            if let Some(s) = &args.signal {
                cmd.args(["--signal", s]);
            }
            if let Some(d) = &args.data_dir {
                cmd.arg("--data-dir").arg(d);
            }
            for kv in &args.set {
                cmd.args(["--set", kv]);
            }
            if args.resume {
                cmd.arg("--resume");
            }
            if args.no_tensorboard {
                cmd.arg("--no-tensorboard");
            }
            // The child's run line comes back through a file to its bar here.
            let child_bar = bars.child_progress(&format!("{name}/{seed}"));
            if let Some(feed) = child_bar.feed() {
                cmd.env(continual::progress::FEED_ENV, feed);
            }
            bars.println(&format!(
                "== {suite} / {name} / seed {seed} -> {} ({threads} thread(s), console: {})",
                dir.display(),
                console.display()
            ));
            running.push((
                cmd.spawn().context("starting a child xtask")?,
                dir,
                child_bar,
            ));
            bars.started();
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut i = 0;
        while i < running.len() {
            let Some(status) = running[i].0.try_wait()? else {
                i += 1;
                continue;
            };
            let (_, dir, _) = running.swap_remove(i);
            bars.finished();
            let metrics = std::fs::read_to_string(dir.join("metrics.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
            match metrics {
                Some(m) if status.success() => {
                    bars.println(&format!("   {}: {}", dir.display(), metrics_line(&m)))
                }
                _ => {
                    bars.println(&format!(
                        "   {}: failed ({status}); see its console.log",
                        dir.display()
                    ));
                    failed.push(dir.display().to_string());
                }
            }
        }
        // The running children's shares move the suite bar (read after the ended ones left).
        let share: f64 = running.iter_mut().map(|(_, _, bar)| bar.poll()).sum();
        bars.running_share(share);
    }
    if forwarded {
        return Err(crate::Requeue(format!(
            "a signal stopped the suite; {} run(s) checkpointed or failed: {}",
            failed.len(),
            failed.join(", ")
        ))
        .into());
    }
    anyhow::ensure!(
        failed.is_empty(),
        "{} run(s) failed: {}",
        failed.len(),
        failed.join(", ")
    );
    Ok(())
}

/// `AA 0.266  BWT 0.026  F 0.038  replayed 40  wall 603.7s`: a finished run in one line.
fn metrics_line(m: &serde_json::Value) -> String {
    format!(
        "AA {:.3}  BWT {}  F {}  replayed {}  wall {:.1}s",
        m["aa"].as_f64().unwrap_or(f64::NAN),
        fmt(&m["bwt"]),
        fmt(&m["forgetting"]),
        m["cost"]["replayed_samples"],
        m["cost"]["wall_seconds"].as_f64().unwrap_or(0.0)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The smoke suite's first three generated tasks (no data needed) with the orders `fwd`
    /// (the `[[tasks]]` order) and `rev`, and the top-level lines `head`.
    fn spec(head: &str) -> SuiteSpec {
        let task = |n: &str, g: &str| {
            format!("[[tasks]]\nname = '{n}'\nsource = 'smoke'\ngenerator = '{g}'\n")
        };
        let text = format!(
            "name = 's'\n{head}\n[defaults]\ntrain = 4\ntest = 2\n{}{}{}[orders]\nfwd = ['map-a', 'add-a', 'map-b']\nrev = ['map-b', 'add-a', 'map-a']\n",
            task("map-a", "label_map"),
            task("add-a", "offset_add"),
            task("map-b", "label_map"),
        );
        SuiteSpec::from_toml_str(&text, Path::new("s.toml")).unwrap()
    }

    /// The suite as `cargo xtask suite --order <order>` runs it: its results name, its task
    /// names, and the order its run.json records (`suite_spec.default_order`).
    fn run(head: &str, order: Option<&str>) -> (String, Vec<String>, Option<String>) {
        let mut s = spec(head);
        let suite = ordered_suite(&mut s, order, Path::new("/nonexistent")).unwrap();
        assert_eq!(suite.order, s.default_order);
        (
            suite.name,
            suite.tasks.iter().map(|t| t.name.clone()).collect(),
            s.default_order,
        )
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_suites_default_order_runs_without_order_and_a_named_one_with_it() {
        let rev = names(&["map-b", "add-a", "map-a"]);
        let fwd = names(&["map-a", "add-a", "map-b"]);
        let with_default = "default_order = 'rev'";
        assert_eq!(
            run(with_default, None),
            ("s".into(), rev.clone(), Some("rev".into()))
        );
        // Naming the default order is the same run, in the same directory.
        assert_eq!(
            run(with_default, Some("rev")),
            ("s".into(), rev.clone(), Some("rev".into()))
        );
        // Another order gets a results directory (and index rows) of its own.
        assert_eq!(
            run(with_default, Some("fwd")),
            ("s@fwd".into(), fwd.clone(), Some("fwd".into()))
        );
        // No default_order: the [[tasks]] order, recorded as none.
        assert_eq!(run("", None), ("s".into(), fwd.clone(), None));
        assert_eq!(
            run("", Some("rev")),
            ("s@rev".into(), rev, Some("rev".into()))
        );
    }

    #[test]
    fn an_unknown_order_is_a_usage_error_naming_the_flag_and_the_known_orders() {
        let err =
            ordered_suite(&mut spec(""), Some("nope"), Path::new("/nonexistent")).unwrap_err();
        let usage = err
            .downcast_ref::<UsageError>()
            .expect("a usage error (exit status 2)");
        assert_eq!(
            usage.to_string(),
            "--order nope: no such order in s.toml (known: fwd, rev)"
        );
        let mut plain = SuiteSpec::from_toml_str(
            "name = 'p'\n[[tasks]]\nname = 'a'\nsource = 'smoke'\ngenerator = 'label_map'\n",
            Path::new("p.toml"),
        )
        .unwrap();
        let err = ordered_suite(&mut plain, Some("o"), Path::new("/nonexistent")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--order o: no such order in p.toml (it has no [orders] table)"
        );
    }
}
