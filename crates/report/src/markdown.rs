//! The Markdown summary.

use std::fmt::Write;

use crate::ReportConfig;
use crate::aggregate::{self, Column};
use crate::claims::{self, SuiteComparisons};
use crate::load::Run;
use crate::rescore::Rescore;
use crate::stats::fmt_stat;

/// Escapes text for a Markdown table cell or line.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '|' | '\\' | '*' | '_' | '`' | '<' | '>' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Renders the Markdown summary: per suite, a table with one row per method and the columns
/// AA, BWT, F, FWT, ↓F, replayed, replayed / budget, strategy cost, steps, wall s (`mean ± std`
/// over seeds, 3 decimals; replayed, steps and wall seconds 1; `replayed / budget` and the
/// strategy's own extra cost as means, e.g. `28 / 40`, `0 / –`, `140 / ∞`), seeds; a line
/// explaining the budget columns; then the replay-budget and provenance lines. Runs that are not
/// complete are left out and counted in a "skipped" line.
pub fn render_markdown(runs: &[Run], cfg: &ReportConfig) -> String {
    render_markdown_with(runs, &[], cfg)
}

/// [`render_markdown`] with the rescore tables of each suite after its provenance line, then,
/// for a suite in which some method ran at least two seeds, the paired differences with their
/// bootstrap intervals and verdicts ([`crate::compare`]), linking the forest plots that
/// [`crate::write_report`] writes beside the summary.
pub fn render_markdown_with(runs: &[Run], rescores: &[Rescore], cfg: &ReportConfig) -> String {
    render(
        runs,
        rescores,
        &crate::compare(runs, rescores, &cfg.bootstrap),
        cfg,
    )
}

/// [`render_markdown_with`] with the comparisons already computed.
pub(crate) fn render(
    runs: &[Run],
    rescores: &[Rescore],
    comparisons: &[SuiteComparisons],
    cfg: &ReportConfig,
) -> String {
    let (suites, skipped) = aggregate::group(runs);
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", md(&cfg.title));
    if suites.is_empty() {
        out.push_str("No complete runs.\n\n");
    }
    for suite in &suites {
        let tasks = suite
            .tasks()
            .iter()
            .map(|t| md(t))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "## {}\n", md(suite.name));
        let _ = writeln!(out, "Tasks: {tasks}.\n");
        out.push_str("| method |");
        for c in Column::ALL {
            let _ = write!(out, " {} |", c.label());
            if c == Column::Replayed {
                out.push_str(" replayed / budget | strategy cost |");
            }
        }
        out.push_str(" seeds |\n|---|");
        for c in Column::ALL {
            out.push_str("---:|");
            if c == Column::Replayed {
                out.push_str("---:|---:|");
            }
        }
        out.push_str("---:|\n");
        let table = aggregate::summary(suite);
        for (k, m) in suite.methods.iter().enumerate() {
            let _ = write!(out, "| {} |", md(m.name));
            for (c, stats, _) in &table {
                let _ = write!(out, " {} |", fmt_stat(stats[k], c.md_decimals()));
                if *c == Column::Replayed {
                    let _ = write!(
                        out,
                        " {} | {} |",
                        aggregate::replayed_of_budget(m),
                        aggregate::strategy_cost(m)
                    );
                }
            }
            let _ = writeln!(out, " {} |", m.runs.len());
        }
        let _ = writeln!(out, "\n{}.", md(aggregate::BUDGET_COLUMNS_NOTE));
        let _ = writeln!(
            out,
            "\nReplay budget: {}.\n",
            md(&aggregate::budget_line(suite))
        );
        if let Some(waited) = aggregate::waited_on_budget_line(suite) {
            let _ = writeln!(
                out,
                "Replay batches that waited on the budget (their session fell due earlier; \
                 the paced budget set the step): {}.\n",
                md(&waited)
            );
        }
        let _ = writeln!(
            out,
            "Provenance: {}.\n",
            md(&aggregate::provenance(suite.runs()).line())
        );
        for r in rescores.iter().filter(|r| r.suite == suite.name) {
            r.markdown(&mut out);
        }
        if let Some(c) = comparisons.iter().find(|c| c.suite == suite.name) {
            claims::markdown(c, suite, &mut out);
        }
    }
    if let Some(note) = aggregate::skipped_note(&skipped) {
        let _ = writeln!(out, "_{}._", md(&note));
    }
    out
}
