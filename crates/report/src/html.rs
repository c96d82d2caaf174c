//! The HTML report: one self-contained file, inline CSS and SVG, no script.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::ReportConfig;
use crate::aggregate::{self, Column, MethodGroup, SuiteGroup};
use crate::claims::{self, SuiteComparisons};
use crate::load::Run;
use crate::rescore::Rescore;
use crate::stats::{Stat, mean_std};
use crate::svg::{
    Frame, Scale, Svg, clip, colour, escape, hex, numeric_ticks, text_on, text_width, viridis,
};

const CSS: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d1d1f;
       background: #f4f5f7; margin: 0; line-height: 1.4; }
main { max-width: 1360px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 21px; margin: 0 0 6px; }
h3 { font-size: 16px; margin: 22px 0 8px; padding-bottom: 3px; border-bottom: 1px solid #e2e2e2; }
p.lead, p.meta { color: #555; margin: 4px 0 10px; }
nav a { margin-right: 12px; }
section.suite { background: #fff; border: 1px solid #dcdcdc; border-radius: 8px; padding: 16px 20px 20px;
                margin: 20px 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 14px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e8e8e8; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
table.cost thead th { white-space: normal; max-width: 92px; vertical-align: bottom; }
thead th { border-bottom: 2px solid #999; background: #fafafa; font-weight: 600; }
th abbr { text-decoration: none; cursor: help; }
td.best { font-weight: 700; }
table.claims td.claim { white-space: normal; min-width: 220px; max-width: 320px; }
.sd { color: #777; font-size: 12px; font-weight: 400; }
.scroll { overflow-x: auto; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0; padding: 8px 10px 10px; border: 1px solid #e3e3e3; border-radius: 6px; background: #fff;
         max-width: 100%; box-sizing: border-box; }
figure.fit { width: fit-content; margin-bottom: 10px; }
figcaption { font-weight: 600; font-size: 14px; margin-bottom: 4px; }
figcaption .sub { font-weight: 400; color: #666; font-size: 12px; }
svg.chart { display: block; max-width: 100%; height: auto; font-family: inherit; }
.small-multiples { display: flex; flex-wrap: wrap; gap: 6px; }
.empty { color: #888; font-style: italic; padding: 10px 4px; }
.note { color: #555; font-size: 13px; margin: 6px 0 0; }
footer { font-size: 13px; color: #444; background: #fff; border: 1px solid #dcdcdc; border-radius: 8px;
         padding: 12px 20px; }
footer dt { font-weight: 600; margin-top: 6px; }
footer dd { margin: 0 0 0 16px; }
"#;

/// Renders the whole report as one HTML document: per suite a summary table, accuracy-matrix
/// heatmaps, per-task score curves, a forgetting bar chart, replay timelines and MSSR
/// intervals, memory-strength histograms and α* (where logged), and a cost table; then a footer
/// with provenance and replay budgets. Runs that are not complete are counted in a note.
pub fn render_html(runs: &[Run], cfg: &ReportConfig) -> String {
    render_html_with(runs, &[], cfg)
}

/// [`render_html`] with the rescore tables of each suite after its cost table, then, for a
/// suite in which some method ran at least two seeds, the paired differences with their
/// bootstrap intervals, verdicts and forest plots ([`crate::compare`]).
pub fn render_html_with(runs: &[Run], rescores: &[Rescore], cfg: &ReportConfig) -> String {
    render(
        runs,
        rescores,
        &crate::compare(runs, rescores, &cfg.bootstrap),
        cfg,
    )
}

/// [`render_html_with`] with the comparisons already computed.
pub(crate) fn render(
    runs: &[Run],
    rescores: &[Rescore],
    comparisons: &[SuiteComparisons],
    cfg: &ReportConfig,
) -> String {
    let (suites, skipped) = aggregate::group(runs);
    let mut h = String::new();
    let title = escape(&cfg.title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n"
    );
    let n_runs: usize = suites.iter().map(|s| s.runs().count()).sum();
    let n_methods: usize = suites.iter().map(|s| s.methods.len()).sum();
    let _ = writeln!(
        h,
        "<p class=\"lead\">{n_runs} complete run{} · {} suite{} · {n_methods} suite/method pair{}{}</p>",
        plural(n_runs),
        suites.len(),
        plural(suites.len()),
        plural(n_methods),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" · {} skipped (not complete)", skipped.len())
        }
    );
    if suites.len() > 1 {
        h.push_str("<nav>Suites: ");
        for s in &suites {
            let _ = write!(h, "<a href=\"#{}\">{}</a>", anchor(s.name), escape(s.name));
        }
        h.push_str("</nav>\n");
    }
    if suites.is_empty() {
        h.push_str("<p class=\"empty\">No complete runs.</p>\n");
    }
    for suite in &suites {
        let c = comparisons.iter().find(|c| c.suite == suite.name);
        suite_section(&mut h, suite, rescores, c);
    }
    footer(&mut h, &suites, &skipped);
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// An id fragment made of `[a-z0-9-]`.
fn anchor(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("suite-{s}")
}

fn suite_section(
    h: &mut String,
    suite: &SuiteGroup<'_>,
    rescores: &[Rescore],
    comparisons: Option<&SuiteComparisons>,
) {
    let tasks = suite.tasks();
    let first = suite.methods[0].first();
    let _ = writeln!(h, "<section class=\"suite\" id=\"{}\">", anchor(suite.name));
    let _ = writeln!(h, "<h2>Suite {}</h2>", escape(suite.name));
    let task_list = tasks
        .iter()
        .map(|t| escape(t))
        .collect::<Vec<_>>()
        .join(" → ");
    let probes = if first.probes.is_empty() {
        "no probes".to_string()
    } else {
        format!(
            "probes: {}",
            first
                .probes
                .iter()
                .map(|p| escape(p))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let n_runs = suite.runs().count();
    let _ = writeln!(
        h,
        "<p class=\"meta\">{} task{}: {task_list} · {probes} · {n_runs} run{} of {} method{} · replay budget: {}</p>",
        tasks.len(),
        plural(tasks.len()),
        plural(n_runs),
        suite.methods.len(),
        plural(suite.methods.len()),
        escape(&aggregate::budget_line(suite))
    );

    let derived = suite.runs().filter(|r| r.metrics_from_matrix).count();
    if derived > 0 {
        let _ = writeln!(
            h,
            "<p class=\"note\">{derived} run{} had no metrics.json: their metrics are derived from matrix.json and \
             they have no cost.</p>",
            plural(derived)
        );
    }
    summary_table(h, suite);

    // One colour domain for every matrix and curve of the suite.
    let matrices: Vec<Vec<Vec<Option<f64>>>> =
        suite.methods.iter().map(aggregate::mean_matrix).collect();
    let all: Vec<f64> = matrices
        .iter()
        .flatten()
        .flatten()
        .flatten()
        .copied()
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let domain = if all.is_empty() || (lo >= 0.0 && hi <= 1.0) {
        (0.0, 1.0)
    } else {
        (lo, hi)
    };

    h.push_str("<h3>Accuracy matrix (mean over seeds)</h3>\n<div class=\"grid\">\n");
    for (m, mat) in suite.methods.iter().zip(&matrices) {
        let _ = writeln!(
            h,
            "<figure><figcaption>{} <span class=\"sub\">· {}</span></figcaption>{}</figure>",
            escape(m.name),
            seeds_label(m),
            heatmap(&m.first().tasks, mat, domain, m.name)
        );
    }
    h.push_str(
        "</div>\n<p class=\"note\">Row <i>before</i> is the untrained model; row <i>k</i> is after training \
                that task. The outlined cell of each row is the task just trained.</p>\n",
    );

    h.push_str("<h3>Score per task across stages (mean over seeds)</h3>\n<div class=\"grid\">\n");
    for (m, mat) in suite.methods.iter().zip(&matrices) {
        let _ = writeln!(
            h,
            "<figure><figcaption>{} <span class=\"sub\">· {}</span></figcaption>{}</figure>",
            escape(m.name),
            seeds_label(m),
            score_curves(&m.first().tasks, mat, domain, m.name)
        );
    }
    h.push_str("</div>\n<p class=\"note\">Dashed: before the task's own stage; solid: from its own stage on.</p>\n");

    h.push_str("<h3>Forgetting F (mean ± std over seeds)</h3>\n");
    let _ = writeln!(
        h,
        "<div class=\"grid\"><figure>{}</figure></div>",
        forgetting_bars(suite)
    );

    h.push_str("<h3>Replay (first seed)</h3>\n<div class=\"grid\">\n");
    for m in &suite.methods {
        let run = m.first();
        let _ = write!(
            h,
            "<figure><figcaption>{} <span class=\"sub\">· seed {}</span></figcaption>",
            escape(m.name),
            run.seed
        );
        match (replay_timeline(run), interval_chart(run)) {
            (None, None) => {
                let why = if run.log.present {
                    "no replay"
                } else {
                    "no replay (no log.jsonl)"
                };
                let _ = write!(h, "<div class=\"empty\">{why}</div>");
            }
            (t, i) => {
                h.push_str(
                    &t.unwrap_or_else(|| "<div class=\"empty\">no replay events</div>".into()),
                );
                if let Some(i) = i {
                    h.push_str(&i);
                }
            }
        }
        h.push_str("</figure>\n");
    }
    h.push_str("</div>\n");

    let with_strengths: Vec<&MethodGroup<'_>> = suite
        .methods
        .iter()
        .filter(|m| !m.first().log.strengths.is_empty())
        .collect();
    if !with_strengths.is_empty() {
        h.push_str(
            "<h3>Memory strength of the buffer at the end of each stage (first seed)</h3>\n",
        );
        for m in with_strengths {
            let run = m.first();
            let _ = write!(
                h,
                "<figure class=\"fit\"><figcaption>{} <span class=\"sub\">· seed {}</span></figcaption>\
                 <div class=\"small-multiples\">",
                escape(m.name),
                run.seed
            );
            for ev in &run.log.strengths {
                h.push_str(&strength_histogram(ev, &run.tasks));
            }
            h.push_str("</div></figure>\n");
        }
    }
    let with_alpha: Vec<&MethodGroup<'_>> = suite
        .methods
        .iter()
        .filter(|m| m.first().log.sharpness.iter().any(|s| s.alpha.is_some()))
        .collect();
    if !with_alpha.is_empty() {
        h.push_str("<h3>XSAM α* over training (first seed)</h3>\n<div class=\"grid\">\n");
        for m in with_alpha {
            let run = m.first();
            let _ = writeln!(
                h,
                "<figure><figcaption>{} <span class=\"sub\">· seed {}</span></figcaption>{}</figure>",
                escape(m.name),
                run.seed,
                alpha_chart(run)
            );
        }
        h.push_str("</div>\n");
    }

    sharpness_table(h, suite);
    landscape_section(h, suite);
    cost_table(h, suite);
    for r in rescores.iter().filter(|r| r.suite == suite.name) {
        r.html(h);
    }
    if let Some(c) = comparisons {
        claims::html(c, suite, h);
    }
    h.push_str("</section>\n");
}

/// SAM sharpness after each stage (mean ± std over seeds), for methods whose runs measured it
/// (`sharpness_rho > 0`): lower is flatter.
fn sharpness_table(h: &mut String, suite: &SuiteGroup<'_>) {
    let rows: Vec<(&MethodGroup<'_>, Vec<Option<Stat>>)> = suite
        .methods
        .iter()
        .filter(|m| m.runs.iter().any(|r| !r.log.sharpness_probes.is_empty()))
        .map(|m| {
            let stages = suite.tasks().len();
            let cells = (1..=stages)
                .map(|stage| {
                    let xs: Vec<f64> = m
                        .runs
                        .iter()
                        .filter_map(|r| r.log.sharpness_probes.iter().find(|e| e.stage == stage))
                        .map(|e| e.sharpness)
                        .collect();
                    mean_std(&xs)
                })
                .collect();
            (m, cells)
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let rho = rows[0]
        .0
        .runs
        .iter()
        .flat_map(|r| r.log.sharpness_probes.first())
        .map(|e| e.rho)
        .next()
        .unwrap_or(0.0);
    let _ = writeln!(
        h,
        "<h3>Sharpness after each stage</h3>\n<p class=\"sub\">SAM sharpness L(θ + ρ·g/‖g‖) − L(θ), ρ = {rho}, on the validation records of every task (fixed for the run); lower is flatter. Mean ± std over seeds.</p>\n<table><tr><th>method</th>"
    );
    for (i, t) in suite.tasks().iter().enumerate() {
        let _ = write!(h, "<th>after {} · {}</th>", i + 1, escape(t));
    }
    h.push_str("</tr>\n");
    for (m, cells) in rows {
        let _ = write!(h, "<tr><td>{}</td>", escape(m.name));
        for c in cells {
            h.push_str(&stat_cell(c, 4, false));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// Per method, the loss along the logged landscape slice after each stage (`landscape` events of
/// the first seed that has any): one line per stage. Nothing when no run logged a slice.
fn landscape_section(h: &mut String, suite: &SuiteGroup<'_>) {
    let with: Vec<(&MethodGroup<'_>, &Run)> = suite
        .methods
        .iter()
        .filter_map(|m| {
            m.runs
                .iter()
                .copied()
                .find(|r| r.log.landscapes.iter().any(|e| !e.curve().is_empty()))
                .map(|r| (m, r))
        })
        .collect();
    if with.is_empty() {
        return;
    }
    h.push_str("<h3>Loss landscape after each stage (first seed with a slice)</h3>\n<div class=\"grid\">\n");
    for (m, run) in with {
        let ev = &run.log.landscapes;
        let records = ev
            .iter()
            .find_map(|e| e.records)
            .map_or_else(String::new, |r| format!(" · {r} records"));
        let two_d = if ev.iter().any(|e| e.b.len() > 1) {
            " · b = 0 column of a 2-D slice"
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<figure class=\"landscape\"><figcaption>{} <span class=\"sub\">· seed {}{records}{two_d}</span></figcaption>{}</figure>",
            escape(m.name),
            run.seed,
            landscape_chart(run)
        );
    }
    h.push_str(
        "</div>\n<p class=\"note\">Loss L(θ + a·d) along a random filter-normalised direction d through the \
         weights θ after each stage (a = 0, dashed, is the trained model); flatter and lower is better. A 2-D \
         slice is drawn along its b = 0 column.</p>\n",
    );
}

/// One line per `landscape` event of `run`: x = a, y = loss (the `b = 0` column), coloured by
/// stage from dark (early) to light (late).
fn landscape_chart(run: &Run) -> String {
    let ev: Vec<(&crate::load::LandscapeEvent, Vec<(f64, f64)>)> = run
        .log
        .landscapes
        .iter()
        .map(|e| (e, e.curve()))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    let n = ev.len();
    let colours: Vec<String> = (0..n)
        .map(|k| {
            hex(viridis(if n > 1 {
                0.85 * k as f64 / (n - 1) as f64
            } else {
                0.0
            }))
        })
        .collect();
    let entries: Vec<(String, &str, bool)> = ev
        .iter()
        .zip(&colours)
        .map(|((e, _), c)| {
            let task = e
                .stage
                .checked_sub(1)
                .and_then(|t| run.tasks.get(t))
                .map_or_else(String::new, |t| format!(" ({})", clip(t, 16)));
            (format!("after stage {}{task}", e.stage), c.as_str(), false)
        })
        .collect();
    let pts = ev.iter().flat_map(|(_, c)| c.iter().copied());
    let (mut xlo, mut xhi, mut ylo, mut yhi) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in pts {
        (xlo, xhi, ylo, yhi) = (xlo.min(x), xhi.max(x), ylo.min(y), yhi.max(y));
    }
    let (x0, x1, xticks) = numeric_ticks(xlo, xhi, 6);
    let (y0, y1, yticks) = numeric_ticks(ylo, yhi, 5);
    let legend_w = entries
        .iter()
        .map(|e| text_width(&e.0, 11.0))
        .fold(0.0, f64::max)
        + 36.0;
    let (left, top, right) = (60.0, 12.0, 60.0 + 380.0);
    let height = (250.0f64).max(top + 16.0 * n as f64 + 50.0);
    let bottom = height - 46.0;
    let f = Frame {
        left,
        top,
        right,
        bottom,
        x: Scale::new(x0, x1, left, right),
        y: Scale::new(y0, y1, bottom, top),
    };
    let mut s = Svg::new(
        right + 16.0 + legend_w,
        height,
        &format!("loss landscape after each stage, seed {}", run.seed),
    );
    f.axes(&mut s, &xticks, &yticks, "a (direction coordinate)", "loss");
    if x0 < 0.0 && x1 > 0.0 {
        let x = f.x.at(0.0);
        s.line(x, top, x, bottom, "#999", r#"stroke-dasharray="3 3""#);
    }
    for ((e, curve), col) in ev.iter().zip(&colours) {
        let xy: Vec<(f64, f64)> = curve.iter().map(|&(x, y)| (f.x.at(x), f.y.at(y))).collect();
        s.polyline(
            &xy,
            col,
            &format!(
                r#"stroke-width="2" class="landscape-series" data-stage="{}""#,
                e.stage
            ),
        );
        if xy.len() == 1 || xy.len() <= 41 && n <= 4 {
            for &(x, y) in &xy {
                s.circle(x, y, 2.5, col, "");
            }
        }
    }
    legend(&mut s, right + 16.0, top + 12.0, &entries);
    s.finish()
}

fn seeds_label(m: &MethodGroup<'_>) -> String {
    let seeds = m
        .runs
        .iter()
        .map(|r| r.seed.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!("{} seed{} ({seeds})", m.runs.len(), plural(m.runs.len()))
}

fn stat_cell(s: Option<Stat>, decimals: usize, best: bool) -> String {
    let class = if best { " class=\"best\"" } else { "" };
    match s {
        None => format!("<td{class}>–</td>"),
        Some(s) => {
            let sd = s
                .std
                .map_or_else(|| "–".to_string(), |v| format!("{v:.decimals$}"));
            format!(
                "<td{class}>{:.decimals$} <span class=\"sd\">± {sd}</span></td>",
                s.mean
            )
        }
    }
}

fn summary_table(h: &mut String, suite: &SuiteGroup<'_>) {
    h.push_str("<h3>Summary (mean ± std over seeds; best in bold)</h3>\n<div class=\"scroll\"><table>\n<thead><tr><th>method</th>");
    for c in Column::ALL {
        let arrow = if c.higher_is_better() { "↑" } else { "↓" };
        let _ = write!(
            h,
            "<th><abbr title=\"{}\">{}</abbr> <span class=\"sd\">{arrow}</span></th>",
            escape(c.description()),
            escape(c.label())
        );
        if c == Column::Replayed {
            h.push_str(
                "<th><abbr title=\"replayed samples (mean over seeds) / the replay budget the runs were allowed \
                 (∞ = unlimited; – = the method never replays)\">replayed / budget</abbr></th>\
                 <th><abbr title=\"the strategy&#39;s own extra cost (mean over seeds): loss-probe forward passes \
                 (cost.probe_forwards), validation examples it evaluated (cost.strategy_eval_examples) and a \
                 method plugin&#39;s own forward and backward passes (cost.plugin_forwards, cost.plugin_backwards)\">\
                 strategy cost</abbr></th>",
            );
        }
    }
    h.push_str("<th>seeds</th></tr></thead>\n<tbody>\n");
    let table = aggregate::summary(suite);
    for (k, m) in suite.methods.iter().enumerate() {
        let _ = write!(h, "<tr><td>{}</td>", escape(m.name));
        for (c, stats, best) in &table {
            h.push_str(&stat_cell(stats[k], c.html_decimals(), best[k]));
            if *c == Column::Replayed {
                let _ = write!(
                    h,
                    "<td class=\"budget\">{}</td><td>{}</td>",
                    escape(&aggregate::replayed_of_budget(m)),
                    escape(&aggregate::strategy_cost(m))
                );
            }
        }
        let _ = writeln!(h, "<td>{}</td></tr>", m.runs.len());
    }
    h.push_str("</tbody></table></div>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">{}.</p>",
        escape(aggregate::BUDGET_COLUMNS_NOTE)
    );
}

/// Accuracy-matrix heatmap: rows = stages (before, then tasks), columns = tasks.
fn heatmap(tasks: &[String], mat: &[Vec<Option<f64>>], domain: (f64, f64), method: &str) -> String {
    const FS: f64 = 11.0;
    const CW: f64 = 50.0;
    const CH: f64 = 26.0;
    let t = mat.first().map_or(0, Vec::len);
    let row_labels: Vec<String> = std::iter::once("before".to_string())
        .chain((0..t).map(|i| task_name(tasks, i, 22)))
        .collect();
    let col_labels: Vec<String> = (0..t).map(|i| task_name(tasks, i, 22)).collect();
    let label_w = row_labels
        .iter()
        .map(|l| text_width(l, FS))
        .fold(0.0, f64::max);
    let col_w = col_labels
        .iter()
        .map(|l| text_width(l, FS))
        .fold(0.0, f64::max);
    let (sin, cos) = (35f64.to_radians().sin(), 35f64.to_radians().cos());
    let left = label_w + 14.0;
    let top = col_w * sin + 16.0;
    let grid_w = t as f64 * CW;
    let grid_h = (t + 1) as f64 * CH;
    let overhang = (col_w * cos - (CW / 2.0)).max(0.0);
    let bar_x = left + grid_w + 14.0;
    let width = (bar_x + 56.0).max(left + grid_w + overhang + 8.0);
    let height = top + grid_h + 10.0;
    let mut s = Svg::new(width, height, &format!("accuracy matrix of {method}"));
    let norm = |v: f64| (v - domain.0) / (domain.1 - domain.0).max(1e-12);
    for (i, l) in col_labels.iter().enumerate() {
        let x = left + (i as f64 + 0.5) * CW;
        s.text_rotated(x, top - 6.0, l, "start", FS, -35.0);
    }
    for (j, row) in mat.iter().enumerate() {
        let y = top + j as f64 * CH;
        s.text(
            left - 8.0,
            y + CH / 2.0 + 4.0,
            &row_labels[j],
            "end",
            FS,
            "",
        );
        for (i, v) in row.iter().enumerate() {
            let x = left + i as f64 * CW;
            match v {
                Some(v) => {
                    let rgb = viridis(norm(*v));
                    s.rect(
                        x,
                        y,
                        CW,
                        CH,
                        &hex(rgb),
                        r##"stroke="#fff" stroke-width="1""##,
                    );
                    let extra = format!(r#"fill="{}""#, text_on(rgb));
                    s.text(
                        x + CW / 2.0,
                        y + CH / 2.0 + 4.0,
                        &format!("{v:.2}"),
                        "middle",
                        FS,
                        &extra,
                    );
                }
                None => {
                    s.rect(x, y, CW, CH, "#eee", r##"stroke="#fff" stroke-width="1""##);
                    s.text(
                        x + CW / 2.0,
                        y + CH / 2.0 + 4.0,
                        "–",
                        "middle",
                        FS,
                        r##"fill="#999""##,
                    );
                }
            }
        }
        if j >= 1 && j <= t {
            let x = left + (j - 1) as f64 * CW;
            s.rect(
                x + 1.0,
                y + 1.0,
                CW - 2.0,
                CH - 2.0,
                "none",
                r##"stroke="#e8175d" stroke-width="2""##,
            );
        }
    }
    // Colour bar.
    let steps = 40;
    for k in 0..steps {
        let f0 = k as f64 / steps as f64;
        let y = top + grid_h * (1.0 - f0 - 1.0 / steps as f64);
        s.rect(
            bar_x,
            y,
            12.0,
            grid_h / steps as f64 + 0.5,
            &hex(viridis(f0 + 0.5 / steps as f64)),
            "",
        );
    }
    s.rect(bar_x, top, 12.0, grid_h, "none", r##"stroke="#999""##);
    for (f, v) in [
        (0.0, domain.0),
        (0.5, (domain.0 + domain.1) / 2.0),
        (1.0, domain.1),
    ] {
        let y = top + grid_h * (1.0 - f);
        s.line(bar_x + 12.0, y, bar_x + 16.0, y, "#666", "");
        s.text(
            bar_x + 18.0,
            y + 4.0,
            &format!("{v:.2}"),
            "start",
            10.0,
            r##"fill="#444""##,
        );
    }
    s.finish()
}

fn task_name(tasks: &[String], i: usize, max: usize) -> String {
    tasks
        .get(i)
        .map_or_else(|| format!("task {i}"), |t| clip(t, max))
}

/// Legend entries stacked at (x, y); returns the y below the last.
fn legend(s: &mut Svg, x: f64, y: f64, entries: &[(String, &str, bool)]) -> f64 {
    let mut y = y;
    for (label, col, dashed) in entries {
        let dash = if *dashed {
            r#"stroke-dasharray="4 3""#
        } else {
            ""
        };
        s.line(
            x,
            y - 4.0,
            x + 18.0,
            y - 4.0,
            col,
            &format!(r#"stroke-width="2.5" {dash}"#),
        );
        s.text(x + 24.0, y, label, "start", 11.0, "");
        y += 16.0;
    }
    y
}

/// Per-task score across stages.
fn score_curves(
    tasks: &[String],
    mat: &[Vec<Option<f64>>],
    domain: (f64, f64),
    method: &str,
) -> String {
    let t = mat.first().map_or(0, Vec::len);
    let entries: Vec<(String, &str, bool)> = (0..t)
        .map(|i| {
            (
                format!("{} {}", i + 1, task_name(tasks, i, 18)),
                colour(i),
                false,
            )
        })
        .collect();
    let legend_w = entries
        .iter()
        .map(|e| text_width(&e.0, 11.0))
        .fold(0.0, f64::max)
        + 36.0;
    let plot_w = (70.0 * t as f64).clamp(240.0, 520.0);
    let (left, top) = (52.0, 12.0);
    let right = left + plot_w;
    let height = (250.0f64).max(top + 16.0 * t as f64 + 50.0);
    let bottom = height - 46.0;
    let width = right + 16.0 + legend_w;
    let (y0, y1, yticks) = numeric_ticks(domain.0, domain.1, 5);
    let f = Frame {
        left,
        top,
        right,
        bottom,
        x: Scale::new(0.0, t.max(1) as f64, left + 14.0, right - 14.0),
        y: Scale::new(y0, y1, bottom, top),
    };
    let xticks: Vec<(f64, String)> = (0..=t)
        .map(|j| {
            (
                j as f64,
                if j == 0 {
                    "before".to_string()
                } else {
                    j.to_string()
                },
            )
        })
        .collect();
    let mut s = Svg::new(
        width,
        height,
        &format!("score per task across stages for {method}"),
    );
    f.axes(&mut s, &xticks, &yticks, "after training task #", "score");
    for i in 0..t {
        let col = colour(i);
        let pts: Vec<(usize, f64)> = (0..=t)
            .filter_map(|j| mat.get(j).and_then(|r| r[i]).map(|v| (j, v)))
            .collect();
        let xy = |&(j, v): &(usize, f64)| (f.x.at(j as f64), f.y.at(v));
        let before: Vec<(f64, f64)> = pts.iter().filter(|(j, _)| *j <= i + 1).map(xy).collect();
        let after: Vec<(f64, f64)> = pts.iter().filter(|(j, _)| *j > i).map(xy).collect();
        s.polyline(
            &before,
            col,
            r#"stroke-width="1.8" stroke-dasharray="4 3" opacity="0.8""#,
        );
        s.polyline(&after, col, r#"stroke-width="2.5""#);
        for p in &pts {
            let (x, y) = xy(p);
            s.circle(
                x,
                y,
                if p.0 == i + 1 { 4.0 } else { 2.8 },
                col,
                r##"stroke="#fff" stroke-width="1""##,
            );
        }
    }
    legend(&mut s, right + 16.0, top + 12.0, &entries);
    s.finish()
}

/// Forgetting per method: bars with ±std error bars.
fn forgetting_bars(suite: &SuiteGroup<'_>) -> String {
    let stats: Vec<Option<Stat>> = suite
        .methods
        .iter()
        .map(|m| Column::Forgetting.stat(m))
        .collect();
    if stats.iter().all(Option::is_none) {
        return "<div class=\"empty\">no forgetting values (one-task suite or no metrics)</div>"
            .into();
    }
    let lo = stats
        .iter()
        .flatten()
        .map(|s| s.mean - s.std.unwrap_or(0.0))
        .fold(0.0, f64::min);
    let hi = stats
        .iter()
        .flatten()
        .map(|s| s.mean + s.std.unwrap_or(0.0))
        .fold(0.0, f64::max);
    let (y0, y1, yticks) = numeric_ticks(lo, if hi - lo < 1e-9 { lo + 0.1 } else { hi }, 5);
    let n = suite.methods.len();
    let band = 84.0;
    let (left, top) = (56.0, 16.0);
    let right = left + band * n as f64 + 10.0;
    let (height, bottom) = (260.0, 220.0);
    let width = (right + 16.0).max(320.0);
    let f = Frame {
        left,
        top,
        right,
        bottom,
        x: Scale::new(0.0, 1.0, left, right),
        y: Scale::new(y0, y1, bottom, top),
    };
    let mut s = Svg::new(width, height, "forgetting per method");
    f.axes(&mut s, &[], &yticks, "", "forgetting F (lower is better)");
    let zero = f.y.at(0.0);
    for (k, (m, st)) in suite.methods.iter().zip(&stats).enumerate() {
        let cx = left + 10.0 + band * (k as f64 + 0.5);
        s.text(cx, bottom + 16.0, &clip(m.name, 13), "middle", 11.0, "");
        let Some(st) = st else {
            s.text(cx, zero - 6.0, "n/a", "middle", 11.0, r##"fill="#999""##);
            continue;
        };
        let y = f.y.at(st.mean);
        s.rect(
            cx - band * 0.3,
            y.min(zero),
            band * 0.6,
            (y - zero).abs(),
            colour(k),
            "",
        );
        let mut label_y = y.min(zero) - 5.0;
        if let Some(sd) = st.std {
            let (ya, yb) = (f.y.at(st.mean - sd), f.y.at(st.mean + sd));
            s.line(cx, ya, cx, yb, "#222", r#"stroke-width="1.5""#);
            s.line(cx - 7.0, ya, cx + 7.0, ya, "#222", r#"stroke-width="1.5""#);
            s.line(cx - 7.0, yb, cx + 7.0, yb, "#222", r#"stroke-width="1.5""#);
            label_y = label_y.min(yb - 5.0);
        }
        s.text(
            cx + 10.0,
            label_y,
            &format!("{:.3}", st.mean),
            "start",
            10.5,
            r##"fill="#333""##,
        );
        s.text(
            cx,
            bottom + 30.0,
            &format!("n={}", st.n),
            "middle",
            10.0,
            r##"fill="#777""##,
        );
    }
    s.line(left, zero, right, zero, "#666", "");
    s.finish()
}

/// Shaded stage bands with the task name at the top; returns nothing.
fn stage_bands(s: &mut Svg, run: &Run, x: &Scale, top: f64, bottom: f64) {
    let mut start = 0u64;
    for (k, st) in run.log.stages.iter().enumerate() {
        let (x0, x1) = (x.at(start as f64), x.at(st.step as f64));
        if k % 2 == 1 {
            s.rect(x0, top, x1 - x0, bottom - top, "#f3f4f7", "");
        }
        s.line(x1, top, x1, bottom, "#bbb", r#"stroke-dasharray="3 3""#);
        let name = clip(
            &task_name(&run.tasks, st.task, 40),
            ((x1 - x0) / 6.0).max(1.0) as usize,
        );
        s.text(
            x0 + 3.0,
            top - 3.0,
            &name,
            "start",
            10.0,
            r##"fill="#777""##,
        );
        start = st.step;
    }
}

fn max_step(run: &Run) -> f64 {
    let last_event = run
        .log
        .replays
        .iter()
        .map(|r| r.step)
        .chain(run.log.intervals.iter().map(|r| r.step))
        .max();
    run.log.max_step.max(last_event.unwrap_or(0)).max(1) as f64
}

/// A tick per replay event, one row per source task.
fn replay_timeline(run: &Run) -> Option<String> {
    let ev = &run.log.replays;
    if ev.is_empty() {
        return None;
    }
    let mut sources: Vec<Option<usize>> = ev.iter().map(|e| e.task).collect();
    sources.sort_by_key(|s| s.map_or(usize::MAX, |t| t));
    sources.dedup();
    let label =
        |s: &Option<usize>| s.map_or_else(|| "mixed".to_string(), |t| task_name(&run.tasks, t, 18));
    let mut reasons: Vec<&str> = ev.iter().map(|e| e.reason.as_str()).collect();
    reasons.sort();
    reasons.dedup();
    let left = sources
        .iter()
        .map(|s| text_width(&label(s), 11.0))
        .fold(40.0, f64::max)
        + 14.0;
    let plot_w = 420.0;
    let right = left + plot_w;
    let row_h = 22.0;
    let top = 18.0;
    let bottom = top + row_h * sources.len() as f64;
    let width = right + 76.0;
    let height = bottom + 58.0;
    let x = Scale::new(0.0, max_step(run), left, right);
    let total: u64 = ev.iter().map(|e| e.n).sum();
    let mut s = Svg::new(
        width,
        height,
        &format!("replay timeline: {} events, {total} samples", ev.len()),
    );
    stage_bands(&mut s, run, &x, top, bottom);
    for (r, src) in sources.iter().enumerate() {
        let y = top + r as f64 * row_h;
        s.line(left, y + row_h, right, y + row_h, "#eee", "");
        s.text(
            left - 8.0,
            y + row_h / 2.0 + 4.0,
            &label(src),
            "end",
            11.0,
            "",
        );
        let n: u64 = ev.iter().filter(|e| e.task == *src).map(|e| e.n).sum();
        s.text(
            right + 6.0,
            y + row_h / 2.0 + 4.0,
            &format!("{n} samples"),
            "start",
            10.0,
            r##"fill="#666""##,
        );
    }
    // One path per (row, reason), one tick per half-pixel: a long run's thousands of events stay
    // a small SVG.
    let mut ticks: BTreeMap<(usize, usize), std::collections::BTreeSet<i64>> = BTreeMap::new();
    for e in ev {
        let r = sources.iter().position(|s| *s == e.task).unwrap_or(0);
        let k = reasons.iter().position(|x| *x == e.reason).unwrap_or(0);
        ticks
            .entry((r, k))
            .or_default()
            .insert((x.at(e.step as f64) * 2.0).round() as i64);
    }
    for ((r, k), xs) in &ticks {
        let y = top + *r as f64 * row_h;
        let mut d = String::new();
        for hx in xs {
            let _ = write!(
                d,
                "M{}.{} {}v{}",
                hx / 2,
                if hx % 2 == 0 { 0 } else { 5 },
                y + 4.0,
                row_h - 8.0
            );
        }
        let _ = write!(
            s.buffer(),
            r#"<path d="{d}" stroke="{}" stroke-width="1.5" opacity="0.85" fill="none"/>"#,
            colour(*k)
        );
    }
    let (_, _, ticks) = numeric_ticks(0.0, max_step(run), 5);
    let xticks: Vec<(f64, String)> = ticks
        .into_iter()
        .filter(|(v, _)| *v <= max_step(run) + 1e-9)
        .collect();
    s.line(left, bottom, right, bottom, "#666", "");
    for (v, l) in &xticks {
        let xx = x.at(*v);
        s.line(xx, bottom, xx, bottom + 4.0, "#666", "");
        s.text(xx, bottom + 15.0, l, "middle", 10.5, r##"fill="#444""##);
    }
    s.text(
        (left + right) / 2.0,
        bottom + 29.0,
        "global step",
        "middle",
        11.5,
        "",
    );
    // Reason legend.
    let mut lx = left;
    let ly = bottom + 47.0;
    s.text(
        lx,
        ly,
        &format!("{} events · reason:", ev.len()),
        "start",
        10.5,
        r##"fill="#555""##,
    );
    lx += text_width(&format!("{} events · reason:", ev.len()), 10.5) + 8.0;
    for (k, r) in reasons.iter().enumerate() {
        s.line(lx, ly - 9.0, lx, ly + 1.0, colour(k), r#"stroke-width="2""#);
        s.text(lx + 5.0, ly, r, "start", 10.5, "");
        lx += text_width(r, 10.5) + 18.0;
    }
    Some(s.finish())
}

/// MSSR's interval per task over steps (step-after lines).
fn interval_chart(run: &Run) -> Option<String> {
    let ev = &run.log.intervals;
    if ev.is_empty() {
        return None;
    }
    let mut per_task: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    for e in ev.iter().filter(|e| e.interval.is_finite()) {
        per_task
            .entry(e.task)
            .or_default()
            .push((e.step as f64, e.interval));
    }
    let hi = ev
        .iter()
        .map(|e| e.interval)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let (y0, y1, yticks) = numeric_ticks(0.0, hi.max(1.0), 4);
    let xmax = max_step(run);
    let (_, _, xt) = numeric_ticks(0.0, xmax, 5);
    let xticks: Vec<(f64, String)> = xt.into_iter().filter(|(v, _)| *v <= xmax + 1e-9).collect();
    let entries: Vec<(String, &str, bool)> = per_task
        .keys()
        .map(|&t| (task_name(&run.tasks, t, 18), colour(t), false))
        .collect();
    let legend_w = entries
        .iter()
        .map(|e| text_width(&e.0, 11.0))
        .fold(0.0, f64::max)
        + 36.0;
    let (left, top, right) = (56.0, 22.0, 56.0 + 420.0);
    let height = (190.0f64).max(top + 16.0 * entries.len() as f64 + 50.0);
    let bottom = height - 42.0;
    let f = Frame {
        left,
        top,
        right,
        bottom,
        x: Scale::new(0.0, xmax, left, right),
        y: Scale::new(y0, y1, bottom, top),
    };
    let mut s = Svg::new(
        right + 16.0 + legend_w,
        height,
        "MSSR replay interval per task",
    );
    s.text(
        left,
        12.0,
        "MSSR interval I_d per task",
        "start",
        11.5,
        r##"font-weight="600""##,
    );
    f.axes(&mut s, &xticks, &yticks, "global step", "interval (steps)");
    for (&t, pts) in &per_task {
        let mut path = Vec::with_capacity(pts.len() * 2);
        for (k, &(x, y)) in pts.iter().enumerate() {
            if k > 0 {
                path.push((f.x.at(x), f.y.at(pts[k - 1].1)));
            }
            path.push((f.x.at(x), f.y.at(y)));
        }
        s.polyline(&thin(path.clone()), colour(t), r#"stroke-width="2""#);
        if pts.len() == 1 {
            s.circle(path[0].0, path[0].1, 3.0, colour(t), "");
        }
    }
    legend(&mut s, right + 16.0, top + 10.0, &entries);
    Some(s.finish())
}

/// Drops points that land on the same half-pixel as the one before (long logs).
fn thin(pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(pts.len());
    for p in pts {
        let same = out.last().is_some_and(|q| {
            ((q.0 - p.0) * 2.0).round() == 0.0 && ((q.1 - p.1) * 2.0).round() == 0.0
        });
        if !same {
            out.push(p);
        }
    }
    out
}

/// A 10-bin histogram of one `strengths` event.
fn strength_histogram(ev: &crate::load::StrengthsEvent, tasks: &[String]) -> String {
    let mut bins = [0usize; 10];
    for v in ev.values.iter().filter(|v| v.is_finite()) {
        bins[((v * 10.0).floor().max(0.0) as usize).min(9)] += 1;
    }
    let max = bins.iter().copied().max().unwrap_or(0).max(1);
    let (w, h) = (190.0, 142.0);
    let (left, top, right, bottom) = (34.0, 38.0, 182.0, 114.0);
    let after = ev
        .stage
        .checked_sub(1)
        .map_or_else(String::new, |t| format!(" ({})", task_name(tasks, t, 14)));
    let mut s = Svg::new(w, h, &format!("memory strength after stage {}", ev.stage));
    s.text(
        4.0,
        12.0,
        &format!("stage {}{after}", ev.stage),
        "start",
        11.0,
        r##"font-weight="600""##,
    );
    s.text(
        4.0,
        25.0,
        &format!("n = {} samples", ev.values.len()),
        "start",
        10.0,
        r##"fill="#666""##,
    );
    let x = Scale::new(0.0, 1.0, left, right);
    let (y0, y1, yticks) = numeric_ticks(0.0, max as f64, 3);
    let f = Frame {
        left,
        top,
        right,
        bottom,
        x,
        y: Scale::new(y0, y1, bottom, top),
    };
    let xticks: Vec<(f64, String)> = [0.0, 0.5, 1.0]
        .iter()
        .map(|&v| (v, format!("{v}")))
        .collect();
    f.axes(&mut s, &xticks, &yticks, "", "");
    for (k, &c) in bins.iter().enumerate() {
        let (x0, x1) = (f.x.at(k as f64 / 10.0), f.x.at((k + 1) as f64 / 10.0));
        let y = f.y.at(c as f64);
        s.rect(
            x0 + 0.5,
            y,
            x1 - x0 - 1.0,
            bottom - y,
            &hex(viridis((k as f64 + 0.5) / 10.0)),
            "",
        );
    }
    s.text(
        (left + right) / 2.0,
        h - 2.0,
        "strength",
        "middle",
        10.0,
        r##"fill="#444""##,
    );
    s.finish()
}

/// XSAM α* against the global step.
fn alpha_chart(run: &Run) -> String {
    let pts: Vec<(f64, f64)> = run
        .log
        .sharpness
        .iter()
        .filter_map(|e| {
            e.alpha
                .filter(|a| a.is_finite())
                .map(|a| (e.step as f64, a))
        })
        .collect();
    let lo = pts
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (y0, y1, yticks) = numeric_ticks(lo, hi.max(lo + 1e-3), 4);
    let xmax = max_step(run).max(pts.iter().map(|p| p.0).fold(1.0, f64::max));
    let (_, _, xt) = numeric_ticks(0.0, xmax, 5);
    let xticks: Vec<(f64, String)> = xt.into_iter().filter(|(v, _)| *v <= xmax + 1e-9).collect();
    let (left, top, right, bottom) = (60.0, 12.0, 470.0, 170.0);
    let f = Frame {
        left,
        top,
        right,
        bottom,
        x: Scale::new(0.0, xmax, left, right),
        y: Scale::new(y0, y1, bottom, top),
    };
    let mut s = Svg::new(right + 16.0, bottom + 42.0, "XSAM alpha star over steps");
    stage_bands(&mut s, run, &f.x, top + 10.0, bottom);
    f.axes(&mut s, &xticks, &yticks, "global step", "α*");
    let xy: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (f.x.at(x), f.y.at(y))).collect();
    s.polyline(&thin(xy.clone()), colour(0), r#"stroke-width="1.8""#);
    if xy.len() <= 60 {
        for &(x, y) in &xy {
            s.circle(x, y, 2.5, colour(0), "");
        }
    }
    s.finish()
}

fn fmt_cost(name: &str, v: f64) -> String {
    if name.ends_with("seconds") {
        format!("{v:.1}")
    } else if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 {
        group_thousands(v.round() as i64)
    } else if v.abs() < 1e15 {
        // One decimal, the integer part grouped.
        let tenths = (v * 10.0).round() as i64;
        let sign = if tenths < 0 { "-" } else { "" };
        format!(
            "{sign}{}.{}",
            group_thousands((tenths / 10).abs()),
            (tenths % 10).abs()
        )
    } else {
        format!("{v:.1}")
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (k, ch) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn cost_table(h: &mut String, suite: &SuiteGroup<'_>) {
    h.push_str("<h3>Cost (mean over seeds)</h3>\n");
    let fields = aggregate::cost_fields(suite);
    if fields.is_empty() {
        h.push_str("<div class=\"empty\">no cost recorded (no metrics.json)</div>\n");
        return;
    }
    h.push_str("<div class=\"scroll\"><table class=\"cost\">\n<thead><tr><th>method</th>");
    for f in &fields {
        let _ = write!(h, "<th>{}</th>", escape(&f.replace('_', " ")));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for m in &suite.methods {
        let _ = write!(h, "<tr><td>{}</td>", escape(m.name));
        for f in &fields {
            let vals: Vec<f64> = m
                .runs
                .iter()
                .filter_map(|r| r.metrics.cost(f))
                .filter(|v| v.is_finite())
                .collect();
            match mean_std(&vals) {
                Some(st) => {
                    let _ = write!(h, "<td>{}</td>", fmt_cost(f, st.mean));
                }
                None => h.push_str("<td>–</td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

fn footer(h: &mut String, suites: &[SuiteGroup<'_>], skipped: &[&Run]) {
    h.push_str("<footer>\n<h3>Provenance</h3>\n<dl>\n");
    let p = aggregate::provenance(suites.iter().flat_map(|s| s.runs()));
    if !suites.is_empty() {
        let revs = p
            .revs
            .iter()
            .map(|(r, n)| format!("<code>{}</code> ({n} run{})", escape(r), plural(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(h, "<dt>Git revisions</dt><dd>{revs}</dd>");
        let dates = match &p.dates {
            Some((a, b)) if a == b => escape(a),
            Some((a, b)) => format!("{} … {}", escape(a), escape(b)),
            None => "not recorded".into(),
        };
        let _ = writeln!(h, "<dt>Dates</dt><dd>{dates}</dd>");
        let mut tools = Vec::new();
        for (label, vals) in [
            ("crate", &p.crate_versions),
            ("burn", &p.burn),
            ("rustc", &p.rustc),
        ] {
            if !vals.is_empty() {
                tools.push(format!("{label} {}", escape(&vals.join(", "))));
            }
        }
        if !tools.is_empty() {
            let _ = writeln!(h, "<dt>Versions</dt><dd>{}</dd>", tools.join(" · "));
        }
        if !p.models.is_empty() || !p.devices.is_empty() {
            let _ = writeln!(
                h,
                "<dt>Model and device</dt><dd>{} · {}</dd>",
                escape(&p.models.join(", ")),
                escape(&p.devices.join(", "))
            );
        }
        h.push_str("<dt>Replay budgets</dt>");
        for s in suites {
            let _ = writeln!(
                h,
                "<dd>{}: {}</dd>",
                escape(s.name),
                escape(&aggregate::budget_line(s))
            );
        }
        let waited: Vec<_> = suites
            .iter()
            .filter_map(|s| aggregate::waited_on_budget_line(s).map(|w| (s.name, w)))
            .collect();
        if !waited.is_empty() {
            h.push_str(
                "<dt>Replay batches that waited on the budget (due earlier; the budget set the step)</dt>",
            );
            for (suite, w) in waited {
                let _ = writeln!(h, "<dd>{}: {}</dd>", escape(suite), escape(&w));
            }
        }
    }
    if let Some(note) = aggregate::skipped_note(skipped) {
        let _ = writeln!(h, "<dt>Skipped</dt><dd>{}</dd>", escape(&note));
    }
    let _ = writeln!(
        h,
        "<dt>Generated by</dt><dd>report {} — mean ± sample std (n − 1) over seeds; – where a value is undefined</dd>",
        env!("CARGO_PKG_VERSION")
    );
    h.push_str("</dl>\n</footer>\n");
}
