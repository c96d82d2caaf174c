//! `cargo xtask report`: one HTML file with inline SVG plots and a Markdown summary of every
//! finished run under the results root.

use std::path::PathBuf;

/// Arguments of `cargo xtask report`.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Results root (as written by `cargo xtask suite`).
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// HTML output (default: <results>/report.html).
    #[arg(long)]
    html: Option<PathBuf>,
    /// Markdown output (default: <results>/summary.md); the forest plots it links are written
    /// beside it.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Bootstrap replicates behind each 95% interval of the paired differences.
    #[arg(long, default_value_t = 2000)]
    bootstrap_replicates: usize,
}

/// Runs `cargo xtask report`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let html = args
        .html
        .unwrap_or_else(|| args.results.join("report.html"));
    let md = args
        .markdown
        .unwrap_or_else(|| args.results.join("summary.md"));
    let cfg = report::ReportConfig {
        bootstrap: report::BootstrapConfig {
            replicates: args.bootstrap_replicates,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = report::write_report(&args.results, &html, &md, &cfg)?;
    eprintln!(
        "{} runs of {} methods ({} unfinished skipped) -> {} and {}",
        s.runs,
        s.methods,
        s.skipped,
        html.display(),
        md.display()
    );
    Ok(())
}
