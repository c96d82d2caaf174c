//! Reports of continual-learning runs: one self-contained HTML file with inline SVG plots, and a
//! Markdown summary.
//!
//! The input is a results tree as written by `cargo xtask suite` and specified in
//! `docs/results-format.md`: `results/<suite>/<method>/<seed>/{run.json, matrix.json,
//! metrics.json, log.jsonl}`. [`load_runs`] reads it (naming the file, and the line of a
//! `log.jsonl`, of anything malformed), [`load_rescores`] reads `results/<suite>/rescore/*.json`
//! (`cargo xtask rescore`), [`render_html`] and [`render_markdown`] turn runs into documents, and
//! [`write_report`] does all of it and writes both files atomically.
//!
//! ```no_run
//! use std::path::Path;
//! let cfg = report::ReportConfig { title: "Smoke suite".into(), ..Default::default() };
//! let summary = report::write_report(
//!     Path::new("results"),
//!     Path::new("results/report.html"),
//!     Path::new("results/report.md"),
//!     &cfg,
//! )?;
//! println!("{} runs of {} methods ({} skipped)", summary.runs, summary.methods, summary.skipped);
//! # Ok::<(), report::ReportError>(())
//! ```
//!
//! Everything is drawn by hand: no plotting crate, no JavaScript, no external resource. Numbers
//! over seeds are `mean ± sample std` (`n − 1` denominator; `–` for a single seed). A suite in
//! which some method ran at least two seeds also gets paired differences between methods with
//! 95% bootstrap intervals over seeds and test records ([`bootstrap`]), a verdict on each of the
//! papers' claims ([`claims::CLAIMS`]) and forest plots of them ([`compare`]).
#![warn(missing_docs)]

mod aggregate;
pub mod bootstrap;
pub mod claims;
mod error;
pub mod events;
mod html;
mod load;
mod markdown;
mod rescore;
mod stats;
mod svg;
#[cfg(test)]
mod testdata;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

pub use bootstrap::BootstrapConfig;
pub use claims::{SuiteComparisons, compare};
pub use error::ReportError;
pub use html::{render_html, render_html_with};
pub use load::{
    IntervalEvent, LandscapeEvent, Metrics, Provenance, ReplayEvent, Run, RunLog, SharpnessEvent,
    StageEvent, StrengthsEvent, load_runs,
};
pub use markdown::{render_markdown, render_markdown_with};
pub use rescore::{Backbone, Rescore, RescoredRun, load_rescores};
pub use stats::{Stat, mean_std};
pub use svg::{escape, viridis};

/// Options of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConfig {
    /// Title of both documents.
    pub title: String,
    /// Replicates and seed of the bootstrap intervals (2000 replicates by default).
    pub bootstrap: BootstrapConfig,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            title: "Continual fine-tuning results".into(),
            bootstrap: BootstrapConfig::default(),
        }
    }
}

/// What [`write_report`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSummary {
    /// Complete runs in the report.
    pub runs: usize,
    /// Distinct method names among them.
    pub methods: usize,
    /// Runs left out because their status is not `"complete"`.
    pub skipped: usize,
}

/// Reads `results_dir` (see [`load_runs`]), renders both documents and writes them to `html_out`
/// and `md_out`, each atomically (a temporary file in the same directory, then a rename), creating
/// missing parent directories. The forest plots the Markdown summary links
/// (`forest-<suite>-claims.svg`, `forest-<suite>-against-sequential.svg`) are written beside it.
pub fn write_report(
    results_dir: &Path,
    html_out: &Path,
    md_out: &Path,
    cfg: &ReportConfig,
) -> Result<ReportSummary, ReportError> {
    let runs = load_runs(results_dir)?;
    let rescores = load_rescores(results_dir)?;
    let comparisons = compare(&runs, &rescores, &cfg.bootstrap);
    let html = html::render(&runs, &rescores, &comparisons, cfg);
    let md = markdown::render(&runs, &rescores, &comparisons, cfg);
    write_atomic(html_out, html.as_bytes())?;
    write_atomic(md_out, md.as_bytes())?;
    let md_dir = md_out.parent().unwrap_or(Path::new(""));
    for c in &comparisons {
        for (file, svg) in claims::forest_plots(c) {
            write_atomic(&md_dir.join(file), svg.as_bytes())?;
        }
    }
    let complete: Vec<&Run> = runs.iter().filter(|r| r.is_complete()).collect();
    let methods: BTreeSet<&str> = complete.iter().map(|r| r.method.as_str()).collect();
    Ok(ReportSummary {
        runs: complete.len(),
        methods: methods.len(),
        skipped: runs.len() - complete.len(),
    })
}

/// Writes `bytes` to `path` through the workspace's atomic write
/// ([`formats::atomic::write_atomic`]: `<name>.tmp<pid>`, synced, renamed), creating the
/// directory first.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| ReportError::io(&dir, e))?;
    formats::atomic::write_atomic(path, bytes).map_err(|e| match e {
        formats::FormatError::Io { path, source } => ReportError::io(path, source),
        other => ReportError::io(path, std::io::Error::other(other.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{LANDSCAPE_LINES, edit_json, write_json, write_tree};
    use serde_json::json;

    #[test]
    fn synthetic_tree_parses_into_sorted_runs_with_all_parts() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let runs = load_runs(dir.path()).unwrap();
        let complete: Vec<&Run> = runs.iter().filter(|r| r.is_complete()).collect();
        assert_eq!(complete.len(), 4);
        let keys: Vec<(&str, u64)> = complete
            .iter()
            .map(|r| (r.method.as_str(), r.seed))
            .collect();
        assert_eq!(keys, [("mssr", 0), ("mssr", 1), ("seq", 0), ("seq", 1)]);
        let r = complete[0];
        assert_eq!(r.suite, "smoke");
        assert_eq!(r.tasks, ["map-a", "add-a", "rev-a"]);
        assert_eq!(r.probes, ["probe-x"]);
        assert_eq!(r.replay_budget, Some(128));
        assert_eq!(r.provenance.git_rev.as_deref(), Some("0123456789abcdef"));
        assert_eq!(r.rows.len(), 4);
        assert_eq!(r.rows[1], [0.8, 0.2, 0.3]);
        assert_eq!(r.probe_rows.len(), 4);
        assert_eq!(r.metrics.aa, Some(0.5));
        assert_eq!(r.metrics.cost("replayed_samples"), Some(100.0));
        assert_eq!(r.metrics.cost[0].0, "optimizer_steps");
        assert!(!r.metrics_from_matrix);
        assert_eq!(r.log.replays.len(), 3);
        assert_eq!(r.log.replays[0].reason, "due");
        assert_eq!(r.log.replays[2].task, None);
        assert_eq!(r.log.intervals.len(), 3);
        assert_eq!(r.log.strengths.len(), 2);
        assert_eq!(r.log.stages.len(), 3);
        assert_eq!(r.log.max_step, 30);
        assert!(r.log.sharpness_probes.is_empty());
        let seq = complete[2];
        assert_eq!(seq.log.sharpness_probes.len(), 2);
        assert_eq!(
            (
                seq.log.sharpness_probes[1].stage,
                seq.log.sharpness_probes[1].sharpness
            ),
            (2, 0.07)
        );
        // The running run is returned, with only its run.json fields.
        let running: Vec<&Run> = runs.iter().filter(|r| !r.is_complete()).collect();
        assert_eq!(running.len(), 1);
        assert_eq!(
            (
                running[0].method.as_str(),
                running[0].seed,
                running[0].status.as_str()
            ),
            ("seq", 2, "running")
        );
        assert!(running[0].rows.is_empty());
    }

    #[test]
    fn malformed_matrix_json_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let bad = dir.path().join("smoke/seq/1/matrix.json");
        fs::write(
            &bad,
            "{\"tasks\": [\"map-a\", \"add-a\", \"rev-a\"], \"rows\": [[0.1, 0.2,",
        )
        .unwrap();
        let err = load_runs(dir.path()).unwrap_err();
        assert!(matches!(err, ReportError::Json { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&bad.display().to_string()), "{msg}");

        // A matrix that parses but has the wrong shape names the file too.
        write_json(
            &bad,
            &serde_json::json!({"tasks": ["map-a", "add-a", "rev-a"], "rows": [[0.1, 0.2, 0.3]]}),
        );
        let msg = load_runs(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains(&bad.display().to_string()) && msg.contains("1 rows for 3 tasks"),
            "{msg}"
        );
    }

    #[test]
    fn bad_log_line_is_an_error_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let log = dir.path().join("smoke/mssr/1/log.jsonl");
        let mut text = fs::read_to_string(&log).unwrap();
        text.push_str("{\"type\": \"replay\", \"step\": 31, \"n\": \"four\"}\n");
        let bad_line = text.lines().count();
        fs::write(&log, &text).unwrap();
        let err = load_runs(dir.path()).unwrap_err();
        match &err {
            ReportError::LogLine { path, line, .. } => {
                assert_eq!(path, &log);
                assert_eq!(*line, bad_line);
            }
            other => panic!("wrong error {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with(&format!("{}:{bad_line}: ", log.display())),
            "{err}"
        );

        // Not JSON at all, on line 2.
        fs::write(
            &log,
            "{\"type\": \"stage\", \"stage\": 1, \"task\": 0, \"step\": 5}\nnot json\n",
        )
        .unwrap();
        let msg = load_runs(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("{}:2: malformed JSON", log.display())),
            "{msg}"
        );
    }

    #[test]
    fn markdown_table_has_the_hand_computed_numbers() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let runs = load_runs(dir.path()).unwrap();
        let md = render_markdown(
            &runs,
            &ReportConfig {
                title: "Synthetic".into(),
                ..Default::default()
            },
        );
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "# Synthetic");
        assert!(lines.contains(&"## smoke"));
        assert!(lines.contains(
            &"| method | AA | BWT | F | FWT | ↓F | replayed | replayed / budget | strategy cost | steps | wall s | seeds |"
        ));
        // mssr: AA [0.5, 0.7], BWT [-0.1, -0.3], F [0.2, 0.1], FWT [0.01, 0.03], ↓F [0.02, 0.04],
        // replayed [100, 120], steps [60, 60], wall [10, 12].
        assert!(
            lines.contains(
                &"| mssr | 0.600 ± 0.141 | -0.200 ± 0.141 | 0.150 ± 0.071 | 0.020 ± 0.014 | 0.030 ± 0.014 \
                  | 110.0 ± 14.1 | 110 / 128 | – | 60.0 ± 0.0 | 11.0 ± 1.4 | 2 |"
            ),
            "{md}"
        );
        // seq: AA [0.4, 0.2], BWT [-0.4, -0.5], F [0.4, 0.5], FWT [0.0, 0.02], ↓F null,
        // replayed [0, 0], steps [60, 60], wall [8, 9].
        assert!(
            lines.contains(
                &"| seq | 0.300 ± 0.141 | -0.450 ± 0.071 | 0.450 ± 0.071 | 0.010 ± 0.014 | – \
                  | 0.0 ± 0.0 | 0 / – | – | 60.0 ± 0.0 | 8.5 ± 0.7 | 2 |"
            ),
            "{md}"
        );
        assert!(
            // Both are paced evenly; an unlimited budget has nothing to pace.
            lines.contains(&"Replay budget: 128 samples, paced evenly (mssr); unlimited (seq)."),
            "{md}"
        );
        // Each mssr log has one session served at its due step (12) and one that fell due at
        // 14 and waited until 16; the interval-kind replay at 25 logs no due step; seq none.
        assert!(
            lines.contains(
                &"Replay batches that waited on the budget (their session fell due earlier; \
                  the paced budget set the step): mssr 2 of 4."
            ),
            "{md}"
        );
        assert!(
            lines.iter().any(|l| l
                .starts_with("Provenance: git 0123456789 (4 runs); dates 2025-05-01 … 2025-05-02")),
            "{md}"
        );
        assert!(
            lines.contains(&"_1 run skipped (not complete): smoke/seq/2 (running)._"),
            "{md}"
        );
    }

    #[test]
    fn one_seed_shows_a_dash_for_the_std() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        fs::remove_dir_all(dir.path().join("smoke/seq/1")).unwrap();
        let runs = load_runs(dir.path()).unwrap();
        let md = render_markdown(&runs, &ReportConfig::default());
        assert!(md.contains("| seq | 0.400 ± – | -0.400 ± – |"), "{md}");
        let html = render_html(&runs, &ReportConfig::default());
        assert!(html.contains("0.400 <span class=\"sd\">± –</span>"));
    }

    #[test]
    fn html_escapes_names_and_title() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let mut runs = load_runs(dir.path()).unwrap();
        for r in runs.iter_mut().filter(|r| r.method == "seq") {
            r.method = "<script>alert('x')</script>".into();
            r.tasks[0] = "a&b".into();
        }
        let html = render_html(
            &runs,
            &ReportConfig {
                title: "R&D <results>".into(),
                ..Default::default()
            },
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("<title>R&amp;D &lt;results&gt;</title>"));
        assert!(html.contains("a&amp;b"));
        assert!(!html.contains("a&b"));
    }

    #[test]
    fn html_has_every_section_and_no_external_resource() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let runs = load_runs(dir.path()).unwrap();
        let html = render_html(&runs, &ReportConfig::default());
        for needle in [
            "<h3>Summary",
            "<h3>Accuracy matrix",
            "<h3>Score per task",
            "<h3>Forgetting F",
            "<h3>Replay",
            "<h3>Memory strength",
            "<h3>XSAM α*",
            "<h3>Sharpness after each stage",
            "<h3>Cost",
            "<footer>",
            "no replay",
            "1 run skipped",
            "128 samples, paced evenly (mssr); unlimited (seq)",
            "<dd>smoke: mssr 2 of 4</dd>",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        assert!(!html.contains("<script"));
        // The only URL is the SVG namespace: no link, image, font or stylesheet is fetched.
        assert!(
            !html
                .replace("http://www.w3.org/2000/svg", "")
                .contains("://")
        );
        // Best AA (mssr, 0.600) in bold; heatmap cells coloured from the viridis scale.
        assert!(html.contains("<td class=\"best\">0.600 <span class=\"sd\">± 0.141</span></td>"));
        // The "before" cell of task 1 is 0.1 in every run.
        assert!(html.contains(&format!("fill=\"{}\"", svg::hex(viridis(0.1)))));
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        // Sharpness: only seq measured it (stages 1 and 2 in both seeds; stage 3 has none).
        let sharp = &html
            [html.find("<h3>Sharpness after each stage").unwrap()..html.find("<h3>Cost").unwrap()];
        assert!(sharp.contains("ρ = 0.05"));
        assert!(
            sharp.contains("<td>seq</td>") && !sharp.contains("<td>mssr</td>"),
            "{sharp}"
        );
        assert!(
            sharp.contains("0.0500 <span class=\"sd\">± 0.0000</span>"),
            "{sharp}"
        );
        assert!(
            sharp.contains("0.0700 <span class=\"sd\">± 0.0000</span>"),
            "{sharp}"
        );
    }

    #[test]
    fn write_report_writes_both_files_and_counts_runs() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let out = tempfile::tempdir().unwrap();
        let (html, md) = (
            out.path().join("sub/report.html"),
            out.path().join("report.md"),
        );
        let s = write_report(dir.path(), &html, &md, &ReportConfig::default()).unwrap();
        assert_eq!(
            s,
            ReportSummary {
                runs: 4,
                methods: 2,
                skipped: 1
            }
        );
        assert!(
            fs::read_to_string(&html)
                .unwrap()
                .starts_with("<!DOCTYPE html>")
        );
        assert!(fs::read_to_string(&md).unwrap().starts_with("# Continual"));
        // No temporary file is left beside the outputs.
        let names: Vec<String> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| formats::atomic::temporary_pid(n).is_none()),
            "{names:?}"
        );
    }

    /// The row of `method` in the Markdown table of `md`.
    fn md_row<'a>(md: &'a str, method: &str) -> &'a str {
        let prefix = format!("| {method} |");
        md.lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no row {method} in {md}"))
    }

    /// The cells of a Markdown table row, trimmed.
    fn cells(row: &str) -> Vec<&str> {
        row.trim_matches('|').split('|').map(str::trim).collect()
    }

    /// The cells of `method`'s row in the HTML summary table (tags stripped).
    fn html_row(html: &str, method: &str) -> Vec<String> {
        let table = &html[html.find("<h3>Summary").unwrap()..];
        let table = &table[..table.find("</table>").unwrap()];
        let row = table
            .split("<tr>")
            .find(|r| r.starts_with(&format!("<td>{method}</td>")))
            .unwrap_or_else(|| panic!("no row {method} in {table}"));
        row.split("<td")
            .skip(1)
            .map(|c| {
                let c = &c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()];
                let mut out = String::new();
                let mut in_tag = false;
                for ch in c.chars() {
                    match ch {
                        '<' => in_tag = true,
                        '>' => in_tag = false,
                        ch if !in_tag => out.push(ch),
                        _ => {}
                    }
                }
                out
            })
            .collect()
    }

    #[test]
    fn summary_tables_show_replayed_samples_beside_the_allowed_budget() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let root = dir.path();
        // mssr spent 24 and 32 of a budget of 40 (metrics.json's budget wins over run.json's 128):
        // mean 28. Seed 1 also probed (loss-driven style) and evaluated validation examples.
        for (seed, spent) in [(0, 24), (1, 32)] {
            edit_json(root, "mssr", seed, "metrics.json", |m| {
                m["cost"]["replayed_samples"] = json!(spent);
                m["replay_budget"] = json!(40);
            });
        }
        edit_json(root, "mssr", 1, "metrics.json", |m| {
            m["cost"]["probe_forwards"] = json!(216);
            m["cost"]["strategy_eval_examples"] = json!(92);
        });
        // An unlimited budget: null in metrics.json.
        for (seed, spent) in [(0, 100), (1, 180)] {
            fs_copy_run(root, "mssr", seed, "er-unlimited");
            edit_json(root, "er-unlimited", seed, "metrics.json", |m| {
                m["cost"]["replayed_samples"] = json!(spent);
                m["replay_budget"] = json!(null);
            });
        }
        let runs = load_runs(root).unwrap();
        let md = render_markdown(&runs, &ReportConfig::default());
        let header = cells(md.lines().find(|l| l.starts_with("| method |")).unwrap());
        let col = header
            .iter()
            .position(|c| *c == "replayed / budget")
            .expect("a budget column");
        assert_eq!(header[col + 1], "strategy cost");
        // The existing columns stay.
        assert_eq!(header[col - 1], "replayed");
        assert!(
            header.contains(&"steps") && header.contains(&"wall s") && header.contains(&"seeds")
        );

        let mssr = cells(md_row(&md, "mssr"));
        assert_eq!(mssr[col], "28 / 40", "{md}");
        // Means over the two seeds: 108 probe forwards, 46 validation examples.
        assert_eq!(
            mssr[col + 1],
            "108 probe forwards + 46 validation examples",
            "{md}"
        );
        assert_eq!(mssr[col - 1], "28.0 ± 5.7");
        let seq = cells(md_row(&md, "seq"));
        assert_eq!((seq[col], seq[col + 1]), ("0 / –", "–"), "{md}");
        // A method plugin's own passes (EWC's Fisher samples: 128 of each on both seeds).
        let dir2 = tempfile::tempdir().unwrap();
        write_tree(dir2.path());
        for seed in [0, 1] {
            edit_json(dir2.path(), "seq", seed, "metrics.json", |m| {
                m["cost"]["plugin_forwards"] = json!(128);
                m["cost"]["plugin_backwards"] = json!(128);
            });
        }
        let md2 = render_markdown(&load_runs(dir2.path()).unwrap(), &ReportConfig::default());
        let seq = cells(md_row(&md2, "seq"));
        assert_eq!(
            seq[col + 1],
            "128 plugin forwards + 128 plugin backwards",
            "{md2}"
        );
        let unl = cells(md_row(&md, "er-unlimited"));
        assert_eq!(unl[col], "140 / ∞", "{md}");
        assert!(
            md.contains("replayed / budget: replayed samples (mean over seeds)"),
            "{md}"
        );

        let html = render_html(&runs, &ReportConfig::default());
        assert!(html.contains(">replayed / budget</abbr></th>"));
        // method, AA, BWT, F, FWT, ↓F, replayed, then the two new cells.
        let row = html_row(&html, "mssr");
        assert_eq!(row[7], "28 / 40", "{row:?}");
        assert_eq!(
            row[8], "108 probe forwards + 46 validation examples",
            "{row:?}"
        );
        assert_eq!(html_row(&html, "seq")[7], "0 / –");
        assert_eq!(html_row(&html, "er-unlimited")[7], "140 / ∞");

        // Without a budget in metrics.json, run.json's is shown; a fractional mean keeps a decimal.
        edit_json(root, "mssr", 0, "metrics.json", |m| {
            m.as_object_mut().unwrap().remove("replay_budget");
            m["cost"]["replayed_samples"] = json!(25);
        });
        edit_json(root, "mssr", 1, "metrics.json", |m| {
            m.as_object_mut().unwrap().remove("replay_budget");
        });
        let md = render_markdown(&load_runs(root).unwrap(), &ReportConfig::default());
        assert_eq!(cells(md_row(&md, "mssr"))[col], "28.5 / 128", "{md}");
    }

    /// Copies `smoke/<from>/<seed>` to `smoke/<to>/<seed>`, renaming the method in run.json.
    fn fs_copy_run(root: &Path, from: &str, seed: u64, to: &str) {
        let (src, dst) = (
            root.join("smoke").join(from).join(seed.to_string()),
            root.join("smoke").join(to).join(seed.to_string()),
        );
        fs::create_dir_all(&dst).unwrap();
        for f in ["run.json", "matrix.json", "metrics.json", "log.jsonl"] {
            fs::copy(src.join(f), dst.join(f)).unwrap();
        }
        edit_json(root, to, seed, "run.json", |r| r["method"] = json!(to));
    }

    #[test]
    fn landscape_lines_draw_one_series_per_stage() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let log = dir.path().join("smoke/mssr/0/log.jsonl");
        let mut text = fs::read_to_string(&log).unwrap();
        for l in LANDSCAPE_LINES {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(&log, text).unwrap();
        let runs = load_runs(dir.path()).unwrap();
        let mssr0 = runs
            .iter()
            .find(|r| r.method == "mssr" && r.seed == 0)
            .unwrap();
        assert_eq!(mssr0.log.landscapes.len(), 2);
        assert_eq!(mssr0.log.landscapes[1].losses[4], [None]);
        // The null loss is left out of the curve.
        assert_eq!(mssr0.log.landscapes[1].curve().len(), 4);

        let html = render_html(&runs, &ReportConfig::default());
        let start = html
            .find("<h3>Loss landscape after each stage")
            .expect("a landscape section");
        let section = &html[start..html[start..].find("<h3>Cost").unwrap() + start];
        // One figure (only mssr seed 0 has slices), two lines, one per stage, with their legend.
        assert_eq!(
            section.matches("<figure class=\"landscape\">").count(),
            1,
            "{section}"
        );
        assert!(
            section.contains("<figcaption>mssr <span class=\"sub\">· seed 0 · 8 records</span>"),
            "{section}"
        );
        assert_eq!(
            section.matches("class=\"landscape-series\"").count(),
            2,
            "{section}"
        );
        assert!(section.contains("data-stage=\"1\"") && section.contains("data-stage=\"2\""));
        assert!(
            section.contains(">after stage 1 (map-a)</text>")
                && section.contains(">after stage 2 (add-a)</text>")
        );
        assert_eq!(section.matches("<svg").count(), 1);
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(!section.contains("seq"), "{section}");
    }

    #[test]
    fn a_two_dimensional_landscape_is_drawn_along_its_b0_column() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let log = dir.path().join("smoke/seq/1/log.jsonl");
        let mut text = fs::read_to_string(&log).unwrap();
        text.push_str(
            r#"{"type":"landscape","stage":3,"step":30,"a":[-1.0,0.0,1.0],"b":[-1.0,0.0,1.0],"losses":[[9,2,9],[9,1,9],[9,3,9]],"seed":4,"records":8}"#,
        );
        text.push('\n');
        fs::write(&log, text).unwrap();
        let runs = load_runs(dir.path()).unwrap();
        let ev = &runs
            .iter()
            .find(|r| r.method == "seq" && r.seed == 1)
            .unwrap()
            .log
            .landscapes[0];
        assert_eq!(ev.curve(), [(-1.0, 2.0), (0.0, 1.0), (1.0, 3.0)]);
        let html = render_html(&runs, &ReportConfig::default());
        // seq seed 0 has none, so seed 1 is drawn.
        assert!(html.contains("<figcaption>seq <span class=\"sub\">· seed 1 · 8 records · b = 0 column of a 2-D slice</span>"));
        assert_eq!(html.matches("class=\"landscape-series\"").count(), 1);
    }

    #[test]
    fn runs_without_landscape_lines_have_no_landscape_figure() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let runs = load_runs(dir.path()).unwrap();
        assert!(runs.iter().all(|r| r.log.landscapes.is_empty()));
        let html = render_html(&runs, &ReportConfig::default());
        assert!(!html.contains("Loss landscape"));
        assert!(!html.contains("landscape-series"));
        assert!(!html.contains("<figure class=\"landscape\">"));
    }

    #[test]
    fn a_landscape_line_of_the_wrong_shape_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let log = dir.path().join("smoke/mssr/1/log.jsonl");
        let mut text = fs::read_to_string(&log).unwrap();
        text.push_str(r#"{"type":"landscape","stage":1,"step":10,"a":[-1.0,0.0,1.0],"b":[0.0],"losses":[[1.0],[2.0]]}"#);
        text.push('\n');
        let bad_line = text.lines().count();
        fs::write(&log, text).unwrap();
        let msg = load_runs(dir.path()).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("{}:{bad_line}: ", log.display())),
            "{msg}"
        );
        assert!(
            msg.contains("2 rows of `losses` for 3 values of `a`"),
            "{msg}"
        );
    }

    #[test]
    fn missing_metrics_json_derives_metrics_from_the_matrix() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        fs::remove_file(dir.path().join("smoke/seq/0/metrics.json")).unwrap();
        let runs = load_runs(dir.path()).unwrap();
        let r = runs
            .iter()
            .find(|r| r.method == "seq" && r.seed == 0)
            .unwrap();
        assert!(r.metrics_from_matrix);
        // Rows of seq/0 (see testdata): final row [0.3, 0.3, 0.6] → AA 0.4.
        assert!((r.metrics.aa.unwrap() - 0.4).abs() < 1e-12);
        // BWT: (0.3 - 0.7) + (0.3 - 0.7) over 2 = -0.4.
        assert!((r.metrics.bwt.unwrap() + 0.4).abs() < 1e-12);
        assert!(r.metrics.cost.is_empty());
    }

    #[test]
    fn missing_results_dir_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = load_runs(&missing).unwrap_err();
        assert!(matches!(err, ReportError::Io { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()));
        assert!(std::error::Error::source(&err).is_some());
    }
}
