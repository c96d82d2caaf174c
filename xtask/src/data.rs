//! `cargo xtask data ...`: task data for the suites (a thin wrapper over `bench_tasks`).
//!
//! ```text
//! cargo xtask data fetch --to DIR [--only gsm8k --only llm-cl] [--force] [--manifest M.toml]
//!                        [--base-url https://huggingface.co]      # or HF_ENDPOINT; HF_TOKEN for auth
//!                        [--rows-base-url https://datasets-server.huggingface.co]  # [[dataset]] rows API
//! cargo xtask data check [--data-dir DIR] [SUITE.toml ...]          # load suites, print counts
//! ```

use std::path::PathBuf;

use bench_tasks::fetch::{DEFAULT_BASE_URL, DEFAULT_ROWS_BASE_URL, FetchOptions, fetch_to};
use bench_tasks::{Suite, resolve_data_dir};

/// Arguments of `cargo xtask data`.
#[derive(clap::Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(clap::Subcommand)]
enum DataCommand {
    /// Download the public originals into the data-directory layout.
    Fetch {
        /// Target directory (created if missing).
        #[arg(long)]
        to: PathBuf,
        /// Hub base URL.
        #[arg(long, env = "HF_ENDPOINT", default_value = DEFAULT_BASE_URL)]
        base_url: String,
        /// Hub dataset viewer base URL; `[[dataset]]` entries are read from its `/rows` API.
        #[arg(long, default_value = DEFAULT_ROWS_BASE_URL)]
        rows_base_url: String,
        /// Manifest TOML listing the files (default: the one bundled with bench-tasks).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Only these groups (`gsm8k`, `llm-cl`, `llm-cl/agnews`, `superni`, ...); repeatable.
        #[arg(long)]
        only: Vec<String>,
        /// Download files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Load suites from the data directory and print their tasks and record counts.
    Check {
        /// Data directory (default: $CONTINUAL_DATA_DIR, then ../shared/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Suite files (default: every experiments/suites/*.toml).
        suites: Vec<PathBuf>,
    },
}

/// Runs `cargo xtask data`.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Fetch {
            to,
            base_url,
            rows_base_url,
            manifest,
            only,
            force,
        } => {
            let options = FetchOptions {
                base_url,
                rows_base_url,
                only,
                force,
                progress: true,
                ..FetchOptions::from_env()
            };
            let report = fetch_to(manifest.as_deref(), &to, &options)?;
            println!(
                "fetched {} files ({} bytes), skipped {} existing, into {}",
                report.downloaded.len(),
                report.bytes,
                report.skipped.len(),
                to.display()
            );
            Ok(())
        }
        DataCommand::Check { data_dir, suites } => {
            let data = resolve_data_dir(data_dir.as_deref())?;
            let suites = if suites.is_empty() {
                let mut found: Vec<PathBuf> = std::fs::read_dir("experiments/suites")?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                found.sort();
                found
            } else {
                suites
            };
            for path in suites {
                let suite = Suite::load(&path, &data)?;
                println!("{} ({})", suite.name, path.display());
                for t in suite.tasks.iter().chain(&suite.probes) {
                    println!(
                        "  {:<22} {:>5} train {:>5} test  {:?}",
                        t.name,
                        t.train.len(),
                        t.test.len(),
                        t.metric
                    );
                }
            }
            Ok(())
        }
    }
}
