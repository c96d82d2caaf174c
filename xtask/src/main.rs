//! `cargo xtask`: the workspace's command-line tools.
//!
//! ```text
//! cargo xtask model fetch                       # SmolLM2-135M-Instruct GGUF into the cache
//! cargo xtask model export --model PATH --to DIR
//! cargo xtask score --model PATH --text "..."   # per-token log-probs as JSON
//! cargo xtask generate --model PATH --prompt "..."
//! cargo xtask data fetch --to DIR               # public task data from the Hugging Face Hub
//! cargo xtask bench                             # throughput against PyTorch+PEFT
//! cargo xtask suite --suite quick --methods all --seeds 3   # the continual experiments
//! cargo xtask report                            # results/report.html + results/summary.md
//! cargo xtask rescore --task arc-challenge-probe --limit 64   # ↓F of finished runs on more records
//! ```
//! Each subcommand lives in its own module; `main` only dispatches.

use clap::{Parser, Subcommand};

/// Flex allocates a fresh buffer for every tensor an operation produces. glibc's malloc hands
/// large blocks back to the kernel on free (mmap above its threshold, trimming of the heap
/// top), so the next step faults the same pages in again: a page fault per 4 KiB, about a tenth
/// of a LoRA step's profile. mimalloc keeps freed memory for reuse. `cargo xtask bench --steps 1
/// --batch 4 --no-torch` made 3.9 M page faults with glibc and 0.24 M with mimalloc; on the idle
/// machine the forward ran 17% faster, the LoRA step the same, for 9% more peak memory
/// (docs/performance.md). Libraries leave the choice to the binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod data;
mod model;
mod report;
mod rescore;
mod score;
mod suite;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Continual fine-tuning workspace tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Task data: download the public originals.
    Data(data::DataArgs),
    /// The default model: fetch it, or export a model as a HF directory.
    Model(model::ModelArgs),
    /// Per-token log-probs of a text as JSON.
    Score(score::ScoreArgs),
    /// Generate an answer to a prompt.
    Generate(score::GenerateArgs),
    /// Throughput of forward passes and LoRA steps, beside PyTorch+PEFT.
    Bench(bench::BenchArgs),
    /// Run methods × seeds of a suite through the continual engine.
    Suite(suite::SuiteArgs),
    /// HTML + Markdown report of the results.
    Report(report::ReportArgs),
    /// Score finished runs' final adapters (and the bare backbone) again on more test records.
    Rescore(rescore::RescoreArgs),
}

/// A wrong command-line value found after parsing (an `--order` the suite does not have):
/// reported as clap reports its own, `error: ...` on one line with exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> anyhow::Result<()> {
    pin_default_device();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(args) => data::run(args),
        Command::Model(args) => model::run(args),
        Command::Score(args) => score::score(args),
        Command::Generate(args) => score::generate(args),
        Command::Bench(args) => bench::run(args),
        Command::Suite(args) => suite::run(args),
        Command::Report(args) => report::run(args),
        Command::Rescore(args) => rescore::run(args),
    };
    if let Err(e) = &result
        && let Some(usage) = e.downcast_ref::<UsageError>()
    {
        eprintln!("error: {usage}");
        std::process::exit(2);
    }
    result
}

/// Makes Burn's default device the one `--device` names. Burn materialises loaded optimizer state
/// on `Device::default()` (moved to the parameters' device on the next step), and by default that
/// is the first GPU backend compiled in: a `--device cpu` resume would otherwise start WGPU.
fn pin_default_device() {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--device") {
            Some("") => args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        });
    let name = name
        .or_else(|| std::env::var("BURN_DEVICE").ok())
        .unwrap_or_else(|| "cpu".into());
    // Our `cpu` is Burn's Flex backend (Burn's own `cpu` name is its CubeCL CPU runtime).
    let burn_name = match name.to_ascii_lowercase().as_str() {
        "cpu" | "flex" => "flex".to_string(),
        other => other.to_string(),
    };
    // SAFETY: the first statement of `main`, before any thread exists.
    unsafe { std::env::set_var("BURN_DEVICE", burn_name) };
}

/// The device of a `--device` flag (else `$BURN_DEVICE`, else `cpu`), with the name recorded in
/// result files.
pub fn device_named(flag: Option<&str>) -> anyhow::Result<(String, burn::tensor::Device)> {
    let name = flag
        .map(str::to_string)
        .or_else(|| std::env::var("BURN_DEVICE").ok())
        .unwrap_or_else(|| "cpu".into());
    let device = backbone::select_device(Some(&name)).map_err(anyhow::Error::msg)?;
    Ok((name, device))
}

/// Where a result came from: git revision, tool versions, machine. Every result file embeds it.
pub fn provenance() -> serde_json::Value {
    let git = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .map(|o| !o.stdout.is_empty());
    serde_json::json!({
        "git_revision": git,
        "git_dirty": dirty,
        "workspace_version": env!("CARGO_PKG_VERSION"),
        "burn": "0.22.1",
        "date": std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
        "rustc": std::process::Command::new("rustc").arg("--version").output().ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
    })
}
