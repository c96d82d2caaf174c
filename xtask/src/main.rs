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
mod slurm;
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
    Suite(Box<suite::SuiteArgs>),
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

/// A suite stopped by a preemption signal after its runs checkpointed: exit status
/// [`continual::interrupt::REQUEUE_EXIT`], which the Slurm array script requeues.
#[derive(Debug)]
pub struct Requeue(pub String);

impl std::fmt::Display for Requeue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Requeue {}

fn main() -> anyhow::Result<()> {
    pin_default_device();
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Data(args) => data::run(args),
        Command::Model(args) => model::run(args),
        Command::Score(args) => score::score(args),
        Command::Generate(args) => score::generate(args),
        Command::Bench(args) => bench::run(args),
        Command::Suite(args) => suite::run(*args),
        Command::Report(args) => report::run(args),
        Command::Rescore(args) => rescore::run(args),
    };
    // Errors are one line, never a backtrace: `error: ...` with exit status 2 for a bad input
    // (a wrong argument, a missing, unreadable or malformed file, a bad key or value: what the
    // user can fix), `Error: ...` with status 1 for a failure while running (a full disk, a
    // diverged run, a download that failed).
    if let Err(e) = &result {
        // A run stopped by a preemption signal after its checkpoint: status 75, requeued.
        let interrupted = e.downcast_ref::<Requeue>().is_some()
            || matches!(
                e.downcast_ref::<continual::EngineError>(),
                Some(continual::EngineError::Interrupted { .. })
            );
        if interrupted {
            eprintln!(
                "stopped: {e} (exit status {})",
                continual::interrupt::REQUEUE_EXIT
            );
            std::process::exit(continual::interrupt::REQUEUE_EXIT);
        }
        let line = one_line(&chain_text(e));
        if is_bad_input(e) {
            eprintln!("error: {line}");
            std::process::exit(2);
        }
        eprintln!("Error: {line}");
        std::process::exit(1);
    }
    Ok(())
}

/// The error and its causes joined by `: `, a cause left out when the text so far already
/// holds it (most of our errors print their source themselves: `{path}: {source}`).
fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for c in e.chain() {
        let part = c.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// `message` on one line: a TOML error's source excerpt (`3 | lr = "x"`, `  | ^^^`) is dropped
/// (the message keeps the line and column), other lines are joined with a space.
fn one_line(message: &str) -> String {
    let excerpt = |l: &str| {
        let t = l.trim_start();
        let t = t
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        t.starts_with('|')
    };
    message
        .lines()
        .filter(|l| !excerpt(l))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an error is the user's input at fault (exit status 2): see [`main`].
fn is_bad_input(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind;
    e.chain().any(|c| {
        if c.is::<UsageError>() || c.is::<toml::de::Error>() || c.is::<serde_json::Error>() {
            return true;
        }
        // I/O errors are judged by their kind (the chain holds the `io::Error` too).
        if let Some(f) = c.downcast_ref::<formats::FormatError>() {
            return !matches!(f, formats::FormatError::Io { .. });
        }
        if let Some(d) = c.downcast_ref::<bench_tasks::DataError>() {
            use bench_tasks::DataError::{Fetch, Io};
            return !matches!(d, Fetch { .. } | Io { .. });
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::NotFound
                    | ErrorKind::PermissionDenied
                    | ErrorKind::IsADirectory
                    | ErrorKind::NotADirectory
                    | ErrorKind::InvalidData
                    | ErrorKind::InvalidInput
                    | ErrorKind::InvalidFilename
            );
        }
        let load = |l: &backbone::LoadError| !matches!(l, backbone::LoadError::Io { .. });
        if let Some(l) = c.downcast_ref::<backbone::LoadError>() {
            return load(l);
        }
        if let Some(l) = c.downcast_ref::<lora::LoraError>() {
            return !matches!(l, lora::LoraError::Io { .. });
        }
        if let Some(r) = c.downcast_ref::<::report::ReportError>() {
            return !matches!(r, ::report::ReportError::Io { .. });
        }
        match c.downcast_ref::<continual::EngineError>() {
            Some(continual::EngineError::Config { .. }) => true,
            // Transparent: its source is the load error's own cause, not the load error.
            Some(continual::EngineError::Model(l)) => load(l),
            _ => false,
        }
    })
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
