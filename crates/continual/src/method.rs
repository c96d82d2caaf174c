//! Methods and training settings: what `experiments/methods/<name>.toml` and a suite's
//! `[training]` table hold.
//!
//! A method file says what is special about a method (replay strategy, optimizer, extra loss
//! terms, bounds); the suite's `[training]` table says how much to train (steps, batch size,
//! learning rate, LoRA rank), so every method of a suite trains with the same budget. A method
//! may still override training settings in its own `[train]` table.
//!
//! Unknown keys anywhere (also inside the nested replay, LoRA and objective tables) are an
//! error naming the key's path: a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use finetune::ObjectiveConfig;
use replay_buffer::schedulers::NoReplayConfig;
use replay_buffer::{ReplayBufferConfig, StrategyConfig, StrategyInit};
use serde::{Deserialize, Serialize};
use sharpness::{SamConfig, XsamConfig};

use crate::EngineError;

/// What a run does between tasks: the continual protocol of the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Train on the tasks one after another (every replay method, SAM, KL, ...).
    #[default]
    Sequential,
    /// Multi-task upper bound: stage `k` trains, for the same number of steps as task `k`
    /// alone, on batches drawn uniformly from the union of tasks `0..=k` (our choice: equal
    /// compute per stage, so the matrix has every row).
    Joint,
}

/// The optimizer around the training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// AdamW (settings from `[train]`).
    #[default]
    Adamw,
    /// SAM / k-step SAM around AdamW.
    Sam(SamSettings),
    /// XSAM around AdamW.
    Xsam(XsamSettings),
}

/// SAM settings: `sharpness::SamConfig` itself (`rho`, `ascent_steps`, `epsilon`), its
/// defaults filling the keys a method file leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct SamSettings(pub SamConfig);

impl Default for SamSettings {
    fn default() -> Self {
        Self(SamConfig::new())
    }
}

/// XSAM settings: `sharpness::XsamConfig` itself, written flat in a method file (`rho`,
/// `ascent_steps` and `epsilon` of its inner SAM config beside `alpha_period`, `alpha_step`,
/// `alpha_max`, `fixed_alpha`, `rho_max`), its defaults filling the keys left out.
#[derive(Debug, Clone, PartialEq)]
pub struct XsamSettings(pub XsamConfig);

impl Default for XsamSettings {
    fn default() -> Self {
        Self(XsamConfig::new(SamConfig::new()))
    }
}

/// The keys of `SamConfig`, which an XSAM table writes beside XSAM's own.
const SAM_KEYS: [&str; 3] = ["rho", "ascent_steps", "epsilon"];

/// `defaults` with the keys of `given` laid over it (one level).
fn over_defaults<E: serde::de::Error>(
    defaults: serde_json::Value,
    given: serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, E> {
    let (serde_json::Value::Object(mut base), serde_json::Value::Object(given)) = (defaults, given)
    else {
        return Err(E::custom("expected a table"));
    };
    base.extend(given);
    Ok(base)
}

impl Serialize for SamSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SamSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let given = serde_json::Value::deserialize(d)?;
        let merged = over_defaults::<D::Error>(
            serde_json::to_value(SamConfig::new()).expect("serialises"),
            given,
        )?;
        serde_json::from_value(merged.into())
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for XsamSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.0).map_err(serde::ser::Error::custom)?;
        let obj = v.as_object_mut().expect("a struct");
        if let Some(serde_json::Value::Object(sam)) = obj.remove("sam") {
            obj.extend(sam);
        }
        // An unset option is absent, as serde writes `None` fields (TOML has no null).
        obj.retain(|_, v| !v.is_null());
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for XsamSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let defaults = XsamSettings::default();
        let flat = serde_json::to_value(&defaults).map_err(serde::de::Error::custom)?;
        let mut merged = over_defaults::<D::Error>(flat, serde_json::Value::deserialize(d)?)?;
        let sam: serde_json::Map<String, serde_json::Value> = SAM_KEYS
            .iter()
            .filter_map(|k| merged.remove(*k).map(|v| (k.to_string(), v)))
            .collect();
        merged.insert("sam".into(), sam.into());
        serde_json::from_value(merged.into())
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// Replay: the buffer and the scheduler (`replay-buffer`), and the replay budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplaySettings {
    /// When and what to replay: the strategy registered under `kind` (built in: `"none"`,
    /// `"fixed_interval"`, `"loss_driven"`, `"accuracy_supervised"`, `"mssr"`; any other
    /// strategy linked into the program, see `replay_buffer::strategy`), with its settings.
    pub scheduler: Box<dyn StrategyConfig>,
    /// The buffer (capacity, insertion, memory model). Without a `capacity` table the buffer
    /// keeps `training.buffer_per_task` entries per task; its `seed` is the run's.
    pub buffer: ReplayBufferConfig,
    /// `S0`, the memory model's initial stability, as a fraction of the run's optimizer steps
    /// (`None`: `buffer.memory.initial_stability`, 200 steps, as METHODS.md). Our choice for
    /// short runs: with `S0 = 200` a 44-step run keeps every retention at or above 0.82, so
    /// time since review barely counts; the shipped MSSR methods set 0.25. Setting both this
    /// and `buffer.memory.initial_stability` is an error.
    pub initial_stability_run_fraction: Option<f64>,
    /// Whether the method file gave `buffer.capacity` (then it is used as given).
    #[serde(skip)]
    pub explicit_capacity: bool,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        Self {
            scheduler: Box::new(NoReplayConfig {}),
            buffer: ReplayBufferConfig::default(),
            initial_stability_run_fraction: None,
            explicit_capacity: false,
        }
    }
}

/// WiSE-FT: after each stage, `θ_k ← (1 − α)·θ_{k−1} + α·θ_k` over the trained parameters.
/// With LoRA the adapter factors are interpolated (exact for full fine-tuning; for LoRA an
/// approximation of interpolating `ΔW`, our choice).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WiseFt {
    /// `α`, the weight of the newly fine-tuned parameters (0.5).
    pub alpha: f64,
}

impl Default for WiseFt {
    fn default() -> Self {
        Self { alpha: 0.5 }
    }
}

/// How many steps to train and with what: the suite's `[training]` table, overridden by the
/// method's `[train]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    /// `lora` (the `lora` table applies) or `full`.
    pub mode: TrainModeName,
    /// Passes over each task's training records (1).
    pub epochs: usize,
    /// If set, exactly this many optimizer steps per task instead of `epochs`.
    pub steps_per_task: Option<usize>,
    /// Task samples per optimizer step, `|B|` (8). Replay batches come on top.
    pub batch_size: usize,
    /// Optimizer settings (AdamW, schedule, clipping, accumulation).
    pub optim: finetune::TrainConfig,
    /// LoRA rank/alpha/targets when `mode = "lora"`.
    pub lora: lora::LoraConfig,
    /// Records per evaluation batch (16).
    pub eval_batch_size: usize,
    /// Greedy generation length for generative metrics (32 tokens).
    pub max_new_tokens: usize,
    /// Evaluate with the LoRA adapter folded into a copy of the base weights (`W + s·A·B`, one
    /// product per projection) instead of through its factors (true; our choice, for speed).
    /// The same function up to float rounding; the trained weights are not touched.
    pub eval_merge_adapter: bool,
    /// Corpus passages per corpus batch for the next-token term (2; used when
    /// `ntp_weight > 0`).
    pub corpus_batch_size: usize,
    /// One corpus batch every this many optimizer steps (4, METHODS.md section 5's default):
    /// at global steps `t` with `t % corpus_every == 0`.
    pub corpus_every: usize,
    /// Longest corpus passage in tokens (128).
    pub corpus_max_tokens: usize,
    /// Replayed-sample budget of the whole run (`None`: unlimited). Replay methods are
    /// compared at equal budgets: set it in the suite's `[training]` table.
    pub replay_budget: Option<u64>,
    /// How the budget may be spent: `none` (first come, first served) or `even` (at most the
    /// elapsed share of the run's post-first-task steps plus one replay batch; our choice for
    /// comparing schedulers that replay at different rates).
    pub replay_pacing: ReplayPacing,
    /// Replay batch size relative to `batch_size` (`r`, 1.0); sets the schedulers' `size`.
    pub replay_ratio: f32,
    /// Buffer entries kept per task (64).
    pub buffer_per_task: usize,
    /// Checkpoint every this many optimizer steps, besides task boundaries (`None`: only at
    /// boundaries).
    pub checkpoint_every: Option<u64>,
    /// Evaluate on at most this many test records per task (`None`: all).
    pub eval_limit: Option<usize>,
    /// Evaluate each probe on at most this many test records (`None`: `eval_limit`). Probes
    /// measure general ability (↓F), which a few records cannot resolve: one record of 6 is
    /// 0.167 of the score.
    pub probe_eval_limit: Option<usize>,
    /// `ρ` of the SAM sharpness `L(θ + ρ·g/‖g‖) − L(θ)` measured after every task on a fixed
    /// probe set (the validation records of every task of the suite, SFT loss, trainable
    /// parameters only); 0 (the default) measures nothing. Logged as `sharpness_probe` events
    /// and shown in the report. A measurement: it does not count in the run's cost.
    pub sharpness_rho: f64,
    /// Records per task held out of training as its validation split (16): the last
    /// `validation_records` of the task's training records. No method trains on them or
    /// buffers them; strategy-requested evaluations (accuracy-supervised replay) and the
    /// sharpness and landscape probes use them, and the test records stay untouched.
    pub validation_records: usize,
    /// Grid points of the 1-D loss-landscape slice measured after every stage along a random
    /// filter-normalised direction of the trainable parameters, on the validation records of
    /// every task (0, the default: none). Logged as `landscape` events and drawn in the
    /// report. A measurement: not counted in the run's cost.
    pub landscape_points: usize,
    /// The slice's coordinates run over `[-landscape_span, landscape_span]` (1.0).
    pub landscape_span: f64,
    /// What a NaN or infinite loss term or gradient norm does: `stop` the run with an error
    /// (the default) or `rollback` to the last checkpoint with the learning rate multiplied by
    /// `divergence_lr_factor`, at most `divergence_max_rollbacks` times, then stop.
    pub on_divergence: DivergencePolicy,
    /// Learning-rate factor of each rollback, in (0, 1) (0.5).
    pub divergence_lr_factor: f64,
    /// Rollbacks allowed in a run before a divergence stops it (3; at least 1 with `rollback`).
    pub divergence_max_rollbacks: usize,
}

/// `on_divergence` of [`TrainSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergencePolicy {
    /// Stop with an error naming the task, the step and the term.
    #[default]
    Stop,
    /// Restore the last checkpoint, lower the learning rate and retry; logged as `rollback`.
    Rollback,
}

/// `replay_pacing` of [`TrainSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayPacing {
    /// The budget is spent as the strategy asks until it is gone.
    #[default]
    None,
    /// At most the elapsed share of the budget (see the engine's `clip_to_budget`).
    Even,
}

/// `mode` of [`TrainSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainModeName {
    /// LoRA adapters on the frozen backbone.
    #[default]
    Lora,
    /// Every parameter.
    Full,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            mode: TrainModeName::Lora,
            epochs: 1,
            steps_per_task: None,
            batch_size: 8,
            optim: finetune::TrainConfig::default(),
            lora: lora::LoraConfig::default(),
            eval_batch_size: 16,
            max_new_tokens: 32,
            eval_merge_adapter: true,
            corpus_batch_size: 2,
            corpus_every: 4,
            corpus_max_tokens: 128,
            replay_budget: None,
            replay_pacing: ReplayPacing::None,
            replay_ratio: 1.0,
            buffer_per_task: 64,
            checkpoint_every: None,
            eval_limit: None,
            probe_eval_limit: None,
            sharpness_rho: 0.0,
            validation_records: 16,
            landscape_points: 0,
            landscape_span: 1.0,
            on_divergence: DivergencePolicy::Stop,
            divergence_lr_factor: 0.5,
            divergence_max_rollbacks: 3,
        }
    }
}

/// One method: `experiments/methods/<name>.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodConfig {
    /// Name (default: the file stem).
    #[serde(default)]
    pub name: String,
    /// One line for the report.
    #[serde(default)]
    pub description: String,
    /// Sequential or joint training.
    #[serde(default)]
    pub protocol: Protocol,
    /// Overrides of the suite's `[training]` table (merged key by key).
    #[serde(default)]
    pub train: toml::Table,
    /// The loss terms: `kl_weight` (β), `ntp_weight` (λ), directions.
    #[serde(default)]
    pub objective: ObjectiveConfig,
    /// AdamW, SAM or XSAM.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Replay strategy and buffer.
    #[serde(default)]
    pub replay: ReplaySettings,
    /// WiSE-FT interpolation between stages.
    #[serde(default)]
    pub wise_ft: Option<WiseFt>,
    /// Method plugins beyond the objective's terms and WiSE-FT, in the order they run: each
    /// a `[[plugins]]` table whose `kind` names a registered plugin (`ewc`, `lwf`, `agem`,
    /// `derpp`, `olora`, or one of a researcher's own; `continual::plugins`).
    #[serde(default)]
    pub plugins: Vec<Box<dyn crate::plugins::PluginConfig>>,
    /// Where the method was read from (for error messages).
    #[serde(skip)]
    pub path: PathBuf,
}

// Strategies and plugins are trait objects, compared by what they serialise to (kind and
// every setting); so is everything else in a method, plus what serde skips.
impl PartialEq for ReplaySettings {
    fn eq(&self, other: &Self) -> bool {
        self.explicit_capacity == other.explicit_capacity
            && serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

impl PartialEq for MethodConfig {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
            && self.replay == other.replay
            && serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

impl MethodConfig {
    /// Reads a method file; unknown keys and bad values are errors naming the file and key.
    pub fn from_path(path: &Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        let mut m = Self::from_toml_str(&text, path)?;
        m.path = path.to_path_buf();
        if m.name.is_empty() {
            m.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        Ok(m)
    }

    /// Parses a method from TOML text (`origin` names it in errors).
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, EngineError> {
        let raw: toml::Table =
            toml::from_str(text).map_err(|e| EngineError::config(origin, e.to_string()))?;
        let mut m: MethodConfig = raw
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| EngineError::config(origin, e.to_string()))?;
        reject_unknown(&toml::Value::Table(raw.clone()), &m, origin, &["train"])?;
        reject_engine_owned(&raw, origin)?;
        m.replay.explicit_capacity = lookup(&raw, &["replay", "buffer", "capacity"]).is_some();
        m.validate(origin)?;
        Ok(m)
    }

    fn validate(&self, origin: &Path) -> Result<(), EngineError> {
        let bad =
            |field: &str, why: &str| Err(EngineError::config(origin, format!("{field}: {why}")));
        let o = &self.objective;
        for (name, w) in [
            ("objective.sft_weight", o.sft_weight),
            ("objective.kl_weight", o.kl_weight),
            ("objective.ntp_weight", o.ntp_weight),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return bad(name, &format!("{w} must be a finite number >= 0"));
            }
        }
        match &self.optimizer {
            OptimizerConfig::Sam(SamSettings(s)) if !(s.rho >= 0.0 && s.ascent_steps >= 1) => {
                return bad("optimizer", "SAM needs rho >= 0 and ascent_steps >= 1");
            }
            OptimizerConfig::Xsam(XsamSettings(x))
                if !(x.sam.rho >= 0.0
                    && x.sam.ascent_steps >= 1
                    && x.alpha_period >= 1
                    && x.alpha_step > 0.0
                    && x.alpha_max >= 0.0) =>
            {
                return bad(
                    "optimizer",
                    "XSAM needs rho >= 0, ascent_steps >= 1, alpha_period >= 1, alpha_step > 0, alpha_max >= 0",
                );
            }
            _ => {}
        }
        // The strategy's own checks that need no run (a zero period); `train_settings` repeats
        // them with the run's settings.
        let any_run = StrategyInit {
            size: replay_buffer::ReplaySize::default(),
            seed: 0,
            validation_records: usize::MAX,
        };
        if let Err(e) = self.replay.scheduler.check(&any_run) {
            return Err(EngineError::config(
                origin,
                format!("replay.scheduler.{} {}", e.field, e.message),
            ));
        }
        for (n, p) in self.plugins.iter().enumerate() {
            if let Err((field, message)) = p.check() {
                return bad(&format!("plugins[{n}].{field}"), &message);
            }
        }
        if let Some(f) = self.replay.initial_stability_run_fraction
            && !(f.is_finite() && f > 0.0)
        {
            return bad(
                "replay.initial_stability_run_fraction",
                &format!("{f} must be a finite number > 0"),
            );
        }
        if let Some(w) = self.wise_ft
            && !(0.0..=1.0).contains(&w.alpha)
        {
            return bad("wise_ft.alpha", &format!("{} is outside [0, 1]", w.alpha));
        }
        Ok(())
    }

    /// This method's file, or `origin` when it was not read from one.
    fn path_or(&self, origin: &Path) -> PathBuf {
        if self.path.as_os_str().is_empty() {
            origin.to_path_buf()
        } else {
            self.path.clone()
        }
    }

    /// The training settings: the suite's `[training]` table with this method's `[train]`
    /// keys laid over it (tables merge recursively). Errors name the method file when the bad
    /// key comes from its `[train]` table, else `origin` (the suite).
    pub fn train_settings(
        &self,
        suite_training: Option<&toml::Table>,
        origin: &Path,
    ) -> Result<TrainSettings, EngineError> {
        let mut merged = suite_training.cloned().unwrap_or_default();
        merge(&mut merged, &self.train);
        let from_method = !self.train.is_empty() && !self.path.as_os_str().is_empty();
        let suite_only = suite_training.cloned().unwrap_or_default();
        if from_method && let Err(e) = self.check_settings(&merged, &self.path) {
            // Blame the method only when the suite's table alone is fine.
            return Err(match self.check_settings(&suite_only, origin) {
                Ok(_) => e,
                Err(suite_error) => suite_error,
            });
        }
        self.check_settings(&merged, origin)
    }

    fn check_settings(
        &self,
        merged: &toml::Table,
        origin: &Path,
    ) -> Result<TrainSettings, EngineError> {
        let s: TrainSettings = merged.clone().try_into().map_err(|e: toml::de::Error| {
            EngineError::config(origin, format!("training settings: {e}"))
        })?;
        reject_unknown(&toml::Value::Table(merged.clone()), &s, origin, &[])?;
        let bad = |field: &str, why: String| {
            Err(EngineError::config(
                origin,
                format!("training.{field}: {why}"),
            ))
        };
        if s.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if s.epochs == 0 && s.steps_per_task.is_none() {
            return bad("epochs", "must be at least 1".into());
        }
        if !(s.optim.lr.is_finite() && s.optim.lr > 0.0) {
            return bad(
                "optim.lr",
                format!("{} must be a finite number > 0", s.optim.lr),
            );
        }
        if !(s.divergence_lr_factor.is_finite()
            && s.divergence_lr_factor > 0.0
            && s.divergence_lr_factor < 1.0)
        {
            return bad(
                "divergence_lr_factor",
                format!("{} must be in (0, 1)", s.divergence_lr_factor),
            );
        }
        if s.on_divergence == DivergencePolicy::Rollback && s.divergence_max_rollbacks == 0 {
            return bad(
                "divergence_max_rollbacks",
                "must be at least 1 with on_divergence = \"rollback\"".into(),
            );
        }
        if s.lora.settings.rank == 0 {
            return bad("lora.settings.rank", "must be at least 1".into());
        }
        if s.replay_ratio.is_nan() || s.replay_ratio <= 0.0 {
            return bad("replay_ratio", format!("{} must be > 0", s.replay_ratio));
        }
        if !(s.sharpness_rho.is_finite() && s.sharpness_rho >= 0.0) {
            return bad(
                "sharpness_rho",
                format!("{} must be a finite number >= 0", s.sharpness_rho),
            );
        }
        if s.optim.grad_accum_steps != 1 {
            return bad(
                "optim.grad_accum_steps",
                format!(
                    "{} is not supported: the engine takes one optimizer step per batch (raise batch_size instead)",
                    s.optim.grad_accum_steps
                ),
            );
        }
        if s.corpus_every == 0 {
            return bad("corpus_every", "must be at least 1".into());
        }
        if s.landscape_points == 1 || !(s.landscape_span.is_finite() && s.landscape_span > 0.0) {
            return bad(
                "landscape_points",
                format!(
                    "{} points over ±{}: use 0 (off) or at least 2 points and a span > 0",
                    s.landscape_points, s.landscape_span
                ),
            );
        }
        // The strategy's own checks: zero periods, a validation slice larger than the records
        // held out, ...
        let run = StrategyInit {
            size: replay_buffer::ReplaySize {
                batch_size: s.batch_size,
                ratio: s.replay_ratio,
            },
            seed: 0,
            validation_records: s.validation_records,
        };
        if let Err(e) = self.replay.scheduler.check(&run) {
            return Err(EngineError::config(
                &self.path_or(origin),
                format!("replay.scheduler.{} {}", e.field, e.message),
            ));
        }
        Ok(s)
    }
}

/// The value at `path` in `table`, if present.
fn lookup<'a>(table: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let v = table.get(*first)?;
    match (rest.is_empty(), v) {
        (true, _) => Some(v),
        (false, toml::Value::Table(t)) => lookup(t, rest),
        _ => None,
    }
}

/// Keys a method file may not set because the engine sets them for every run: a value there
/// would be parsed and then overwritten, so it is an error naming the key and what to set.
fn reject_engine_owned(raw: &toml::Table, origin: &Path) -> Result<(), EngineError> {
    let owned: [(&[&str], &str); 3] = [
        (
            &["replay", "scheduler", "size"],
            "the replay batch size is training.batch_size × training.replay_ratio: set those",
        ),
        (
            &["replay", "scheduler", "seed"],
            "the scheduler is seeded from the run's seed (--seeds / --first-seed)",
        ),
        (
            &["replay", "buffer", "seed"],
            "the buffer is seeded from the run's seed (--seeds / --first-seed)",
        ),
    ];
    for (path, why) in owned {
        if lookup(raw, path).is_some() {
            return Err(EngineError::config(
                origin,
                format!(
                    "{}: set by the engine, not by a method file ({why})",
                    path.join(".")
                ),
            ));
        }
    }
    if lookup(raw, &["replay", "initial_stability_run_fraction"]).is_some()
        && lookup(raw, &["replay", "buffer", "memory", "initial_stability"]).is_some()
    {
        return Err(EngineError::config(
            origin,
            "replay.initial_stability_run_fraction and replay.buffer.memory.initial_stability both set S0: keep one".into(),
        ));
    }
    Ok(())
}

/// Lays `over` onto `base`, recursing into tables (how `[train]` and `--set` override a
/// suite's `[training]`).
pub fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Errors on keys of `input` that the parsed value does not have when written back: the
/// fields of nested configs that accept unknown keys silently. `opaque` top-level keys are
/// free-form tables checked elsewhere.
fn reject_unknown<T: Serialize>(
    input: &toml::Value,
    parsed: &T,
    origin: &Path,
    opaque: &[&str],
) -> Result<(), EngineError> {
    let back =
        toml::Value::try_from(parsed).map_err(|e| EngineError::config(origin, e.to_string()))?;
    let mut unknown = Vec::new();
    fn walk(
        input: &toml::Value,
        back: &toml::Value,
        path: &str,
        opaque: &[&str],
        out: &mut Vec<String>,
    ) {
        // Arrays of tables (`[[plugins]]`): element by element.
        if let (toml::Value::Array(i), toml::Value::Array(b)) = (input, back) {
            for (n, (iv, bv)) in i.iter().zip(b).enumerate() {
                walk(iv, bv, &format!("{path}[{n}]"), &[], out);
            }
            return;
        }
        let (toml::Value::Table(i), toml::Value::Table(b)) = (input, back) else {
            return;
        };
        for (k, v) in i {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if path.is_empty() && opaque.contains(&k.as_str()) {
                continue;
            }
            match b.get(k) {
                None => out.push(p),
                Some(bv) => walk(v, bv, &p, opaque, out),
            }
        }
    }
    walk(input, &back, "", opaque, &mut unknown);
    // Optional fields that are absent serialise as nothing; a key present in the input but set
    // to its absent value cannot occur in TOML (no null), so every miss is a real unknown key.
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(EngineError::config(
            origin,
            format!("unknown key(s) {}", unknown.join(", ")),
        ))
    }
}

/// The method files of a directory, by name.
pub fn method_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, EngineError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, e))? {
        let p = e.map_err(|e| EngineError::io(dir, e))?.path();
        if p.extension().is_some_and(|x| x == "toml") {
            out.push((p.file_stem().unwrap().to_string_lossy().into_owned(), p));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MethodConfig, EngineError> {
        MethodConfig::from_toml_str(text, Path::new("m.toml"))
    }

    #[test]
    fn a_full_mssr_xsam_method_parses_with_nested_settings() {
        let m = parse(
            r#"
            description = "MSSR + XSAM"
            [optimizer]
            kind = "xsam"
            rho = 0.1
            [replay.scheduler]
            kind = "mssr"
            initial_interval = 8.0
            [replay.buffer.capacity]
            kind = "per_task"
            quota = 32
            "#,
        )
        .unwrap();
        assert!(
            matches!(m.optimizer, OptimizerConfig::Xsam(XsamSettings(ref x)) if x.sam.rho == 0.1 && x.alpha_period == 100)
        );
        let back = serde_json::to_value(&m.replay.scheduler).unwrap();
        assert_eq!(
            (&back["kind"], &back["initial_interval"]),
            (&"mssr".into(), &8.0.into())
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_path_even_inside_foreign_configs() {
        let e = parse("[objective]\nkl_wieght = 0.1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.toml") && e.contains("objective.kl_wieght"),
            "{e}"
        );
        let e = parse("[replay.scheduler]\nkind = \"mssr\"\ninitial_intervall = 3.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("replay.scheduler.initial_intervall"), "{e}");
        let e = parse("colour = 1\n").unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(
            parse("[objective]\nkl_weight = -1.0\n")
                .unwrap_err()
                .to_string()
                .contains("objective.kl_weight")
        );
        assert!(
            parse("[wise_ft]\nalpha = 1.5\n")
                .unwrap_err()
                .to_string()
                .contains("wise_ft.alpha")
        );
        let m = parse("").unwrap();
        let suite: toml::Table = toml::from_str("batch_size = 0").unwrap();
        let e = m
            .train_settings(Some(&suite), Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.toml") && e.contains("batch_size"), "{e}");
    }

    #[test]
    fn divergence_settings_are_checked_like_the_others() {
        let m = parse("").unwrap();
        let settings =
            |t: &str| m.train_settings(Some(&toml::from_str(t).unwrap()), Path::new("s.toml"));
        let s = settings("on_divergence = \"rollback\"\ndivergence_lr_factor = 0.25\n").unwrap();
        assert_eq!(
            (
                s.on_divergence,
                s.divergence_lr_factor,
                s.divergence_max_rollbacks
            ),
            (DivergencePolicy::Rollback, 0.25, 3)
        );
        assert_eq!(settings("").unwrap().on_divergence, DivergencePolicy::Stop);
        let e = settings("on_divergence = \"retry\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.toml") && e.contains("on_divergence"), "{e}");
        for f in ["0.0", "1.0", "-0.5", "nan"] {
            let e = settings(&format!("divergence_lr_factor = {f}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("training.divergence_lr_factor"), "{e}");
        }
        let e = settings("on_divergence = \"rollback\"\ndivergence_max_rollbacks = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("training.divergence_max_rollbacks"), "{e}");
        let e = settings("divergence_max_rollback = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("divergence_max_rollback"), "{e}");
    }

    #[test]
    fn keys_the_engine_sets_are_refused_in_a_method_file_naming_them() {
        for (toml, key) in [
            (
                "[replay.scheduler]\nkind = \"mssr\"\n[replay.scheduler.size]\nbatch_size = 2\n",
                "replay.scheduler.size",
            ),
            (
                "[replay.scheduler]\nkind = \"fixed_interval\"\nseed = 7\n",
                "replay.scheduler.seed",
            ),
            ("[replay.buffer]\nseed = 7\n", "replay.buffer.seed"),
            (
                "[replay]\ninitial_stability_run_fraction = 0.2\n[replay.buffer.memory]\ninitial_stability = 50.0\n",
                "replay.initial_stability_run_fraction",
            ),
        ] {
            let e = parse(toml).unwrap_err().to_string();
            assert!(e.contains("m.toml") && e.contains(key), "{key}: {e}");
        }
        // A capacity table is the method's own: used as given, even when it equals the default.
        let m = parse("[replay.buffer.capacity]\nkind = \"total\"\ncapacity = 1000\n").unwrap();
        assert!(m.replay.explicit_capacity);
        assert!(!parse("").unwrap().replay.explicit_capacity);
    }

    #[test]
    fn gradient_accumulation_and_an_oversized_validation_slice_are_refused_at_load() {
        let m = parse("").unwrap();
        let e = m
            .train_settings(
                Some(&toml::from_str("[optim]\ngrad_accum_steps = 2\n").unwrap()),
                Path::new("s.toml"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.toml") && e.contains("training.optim.grad_accum_steps"),
            "{e}"
        );
        let m = parse("[replay.scheduler]\nkind = \"accuracy_supervised\"\neval_examples = 8\n")
            .unwrap();
        let e = m
            .train_settings(
                Some(&toml::from_str("validation_records = 4\n").unwrap()),
                Path::new("s.toml"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("replay.scheduler.eval_examples = 8 exceeds")
                && e.contains("validation_records = 4"),
            "{e}"
        );
        assert!(
            m.train_settings(
                Some(&toml::from_str("validation_records = 8\n").unwrap()),
                Path::new("s.toml")
            )
            .is_ok()
        );
        let e = parse("")
            .unwrap()
            .train_settings(
                Some(&toml::from_str("corpus_every = 0\n").unwrap()),
                Path::new("s.toml"),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("training.corpus_every"), "{e}");
    }

    #[test]
    fn method_train_keys_override_the_suites_and_tables_merge() {
        let m = parse("[train]\nepochs = 3\n[train.optim]\nlr = 0.01\n").unwrap();
        let suite: toml::Table = toml::from_str(
            "epochs = 2\nbatch_size = 4\n[optim]\nlr = 0.001\nmax_grad_norm = 0.5\n",
        )
        .unwrap();
        let s = m.train_settings(Some(&suite), Path::new("s.toml")).unwrap();
        assert_eq!((s.epochs, s.batch_size), (3, 4));
        assert_eq!(s.optim.lr, 0.01);
        assert_eq!(s.optim.max_grad_norm, Some(0.5));
        let e = m
            .train_settings(
                Some(&toml::from_str("[optim]\nlrr = 1.0\n").unwrap()),
                Path::new("s.toml"),
            )
            .unwrap_err();
        assert!(e.to_string().contains("optim.lrr"), "{e}");
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// Every method file under `experiments/methods/` parses, and with the shipped suites'
    /// `[training]` tables gives valid training settings.
    #[test]
    fn every_shipped_method_file_parses_with_every_suite() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let methods = method_files(&root.join("experiments/methods")).unwrap();
        assert!(methods.len() >= 15, "{} method files", methods.len());
        for suite in ["smoke", "quick"] {
            let spec = bench_tasks::SuiteSpec::from_path(
                &root.join(format!("experiments/suites/{suite}.toml")),
            )
            .unwrap();
            for (name, path) in &methods {
                let m = MethodConfig::from_path(path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(&m.name, name);
                m.train_settings(spec.training.as_ref(), &spec.path)
                    .unwrap_or_else(|e| panic!("{name} on {suite}: {e}"));
            }
        }
    }
}
