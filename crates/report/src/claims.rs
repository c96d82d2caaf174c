//! The papers' claims as paired comparisons between methods of a suite, their verdicts, and
//! the tables and forest plots that show them.
//!
//! [`CLAIMS`] lists the comparisons (issue 21): each is `method − reference` on one metric, with
//! the sign the claim predicts. Every method is also compared against sequential fine-tuning
//! on [`AGAINST_SEQUENTIAL`], and [`CHECKS`] asks of one method alone whether a measure is
//! above 0 (the powered suite must make sequential fine-tuning both learn and forget). The
//! intervals are [`crate::bootstrap`]'s; [`verdict`] reads them.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::aggregate::{self, MethodGroup, SuiteGroup};
use crate::bootstrap::{self, BootstrapConfig, Estimate, Grid, Statistic};
use crate::load::Run;
use crate::rescore::Rescore;
use crate::svg::{Frame, Scale, Svg, escape, numeric_ticks, text_width};

/// A metric a comparison is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Average accuracy after the last stage.
    Aa,
    /// Backward transfer.
    Bwt,
    /// Average (max-based) forgetting F.
    Forgetting,
    /// General-ability forgetting ↓F on the probe (backbone − final; from a rescore file of a
    /// probe when there is one, else from the runs' own probe rows).
    GeneralForgetting,
    /// Change of the loss on held-out text (final − backbone, nats per token; from a corpus
    /// rescore file).
    TextLoss,
    /// What each task's own stage taught it: `mean_i (a[i][i] − a[i−1][i])`.
    Learning,
}

impl Metric {
    /// Short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Aa => "AA",
            Metric::Bwt => "BWT",
            Metric::Forgetting => "F",
            Metric::GeneralForgetting => "↓F",
            Metric::TextLoss => "text-loss change",
            Metric::Learning => "learning",
        }
    }

    /// The direction in which the metric is better.
    pub fn better(self) -> Direction {
        match self {
            Metric::Aa | Metric::Bwt | Metric::Learning => Direction::Higher,
            Metric::Forgetting | Metric::GeneralForgetting | Metric::TextLoss => Direction::Lower,
        }
    }

    fn decimals(self) -> usize {
        match self {
            Metric::TextLoss => 4,
            _ => 3,
        }
    }
}

/// The sign of `method − reference` (or of one method's measure) a claim predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Above 0.
    Higher,
    /// Below 0.
    Lower,
}

impl Direction {
    /// `> 0` or `< 0`.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Higher => "> 0",
            Direction::Lower => "< 0",
        }
    }
}

/// What an interval says of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The 95% interval excludes 0 on the claimed side.
    Held,
    /// The 95% interval excludes 0 on the other side.
    NotHeld,
    /// The 95% interval contains 0.
    Undecided,
}

impl Verdict {
    /// `held`, `not held` or `undecided at this power`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::NotHeld => "not held",
            Verdict::Undecided => "undecided at this power",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Verdict::Held => "#2f7d32",
            Verdict::NotHeld => "#c62828",
            Verdict::Undecided => "#757575",
        }
    }
}

/// The verdict of the interval `lo..=hi` on a claim that predicts `direction`: held when it
/// lies wholly on the claimed side of 0, not held when wholly on the other, otherwise
/// undecided (an interval touching 0 decides nothing).
pub fn verdict(lo: f64, hi: f64, direction: Direction) -> Verdict {
    let (above, below) = (lo > 0.0, hi < 0.0);
    match direction {
        Direction::Higher if above => Verdict::Held,
        Direction::Higher if below => Verdict::NotHeld,
        Direction::Lower if below => Verdict::Held,
        Direction::Lower if above => Verdict::NotHeld,
        _ => Verdict::Undecided,
    }
}

/// One claimed comparison: `method − reference` on `metric` has the sign `direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// The claim, in words.
    pub claim: &'static str,
    /// The method the claim is about.
    pub method: &'static str,
    /// The method it is compared with.
    pub reference: &'static str,
    /// The metric.
    pub metric: Metric,
    /// The sign of `method − reference` the claim predicts.
    pub direction: Direction,
    /// Whether the comparison is also made per task family (the claim names families).
    pub by_family: bool,
}

const MSSR: &str = "MSSR beats fixed, loss-driven and accuracy-supervised replay, at lower cost, \
                    most on reasoning and multiple choice";
const SAM: &str = "SAM and XSAM reduce forgetting";
const XSAM_REPLAY: &str = "XSAM complements replay";
const KL: &str = "KL to the initial model plus open-text replay cuts general-ability forgetting";
// Not the papers' headline claims but what MSSR's ablations, METHODS.md §6's combinations and
// the DER++ paper ask: does each half of MSSR add to the other, does the KL term add to
// replay, and does DER++'s output matching add to plain replay of the same samples.
const MSSR_PARTS: &str = "MSSR's sampler (what) and scheduler (when) each add to the other \
                          (its ablations: full against the scheduler alone and the sampler alone)";
const DERPP: &str =
    "DER++'s output matching adds to replay at equal budget (DER++ against fixed replay)";
const KL_REPLAY: &str =
    "KL to the initial model adds to MSSR replay (a combination of METHODS.md §6)";

const fn claim(
    claim: &'static str,
    method: &'static str,
    reference: &'static str,
    metric: Metric,
    direction: Direction,
    by_family: bool,
) -> Comparison {
    Comparison {
        claim,
        method,
        reference,
        metric,
        direction,
        by_family,
    }
}

use Direction::{Higher, Lower};
use Metric::{Aa, Bwt, Forgetting, GeneralForgetting, Learning, TextLoss};

/// The papers' claims (issue 21), then MSSR's ablations, MSSR + KL and DER++, one comparison
/// per line.
#[rustfmt::skip]
pub const CLAIMS: [Comparison; 28] = [
    //    claim        method        reference               metric             sign    per family
    claim(MSSR,        "mssr",       "fixed-replay",         Aa,                Higher, true),
    claim(MSSR,        "mssr",       "fixed-replay",         Forgetting,        Lower,  true),
    claim(MSSR,        "mssr",       "loss-driven",          Aa,                Higher, true),
    claim(MSSR,        "mssr",       "loss-driven",          Forgetting,        Lower,  true),
    // Loss-driven replay at METHODS.md's defaults leaves budget unspent; its budget-matched
    // variant is the rule at its most eager (probe every step, trigger on any rise), so that it
    // spends as much of the budget as the rule can (the cost cells show each side's spend).
    claim(MSSR,        "mssr",       "loss-driven-matched",  Aa,                Higher, true),
    claim(MSSR,        "mssr",       "loss-driven-matched",  Forgetting,        Lower,  true),
    claim(MSSR,        "mssr",       "accuracy-supervised",  Aa,                Higher, true),
    claim(MSSR,        "mssr",       "accuracy-supervised",  Forgetting,        Lower,  true),
    // METHODS.md §3 asks for equal intervals as well as equal budgets: MSSR's sampler on fixed
    // replay's schedule replays on the same steps as fixed replay, so only *what* differs.
    claim(MSSR,        "mssr-sampler-only", "fixed-replay",  Aa,                Higher, true),
    claim(MSSR,        "mssr-sampler-only", "fixed-replay",  Forgetting,        Lower,  true),
    claim(SAM,         "sam",        "sequential",           Forgetting,        Lower,  false),
    claim(SAM,         "xsam",       "sequential",           Forgetting,        Lower,  false),
    claim(XSAM_REPLAY, "mssr-xsam",  "mssr",                 Forgetting,        Lower,  false),
    claim(XSAM_REPLAY, "mssr-xsam",  "mssr",                 Aa,                Higher, false),
    claim(KL,          "kl",         "sequential",           GeneralForgetting, Lower,  false),
    claim(KL,          "kl",         "sequential",           TextLoss,          Lower,  false),
    claim(KL,          "kl-corpus",  "sequential",           GeneralForgetting, Lower,  false),
    claim(KL,          "kl-corpus",  "sequential",           TextLoss,          Lower,  false),
    claim(KL,          "kl-corpus",  "kl",                   GeneralForgetting, Lower,  false),
    claim(KL,          "kl-corpus",  "kl",                   TextLoss,          Lower,  false),
    // Strength sampling against uniform sampling, both on MSSR's adaptive intervals.
    claim(MSSR_PARTS,  "mssr",       "mssr-scheduler-only",  Aa,                Higher, false),
    claim(MSSR_PARTS,  "mssr",       "mssr-scheduler-only",  Forgetting,        Lower,  false),
    // Adaptive intervals against a fixed interval, both sampling by strength.
    claim(MSSR_PARTS,  "mssr",       "mssr-sampler-only",    Aa,                Higher, false),
    claim(MSSR_PARTS,  "mssr",       "mssr-sampler-only",    Forgetting,        Lower,  false),
    claim(KL_REPLAY,   "mssr-kl",    "mssr",                 TextLoss,          Lower,  false),
    claim(KL_REPLAY,   "mssr-kl",    "mssr",                 Forgetting,        Lower,  false),
    claim(DERPP,       "derpp",      "fixed-replay",         Aa,                Higher, false),
    claim(DERPP,       "derpp",      "fixed-replay",         Forgetting,        Lower,  false),
];

/// The reference every method is compared with, and on what (each in its better direction).
pub const SEQUENTIAL: &str = "sequential";
/// The metrics of the comparisons against [`SEQUENTIAL`].
pub const AGAINST_SEQUENTIAL: [Metric; 5] = [Aa, Bwt, Forgetting, GeneralForgetting, TextLoss];

/// A claim about one method alone: its `metric` has the sign `direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The claim, in words.
    pub claim: &'static str,
    /// The method.
    pub method: &'static str,
    /// The measure.
    pub metric: Metric,
    /// Its predicted sign.
    pub direction: Direction,
}

/// What the suite must show of one method for the comparisons to mean anything (issue 21: a
/// suite where sequential fine-tuning neither learns nor forgets cannot separate methods).
pub const CHECKS: [Check; 2] = [
    Check {
        claim: "sequential fine-tuning learns each task",
        method: SEQUENTIAL,
        metric: Learning,
        direction: Higher,
    },
    Check {
        claim: "sequential fine-tuning forgets",
        method: SEQUENTIAL,
        metric: Forgetting,
        direction: Higher,
    },
];

/// One computed comparison (or check, with no reference).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The claim, in words.
    pub claim: String,
    /// The method.
    pub method: String,
    /// The reference (`None` for a one-method check).
    pub reference: Option<String>,
    /// The task family the metric is restricted to (`None`: all tasks).
    pub family: Option<String>,
    /// The metric.
    pub metric: Metric,
    /// The predicted sign.
    pub direction: Direction,
    /// `method − reference` (or the method's measure) with its interval.
    pub estimate: Estimate,
    /// What the interval says.
    pub verdict: Verdict,
}

impl Row {
    /// The verdict's label, marked `(1 seed)` when one seed is behind it: its interval then
    /// resamples test records only, and how much seeds differ is not in it.
    pub fn verdict_label(&self) -> String {
        match self.estimate.seeds {
            1 => format!("{} (1 seed)", self.verdict.label()),
            _ => self.verdict.label().to_string(),
        }
    }

    /// `mssr − fixed-replay`, `sequential`, with ` · reasoning` for a family.
    pub fn label(&self) -> String {
        let mut s = match &self.reference {
            Some(r) => format!("{} − {r}", self.method),
            None => self.method.clone(),
        };
        if let Some(f) = &self.family {
            let _ = write!(s, " · {f}");
        }
        s
    }
}

/// The comparisons of one suite.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteComparisons {
    /// Suite name.
    pub suite: String,
    /// Bootstrap replicates behind every interval.
    pub replicates: usize,
    /// The rows of [`CLAIMS`] whose methods both ran.
    pub claims: Vec<Row>,
    /// The per-family rows of the claims that name families.
    pub by_family: Vec<Row>,
    /// Task families and their tasks, in task order.
    pub families: Vec<(String, Vec<String>)>,
    /// Every method against [`SEQUENTIAL`] on [`AGAINST_SEQUENTIAL`].
    pub against_sequential: Vec<Row>,
    /// The rows of [`CHECKS`].
    pub checks: Vec<Row>,
    /// Where ↓F and the text-loss change came from.
    pub sources: Vec<String>,
    /// Comparisons left out, one line per reason.
    pub left_out: Vec<String>,
}

impl SuiteComparisons {
    /// Whether there is nothing to show: no comparison made, none left out.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
            && self.against_sequential.is_empty()
            && self.checks.is_empty()
            && self.left_out.is_empty()
    }
}

/// The paired comparisons of every suite in which some method ran at least 2 seeds, or whose
/// runs logged every record's score (suites sorted by name, like the report's). With one seed
/// an interval resamples test records only: it leaves out how much seeds differ, and the
/// tables' seed column says 1.
pub fn compare(runs: &[Run], rescores: &[Rescore], cfg: &BootstrapConfig) -> Vec<SuiteComparisons> {
    let (suites, _) = aggregate::group(runs);
    suites
        .iter()
        .filter(|s| {
            s.methods
                .iter()
                .any(|m| m.runs.len() >= 2 || m.runs.iter().any(|r| r.task_records().is_some()))
        })
        .map(|s| SuiteData::new(s, rescores, cfg).comparisons())
        .collect()
}

/// Where a comparison's cells come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// The accuracy matrix (all tasks, then each family).
    Matrix,
    /// The probe: a rescore file's backbone and final scores, or the runs' probe rows 0 and T.
    Probe,
    /// A corpus rescore file's backbone and final losses.
    Corpus,
}

/// Why a comparison has no estimate.
#[derive(Debug, Clone, PartialEq)]
enum Missing {
    /// Fewer than two seeds shared.
    Seeds(usize),
    /// No cells for this source.
    NoData,
}

/// Metrics computed from the matrix, for all tasks and for each family.
const MATRIX_METRICS: [Metric; 4] = [Aa, Bwt, Forgetting, Learning];

type Estimates = Result<Vec<Option<Estimate>>, Missing>;

/// A statistic that borrows the task scope it is restricted to.
type BoxedStatistic<'a> = Box<dyn Fn(&[Vec<f64>]) -> Option<f64> + 'a>;

struct SuiteData<'a> {
    group: &'a SuiteGroup<'a>,
    cfg: &'a BootstrapConfig,
    /// Task scopes of the matrix statistics: all tasks, then each family.
    scopes: Vec<(Option<String>, Vec<usize>)>,
    probe: Option<&'a Rescore>,
    corpus: Option<&'a Rescore>,
    cache: BTreeMap<(String, Option<String>, Source), Estimates>,
}

impl<'a> SuiteData<'a> {
    fn new(group: &'a SuiteGroup<'a>, rescores: &'a [Rescore], cfg: &'a BootstrapConfig) -> Self {
        let tasks = group.tasks();
        // Family of each task: the first run of the suite that names one.
        let mut by_family: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, task) in tasks.iter().enumerate() {
            let family = group.runs().find_map(|r| {
                let k = r.tasks.iter().position(|t| t == task)?;
                r.families.get(k).cloned().flatten()
            });
            if let Some(f) = family {
                match by_family.iter_mut().find(|(name, _)| *name == f) {
                    Some((_, idx)) => idx.push(i),
                    None => by_family.push((f, vec![i])),
                }
            }
        }
        let mut scopes = vec![(None, (0..tasks.len()).collect())];
        scopes.extend(by_family.into_iter().map(|(f, idx)| (Some(f), idx)));
        // The rescore files of this suite with the most records: of a task that is not one of
        // the suite's training tasks (a probe, or a probe added after the runs), and of a corpus.
        let best = |corpus: bool| {
            rescores
                .iter()
                .filter(|r| r.suite == group.name && r.is_corpus() == corpus)
                .filter(|r| corpus || r.task.as_ref().is_none_or(|t| !tasks.contains(t)))
                .max_by(|a, b| (a.records, &b.label).cmp(&(b.records, &a.label)))
        };
        Self {
            group,
            cfg,
            scopes,
            probe: best(false),
            corpus: best(true),
            cache: BTreeMap::new(),
        }
    }

    fn method(&self, name: &str) -> Option<&'a MethodGroup<'a>> {
        self.group.methods.iter().find(|m| m.name == name)
    }

    /// `(seed, grid)` of every run of `method` that has cells for `source`.
    fn grids(&self, method: &str, source: Source) -> Vec<(u64, Grid)> {
        let runs: Vec<&Run> = self
            .method(method)
            .map_or_else(Vec::new, |m| m.runs.clone());
        match source {
            Source::Matrix => runs
                .iter()
                .filter(|r| r.tasks == self.group.tasks())
                .map(|r| {
                    let grid = Grid {
                        points: r.rows.clone(),
                        records: r.task_records(),
                    };
                    (r.seed, grid)
                })
                .collect(),
            Source::Probe => match self.probe {
                Some(file) => rescore_grids(file, method),
                None => runs
                    .iter()
                    .filter(|r| r.probe_rows.len() >= 2 && !r.probes.is_empty())
                    .map(|r| {
                        let last = r.probe_rows.len() - 1;
                        let points = vec![r.probe_rows[0].clone(), r.probe_rows[last].clone()];
                        let records = r
                            .probe_records()
                            .filter(|p| p.len() == r.probe_rows.len())
                            .map(|p| vec![p[0].clone(), p[last].clone()]);
                        (r.seed, Grid { points, records })
                    })
                    .collect(),
            },
            Source::Corpus => self
                .corpus
                .map_or_else(Vec::new, |file| rescore_grids(file, method)),
        }
    }

    /// The statistics of `source`: for the matrix, [`MATRIX_METRICS`] for each scope in turn.
    fn statistics(&self, source: Source) -> Vec<BoxedStatistic<'_>> {
        match source {
            Source::Matrix => self
                .scopes
                .iter()
                .flat_map(|(_, tasks)| {
                    MATRIX_METRICS.iter().map(move |&m| {
                        Box::new(move |a: &[Vec<f64>]| match m {
                            Aa => bootstrap::average_accuracy(a, tasks),
                            Bwt => bootstrap::backward_transfer(a, tasks),
                            Forgetting => bootstrap::forgetting(a, tasks),
                            _ => bootstrap::learning(a, tasks),
                        }) as BoxedStatistic<'_>
                    })
                })
                .collect(),
            Source::Probe => vec![Box::new(bootstrap::first_minus_last)],
            Source::Corpus => vec![Box::new(bootstrap::last_minus_first)],
        }
    }

    /// Every statistic of `source` for `method − reference` (or `method` alone), computed once.
    fn estimates(&mut self, method: &str, reference: Option<&str>, source: Source) -> &Estimates {
        let key = (method.to_string(), reference.map(str::to_string), source);
        if !self.cache.contains_key(&key) {
            let value = self.compute(method, reference, source);
            self.cache.insert(key.clone(), value);
        }
        &self.cache[&key]
    }

    fn compute(&self, method: &str, reference: Option<&str>, source: Source) -> Estimates {
        let m = self.grids(method, source);
        let r = reference.map(|r| self.grids(r, source));
        if m.is_empty() || r.as_ref().is_some_and(Vec::is_empty) {
            return Err(Missing::NoData);
        }
        // The seeds both ran, in order.
        let seeds: Vec<u64> = m
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| r.as_ref().is_none_or(|r| r.iter().any(|(t, _)| t == s)))
            .collect();
        // One seed is enough where records can be resampled (the interval is then over test
        // records only); without per-record scores it takes two.
        let all_records = m
            .iter()
            .chain(r.iter().flatten())
            .all(|(_, g)| g.records.is_some());
        if seeds.len() < if all_records { 1 } else { 2 } {
            return Err(Missing::Seeds(seeds.len()));
        }
        let pick = |grids: &[(u64, Grid)]| -> Vec<Grid> {
            seeds
                .iter()
                .map(|s| grids.iter().find(|(t, _)| t == s).unwrap().1.clone())
                .collect()
        };
        let stats = self.statistics(source);
        let refs: Vec<Statistic<'_>> = stats.iter().map(|b| b.as_ref() as Statistic<'_>).collect();
        let label = format!("{source:?}");
        let stream = bootstrap::stream(&[method, reference.unwrap_or(""), &label]);
        Ok(match &r {
            Some(r) => bootstrap::paired(&pick(&m), &pick(r), &refs, self.cfg, stream),
            None => bootstrap::single(&pick(&m), &refs, self.cfg, stream),
        })
    }

    /// The estimate of `metric` on `family` (`None`: all tasks).
    fn estimate(
        &mut self,
        method: &str,
        reference: Option<&str>,
        metric: Metric,
        family: Option<&str>,
    ) -> Result<Option<Estimate>, Missing> {
        let (source, index) = match metric {
            GeneralForgetting => (Source::Probe, 0),
            TextLoss => (Source::Corpus, 0),
            m => {
                let scope = self
                    .scopes
                    .iter()
                    .position(|(f, _)| f.as_deref() == family)
                    .ok_or(Missing::NoData)?;
                let k = MATRIX_METRICS.iter().position(|&x| x == m).unwrap();
                (Source::Matrix, scope * MATRIX_METRICS.len() + k)
            }
        };
        match self.estimates(method, reference, source) {
            Ok(v) => Ok(v[index]),
            Err(e) => Err(e.clone()),
        }
    }

    fn row(
        &mut self,
        claim: &str,
        (method, reference): (&str, Option<&str>),
        metric: Metric,
        direction: Direction,
        family: Option<&str>,
        left_out: &mut Vec<LeftOut>,
    ) -> Option<Row> {
        let why = match self.estimate(method, reference, metric, family) {
            Ok(Some(estimate)) => {
                return Some(Row {
                    claim: claim.to_string(),
                    method: method.to_string(),
                    reference: reference.map(str::to_string),
                    family: family.map(str::to_string),
                    metric,
                    direction,
                    verdict: verdict(estimate.lo, estimate.hi, direction),
                    estimate,
                });
            }
            // Undefined (forgetting of a family whose only task is the last): nothing to say.
            Ok(None) if family.is_some() => return None,
            Ok(None) => "not defined on these runs".to_string(),
            Err(Missing::Seeds(n)) => format!("{n} shared seed{}", if n == 1 { "" } else { "s" }),
            Err(Missing::NoData) => match (metric, self.probe, self.corpus) {
                (GeneralForgetting, Some(f), _) | (TextLoss, _, Some(f)) => {
                    format!("not rescored in {}", f.label)
                }
                (GeneralForgetting, None, _) => "no probe scores".into(),
                (TextLoss, _, None) => "no corpus rescore file".into(),
                _ => "no runs".into(),
            },
        };
        let who = reference.map_or_else(|| method.to_string(), |r| format!("{method} − {r}"));
        let entry = LeftOut { who, metric, why };
        if !left_out.contains(&entry) {
            left_out.push(entry);
        }
        None
    }

    fn comparisons(mut self) -> SuiteComparisons {
        let mut left_out: Vec<LeftOut> = Vec::new();
        let ran = |s: &Self, m: &str| s.method(m).is_some();
        let mut claims = Vec::new();
        let mut by_family = Vec::new();
        let families: Vec<Option<String>> =
            self.scopes.iter().skip(1).map(|(f, _)| f.clone()).collect();
        for c in CLAIMS {
            if !ran(&self, c.method) || !ran(&self, c.reference) {
                continue;
            }
            let pair = (c.method, Some(c.reference));
            claims.extend(self.row(c.claim, pair, c.metric, c.direction, None, &mut left_out));
            if c.by_family {
                for f in &families {
                    by_family.extend(self.row(
                        c.claim,
                        pair,
                        c.metric,
                        c.direction,
                        f.as_deref(),
                        &mut left_out,
                    ));
                }
            }
        }
        let mut against_sequential = Vec::new();
        if ran(&self, SEQUENTIAL) {
            let names: Vec<&str> = self
                .group
                .methods
                .iter()
                .map(|m| m.name)
                .filter(|m| *m != SEQUENTIAL)
                .collect();
            for m in names {
                for metric in AGAINST_SEQUENTIAL {
                    against_sequential.extend(self.row(
                        "against sequential fine-tuning",
                        (m, Some(SEQUENTIAL)),
                        metric,
                        metric.better(),
                        None,
                        &mut left_out,
                    ));
                }
            }
        }
        let mut checks = Vec::new();
        for c in CHECKS {
            if ran(&self, c.method) {
                checks.extend(self.row(
                    c.claim,
                    (c.method, None),
                    c.metric,
                    c.direction,
                    None,
                    &mut left_out,
                ));
            }
        }
        let tasks = self.group.tasks();
        let families = self
            .scopes
            .iter()
            .skip(1)
            .map(|(f, idx)| {
                let names = idx.iter().map(|&i| tasks[i].clone()).collect();
                (f.clone().unwrap_or_default(), names)
            })
            .collect();
        let mut sources = Vec::new();
        let any = |rows: &[Row], m: Metric| rows.iter().any(|r| r.metric == m);
        let all_rows: Vec<Row> = claims.iter().chain(&against_sequential).cloned().collect();
        if any(&all_rows, GeneralForgetting) {
            sources.push(match self.probe {
                Some(f) => format!(
                    "↓F from the rescore file {} ({} records; backbone − final adapter)",
                    f.label, f.records
                ),
                None => "↓F from the runs' own probe rows (before training − after the last stage)"
                    .to_string(),
            });
        }
        if let (true, Some(f)) = (any(&all_rows, TextLoss), self.corpus) {
            sources.push(format!(
                "text-loss change from the rescore file {} ({} passages): the mean over passages of each passage's \
                 loss (nats per token) with the final adapter − with the backbone, every passage weighing the same",
                f.label, f.records
            ));
        }
        SuiteComparisons {
            suite: self.group.name.to_string(),
            replicates: self.cfg.replicates.max(1),
            claims,
            by_family,
            families,
            against_sequential,
            checks,
            sources,
            left_out: summarise(&left_out),
        }
    }
}

/// A comparison that could not be made.
#[derive(Debug, Clone, PartialEq)]
struct LeftOut {
    /// `mssr − fixed-replay`, or one method.
    who: String,
    metric: Metric,
    why: String,
}

/// One line per reason: `1 shared seed: mssr − accuracy-supervised (AA, F), agem − sequential
/// (AA, BWT, F, ↓F)`; a missing source once for its metric (`text-loss change: no corpus
/// rescore file`).
fn summarise(left_out: &[LeftOut]) -> Vec<String> {
    let mut reasons: Vec<&str> = Vec::new();
    for l in left_out {
        if !reasons.contains(&l.why.as_str()) {
            reasons.push(&l.why);
        }
    }
    let mut out = Vec::new();
    for why in reasons {
        let entries: Vec<&LeftOut> = left_out.iter().filter(|l| l.why == why).collect();
        let source_missing = matches!(why, "no probe scores" | "no corpus rescore file");
        if source_missing {
            let metric = entries[0].metric;
            out.push(format!("{}: {why}", metric.label()));
            continue;
        }
        let mut whos: Vec<&str> = Vec::new();
        for l in &entries {
            if !whos.contains(&l.who.as_str()) {
                whos.push(&l.who);
            }
        }
        let list = whos
            .iter()
            .map(|w| {
                let metrics: Vec<&str> = entries
                    .iter()
                    .filter(|l| l.who == *w)
                    .map(|l| l.metric.label())
                    .collect();
                format!("{w} ({})", metrics.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        out.push(format!("{why}: {list}"));
    }
    out
}

/// `(seed, grid)` of every entry of `method` in a rescore file: row 0 the run's backbone, row 1
/// its final adapter, one column. With per-record scores the cells are their means, each record
/// (or passage) weighing the same: for a task that is the file's score; for a corpus, whose
/// score weighs passages by their tokens, it is the mean of the per-passage losses.
fn rescore_grids(file: &Rescore, method: &str) -> Vec<(u64, Grid)> {
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let mut out: Vec<(u64, Grid)> = Vec::new();
    for r in file.runs.iter().filter(|r| r.method == method) {
        let Some(base) = file.backbone_of(r) else {
            continue;
        };
        if out.iter().any(|(s, _)| *s == r.seed) {
            continue;
        }
        let grid = if !base.per_record.is_empty() && r.per_record.len() == base.per_record.len() {
            Grid {
                points: vec![vec![mean(&base.per_record)], vec![mean(&r.per_record)]],
                records: Some(vec![
                    vec![base.per_record.clone()],
                    vec![r.per_record.clone()],
                ]),
            }
        } else {
            Grid {
                points: vec![vec![base.score], vec![r.score]],
                records: None,
            }
        };
        out.push((r.seed, grid));
    }
    out.sort_by_key(|(s, _)| *s);
    out
}

/// `+0.021 [-0.010, +0.050]`.
fn fmt_interval(e: &Estimate, decimals: usize) -> String {
    format!(
        "{:+.*} [{:+.*}, {:+.*}]",
        decimals, e.point, decimals, e.lo, decimals, e.hi
    )
}

/// The cost cells of a claim row (`method / reference`, means over seeds): replayed samples (the
/// spend an equal-budget comparison rests on), optimizer steps, forward + backward passes,
/// tokens, wall seconds; then each side's strategy cost.
fn cost_cells(group: &SuiteGroup<'_>, method: &str, reference: &str) -> [String; 6] {
    let mean = |name: &str, f: &dyn Fn(&Run) -> Option<f64>| {
        group.methods.iter().find(|m| m.name == name).and_then(|m| {
            let xs: Vec<f64> = m.runs.iter().filter_map(|r| f(r)).collect();
            crate::stats::mean_std(&xs).map(|s| s.mean)
        })
    };
    let pair = |f: &dyn Fn(&Run) -> Option<f64>, show: &dyn Fn(f64) -> String| {
        let side = |name| mean(name, f).map_or_else(|| "–".to_string(), show);
        format!("{} / {}", side(method), side(reference))
    };
    let count = |v: f64| aggregate::fmt_count(v.round());
    let strategy = |name: &str| {
        group
            .methods
            .iter()
            .find(|m| m.name == name)
            .map_or_else(|| "–".to_string(), aggregate::strategy_cost)
    };
    [
        pair(&|r| r.metrics.cost("replayed_samples"), &count),
        pair(&|r| r.metrics.cost("optimizer_steps"), &count),
        pair(
            &|r| Some(r.metrics.cost("forward_passes")? + r.metrics.cost("backward_passes")?),
            &count,
        ),
        pair(&|r| r.metrics.cost("tokens"), &count),
        pair(&|r| r.metrics.cost("wall_seconds"), &|v| format!("{v:.0}")),
        format!("{} / {}", strategy(method), strategy(reference)),
    ]
}

/// The file name of a suite's forest plot of `part` (`claims` or `against-sequential`), written
/// beside the Markdown summary by [`crate::write_report`].
pub(crate) fn forest_file(suite: &str, part: &str) -> String {
    let slug: String = suite
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("forest-{slug}-{part}.svg")
}

/// The rows of the claims forest plot: claims, per-family rows, checks.
fn claim_forest_rows(c: &SuiteComparisons) -> Vec<&Row> {
    c.claims
        .iter()
        .chain(&c.by_family)
        .chain(&c.checks)
        .collect()
}

/// The forest plots of a suite: `(file name, SVG)` for the claims (with the per-family rows
/// and the checks) and for every method against sequential; a plot without rows is left out.
pub fn forest_plots(c: &SuiteComparisons) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rows = claim_forest_rows(c);
    if !rows.is_empty() {
        out.push((
            forest_file(&c.suite, "claims"),
            forest(
                &rows,
                &format!("paired differences of the claims, suite {}", c.suite),
            ),
        ));
    }
    let rows: Vec<&Row> = c.against_sequential.iter().collect();
    if !rows.is_empty() {
        out.push((
            forest_file(&c.suite, "against-sequential"),
            forest(
                &rows,
                &format!("every method against sequential, suite {}", c.suite),
            ),
        ));
    }
    out
}

/// A forest plot: one panel per metric (its own x axis, a dashed zero line, which side is
/// better), one row per comparison with its point and 95% interval, coloured by verdict, and
/// the numbers and verdict at the right.
pub fn forest(rows: &[&Row], title: &str) -> String {
    const ROW: f64 = 20.0;
    const FS: f64 = 11.0;
    const PLOT_W: f64 = 320.0;
    // One panel per metric, comparisons before one-method checks.
    let mut panels: Vec<(bool, Metric)> = rows
        .iter()
        .map(|r| (r.reference.is_none(), r.metric))
        .collect();
    panels.sort();
    panels.dedup();
    let label_w = rows
        .iter()
        .map(|r| text_width(&r.label(), FS))
        .fold(0.0, f64::max);
    let value_w = rows
        .iter()
        .map(|r| {
            text_width(
                &format!(
                    "{}  {}",
                    fmt_interval(&r.estimate, r.metric.decimals()),
                    r.verdict_label()
                ),
                FS,
            )
        })
        .fold(0.0, f64::max);
    let left = label_w + 16.0;
    let right = left + PLOT_W;
    let width = right + 14.0 + value_w + 8.0;
    // Per panel: a title line, the rows, an axis.
    let panel_h = |n: usize| 22.0 + n as f64 * ROW + 30.0;
    let in_panel =
        |r: &Row, (check, m): (bool, Metric)| r.reference.is_none() == check && r.metric == m;
    let height: f64 = 6.0
        + panels
            .iter()
            .map(|&p| panel_h(rows.iter().filter(|r| in_panel(r, p)).count()) + 8.0)
            .sum::<f64>();
    let mut s = Svg::new(width, height, title);
    let mut y0 = 6.0;
    for (check, m) in panels {
        let panel: Vec<&&Row> = rows.iter().filter(|r| in_panel(r, (check, m))).collect();
        let lo = panel
            .iter()
            .map(|r| r.estimate.lo.min(r.estimate.point))
            .fold(0.0, f64::min);
        let hi = panel
            .iter()
            .map(|r| r.estimate.hi.max(r.estimate.point))
            .fold(0.0, f64::max);
        let (d0, d1, ticks) = numeric_ticks(lo, hi, 5);
        let top = y0 + 22.0;
        let bottom = top + panel.len() as f64 * ROW;
        let f = Frame {
            left,
            top,
            right,
            bottom,
            x: Scale::new(d0, d1, left, right),
            y: Scale::new(0.0, 1.0, bottom, top),
        };
        // A one-method check claims a sign, not "better".
        let better = match (check, m.better()) {
            (true, _) => "",
            (false, Direction::Higher) => "better →",
            (false, Direction::Lower) => "← better",
        };
        let what = if check {
            "one method"
        } else {
            "method − reference"
        };
        s.text(
            left,
            y0 + 13.0,
            &format!("{} ({what})", m.label()),
            "start",
            12.0,
            r##"fill="#222" font-weight="600""##,
        );
        s.text(right, y0 + 13.0, better, "end", FS, r##"fill="#555""##);
        f.axes(&mut s, &ticks, &[], "", "");
        let zero = f.x.at(0.0);
        s.line(zero, top, zero, bottom, "#444", r#"stroke-dasharray="4 3""#);
        for (k, r) in panel.iter().enumerate() {
            let y = top + (k as f64 + 0.5) * ROW;
            let col = r.verdict.colour();
            s.text(
                left - 8.0,
                y + 4.0,
                &r.label(),
                "end",
                FS,
                r##"fill="#222""##,
            );
            let e = &r.estimate;
            s.line(
                f.x.at(e.lo),
                y,
                f.x.at(e.hi),
                y,
                col,
                r#"stroke-width="2" class="forest-interval""#,
            );
            for x in [e.lo, e.hi] {
                s.line(
                    f.x.at(x),
                    y - 4.0,
                    f.x.at(x),
                    y + 4.0,
                    col,
                    r#"stroke-width="1.5""#,
                );
            }
            s.circle(f.x.at(e.point), y, 3.5, col, r#"class="forest-point""#);
            s.text(
                right + 14.0,
                y + 4.0,
                &format!("{}  {}", fmt_interval(e, m.decimals()), r.verdict_label()),
                "start",
                FS,
                &format!(r#"fill="{col}""#),
            );
        }
        y0 = bottom + 30.0 + 8.0;
    }
    s.finish()
}

/// Escapes text for a Markdown table cell.
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

/// What the section says about how the intervals were computed (plain text).
fn method_note(c: &SuiteComparisons) -> String {
    format!(
        "Δ = method − reference, the mean over the seeds both ran of each seed's metric; 95% interval: the \
         2.5th to 97.5th percentile of {} paired bootstrap replicates, each drawing seeds and (where the runs \
         logged per-record scores) every task's test records with replacement, the same draw for both methods \
         (docs/results-format.md, \"Intervals\"). Verdict: held when the interval excludes 0 on the claimed \
         side, not held when it excludes 0 on the other, otherwise undecided at this power; a verdict \
         from one seed is marked (1 seed): its interval resamples records only",
        c.replicates
    )
}

/// The `method / reference` label of a metric's sign.
fn claimed(r: &Row) -> String {
    format!("{} {}", r.metric.label(), r.direction.label())
}

/// The Markdown section of one suite's comparisons.
pub(crate) fn markdown(c: &SuiteComparisons, group: &SuiteGroup<'_>, out: &mut String) {
    if c.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Paired differences (95% bootstrap intervals)\n");
    let _ = writeln!(out, "{}.\n", md(&method_note(c)));
    for (file, _) in forest_plots(c) {
        let _ = writeln!(out, "![forest plot]({file})\n");
    }
    if !c.claims.is_empty() {
        out.push_str("#### Claims\n\n| claim | comparison | claimed | Δ [95% CI] | verdict | seeds | resampled | replayed | steps | passes | tokens | wall s | strategy cost |\n|---|---|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|\n");
        for (k, r) in c.claims.iter().enumerate() {
            let costs = cost_cells(group, &r.method, r.reference.as_deref().unwrap_or(""));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                md(claim_once(&c.claims, k)),
                md(&r.label()),
                md(&claimed(r)),
                fmt_interval(&r.estimate, r.metric.decimals()),
                r.verdict_label(),
                r.estimate.seeds,
                r.estimate.resampling.label(),
                costs.iter().map(|c| md(c)).collect::<Vec<_>>().join(" | ")
            );
        }
        out.push_str(
            "\nCost cells: method / reference, means over seeds (replayed: replayed samples; passes: forward + backward).\n\n",
        );
    }
    if !c.by_family.is_empty() {
        out.push_str("#### By task family\n\n");
        let fams = c
            .families
            .iter()
            .map(|(f, t)| format!("{} ({})", md(f), md(&t.join(", "))))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            out,
            "AA and F restricted to each family's tasks (F leaves out the last task of the stream): {fams}.\n"
        );
        out.push_str("| family | comparison | claimed | Δ [95% CI] | verdict | seeds | resampled |\n|---|---|---|---:|---|---:|---|\n");
        for r in &c.by_family {
            let _ = writeln!(
                out,
                "| {} | {} − {} | {} | {} | {} | {} | {} |",
                md(r.family.as_deref().unwrap_or("")),
                md(&r.method),
                md(r.reference.as_deref().unwrap_or("")),
                md(&claimed(r)),
                fmt_interval(&r.estimate, r.metric.decimals()),
                r.verdict_label(),
                r.estimate.seeds,
                r.estimate.resampling.label()
            );
        }
        out.push('\n');
    }
    if !c.against_sequential.is_empty() {
        out.push_str("#### Every method against sequential fine-tuning\n\n");
        out.push_str("Δ = method − sequential [95% CI], verdict on the better side (AA, BWT above 0; F, ↓F, text-loss change below; undecided: at this power); † seeds resampled only.\n\n");
        out.push_str("| method |");
        for m in AGAINST_SEQUENTIAL {
            let _ = write!(out, " {} |", m.label());
        }
        out.push_str(" seeds |\n|---|");
        for _ in AGAINST_SEQUENTIAL {
            out.push_str("---:|");
        }
        out.push_str("---:|\n");
        for (method, cells, seeds) in against_sequential_rows(c) {
            let _ = write!(out, "| {} |", md(method));
            for cell in cells {
                let _ = write!(
                    out,
                    " {} |",
                    cell.map_or_else(|| "–".to_string(), cell_text)
                );
            }
            let _ = writeln!(out, " {seeds} |");
        }
        out.push('\n');
    }
    if !c.checks.is_empty() {
        out.push_str("#### One method alone\n\n| check | method | claimed | estimate [95% CI] | verdict | seeds | resampled |\n|---|---|---|---:|---|---:|---|\n");
        for r in &c.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                md(&r.claim),
                md(&r.method),
                md(&claimed(r)),
                fmt_interval(&r.estimate, r.metric.decimals()),
                r.verdict_label(),
                r.estimate.seeds,
                r.estimate.resampling.label()
            );
        }
        out.push_str("\nlearning = mean over tasks of (score after the task's own stage − score before it).\n\n");
    }
    for s in &c.sources {
        let _ = writeln!(out, "{}.", md(s));
    }
    if !c.left_out.is_empty() {
        let _ = writeln!(out, "\nNot compared: {}.", md(&c.left_out.join("; ")));
    }
    out.push('\n');
}

/// The claim of row `k`, or nothing when the row above states it already.
fn claim_once(rows: &[Row], k: usize) -> &str {
    if k > 0 && rows[k - 1].claim == rows[k].claim {
        ""
    } else {
        &rows[k].claim
    }
}

/// `+0.021 [-0.010, +0.050] held`, with `†` when only seeds were resampled (`undecided` short
/// for undecided at this power).
fn cell_text(r: &Row) -> String {
    let dagger = match r.estimate.resampling {
        bootstrap::Resampling::SeedsOnly => "†",
        bootstrap::Resampling::SeedsAndRecords => "",
    };
    let verdict = match r.verdict {
        Verdict::Undecided => "undecided".to_string(),
        _ => r.verdict_label(),
    };
    format!(
        "{}{dagger} {verdict}",
        fmt_interval(&r.estimate, r.metric.decimals()),
    )
}

/// The against-sequential rows grouped by method: one cell per metric of
/// [`AGAINST_SEQUENTIAL`], and the most seeds any cell used.
fn against_sequential_rows(c: &SuiteComparisons) -> Vec<(&str, Vec<Option<&Row>>, usize)> {
    let mut methods: Vec<&str> = Vec::new();
    for r in &c.against_sequential {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    methods
        .into_iter()
        .map(|m| {
            let cells: Vec<Option<&Row>> = AGAINST_SEQUENTIAL
                .iter()
                .map(|&metric| {
                    c.against_sequential
                        .iter()
                        .find(|r| r.method == m && r.metric == metric)
                })
                .collect();
            let seeds = cells
                .iter()
                .flatten()
                .map(|r| r.estimate.seeds)
                .max()
                .unwrap_or(0);
            (m, cells, seeds)
        })
        .collect()
}

/// The HTML section of one suite's comparisons.
pub(crate) fn html(c: &SuiteComparisons, group: &SuiteGroup<'_>, h: &mut String) {
    if c.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h3>Paired differences (95% bootstrap intervals)</h3>\n<p class=\"note\">{}.</p>",
        escape(&method_note(c))
    );
    let verdict_cell = |r: &Row| {
        format!(
            "<td class=\"verdict\" style=\"color:{}\">{}</td>",
            r.verdict.colour(),
            r.verdict_label()
        )
    };
    if !c.claims.is_empty() {
        h.push_str("<div class=\"scroll\"><table class=\"claims\">\n<thead><tr><th>claim</th><th>comparison</th><th>claimed</th><th>Δ [95% CI]</th><th>verdict</th><th>seeds</th><th>resampled</th><th><abbr title=\"replayed samples, method / reference (means over seeds)\">replayed</abbr></th><th><abbr title=\"optimizer steps, method / reference (means over seeds)\">steps</abbr></th><th><abbr title=\"forward + backward passes, method / reference\">passes</abbr></th><th>tokens</th><th>wall s</th><th>strategy cost</th></tr></thead>\n<tbody>\n");
        for (k, r) in c.claims.iter().enumerate() {
            let costs = cost_cells(group, &r.method, r.reference.as_deref().unwrap_or(""));
            let _ = write!(
                h,
                "<tr><td class=\"claim\">{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td><td>{}</td>",
                escape(claim_once(&c.claims, k)),
                escape(&r.label()),
                escape(&claimed(r)),
                fmt_interval(&r.estimate, r.metric.decimals()),
                verdict_cell(r),
                r.estimate.seeds,
                r.estimate.resampling.label()
            );
            for cell in costs {
                let _ = write!(h, "<td>{}</td>", escape(&cell));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table></div>\n<p class=\"note\">Cost cells: method / reference, means over seeds (replayed: replayed samples; passes: forward + backward).</p>\n");
    }
    if !c.by_family.is_empty() {
        let fams = c
            .families
            .iter()
            .map(|(f, t)| format!("{f} ({})", t.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            h,
            "<h3>By task family</h3>\n<p class=\"note\">AA and F restricted to each family's tasks (F leaves out the last task of the stream): {}.</p>",
            escape(&fams)
        );
        h.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>family</th><th>comparison</th><th>claimed</th><th>Δ [95% CI]</th><th>verdict</th><th>seeds</th><th>resampled</th></tr></thead>\n<tbody>\n");
        for r in &c.by_family {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{} − {}</td><td>{}</td><td>{}</td>{}<td>{}</td><td>{}</td></tr>",
                escape(r.family.as_deref().unwrap_or("")),
                escape(&r.method),
                escape(r.reference.as_deref().unwrap_or("")),
                escape(&claimed(r)),
                fmt_interval(&r.estimate, r.metric.decimals()),
                verdict_cell(r),
                r.estimate.seeds,
                r.estimate.resampling.label()
            );
        }
        h.push_str("</tbody></table></div>\n");
    }
    if !c.checks.is_empty() {
        h.push_str("<h3>One method alone</h3>\n<div class=\"scroll\"><table>\n<thead><tr><th>check</th><th>method</th><th>claimed</th><th>estimate [95% CI]</th><th>verdict</th><th>seeds</th><th>resampled</th></tr></thead>\n<tbody>\n");
        for r in &c.checks {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td><td>{}</td></tr>",
                escape(&r.claim),
                escape(&r.method),
                escape(&claimed(r)),
                fmt_interval(&r.estimate, r.metric.decimals()),
                verdict_cell(r),
                r.estimate.seeds,
                r.estimate.resampling.label()
            );
        }
        h.push_str("</tbody></table></div>\n<p class=\"note\">learning = mean over tasks of (score after the task's own stage − score before it).</p>\n");
    }
    let rows = claim_forest_rows(c);
    if !rows.is_empty() {
        let _ = writeln!(
            h,
            "<div class=\"grid\"><figure class=\"forest\"><figcaption>Forest plot: the claims <span class=\"sub\">· point and 95% interval; green held, red not held, grey undecided</span></figcaption>{}</figure></div>",
            forest(
                &rows,
                &format!("paired differences of the claims, suite {}", c.suite)
            )
        );
    }
    if !c.against_sequential.is_empty() {
        h.push_str("<h3>Every method against sequential fine-tuning</h3>\n<p class=\"note\">Δ = method − sequential [95% CI], verdict on the better side (AA, BWT above 0; F, ↓F, text-loss change below; undecided: at this power); † seeds resampled only.</p>\n<div class=\"scroll\"><table>\n<thead><tr><th>method</th>");
        for m in AGAINST_SEQUENTIAL {
            let _ = write!(h, "<th>{}</th>", escape(m.label()));
        }
        h.push_str("<th>seeds</th></tr></thead>\n<tbody>\n");
        for (method, cells, seeds) in against_sequential_rows(c) {
            let _ = write!(h, "<tr><td>{}</td>", escape(method));
            for cell in cells {
                match cell {
                    Some(r) => {
                        let _ = write!(
                            h,
                            "<td style=\"color:{}\">{}</td>",
                            r.verdict.colour(),
                            escape(&cell_text(r))
                        );
                    }
                    None => h.push_str("<td>–</td>"),
                }
            }
            let _ = writeln!(h, "<td>{seeds}</td></tr>");
        }
        h.push_str("</tbody></table></div>\n");
        let rows: Vec<&Row> = c.against_sequential.iter().collect();
        let _ = writeln!(
            h,
            "<div class=\"grid\"><figure class=\"forest\"><figcaption>Forest plot: every method against sequential</figcaption>{}</figure></div>",
            forest(
                &rows,
                &format!("every method against sequential, suite {}", c.suite)
            )
        );
    }
    for s in &c.sources {
        let _ = writeln!(h, "<p class=\"note\">{}.</p>", escape(s));
    }
    if !c.left_out.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"note\">Not compared: {}.</p>",
            escape(&c.left_out.join("; "))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::{Resampling, SplitMix64};
    use crate::events::{EvalLine, LogEvent};
    use crate::testdata::write_json;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn verdict_reads_the_interval_against_the_claimed_sign() {
        use Verdict::*;
        // Claimed above 0.
        assert_eq!(verdict(0.01, 0.05, Higher), Held);
        assert_eq!(verdict(-0.05, -0.01, Higher), NotHeld);
        assert_eq!(verdict(-0.01, 0.05, Higher), Undecided);
        // Claimed below 0.
        assert_eq!(verdict(-0.05, -0.01, Lower), Held);
        assert_eq!(verdict(0.01, 0.05, Lower), NotHeld);
        assert_eq!(verdict(-0.05, 0.01, Lower), Undecided);
        // An interval touching 0 excludes nothing.
        assert_eq!(verdict(0.0, 0.05, Higher), Undecided);
        assert_eq!(verdict(-0.05, 0.0, Lower), Undecided);
        assert_eq!(verdict(0.0, 0.0, Lower), Undecided);
        assert_eq!(Undecided.label(), "undecided at this power");
    }

    #[test]
    fn every_claimed_method_has_a_method_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/methods");
        let has = |m: &str| dir.join(format!("{m}.toml")).is_file();
        for c in CLAIMS {
            assert!(has(c.method) && has(c.reference), "{c:?}");
            // A claim predicts the metric's better side.
            assert_eq!(c.direction, c.metric.better(), "{c:?}");
        }
        for c in CHECKS {
            assert!(has(c.method), "{c:?}");
        }
        assert!(has(SEQUENTIAL));
    }

    const TASKS: [&str; 3] = ["csqa", "numglue", "agnews"];
    const FAMILIES: [&str; 3] = ["multiple_choice", "reasoning", "multiple_choice"];
    const RECORDS: usize = 40;
    const PROBE_RECORDS: usize = 20;

    /// The chance that a record of difficulty `d` (uniform in [0, 1)) is answered right by a
    /// model whose cell score is `p`: right when `d < p`, so a cell's records are the same
    /// records in every run, easier ones right first.
    fn right(d: f64, p: f64) -> f64 {
        if d < p { 1.0 } else { 0.0 }
    }

    /// Per-record scores of one cell: each record right when its difficulty, jittered per run,
    /// is below `p`.
    fn cell(rng: &mut SplitMix64, difficulty: &[f64], p: f64) -> Vec<f64> {
        difficulty
            .iter()
            .map(|&d| {
                let jitter = ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.2;
                right(d + jitter, p)
            })
            .collect()
    }

    /// Cell probabilities after each stage of three tasks, scored 0.3 before training, `learn`
    /// after their own stage and `keep` at the end of the stream.
    fn probabilities(learn: f64, keep: f64) -> Vec<Vec<f64>> {
        vec![
            vec![0.3, 0.3, 0.3],
            vec![learn, 0.3, 0.3],
            vec![(learn + keep) / 2.0, learn, 0.3],
            vec![keep, keep, learn],
        ]
    }

    /// Writes `<root>/<suite>/<method>/<seed>/` with per-record eval lines (or without, when
    /// `per_record` is false), tasks with families, one probe, and the metrics of the matrix.
    fn write_run(
        root: &Path,
        method: &str,
        seed: u64,
        probs: &[Vec<f64>],
        per_record: bool,
        cost: f64,
    ) {
        let dir = root.join("power").join(method).join(seed.to_string());
        let mut rng = SplitMix64::new(bootstrap::stream(&[method]) ^ seed);
        // The suite's records: the same difficulties in every run.
        let mut drng = SplitMix64::new(99);
        let difficulty: Vec<Vec<f64>> = (0..4)
            .map(|_| {
                (0..RECORDS)
                    .map(|_| (drng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
                    .collect()
            })
            .collect();
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
        let mut rows = Vec::new();
        let mut probe_rows = Vec::new();
        let mut log = String::new();
        for (stage, p) in probs.iter().enumerate() {
            let mut recs: Vec<Vec<f64>> = (0..3)
                .map(|t| cell(&mut rng, &difficulty[t], p[t]))
                .collect();
            // The probe: 0.6 before training, falling by 0.05 a stage.
            let probe = cell(
                &mut rng,
                &difficulty[3][..PROBE_RECORDS],
                0.6 - 0.05 * stage as f64,
            );
            rows.push(recs.iter().map(|r| mean(r)).collect::<Vec<f64>>());
            probe_rows.push(vec![mean(&probe)]);
            recs.push(probe);
            let line = LogEvent::Eval(EvalLine {
                stage,
                step: 10 * stage as u64,
                scores: rows[stage].clone(),
                probe_scores: probe_rows[stage].clone(),
                seconds: None,
                task_seconds: Vec::new(),
                generative_seconds: None,
                per_record: if per_record { recs } else { Vec::new() },
            });
            log.push_str(&line.to_value().to_string());
            log.push('\n');
        }
        let all = [0, 1, 2];
        let spec_tasks: Vec<serde_json::Value> = TASKS
            .iter()
            .zip(FAMILIES)
            .map(|(t, f)| json!({"name": t, "family": f}))
            .collect();
        write_json(
            &dir.join("run.json"),
            &json!({"suite": "power", "method": method, "seed": seed, "status": "complete",
                    "tasks": TASKS, "probes": ["probe"],
                    "suite_spec": {"name": "power", "tasks": spec_tasks}}),
        );
        write_json(
            &dir.join("matrix.json"),
            &json!({"tasks": TASKS, "probes": ["probe"], "rows": rows, "probe_rows": probe_rows}),
        );
        write_json(
            &dir.join("metrics.json"),
            &json!({"aa": bootstrap::average_accuracy(&rows, &all),
                    "bwt": bootstrap::backward_transfer(&rows, &all),
                    "forgetting": bootstrap::forgetting(&rows, &all),
                    "general_forgetting": bootstrap::first_minus_last(&probe_rows),
                    "cost": {"replayed_samples": cost + 4.0, "optimizer_steps": 24, "forward_passes": cost, "backward_passes": cost,
                             "tokens": 1000.0 * cost, "wall_seconds": 10.0 * cost}}),
        );
        std::fs::write(dir.join("log.jsonl"), log).unwrap();
    }

    /// A suite of three seeds: sequential learns (0.3 → 0.8) and forgets (to 0.4); mssr learns
    /// as much and keeps 0.75; fixed-replay is sequential again (no difference).
    fn write_suite(root: &Path) {
        for seed in 0..3 {
            write_run(
                root,
                "sequential",
                seed,
                &probabilities(0.8, 0.4),
                true,
                24.0,
            );
            write_run(
                root,
                "fixed-replay",
                seed,
                &probabilities(0.8, 0.4),
                true,
                30.0,
            );
            write_run(root, "mssr", seed, &probabilities(0.8, 0.75), true, 28.0);
        }
    }

    fn row<'a>(rows: &'a [Row], method: &str, reference: Option<&str>, metric: Metric) -> &'a Row {
        rows.iter()
            .find(|r| {
                r.method == method && r.reference.as_deref() == reference && r.metric == metric
            })
            .unwrap_or_else(|| panic!("no row {method} − {reference:?} on {metric:?}: {rows:#?}"))
    }

    fn comparisons(root: &Path) -> SuiteComparisons {
        let runs = crate::load_runs(root).unwrap();
        let rescores = crate::load_rescores(root).unwrap();
        let mut all = compare(&runs, &rescores, &BootstrapConfig::default());
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    #[test]
    fn a_synthetic_suite_gets_verdicts_that_match_its_known_differences() {
        let dir = tempfile::tempdir().unwrap();
        write_suite(dir.path());
        let c = comparisons(dir.path());
        // mssr keeps 0.75 where fixed replay falls to 0.4: AA up by about (0.35 + 0.35) / 3,
        // F down by 0.4 − 0.05 = 0.35 or so; both held, on seeds × records.
        let aa = row(&c.claims, "mssr", Some("fixed-replay"), Aa);
        assert_eq!(aa.verdict, Verdict::Held, "{aa:?}");
        assert_eq!(aa.estimate.resampling, Resampling::SeedsAndRecords);
        assert_eq!(aa.estimate.seeds, 3);
        assert!(
            aa.estimate.lo < 0.7 / 3.0 && 0.7 / 3.0 < aa.estimate.hi,
            "{aa:?}"
        );
        let f = row(&c.claims, "mssr", Some("fixed-replay"), Forgetting);
        assert_eq!(f.verdict, Verdict::Held, "{f:?}");
        assert!(f.estimate.hi < -0.2, "{f:?}");
        // Fixed replay is sequential fine-tuning again: no difference to find.
        for m in [Aa, Forgetting] {
            let r = row(&c.against_sequential, "fixed-replay", Some(SEQUENTIAL), m);
            assert_eq!(r.verdict, Verdict::Undecided, "{r:?}");
            assert!(r.estimate.lo < 0.0 && 0.0 < r.estimate.hi, "{r:?}");
        }
        // Sequential learns 0.5 per task and forgets.
        let learns = row(&c.checks, SEQUENTIAL, None, Learning);
        assert_eq!(learns.verdict, Verdict::Held, "{learns:?}");
        assert!(
            learns.estimate.lo < 0.5 && 0.5 < learns.estimate.hi,
            "{learns:?}"
        );
        assert_eq!(
            row(&c.checks, SEQUENTIAL, None, Forgetting).verdict,
            Verdict::Held
        );
        // Per family: multiple choice (tasks 0 and 2; F on task 0 alone) and reasoning (task 1).
        assert_eq!(
            c.families,
            [
                (
                    "multiple_choice".to_string(),
                    vec!["csqa".to_string(), "agnews".to_string()]
                ),
                ("reasoning".to_string(), vec!["numglue".to_string()]),
            ]
        );
        let fam: Vec<(&str, Metric)> = c
            .by_family
            .iter()
            .filter(|r| r.reference.as_deref() == Some("fixed-replay"))
            .map(|r| (r.family.as_deref().unwrap(), r.metric))
            .collect();
        assert_eq!(
            fam,
            [
                ("multiple_choice", Aa),
                ("reasoning", Aa),
                ("multiple_choice", Forgetting),
                ("reasoning", Forgetting)
            ]
        );
        // Loss-driven and accuracy-supervised replay did not run: no rows, no notes about them.
        assert!(
            c.claims
                .iter()
                .all(|r| r.reference.as_deref() != Some("loss-driven"))
        );
        assert!(
            c.left_out.iter().all(|l| !l.contains("loss-driven")),
            "{:?}",
            c.left_out
        );
        // ↓F from the runs' probe rows; no corpus file, so no text-loss change, and it says so.
        let gf = row(
            &c.against_sequential,
            "mssr",
            Some(SEQUENTIAL),
            GeneralForgetting,
        );
        assert_eq!(gf.estimate.resampling, Resampling::SeedsAndRecords);
        assert!(c.sources[0].contains("probe rows"), "{:?}", c.sources);
        assert_eq!(c.left_out, ["text-loss change: no corpus rescore file"]);
    }

    #[test]
    fn the_point_estimate_is_the_difference_of_the_runs_metrics_json_means() {
        let dir = tempfile::tempdir().unwrap();
        write_suite(dir.path());
        let runs = crate::load_runs(dir.path()).unwrap();
        let c = comparisons(dir.path());
        let mean = |m: &str, f: fn(&crate::Metrics) -> Option<f64>| {
            let xs: Vec<f64> = runs
                .iter()
                .filter(|r| r.method == m)
                .map(|r| f(&r.metrics).unwrap())
                .collect();
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        type Written = fn(&crate::Metrics) -> Option<f64>;
        let cases: [(Metric, Written); 4] = [
            (Aa, |m| m.aa),
            (Bwt, |m| m.bwt),
            (Forgetting, |m| m.forgetting),
            (GeneralForgetting, |m| m.general_forgetting),
        ];
        for (metric, f) in cases {
            let r = row(&c.against_sequential, "mssr", Some(SEQUENTIAL), metric);
            let expected = mean("mssr", f) - mean(SEQUENTIAL, f);
            assert!(
                (r.estimate.point - expected).abs() < 1e-12,
                "{metric:?}: {r:?} vs {expected}"
            );
        }
    }

    #[test]
    fn runs_without_per_record_scores_fall_back_to_seeds_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        write_suite(dir.path());
        // One fixed-replay run logged before per-record scores were.
        write_run(
            dir.path(),
            "fixed-replay",
            1,
            &probabilities(0.8, 0.4),
            false,
            30.0,
        );
        let c = comparisons(dir.path());
        let r = row(&c.claims, "mssr", Some("fixed-replay"), Aa);
        assert_eq!(r.estimate.resampling, Resampling::SeedsOnly);
        // mssr − sequential keeps both.
        let r = row(&c.against_sequential, "mssr", Some(SEQUENTIAL), Aa);
        assert_eq!(r.estimate.resampling, Resampling::SeedsAndRecords);
        let runs = crate::load_runs(dir.path()).unwrap();
        let md = crate::render_markdown(&runs, &crate::ReportConfig::default());
        let line = md
            .lines()
            .find(|l| l.contains("| mssr − fixed-replay | AA \\> 0 |"))
            .unwrap_or_else(|| panic!("{md}"));
        assert!(line.contains("| seeds only |"), "{line}");
        // In the wide table, a dagger marks it.
        let wide = md
            .lines()
            .find(|l| l.starts_with("| fixed-replay |") && l.contains('†'));
        assert!(wide.is_some(), "{md}");
    }

    #[test]
    fn rescore_files_give_general_forgetting_and_the_text_loss_change() {
        let dir = tempfile::tempdir().unwrap();
        write_suite(dir.path());
        let rescore = dir.path().join("power/rescore");
        // Probe: the backbone gets 48 of 64 records right; sequential loses 16 of them, mssr 4.
        let base: Vec<f64> = (0..64).map(|k| if k < 48 { 1.0 } else { 0.0 }).collect();
        let lose = |n: usize| -> Vec<f64> {
            base.iter()
                .enumerate()
                .map(|(k, &x)| if k < n { 0.0 } else { x })
                .collect()
        };
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
        let entry = |m: &str, seed: u64, per: Vec<f64>, base: f64| {
            json!({"method": m, "seed": seed, "base": "bb", "score": mean(&per),
                   "forgetting": base - mean(&per), "per_record": per})
        };
        let mut runs = Vec::new();
        for seed in 0..3 {
            runs.push(entry(SEQUENTIAL, seed, lose(16 + seed as usize), 0.75));
            runs.push(entry("mssr", seed, lose(4 + seed as usize), 0.75));
        }
        write_json(
            &rescore.join("probe-64.json"),
            &json!({"forgetting": "score[0] - score[T]", "task": "probe", "records": {"count": 64},
                    "bases": {"bb": {"score": 0.75, "per_record": base}}, "runs": runs}),
        );
        // Corpus: per-passage losses 3.0 for the backbone; sequential +0.2 on every passage,
        // mssr +0.05. The file's scores weigh passages by tokens (here: a different number).
        let passages = |x: f64| vec![x; 16];
        let mut runs = Vec::new();
        for seed in 0..3 {
            for (m, up) in [(SEQUENTIAL, 0.2), ("mssr", 0.05)] {
                runs.push(
                    json!({"method": m, "seed": seed, "base": "bb", "score": 2.9 + up,
                                 "forgetting": up, "per_record": passages(3.0 + up)}),
                );
            }
        }
        write_json(
            &rescore.join("corpus-web-16.json"),
            &json!({"forgetting": "score[T] - score[0] (mean NLL per token, nats: higher is worse)",
                    "corpus": "web", "records": {"count": 16},
                    "bases": {"bb": {"score": 2.9, "per_record": passages(3.0)}}, "runs": runs}),
        );
        let c = comparisons(dir.path());
        // ↓F: sequential loses 17/64 on average, mssr 5/64: Δ = −12/64 = −0.1875.
        let gf = row(
            &c.against_sequential,
            "mssr",
            Some(SEQUENTIAL),
            GeneralForgetting,
        );
        assert!((gf.estimate.point + 0.1875).abs() < 1e-12, "{gf:?}");
        assert_eq!(gf.verdict, Verdict::Held);
        assert_eq!(gf.estimate.resampling, Resampling::SeedsAndRecords);
        // Text loss: 0.05 − 0.2 = −0.15 on every passage and seed: a zero-width interval.
        let tl = row(&c.against_sequential, "mssr", Some(SEQUENTIAL), TextLoss);
        assert!((tl.estimate.point + 0.15).abs() < 1e-9, "{tl:?}");
        assert!((tl.estimate.lo + 0.15).abs() < 1e-9 && (tl.estimate.hi + 0.15).abs() < 1e-9);
        assert_eq!(tl.verdict, Verdict::Held);
        assert!(
            c.sources[0].contains("probe-64 (64 records"),
            "{:?}",
            c.sources
        );
        assert!(
            c.sources[1].contains("corpus-web-16 (16 passages)"),
            "{:?}",
            c.sources
        );
        // Fixed replay was not rescored.
        assert_eq!(
            c.left_out,
            [
                "not rescored in probe-64: fixed-replay − sequential (↓F)",
                "not rescored in corpus-web-16: fixed-replay − sequential (text-loss change)"
            ]
        );
    }

    #[test]
    fn the_report_shows_the_tables_and_forest_plots_and_writes_the_svgs() {
        let dir = tempfile::tempdir().unwrap();
        write_suite(dir.path());
        let runs = crate::load_runs(dir.path()).unwrap();
        let md = crate::render_markdown(&runs, &crate::ReportConfig::default());
        for needle in [
            "### Paired differences (95% bootstrap intervals)",
            "2000 paired bootstrap replicates",
            "![forest plot](forest-power-claims.svg)",
            "![forest plot](forest-power-against-sequential.svg)",
            "#### Claims",
            "#### By task family",
            "multiple\\_choice (csqa, agnews); reasoning (numglue)",
            "#### Every method against sequential fine-tuning",
            "#### One method alone",
            "| sequential fine-tuning learns each task | sequential | learning \\> 0 |",
        ] {
            assert!(md.contains(needle), "missing {needle} in {md}");
        }
        // The claim's row with its cost columns: replayed samples, steps, passes, tokens, wall s
        // (method / reference).
        let line = md
            .lines()
            .find(|l| l.contains("| mssr − fixed-replay | F \\< 0 |"))
            .unwrap();
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells[4], "held", "{line}");
        assert_eq!(
            &cells[7..12],
            [
                "32 / 34",
                "24 / 24",
                "56 / 60",
                "28000 / 30000",
                "280 / 300"
            ],
            "{line}"
        );
        // The existing summary table is still there, before the new section.
        let summary = md.find("| method | AA | BWT | F | FWT |").unwrap();
        assert!(summary < md.find("### Paired differences").unwrap());

        let html = crate::render_html(&runs, &crate::ReportConfig::default());
        assert!(html.contains("<h3>Paired differences (95% bootstrap intervals)</h3>"));
        assert!(html.contains("<figure class=\"forest\">"));
        // One point per row of both forest plots: of the 28 claims rows only 2 are here (one
        // pair ran), so: claims 2 + families 4 + checks 2, and 2 methods × 4 metrics (no corpus).
        assert_eq!(
            html.matches("class=\"forest-point\"").count(),
            2 + 4 + 2 + 2 * 4
        );
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());

        let out = tempfile::tempdir().unwrap();
        let (h, m) = (out.path().join("r.html"), out.path().join("summary.md"));
        crate::write_report(dir.path(), &h, &m, &crate::ReportConfig::default()).unwrap();
        for f in [
            "forest-power-claims.svg",
            "forest-power-against-sequential.svg",
        ] {
            let svg = std::fs::read_to_string(out.path().join(f)).unwrap();
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{f}");
        }
    }

    #[test]
    fn a_suite_without_any_claimed_method_gets_no_section() {
        // The shared test tree: methods `mssr` and `seq` (not `sequential`), two seeds each.
        let dir = tempfile::tempdir().unwrap();
        crate::testdata::write_tree(dir.path());
        let runs = crate::load_runs(dir.path()).unwrap();
        let c = compare(&runs, &[], &BootstrapConfig::default());
        assert!(c.len() == 1 && c[0].is_empty(), "{c:?}");
        let md = crate::render_markdown(&runs, &crate::ReportConfig::default());
        assert!(!md.contains("Paired differences"));
        let html = crate::render_html(&runs, &crate::ReportConfig::default());
        assert!(!html.contains("Paired differences") && !html.contains("forest"));
        assert!(forest_plots(&c[0]).is_empty());
    }

    #[test]
    fn a_suite_with_one_seed_per_method_and_no_record_scores_gets_no_section() {
        let dir = tempfile::tempdir().unwrap();
        write_run(
            dir.path(),
            SEQUENTIAL,
            0,
            &probabilities(0.8, 0.4),
            false,
            24.0,
        );
        write_run(
            dir.path(),
            "mssr",
            0,
            &probabilities(0.8, 0.75),
            false,
            28.0,
        );
        let runs = crate::load_runs(dir.path()).unwrap();
        assert!(compare(&runs, &[], &BootstrapConfig::default()).is_empty());
        let md = crate::render_markdown(&runs, &crate::ReportConfig::default());
        assert!(!md.contains("Paired differences"));
    }

    #[test]
    fn one_seed_with_record_scores_gets_intervals_over_records_only() {
        let dir = tempfile::tempdir().unwrap();
        write_run(
            dir.path(),
            SEQUENTIAL,
            0,
            &probabilities(0.8, 0.4),
            true,
            24.0,
        );
        write_run(dir.path(), "mssr", 0, &probabilities(0.8, 0.75), true, 28.0);
        let runs = crate::load_runs(dir.path()).unwrap();
        let c = compare(&runs, &[], &BootstrapConfig::default());
        let f = c[0]
            .against_sequential
            .iter()
            .find(|r| r.method == "mssr" && r.metric == Metric::Forgetting)
            .expect("mssr against sequential on F");
        assert_eq!(f.estimate.seeds, 1);
        assert_eq!(f.estimate.resampling, Resampling::SeedsAndRecords);
        // Forgetting 0.4 against 0.05 on 48 records a task: far outside record noise.
        assert!(f.estimate.hi < 0.0, "{:?}", f.estimate);
        // The verdict says that one seed stands behind it, in the tables too.
        assert_eq!(f.verdict_label(), "held (1 seed)");
        let md = crate::render_markdown(&runs, &crate::ReportConfig::default());
        assert!(md.contains("held (1 seed)"), "{md}");
    }
}
