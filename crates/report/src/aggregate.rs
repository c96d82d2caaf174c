//! Grouping runs by suite and method, and the per-method numbers both renderers show.

use std::collections::{BTreeMap, BTreeSet};

use crate::load::{COST_FIELDS, Run};
use crate::stats::{Stat, mean_std};

/// The complete runs of one suite, by method.
pub(crate) struct SuiteGroup<'a> {
    pub name: &'a str,
    pub methods: Vec<MethodGroup<'a>>,
}

/// The complete runs of one method in one suite, sorted by seed.
pub(crate) struct MethodGroup<'a> {
    pub name: &'a str,
    pub runs: Vec<&'a Run>,
}

impl<'a> SuiteGroup<'a> {
    /// All runs of the suite.
    pub fn runs(&self) -> impl Iterator<Item = &'a Run> + '_ {
        self.methods.iter().flat_map(|m| m.runs.iter().copied())
    }

    /// Task names of the suite (those of its first run).
    pub fn tasks(&self) -> &'a [String] {
        self.methods
            .first()
            .and_then(|m| m.runs.first())
            .map_or(&[], |r| r.tasks.as_slice())
    }
}

impl<'a> MethodGroup<'a> {
    /// The run with the smallest seed.
    pub fn first(&self) -> &'a Run {
        self.runs[0]
    }
}

/// Groups the complete runs by suite, then method (both sorted by name); returns the runs that
/// are not complete separately.
pub(crate) fn group(runs: &[Run]) -> (Vec<SuiteGroup<'_>>, Vec<&Run>) {
    let mut map: BTreeMap<&str, BTreeMap<&str, Vec<&Run>>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for r in runs {
        if r.is_complete() && !r.rows.is_empty() {
            map.entry(&r.suite)
                .or_default()
                .entry(&r.method)
                .or_default()
                .push(r);
        } else {
            skipped.push(r);
        }
    }
    let suites = map
        .into_iter()
        .map(|(name, methods)| SuiteGroup {
            name,
            methods: methods
                .into_iter()
                .map(|(name, mut runs)| {
                    runs.sort_by_key(|r| r.seed);
                    MethodGroup { name, runs }
                })
                .collect(),
        })
        .collect();
    (suites, skipped)
}

/// A column of the summary tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Aa,
    Bwt,
    Forgetting,
    Fwt,
    GeneralForgetting,
    Replayed,
    Steps,
    Wall,
}

impl Column {
    pub const ALL: [Column; 8] = [
        Column::Aa,
        Column::Bwt,
        Column::Forgetting,
        Column::Fwt,
        Column::GeneralForgetting,
        Column::Replayed,
        Column::Steps,
        Column::Wall,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Column::Aa => "AA",
            Column::Bwt => "BWT",
            Column::Forgetting => "F",
            Column::Fwt => "FWT",
            Column::GeneralForgetting => "↓F",
            Column::Replayed => "replayed",
            Column::Steps => "steps",
            Column::Wall => "wall s",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Column::Aa => "average accuracy after the last stage (higher is better)",
            Column::Bwt => "backward transfer (higher is better; negative = forgetting)",
            Column::Forgetting => "average max-based forgetting (lower is better)",
            Column::Fwt => "forward transfer (higher is better)",
            Column::GeneralForgetting => {
                "general-ability forgetting over the probes (lower is better)"
            }
            Column::Replayed => "replayed samples (lower is cheaper)",
            Column::Steps => "optimizer steps (lower is cheaper)",
            Column::Wall => "wall-clock seconds (lower is cheaper)",
        }
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Column::Aa | Column::Bwt | Column::Fwt)
    }

    /// Digits after the decimal point in the Markdown table (counts get one, like wall time).
    pub fn md_decimals(self) -> usize {
        match self {
            Column::Replayed | Column::Steps | Column::Wall => 1,
            _ => 3,
        }
    }

    /// Digits after the decimal point in the HTML table.
    pub fn html_decimals(self) -> usize {
        match self {
            Column::Replayed | Column::Steps | Column::Wall => 1,
            _ => 3,
        }
    }

    pub fn value(self, r: &Run) -> Option<f64> {
        let m = &r.metrics;
        match self {
            Column::Aa => m.aa,
            Column::Bwt => m.bwt,
            Column::Forgetting => m.forgetting,
            Column::Fwt => m.fwt,
            Column::GeneralForgetting => m.general_forgetting,
            Column::Replayed => m.cost("replayed_samples"),
            Column::Steps => m.cost("optimizer_steps"),
            Column::Wall => m.cost("wall_seconds"),
        }
        .filter(|v| v.is_finite())
    }

    /// Mean and std over the method's seeds (runs without the value left out).
    pub fn stat(self, m: &MethodGroup<'_>) -> Option<Stat> {
        let values: Vec<f64> = m.runs.iter().filter_map(|r| self.value(r)).collect();
        mean_std(&values)
    }
}

/// For each column, the per-method stats and which methods hold the best mean (ties all win;
/// nothing is marked with fewer than two methods having a value, or when all are equal).
pub(crate) fn summary(suite: &SuiteGroup<'_>) -> Vec<(Column, Vec<Option<Stat>>, Vec<bool>)> {
    Column::ALL
        .iter()
        .map(|&c| {
            let stats: Vec<Option<Stat>> = suite.methods.iter().map(|m| c.stat(m)).collect();
            let means: Vec<f64> = stats.iter().flatten().map(|s| s.mean).collect();
            let all_equal = means
                .windows(2)
                .all(|w| (w[0] - w[1]).abs() <= 1e-12 * w[0].abs().max(1.0));
            let best = if means.len() < 2 || all_equal {
                None
            } else if c.higher_is_better() {
                means.iter().copied().reduce(f64::max)
            } else {
                means.iter().copied().reduce(f64::min)
            };
            let is_best = stats
                .iter()
                .map(|s| match (s, best) {
                    (Some(s), Some(b)) => (s.mean - b).abs() <= 1e-12 * b.abs().max(1.0),
                    _ => false,
                })
                .collect();
            (c, stats, is_best)
        })
        .collect()
}

/// The mean accuracy matrix of a method over its seeds: `T + 1` rows of `T` cells, `None` where no
/// seed has a value. Runs whose task list differs from the first run's are left out.
pub(crate) fn mean_matrix(m: &MethodGroup<'_>) -> Vec<Vec<Option<f64>>> {
    let first = m.first();
    let t = first
        .tasks
        .len()
        .max(first.rows.first().map_or(0, Vec::len));
    (0..=t)
        .map(|j| {
            (0..t)
                .map(|i| {
                    let vals: Vec<f64> = m
                        .runs
                        .iter()
                        .filter(|r| r.tasks == first.tasks)
                        .filter_map(|r| r.rows.get(j).and_then(|row| row.get(i)).copied())
                        .collect();
                    mean_std(&vals).map(|s| s.mean)
                })
                .collect()
        })
        .collect()
}

/// A count for a table cell: an integer as is (`28`), anything else with one decimal (`4.7`).
pub(crate) fn fmt_count(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.1}")
    }
}

/// `replayed / budget` of a method: the replayed samples (`cost.replayed_samples`, mean over the
/// seeds that recorded it) against the budget the runs were allowed (`metrics.json`'s
/// `replay_budget`, else `run.json`'s): `28 / 40`, `140 / ∞` (unlimited), `0 / –` (the method
/// never replays, so no budget applies). Seeds with different budgets give their range
/// (`40–80`, `40–∞`). `–` alone when no seed recorded what it replayed.
pub(crate) fn replayed_of_budget(m: &MethodGroup<'_>) -> String {
    let spent: Vec<f64> = m
        .runs
        .iter()
        .filter_map(|r| r.metrics.cost("replayed_samples"))
        .filter(|v| v.is_finite())
        .collect();
    let Some(spent) = mean_std(&spent) else {
        return "–".into();
    };
    // Budgets of the seeds that replay, finite ones first (ascending), unlimited last.
    let budgets: BTreeSet<(bool, Option<u64>)> = m
        .runs
        .iter()
        .filter(|r| r.replays())
        .map(|r| r.allowed_replay_budget())
        .map(|b| (b.is_none(), b))
        .collect();
    let show = |b: Option<u64>| b.map_or_else(|| "∞".to_string(), |b| b.to_string());
    let budget = match (budgets.first(), budgets.last()) {
        (Some(lo), Some(hi)) if lo == hi => show(lo.1),
        (Some(lo), Some(hi)) => format!("{}–{}", show(lo.1), show(hi.1)),
        // No seed replays: no budget applies.
        _ => "–".to_string(),
    };
    format!("{} / {budget}", fmt_count(spent.mean))
}

/// The strategy's own extra cost (means over seeds), where it is not zero: `216 probe forwards`
/// (`cost.probe_forwards`: the loss probes of loss-driven replay), `92 validation examples`
/// (`cost.strategy_eval_examples`: accuracy-supervised replay's evaluations), `128 plugin
/// forwards` and `128 plugin backwards` (`cost.plugin_forwards`/`plugin_backwards`: a
/// baseline's teacher, reference gradients or Fisher samples), joined by ` + `; `–` when none
/// was spent.
pub(crate) fn strategy_cost(m: &MethodGroup<'_>) -> String {
    let mean = |field: &str| {
        let xs: Vec<f64> = m
            .runs
            .iter()
            .filter_map(|r| r.metrics.cost(field))
            .filter(|v| v.is_finite())
            .collect();
        mean_std(&xs).map(|s| s.mean).filter(|v| *v != 0.0)
    };
    let parts: Vec<String> = [
        ("probe_forwards", "probe forwards"),
        ("strategy_eval_examples", "validation examples"),
        ("plugin_forwards", "plugin forwards"),
        ("plugin_backwards", "plugin backwards"),
    ]
    .iter()
    .filter_map(|(field, label)| mean(field).map(|v| format!("{} {label}", fmt_count(v))))
    .collect();
    if parts.is_empty() {
        "–".into()
    } else {
        parts.join(" + ")
    }
}

/// What the two budget columns of the summary tables mean (plain text).
pub(crate) const BUDGET_COLUMNS_NOTE: &str = "replayed / budget: replayed samples (mean over seeds) against the \
     replay budget the runs were allowed (∞ unlimited; – the method never replays); strategy cost: the \
     strategy's own extra passes (mean over seeds): loss-probe forwards, validation examples it evaluated, and a method \
     plugin's own forward and backward passes";

/// Every cost field any run of the suite recorded: documented fields in their order, then others.
pub(crate) fn cost_fields(suite: &SuiteGroup<'_>) -> Vec<String> {
    let seen: BTreeSet<&str> = suite
        .runs()
        .flat_map(|r| r.metrics.cost.iter().map(|(k, _)| k.as_str()))
        .collect();
    let mut out: Vec<String> = COST_FIELDS
        .iter()
        .filter(|f| seen.contains(*f))
        .map(|f| f.to_string())
        .collect();
    out.extend(
        seen.iter()
            .filter(|f| !COST_FIELDS.contains(f))
            .map(|f| f.to_string()),
    );
    out
}

/// `mssr 14 of 16` — per method whose replay events log when their session fell due
/// (`reason.due_step`), how many of its replay batches came later than that: the scheduler
/// asked earlier and the paced budget set the time. `None` when no run logs a due step.
pub(crate) fn waited_on_budget_line(suite: &SuiteGroup<'_>) -> Option<String> {
    let parts: Vec<String> = suite
        .methods
        .iter()
        .filter_map(|m| {
            let (mut waited, mut logged) = (0, 0);
            for e in m.runs.iter().flat_map(|r| &r.log.replays) {
                if let Some(due) = e.due_step {
                    logged += 1;
                    waited += usize::from(due < e.step);
                }
            }
            (logged > 0).then(|| format!("{} {waited} of {logged}", m.name))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `256 (er, mssr); unlimited (seq)` — the replay budgets of a suite's runs and who used them;
/// a budget paced over the run (`replay_pacing = "even"`) reads `40 samples, paced evenly`.
pub(crate) fn budget_line(suite: &SuiteGroup<'_>) -> String {
    // Keyed so that finite budgets come first (ascending), unlimited last.
    let mut by_budget: BTreeMap<(bool, Option<u64>, bool), BTreeSet<&str>> = BTreeMap::new();
    for r in suite.runs() {
        let even = r.replay_budget.is_some() && r.replay_pacing.as_deref() == Some("even");
        by_budget
            .entry((r.replay_budget.is_none(), r.replay_budget, even))
            .or_default()
            .insert(&r.method);
    }
    let all_methods = suite.methods.len();
    by_budget
        .iter()
        .map(|((_, b, even), methods)| {
            let paced = if *even { ", paced evenly" } else { "" };
            let b = b.map_or_else(
                || "unlimited".to_string(),
                |b| format!("{b} samples{paced}"),
            );
            if by_budget.len() == 1 && methods.len() == all_methods {
                b
            } else {
                format!(
                    "{b} ({})",
                    methods.iter().copied().collect::<Vec<_>>().join(", ")
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Provenance facts over a set of runs.
pub(crate) struct ProvenanceSummary {
    /// `rev` (with `+dirty` when any run had a dirty tree) and how many runs used it.
    pub revs: Vec<(String, usize)>,
    /// Earliest and latest recorded date.
    pub dates: Option<(String, String)>,
    pub crate_versions: Vec<String>,
    pub burn: Vec<String>,
    pub rustc: Vec<String>,
    pub models: Vec<String>,
    pub devices: Vec<String>,
}

pub(crate) fn provenance<'a>(runs: impl Iterator<Item = &'a Run>) -> ProvenanceSummary {
    let mut revs: BTreeMap<String, usize> = BTreeMap::new();
    let mut dates = BTreeSet::new();
    let (mut crates, mut burn, mut rustc, mut models, mut devices) = (
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
    );
    for r in runs {
        let p = &r.provenance;
        let mut rev = p
            .git_rev
            .as_deref()
            .map_or("unknown".to_string(), short_rev);
        if p.git_dirty == Some(true) {
            rev.push_str("+dirty");
        }
        *revs.entry(rev).or_default() += 1;
        dates.extend(p.date.clone());
        crates.extend(p.crate_version.clone());
        burn.extend(p.burn.clone());
        rustc.extend(p.rustc.clone());
        models.extend(r.model.clone());
        devices.extend(r.device.clone());
    }
    let dates = match (dates.first(), dates.last()) {
        (Some(a), Some(b)) => Some((a.clone(), b.clone())),
        _ => None,
    };
    let v = |s: BTreeSet<String>| s.into_iter().collect();
    ProvenanceSummary {
        revs: revs.into_iter().collect(),
        dates,
        crate_versions: v(crates),
        burn: v(burn),
        rustc: v(rustc),
        models: v(models),
        devices: v(devices),
    }
}

fn short_rev(rev: &str) -> String {
    rev.chars().take(10).collect()
}

impl ProvenanceSummary {
    /// One line of plain text (not escaped).
    pub fn line(&self) -> String {
        let revs = self
            .revs
            .iter()
            .map(|(r, n)| format!("{r} ({n} run{})", if *n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join(", ");
        let mut parts = vec![format!("git {revs}")];
        parts.push(match &self.dates {
            Some((a, b)) if a == b => format!("date {a}"),
            Some((a, b)) => format!("dates {a} … {b}"),
            None => "date not recorded".into(),
        });
        for (label, vals) in [
            ("crate", &self.crate_versions),
            ("burn", &self.burn),
            ("rustc", &self.rustc),
            ("model", &self.models),
            ("device", &self.devices),
        ] {
            if !vals.is_empty() {
                parts.push(format!("{label} {}", vals.join(", ")));
            }
        }
        parts.join("; ")
    }
}

/// `2 runs skipped (not complete): smoke/mssr/2 (running), …`, or `None`.
pub(crate) fn skipped_note(skipped: &[&Run]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let list = skipped
        .iter()
        .map(|r| format!("{}/{}/{} ({})", r.suite, r.method, r.seed, r.status))
        .collect::<Vec<_>>()
        .join(", ");
    let n = skipped.len();
    Some(format!(
        "{n} run{} skipped (not complete): {list}",
        if n == 1 { "" } else { "s" }
    ))
}
