//! Reading a results tree (`docs/results-format.md`) into [`Run`]s.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ReportError;
use crate::events::LogEvent;

/// Where a run's numbers came from: the `provenance` object of `run.json`.
///
/// Both the documented key names and the ones `cargo xtask` writes are accepted
/// (`git_rev`/`git_revision`, `crate_version`/`workspace_version`); every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Provenance {
    /// Git revision of the workspace that produced the run.
    #[serde(default, alias = "git_revision")]
    pub git_rev: Option<String>,
    /// Whether the work tree had uncommitted changes.
    #[serde(default)]
    pub git_dirty: Option<bool>,
    /// Version of the workspace crates.
    #[serde(default, alias = "workspace_version")]
    pub crate_version: Option<String>,
    /// Rust compiler version.
    #[serde(default)]
    pub rustc: Option<String>,
    /// Burn version.
    #[serde(default)]
    pub burn: Option<String>,
    /// When the run was made (free-form, usually RFC 3339).
    #[serde(default)]
    pub date: Option<String>,
}

/// The metrics of one run (`metrics.json`), every one optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Average accuracy after the last stage.
    pub aa: Option<f64>,
    /// Backward transfer (null for a one-task suite).
    pub bwt: Option<f64>,
    /// Average (max-based) forgetting F (null for a one-task suite).
    pub forgetting: Option<f64>,
    /// Forward transfer (null for a one-task suite).
    pub fwt: Option<f64>,
    /// Average normalised score.
    pub ans: Option<f64>,
    /// General-ability forgetting ↓F over the probes (null without probes).
    pub general_forgetting: Option<f64>,
    /// Every numeric field of `cost`, documented fields first in the documented order, then any
    /// others alphabetically.
    pub cost: Vec<(String, f64)>,
    /// `replay_budget` of `metrics.json`, the budget the engine enforced: `None` when the file
    /// has no such key, `Some(None)` when it is null (unlimited).
    pub replay_budget: Option<Option<u64>>,
}

impl Metrics {
    /// The value of cost field `name`, if the run recorded it.
    pub fn cost(&self, name: &str) -> Option<f64> {
        self.cost.iter().find(|(k, _)| k == name).map(|&(_, v)| v)
    }
}

/// A `replay` event of `log.jsonl`: replayed samples mixed into one update.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayEvent {
    /// Global step.
    pub step: u64,
    /// Source task index, `None` when the batch mixed tasks.
    pub task: Option<usize>,
    /// Samples replayed.
    pub n: u64,
    /// `reason.kind` (`interval`, `loss_trigger`, `accuracy_drop`, `due`, `custom`, …).
    pub reason: String,
    /// `reason.due_step`: the step at which an interval scheduler's session fell due, where it
    /// logs one. Earlier than `step` when the session waited for the replay budget.
    pub due_step: Option<u64>,
}

/// An `interval` event: MSSR's current replay interval for one task.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalEvent {
    /// Global step.
    pub step: u64,
    /// Task index.
    pub task: usize,
    /// The interval `I_d` in steps.
    pub interval: f64,
    /// Mean memory strength of the task's buffered samples.
    pub mean_strength: Option<f64>,
}

/// A `strengths` event: the memory strength of every buffered sample at the end of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StrengthsEvent {
    /// Global step.
    pub step: u64,
    /// Stage (1-based: stage `k` trains task `k - 1`).
    pub stage: usize,
    /// The strengths (null entries dropped).
    pub values: Vec<f64>,
}

/// A `sharpness` event (SAM/XSAM).
#[derive(Debug, Clone, PartialEq)]
pub struct SharpnessEvent {
    /// Global step.
    pub step: u64,
    /// Sharpness measure ψ, if computed.
    pub psi: Option<f64>,
    /// XSAM's α*, if computed.
    pub alpha: Option<f64>,
}

/// A `sharpness_probe` event: the SAM sharpness after a stage on the run's fixed probe set.
#[derive(Debug, Clone, PartialEq)]
pub struct SharpnessProbeEvent {
    /// Stage (1-based) that had just been trained.
    pub stage: usize,
    /// `ρ` of the measure.
    pub rho: f64,
    /// `L(θ + ρ·g/‖g‖) − L(θ)`.
    pub sharpness: f64,
    /// `L(θ)` on the probe set.
    pub loss: f64,
}

/// A `landscape` event: the loss on a slice through the weights after a stage.
///
/// `losses[i][j]` is the loss at coordinate `(a[i], b[j])`; a 1-D slice has `b == [0.0]`. The
/// loader checks the shape (`a.len()` rows of `b.len()` values); null losses (NaN or infinite
/// when written) are kept as `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct LandscapeEvent {
    /// Stage (1-based) that had just been trained.
    pub stage: usize,
    /// Global step.
    pub step: u64,
    /// Coordinates along the first direction.
    pub a: Vec<f64>,
    /// Coordinates along the second direction (`[0.0]` for a 1-D slice).
    pub b: Vec<f64>,
    /// `losses[i][j]` = loss at `(a[i], b[j])`.
    pub losses: Vec<Vec<Option<f64>>>,
    /// Seed of the slice's directions, if logged.
    pub seed: Option<u64>,
    /// Records the loss was averaged over, if logged.
    pub records: Option<u64>,
}

impl LandscapeEvent {
    /// Index into `b` of the coordinate nearest 0: the 1-D curve through the trained point (the
    /// only column of a 1-D slice; the `b = 0` column of a 2-D one).
    pub fn b0(&self) -> usize {
        (0..self.b.len())
            .min_by(|&i, &j| self.b[i].abs().total_cmp(&self.b[j].abs()))
            .unwrap_or(0)
    }

    /// `(a, loss)` along the `b` column nearest 0 ([`Self::b0`]), finite losses only.
    pub fn curve(&self) -> Vec<(f64, f64)> {
        let j = self.b0();
        self.a
            .iter()
            .zip(&self.losses)
            .filter_map(|(&a, row)| row.get(j).copied().flatten().map(|l| (a, l)))
            .filter(|(a, l)| a.is_finite() && l.is_finite())
            .collect()
    }
}

/// A `stage` event: the end of one training stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageEvent {
    /// Stage (1-based).
    pub stage: usize,
    /// Task index trained in the stage.
    pub task: usize,
    /// Global step at the end of the stage.
    pub step: u64,
    /// Training time of the stage in seconds.
    pub seconds: Option<f64>,
}

/// The parts of `log.jsonl` the report draws. `step` lines are checked but not kept; of `eval`
/// lines only the per-record scores are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunLog {
    /// Whether the run had a `log.jsonl` at all.
    pub present: bool,
    /// Number of non-empty lines.
    pub lines: usize,
    /// Largest `step` seen on any line.
    pub max_step: u64,
    /// `replay` events in file order.
    pub replays: Vec<ReplayEvent>,
    /// `interval` events in file order.
    pub intervals: Vec<IntervalEvent>,
    /// `strengths` events in file order.
    pub strengths: Vec<StrengthsEvent>,
    /// `sharpness` events in file order.
    pub sharpness: Vec<SharpnessEvent>,
    /// `stage` events in file order.
    pub stages: Vec<StageEvent>,
    /// `sharpness_probe` events in file order.
    pub sharpness_probes: Vec<SharpnessProbeEvent>,
    /// `landscape` events in file order.
    pub landscapes: Vec<LandscapeEvent>,
    /// Every test record's score of each evaluation row that logged them (`eval` lines'
    /// `per_record`: per task, then per probe), by row (0 = before training); the last line of
    /// a row wins. Empty for logs written before it was recorded.
    pub per_record: BTreeMap<usize, Vec<Vec<f64>>>,
}

/// One run: `results/<suite>/<method>/<seed>/`.
///
/// Runs whose `run.json` status is not `"complete"` are returned too (so that a report can say
/// how many were skipped) but only `run.json` is read for them: their matrix, metrics and log are
/// empty. [`Run::is_complete`] tells them apart; the renderers skip them.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The run's directory.
    pub dir: PathBuf,
    /// Suite name.
    pub suite: String,
    /// Method name.
    pub method: String,
    /// Seed.
    pub seed: u64,
    /// `run.json` status (`"complete"` or `"running"`).
    pub status: String,
    /// Task names in training order.
    pub tasks: Vec<String>,
    /// Each task's family (`multiple_choice`, `generation`, `reasoning`, ...), in the order of
    /// `tasks`: `suite_spec.tasks[].family` of `run.json`, matched by name; `None` where the
    /// suite does not name one (and for every task of runs written before families were).
    pub families: Vec<Option<String>>,
    /// Probe names.
    pub probes: Vec<String>,
    /// Replayed-sample budget (`None` = unlimited).
    pub replay_budget: Option<u64>,
    /// How the budget was paced (`training.replay_pacing` of `run.json`: `"none"` or `"even"`;
    /// `None` when the run does not record it).
    pub replay_pacing: Option<String>,
    /// The method's replay scheduler (`method_config.replay.scheduler.kind` of `run.json`:
    /// `"none"` for a method that never replays, `"mssr"`, `"fixed_interval"`, …; `None` when
    /// the run does not record it).
    pub replay_scheduler: Option<String>,
    /// Where the run came from.
    pub provenance: Provenance,
    /// Model path or name.
    pub model: Option<String>,
    /// Device name.
    pub device: Option<String>,
    /// Accuracy matrix: `rows[j][i]` = score on task `i` after stage `j` (row 0 = before training).
    pub rows: Vec<Vec<f64>>,
    /// Probe scores after each stage.
    pub probe_rows: Vec<Vec<f64>>,
    /// The run's metrics.
    pub metrics: Metrics,
    /// `true` when `metrics.json` was absent and the metrics were derived from the matrix (with
    /// the formulas of `crates/continual/src/metrics.rs`; no cost then).
    pub metrics_from_matrix: bool,
    /// The parsed log.
    pub log: RunLog,
}

impl Run {
    /// Whether `run.json` says `"status": "complete"`.
    pub fn is_complete(&self) -> bool {
        self.status == "complete"
    }

    /// The replay budget the run was allowed (`None` = unlimited): `metrics.json`'s, else
    /// `run.json`'s.
    pub fn allowed_replay_budget(&self) -> Option<u64> {
        self.metrics.replay_budget.unwrap_or(self.replay_budget)
    }

    /// Whether the method replays at all: `false` only when its scheduler is recorded as
    /// `"none"` (sequential fine-tuning, KL, SAM, …), for which a budget means nothing.
    pub fn replays(&self) -> bool {
        self.replay_scheduler.as_deref() != Some("none")
    }

    /// Every test record's score behind each cell of the accuracy matrix:
    /// `[row][task][record]`, whose means are `rows`. `None` unless every row `0..=T` has an
    /// `eval` line with `per_record` for all tasks and probes (logs written before the
    /// engine recorded them have none).
    pub fn task_records(&self) -> Option<Vec<Vec<Vec<f64>>>> {
        self.records_of(0..self.tasks.len())
    }

    /// Every probe record's score behind each row of `probe_rows`: `[row][probe][record]`, on
    /// the same terms as [`Run::task_records`].
    pub fn probe_records(&self) -> Option<Vec<Vec<Vec<f64>>>> {
        let t = self.tasks.len();
        self.records_of(t..t + self.probes.len())
    }

    fn records_of(&self, entries: std::ops::Range<usize>) -> Option<Vec<Vec<Vec<f64>>>> {
        let width = self.tasks.len() + self.probes.len();
        if self.rows.is_empty() {
            return None;
        }
        (0..self.rows.len())
            .map(|row| {
                let per = self.log.per_record.get(&row)?;
                (per.len() == width).then(|| per[entries.clone()].to_vec())
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct RunJson {
    suite: String,
    method: String,
    seed: u64,
    status: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    replay_budget: Option<u64>,
    #[serde(default)]
    training: Option<TrainingJson>,
    #[serde(default)]
    method_config: Option<Value>,
    #[serde(default)]
    provenance: Option<Provenance>,
    #[serde(default)]
    tasks: Vec<String>,
    #[serde(default)]
    probes: Vec<String>,
    #[serde(default)]
    suite_spec: Option<Value>,
}

/// The resolved training settings of `run.json`, as far as the report reads them.
#[derive(Deserialize)]
struct TrainingJson {
    #[serde(default)]
    replay_pacing: Option<String>,
}

#[derive(Deserialize)]
struct MatrixJson {
    tasks: Vec<String>,
    #[serde(default)]
    probes: Vec<String>,
    rows: Vec<Vec<f64>>,
    #[serde(default)]
    probe_rows: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct MetricsJson {
    #[serde(default)]
    aa: Option<f64>,
    #[serde(default)]
    bwt: Option<f64>,
    #[serde(default)]
    forgetting: Option<f64>,
    #[serde(default)]
    fwt: Option<f64>,
    #[serde(default)]
    ans: Option<f64>,
    #[serde(default)]
    general_forgetting: Option<f64>,
    #[serde(default)]
    cost: Option<serde_json::Map<String, Value>>,
    /// Absent → `None`; null → `Some(None)`.
    #[serde(default, deserialize_with = "present")]
    replay_budget: Option<Option<u64>>,
}

/// Deserializes a field that is there (null included) as `Some`, so that with `#[serde(default)]`
/// an absent key and a null one differ.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// The documented cost fields, in the documented order.
pub(crate) const COST_FIELDS: [&str; 13] = [
    "optimizer_steps",
    "forward_passes",
    "backward_passes",
    "tokens",
    "replayed_samples",
    "probe_forwards",
    "strategy_eval_examples",
    "plugin_forwards",
    "plugin_backwards",
    "eval_examples",
    "wall_seconds",
    "train_seconds",
    "eval_seconds",
];

/// Reads every run under `results_dir/<suite>/<method>/<seed>/` (a directory counts as a run when
/// it holds a `run.json`).
///
/// Complete runs need a `matrix.json`; `metrics.json` and `log.jsonl` are optional. Runs that
/// are not complete are returned with only their `run.json` fields (see [`Run`]). The result is
/// sorted by suite, method and seed. Any malformed file is an error naming it.
pub fn load_runs(results_dir: &Path) -> Result<Vec<Run>, ReportError> {
    let mut runs = Vec::new();
    for suite_dir in subdirs(results_dir)? {
        for method_dir in subdirs(&suite_dir)? {
            for seed_dir in subdirs(&method_dir)? {
                if seed_dir.join("run.json").is_file() {
                    runs.push(load_run(&seed_dir)?);
                }
            }
        }
    }
    runs.sort_by(|a, b| {
        (&a.suite, &a.method, a.seed, &a.dir).cmp(&(&b.suite, &b.method, b.seed, &b.dir))
    });
    Ok(runs)
}

/// Subdirectories of `dir` (hidden ones left out), sorted by name.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let entries = fs::read_dir(dir).map_err(|e| ReportError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ReportError::io(dir, e))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| ReportError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads one run directory.
pub(crate) fn load_run(dir: &Path) -> Result<Run, ReportError> {
    let run_path = dir.join("run.json");
    let rj: RunJson = read_json(&run_path)?;
    // `suite_spec.tasks[]`: name → family.
    let families: BTreeMap<String, String> = rj
        .suite_spec
        .as_ref()
        .and_then(|s| s.get("tasks"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?;
            let family = t.get("family")?.as_str()?;
            Some((name.to_string(), family.to_string()))
        })
        .collect();
    let mut run = Run {
        dir: dir.to_path_buf(),
        suite: rj.suite,
        method: rj.method,
        seed: rj.seed,
        status: rj.status,
        tasks: rj.tasks,
        families: Vec::new(),
        probes: rj.probes,
        replay_budget: rj.replay_budget,
        replay_pacing: rj.training.and_then(|t| t.replay_pacing),
        replay_scheduler: rj
            .method_config
            .as_ref()
            .and_then(|c| c.pointer("/replay/scheduler/kind"))
            .and_then(Value::as_str)
            .map(str::to_string),
        provenance: rj.provenance.unwrap_or_default(),
        model: rj.model,
        device: rj.device,
        rows: Vec::new(),
        probe_rows: Vec::new(),
        metrics: Metrics::default(),
        metrics_from_matrix: false,
        log: RunLog::default(),
    };
    if !run.is_complete() {
        return Ok(run);
    }

    let matrix_path = dir.join("matrix.json");
    if !matrix_path.is_file() {
        return Err(ReportError::invalid(
            &matrix_path,
            "missing (run.json says the run is complete)",
        ));
    }
    let m: MatrixJson = read_json(&matrix_path)?;
    check_matrix(&matrix_path, &m, &run)?;
    if run.tasks.is_empty() {
        run.tasks = m.tasks;
    }
    if run.probes.is_empty() {
        run.probes = m.probes;
    }
    run.rows = m.rows;
    run.probe_rows = m.probe_rows;
    run.families = run.tasks.iter().map(|t| families.get(t).cloned()).collect();

    let metrics_path = dir.join("metrics.json");
    if metrics_path.is_file() {
        run.metrics = parse_metrics(&metrics_path)?;
    } else {
        run.metrics = derive_metrics(&run.rows, &run.probe_rows);
        run.metrics_from_matrix = true;
    }

    let log_path = dir.join("log.jsonl");
    if log_path.is_file() {
        let text = fs::read_to_string(&log_path).map_err(|e| ReportError::io(&log_path, e))?;
        run.log = parse_log(&log_path, &text)?;
    }
    Ok(run)
}

fn check_matrix(path: &Path, m: &MatrixJson, run: &Run) -> Result<(), ReportError> {
    let t = m.tasks.len();
    let p = m.probes.len();
    if t == 0 {
        return Err(ReportError::invalid(path, "no tasks"));
    }
    if !run.tasks.is_empty() && run.tasks != m.tasks {
        return Err(ReportError::invalid(
            path,
            format!("tasks {:?} differ from run.json's {:?}", m.tasks, run.tasks),
        ));
    }
    if m.rows.len() != t + 1 {
        return Err(ReportError::invalid(
            path,
            format!(
                "{} rows for {t} tasks in a complete run (needs {})",
                m.rows.len(),
                t + 1
            ),
        ));
    }
    if let Some((j, row)) = m.rows.iter().enumerate().find(|(_, r)| r.len() != t) {
        return Err(ReportError::invalid(
            path,
            format!("row {j} has {} scores, not {t}", row.len()),
        ));
    }
    if m.probe_rows.len() > t + 1 {
        return Err(ReportError::invalid(
            path,
            format!("{} probe rows for {t} tasks", m.probe_rows.len()),
        ));
    }
    if let Some((j, row)) = m.probe_rows.iter().enumerate().find(|(_, r)| r.len() != p) {
        return Err(ReportError::invalid(
            path,
            format!("probe row {j} has {} scores, not {p}", row.len()),
        ));
    }
    Ok(())
}

fn parse_metrics(path: &Path) -> Result<Metrics, ReportError> {
    let mj: MetricsJson = read_json(path)?;
    let mut cost = Vec::new();
    if let Some(map) = mj.cost {
        for (k, v) in &map {
            match v {
                Value::Null => {}
                Value::Number(n) => cost.push((k.clone(), n.as_f64().unwrap_or(f64::NAN))),
                // A breakdown (`tokens_by_pass`): each part as `<field>.<part>`.
                Value::Object(parts) if parts.values().all(|p| p.is_number() || p.is_null()) => {
                    for (part, p) in parts {
                        if let Some(x) = p.as_f64() {
                            cost.push((format!("{k}.{part}"), x));
                        }
                    }
                }
                other => {
                    return Err(ReportError::invalid(
                        path,
                        format!("cost field `{k}` is not a number: {other}"),
                    ));
                }
            }
        }
    }
    cost.sort_by_key(|(k, _)| {
        (
            COST_FIELDS
                .iter()
                .position(|f| f == k)
                .unwrap_or(usize::MAX),
            k.clone(),
        )
    });
    Ok(Metrics {
        aa: mj.aa,
        bwt: mj.bwt,
        forgetting: mj.forgetting,
        fwt: mj.fwt,
        ans: mj.ans,
        general_forgetting: mj.general_forgetting,
        cost,
        replay_budget: mj.replay_budget,
    })
}

/// The metrics of `crates/continual/src/metrics.rs`, for a run without `metrics.json`. `rows`
/// has been checked: `T + 1` rows of `T >= 1` scores.
pub(crate) fn derive_metrics(rows: &[Vec<f64>], probe_rows: &[Vec<f64>]) -> Metrics {
    let t = rows[0].len();
    let a = |j: usize, i: usize| rows[j][i];
    let per = |f: &dyn Fn(usize) -> f64, range: std::ops::Range<usize>| {
        (t > 1).then(|| range.map(f).sum::<f64>() / (t - 1) as f64)
    };
    let aa = rows[t].iter().sum::<f64>() / t as f64;
    let bwt = per(&|i| a(t, i) - a(i + 1, i), 0..t - 1);
    let forgetting = per(
        &|i| {
            (i + 1..t)
                .map(|l| a(l, i))
                .fold(f64::NEG_INFINITY, f64::max)
                - a(t, i)
        },
        0..t - 1,
    );
    let fwt = per(&|i| a(i, i) - a(0, i), 1..t);
    let ans = (0..t)
        .map(|i| {
            let (own, last) = (a(i + 1, i), a(t, i));
            if own.abs() < 1e-12 {
                if last.abs() < 1e-12 { 1.0 } else { last }
            } else {
                last / own
            }
        })
        .sum::<f64>()
        / t as f64;
    let general_forgetting = match (probe_rows.first(), probe_rows.last()) {
        (Some(first), Some(last)) if !first.is_empty() && first.len() == last.len() => {
            Some(first.iter().zip(last).map(|(x, y)| x - y).sum::<f64>() / first.len() as f64)
        }
        _ => None,
    };
    Metrics {
        aa: Some(aa),
        bwt,
        forgetting,
        fwt,
        ans: Some(ans),
        general_forgetting,
        cost: Vec::new(),
        replay_budget: None,
    }
}

/// Parses the text of a `log.jsonl`; `path` is only used in errors. Lines of unknown type are
/// ignored (the format may grow); `step` and `eval` lines only contribute their step.
pub(crate) fn parse_log(path: &Path, text: &str) -> Result<RunLog, ReportError> {
    let mut log = RunLog {
        present: true,
        ..RunLog::default()
    };
    for (k, line) in text.lines().enumerate() {
        let line_no = k + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| ReportError::LogLine {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        let value: Value =
            serde_json::from_str(line).map_err(|e| err(format!("malformed JSON: {e}")))?;
        let Some(obj) = value.as_object() else {
            return Err(err("not a JSON object".into()));
        };
        let Some(kind) = obj.get("type").and_then(Value::as_str) else {
            return Err(err("no string field `type`".into()));
        };
        match obj.get("step") {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(s) => log.max_step = log.max_step.max(s),
                None => return Err(err(format!("`step` is not a non-negative integer: {v}"))),
            },
        }
        const KNOWN: [&str; 10] = [
            "step",
            "replay",
            "interval",
            "strengths",
            "sharpness",
            "sharpness_probe",
            "landscape",
            "stage",
            "eval",
            "rollback",
        ];
        if !KNOWN.contains(&kind) {
            // A strategy's or plugin's own line (`ewc`, `agem`, ...): not drawn.
            log.lines += 1;
            continue;
        }
        let event =
            LogEvent::deserialize(&value).map_err(|e| err(format!("bad `{kind}` event: {e}")))?;
        match event {
            LogEvent::Replay(r) => {
                let field = |name: &str| r.reason.as_ref().and_then(|v| v.get(name));
                let reason = field("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string();
                log.replays.push(ReplayEvent {
                    step: r.step,
                    task: r.task,
                    n: r.n,
                    reason,
                    due_step: field("due_step").and_then(Value::as_u64),
                });
            }
            LogEvent::Interval(r) => log.intervals.push(IntervalEvent {
                step: r.step,
                task: r.task,
                interval: r.interval,
                mean_strength: r.mean_strength,
            }),
            LogEvent::Strengths(r) => log.strengths.push(StrengthsEvent {
                step: r.step,
                stage: r.stage,
                values: r.values.into_iter().flatten().collect(),
            }),
            LogEvent::Sharpness(r) => log.sharpness.push(SharpnessEvent {
                step: r.step,
                psi: r.psi,
                alpha: r.alpha,
            }),
            LogEvent::SharpnessProbe(r) => log.sharpness_probes.push(SharpnessProbeEvent {
                stage: r.stage,
                rho: r.rho,
                sharpness: r.sharpness,
                loss: r.loss,
            }),
            LogEvent::Landscape(r) => {
                if r.a.is_empty() || r.b.is_empty() {
                    return Err(err("bad `landscape` event: empty `a` or `b`".into()));
                }
                if r.losses.len() != r.a.len() {
                    return Err(err(format!(
                        "bad `landscape` event: {} rows of `losses` for {} values of `a`",
                        r.losses.len(),
                        r.a.len()
                    )));
                }
                if let Some((i, row)) = r
                    .losses
                    .iter()
                    .enumerate()
                    .find(|(_, row)| row.len() != r.b.len())
                {
                    return Err(err(format!(
                        "bad `landscape` event: `losses[{i}]` has {} values for {} values of `b`",
                        row.len(),
                        r.b.len()
                    )));
                }
                log.landscapes.push(LandscapeEvent {
                    stage: r.stage,
                    step: r.step,
                    a: r.a,
                    b: r.b,
                    losses: r.losses,
                    seed: r.seed,
                    records: r.records,
                });
            }
            LogEvent::Stage(r) => log.stages.push(StageEvent {
                stage: r.stage,
                task: r.task,
                step: r.step,
                seconds: r.train_seconds,
            }),
            LogEvent::Eval(e) => {
                if !e.per_record.is_empty() {
                    log.per_record.insert(e.stage, e.per_record);
                }
            }
            LogEvent::Step(_) | LogEvent::Rollback(_) => {}
        }
        log.lines += 1;
    }
    Ok(log)
}

#[cfg(test)]
mod committed_results {
    use super::*;

    /// The committed results roots, and whether each must hold complete runs.
    ///
    /// `experiments/results/` holds the quick-suite runs before the faithful-methods fixes,
    /// `experiments/results-faithful/` the reruns after them (2026-12-07), and
    /// `experiments/results-power/` the powered suite of issue 21, filled by long background
    /// runs: it may be absent, or hold only runs still in progress.
    fn roots() -> Vec<(std::path::PathBuf, bool)> {
        let experiments = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
        [
            ("results", true),
            ("results-faithful", true),
            ("results-power", false),
        ]
        .into_iter()
        .map(|(name, required)| (experiments.join(name), required))
        .filter(|(root, required)| *required || root.is_dir())
        .collect()
    }

    /// The complete runs under `root`: `run.json` says so and the engine wrote `metrics.json`
    /// (a run still being written counts as not complete).
    fn complete_runs(root: &Path, required: bool) -> Vec<Run> {
        let runs: Vec<Run> = crate::load_runs(root)
            .unwrap()
            .into_iter()
            .filter(|r| r.is_complete() && !r.metrics_from_matrix)
            .collect();
        assert!(
            !required || !runs.is_empty(),
            "no committed run under {}",
            root.display()
        );
        runs
    }

    /// The runs committed under `experiments/results*/` (docs/results.md is built from them)
    /// load, and each `metrics.json`, written by the engine (`crates/continual/src/metrics.rs`),
    /// agrees with the metrics this crate derives on its own from the run's `matrix.json`.
    #[test]
    fn committed_runs_load_and_their_metrics_match_their_matrices() {
        for (root, required) in roots() {
            committed_runs_match_their_matrices(&root, required);
        }
    }

    fn committed_runs_match_their_matrices(root: &Path, required: bool) {
        for r in &complete_runs(root, required) {
            let derived = derive_metrics(&r.rows, &r.probe_rows);
            let pairs = [
                ("aa", r.metrics.aa, derived.aa),
                ("bwt", r.metrics.bwt, derived.bwt),
                ("forgetting", r.metrics.forgetting, derived.forgetting),
                ("fwt", r.metrics.fwt, derived.fwt),
                ("ans", r.metrics.ans, derived.ans),
                (
                    "general_forgetting",
                    r.metrics.general_forgetting,
                    derived.general_forgetting,
                ),
            ];
            for (name, written, mine) in pairs {
                // A suite without probes has no general forgetting on either side.
                let (Some(w), Some(m)) = (written, mine) else {
                    assert_eq!(
                        written.is_none(),
                        mine.is_none(),
                        "{}: {name} {written:?} in metrics.json, {mine:?} from matrix.json",
                        r.dir.display()
                    );
                    continue;
                };
                assert!(
                    (w - m).abs() < 1e-9,
                    "{}: {name} {w} in metrics.json, {m} from matrix.json",
                    r.dir.display()
                );
            }
            assert_eq!(
                r.rows.len(),
                r.tasks.len() + 1,
                "{}: a complete run has T + 1 rows",
                r.dir.display()
            );
        }
    }

    /// Issue 21 compares replay methods at an equal spent budget: in the powered suite every
    /// complete run of a replay method spent exactly its budget, and its replay lines add up to
    /// what `metrics.json` counts. The exceptions are the schedulers that replay only when a
    /// trigger fires: loss-driven replay (the probed loss rose; `loss-driven` at METHODS.md's
    /// defaults, `loss-driven-matched` at the rule's most eager) and accuracy-supervised replay
    /// (a task's validation score fell). On this stream their triggers may stay silent, so they
    /// may leave budget unspent, never exceed it (docs/results.md says what each spent).
    #[test]
    fn powered_replay_runs_spend_their_whole_budget() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/results-power");
        if !root.is_dir() {
            return;
        }
        for r in complete_runs(&root, false) {
            let spent = r.metrics.cost("replayed_samples").unwrap_or(0.0);
            let logged: u64 = r.log.replays.iter().map(|e| e.n).sum();
            assert_eq!(
                logged as f64,
                spent,
                "{}: replay lines against metrics.json",
                r.dir.display()
            );
            if !r.replays() {
                assert_eq!(
                    spent,
                    0.0,
                    "{}: a method that never replays",
                    r.dir.display()
                );
                continue;
            }
            let budget = r
                .allowed_replay_budget()
                .expect("the powered suite sets a budget");
            let triggered = matches!(
                r.replay_scheduler.as_deref(),
                Some("loss_driven" | "accuracy_supervised")
            );
            if triggered {
                assert!(spent <= budget as f64, "{}: over budget", r.dir.display());
            } else {
                assert_eq!(
                    spent,
                    budget as f64,
                    "{}: spent {spent} of {budget}",
                    r.dir.display()
                );
            }
        }
    }

    /// Where a committed run logged every record's score (`eval` lines' `per_record`), each
    /// row's records average to its cells in `matrix.json` (tasks and probes), so the bootstrap
    /// resamples the very numbers the tables show.
    #[test]
    fn committed_per_record_scores_average_to_the_matrix() {
        for (root, required) in roots() {
            for r in complete_runs(&root, required) {
                if r.log.per_record.is_empty() {
                    continue;
                }
                let tasks = r.task_records().unwrap_or_else(|| {
                    panic!("{}: per_record missing for some row", r.dir.display())
                });
                let probes = r.probe_records().unwrap();
                for (j, row) in tasks.iter().enumerate() {
                    let cells = row.iter().zip(&r.rows[j]);
                    let probe_cells = probes[j]
                        .iter()
                        .zip(r.probe_rows.get(j).into_iter().flatten());
                    for (recs, &cell) in cells.chain(probe_cells) {
                        let mean = recs.iter().sum::<f64>() / recs.len() as f64;
                        assert!(
                            (mean - cell).abs() < 1e-9,
                            "{}: row {j}: records average {mean}, the cell is {cell}",
                            r.dir.display()
                        );
                    }
                }
            }
        }
    }

    /// The bootstrap's point estimate, which resamples nothing, is the mean over seeds of the
    /// committed runs' `metrics.json` (AA, BWT, F), alone and paired against sequential, also
    /// when the runs carry per-record scores (built here for the runs that logged none: six
    /// records per cell that average to it).
    #[test]
    fn committed_point_estimates_equal_the_means_of_metrics_json() {
        use crate::bootstrap::{self, BootstrapConfig, Grid, Resampling};
        let cfg = BootstrapConfig {
            replicates: 20,
            seed: 0,
        };
        let grid = |r: &Run| Grid {
            points: r.rows.clone(),
            records: r.task_records().or_else(|| {
                let spread = [0.1, -0.1, 0.05, -0.05, 0.0, 0.0];
                Some(
                    r.rows
                        .iter()
                        .map(|row| {
                            row.iter()
                                .map(|&a| spread.iter().map(|d| a + d).collect())
                                .collect()
                        })
                        .collect(),
                )
            }),
        };
        let all = |r: &Run| (0..r.tasks.len()).collect::<Vec<usize>>();
        for (root, required) in roots() {
            let runs = complete_runs(&root, required);
            let mut groups: BTreeMap<(&str, &str), Vec<&Run>> = BTreeMap::new();
            for r in &runs {
                groups.entry((&r.suite, &r.method)).or_default().push(r);
            }
            for ((suite, method), group) in &groups {
                let tasks = all(group[0]);
                let aa = |a: &[Vec<f64>]| bootstrap::average_accuracy(a, &tasks);
                let bwt = |a: &[Vec<f64>]| bootstrap::backward_transfer(a, &tasks);
                let f = |a: &[Vec<f64>]| bootstrap::forgetting(a, &tasks);
                let written: [fn(&Metrics) -> Option<f64>; 3] =
                    [|m| m.aa, |m| m.bwt, |m| m.forgetting];
                let grids: Vec<Grid> = group.iter().map(|r| grid(r)).collect();
                let single = bootstrap::single(&grids, &[&aa, &bwt, &f], &cfg, 0);
                for (k, e) in single.iter().enumerate() {
                    let e = e.unwrap();
                    let mean = group
                        .iter()
                        .map(|r| written[k](&r.metrics).unwrap())
                        .sum::<f64>()
                        / group.len() as f64;
                    assert!(
                        (e.point - mean).abs() < 1e-12,
                        "{suite}/{method}: statistic {k}: {} vs metrics.json {mean}",
                        e.point
                    );
                    assert_eq!(e.resampling, Resampling::SeedsAndRecords);
                }
                // Paired against sequential over the seeds both ran.
                let Some(seq) = groups.get(&(*suite, "sequential")) else {
                    continue;
                };
                let shared: Vec<(&Run, &Run)> = group
                    .iter()
                    .filter_map(|m| seq.iter().find(|s| s.seed == m.seed).map(|s| (*m, *s)))
                    .collect();
                if shared.is_empty() {
                    continue;
                }
                let (m, s): (Vec<Grid>, Vec<Grid>) =
                    shared.iter().map(|(m, s)| (grid(m), grid(s))).unzip();
                let paired = bootstrap::paired(&m, &s, &[&aa, &bwt, &f], &cfg, 0);
                for (k, e) in paired.iter().enumerate() {
                    let diff = shared
                        .iter()
                        .map(|(m, s)| {
                            written[k](&m.metrics).unwrap() - written[k](&s.metrics).unwrap()
                        })
                        .sum::<f64>()
                        / shared.len() as f64;
                    assert!(
                        (e.unwrap().point - diff).abs() < 1e-12,
                        "{suite}/{method} − sequential: statistic {k}"
                    );
                }
            }
        }
    }

    /// The committed rescores (`cargo xtask rescore`) name committed complete runs, and each
    /// run's forgetting is its score against the backbone's as the file defines it.
    #[test]
    fn committed_rescores_name_committed_runs_and_agree_with_their_backbone_score() {
        for (root, _) in roots() {
            committed_rescores_agree(&root);
        }
    }

    fn committed_rescores_agree(root: &Path) {
        let runs = crate::load_runs(root).unwrap();
        for file in crate::load_rescores(root).unwrap() {
            let [base] = file.bases[..] else {
                panic!("{}: one backbone expected", file.path.display())
            };
            let loss = file.definition.starts_with("score[T] - score[0]");
            for r in &file.runs {
                assert!(
                    runs.iter().any(|run| run.suite == file.suite
                        && run.method == r.method
                        && run.seed == r.seed
                        && run.is_complete()),
                    "{}: {} seed {} is not a committed complete run",
                    file.path.display(),
                    r.method,
                    r.seed
                );
                let expected = if loss { r.score - base } else { base - r.score };
                assert!(
                    (r.forgetting - expected).abs() < 1e-9,
                    "{}: {} seed {}",
                    file.path.display(),
                    r.method,
                    r.seed
                );
            }
            if loss {
                continue;
            }
            // A task rescored on more records starts with the records the run scored itself: the
            // mean over the first `k` (the run's probe or task eval limit) is its own last-row score.
            let raw: serde_json::Value = read_json(&file.path).unwrap();
            for r in raw["runs"].as_array().unwrap() {
                let Some(row_t) = r["run_row_t_score"].as_f64() else {
                    continue;
                };
                let run: serde_json::Value = read_json(
                    &Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../..")
                        .join(r["dir"].as_str().unwrap())
                        .join("run.json"),
                )
                .unwrap();
                let t = &run["training"];
                let is_probe = run["probes"]
                    .as_array()
                    .is_some_and(|p| p.contains(&raw["task"]));
                let probe_limit = if is_probe {
                    t["probe_eval_limit"].as_u64()
                } else {
                    None
                };
                let k = probe_limit.or(t["eval_limit"].as_u64()).unwrap() as usize;
                let per: Vec<f64> = r["per_record"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                let mean = per[..k].iter().sum::<f64>() / k as f64;
                assert!(
                    (mean - row_t).abs() < 1e-9,
                    "{}: {}: first {k} records {mean}, its last row {row_t}",
                    file.path.display(),
                    r["dir"]
                );
            }
        }
    }
}
